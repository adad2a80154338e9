"""The reports and the report site in headless Chromium, from a real smoke run and a failed run.

Every page (both indexes and every report) must show no console error, load every image,
resolve every link, and load nothing but ``file:`` and ``data:`` URLs.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from tests import chromium
from tests.conftest import copy_smoke_project
from tests.test_gitlab_ci import need

pytestmark = [pytest.mark.browser, pytest.mark.slow]

LEAK = Path(sys.executable).parent / "leak"
# name -> how to find the page in the site built from the two runs
PAGES = (
    "site index",
    "reports index",
    "succeeded/01_extract",
    "succeeded/02_train",
    "succeeded/03_evaluate",
    "failed/01_extract",
)
REPORTS = tuple(p for p in PAGES if "/" in p)


def leak(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LEAK_", "MLFLOW_", "GOOGLE_"))}
    env["LEAK_PROJECT_DIR"] = str(project)
    return subprocess.run(
        [str(LEAK), *args], cwd=project, env=env, capture_output=True, text=True, timeout=1800
    )


def run_ids(project: Path) -> dict[str, str]:
    """Return the run id of the succeeded and of the failed run in the project's store."""
    found = {}
    for path in (project / "stores" / "metadata" / "runs").glob("*.json"):
        record = json.loads(path.read_text())
        found[record["status"]] = record["run_id"]
    return found


@pytest.fixture(scope="module")
def site(smoke_run: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The session's smoke project copied, a run failed in extract by a table that lacks a
    declared column (a missing file is refused before a run exists), and `leak pages`."""
    project = copy_smoke_project(smoke_run, tmp_path_factory.mktemp("browser") / "project").project
    table = pd.read_parquet(project / "data" / "l-town-leaks.parquet")
    table.drop(columns=["p_n1"]).to_parquet(project / "no-p_n1.parquet")
    failed = leak(
        project,
        "run",
        "-f",
        "parameters/smoke.yaml",
        "-p",
        "dataset.source",
        "no-p_n1.parquet",
    )
    assert failed.returncode == 1, failed.stdout[-3000:] + failed.stderr[-3000:]
    pages = leak(project, "pages", "--out", "public")
    assert pages.returncode == 0, pages.stderr[-3000:]
    ids = run_ids(project)
    paths = {
        "site index": project / "public" / "index.html",
        "reports index": project / "reports" / "index.html",
    }
    for name in REPORTS:
        status, stem = name.split("/")
        paths[name] = project / "public" / ids[status] / f"{stem}.html"
    return {"project": project, "ids": ids, "paths": paths}


@pytest.fixture(scope="module")
def driver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    reason = chromium.missing()
    need(reason is None, reason or "")
    with chromium.chromium(tmp_path_factory.mktemp("chromium-profile")) as browser:
        yield browser


_visits: dict[str, dict[str, Any]] = {}


@pytest.fixture
def visit(driver: Any, site: dict[str, Any]) -> Any:
    """Open a page of the site once and return what the browser saw (cached per page)."""

    def open_page(name: str) -> dict[str, Any]:
        if name not in _visits:
            path = site["paths"][name]
            assert path.is_file(), f"{name}: {path} was not written"
            _visits[name] = chromium.inspect(driver, path)
        return _visits[name]

    return open_page


def test_the_check_sees_a_page_that_reaches_the_network(driver: Any, tmp_path: Path) -> None:
    page = tmp_path / "cdn.html"
    page.write_text(
        '<html><body><script src="https://cdn.example.com/require.js"></script></body></html>'
    )
    assert "https://cdn.example.com/require.js" in chromium.inspect(driver, page)["requests"]


@pytest.mark.parametrize("name", PAGES)
def test_page_has_no_console_errors(visit: Any, name: str) -> None:
    assert chromium.console_errors(visit(name)) == []


@pytest.mark.parametrize("name", PAGES)
def test_page_loads_every_image(visit: Any, name: str) -> None:
    images = visit(name)["images"]
    assert [i for i in images if not i["ok"]] == []


@pytest.mark.parametrize("name", PAGES)
def test_page_links_resolve(visit: Any, site: dict[str, Any], name: str) -> None:
    root = site["project"] / ("reports" if name == "reports index" else "public")
    assert chromium.broken_links(visit(name), root=root) == []


@pytest.mark.parametrize("name", PAGES)
def test_page_loads_nothing_from_the_network(visit: Any, name: str) -> None:
    seen = visit(name)
    urls = seen["requests"] + seen["resources"]
    assert urls, "the performance log recorded no request at all"
    assert [u for u in urls if not u.startswith(("file:", "data:"))] == []


@pytest.mark.parametrize("name", REPORTS)
def test_report_opens_with_the_lineage_header(visit: Any, site: dict[str, Any], name: str) -> None:
    text = visit(name)["text"]
    status = name.split("/")[0]
    for fact in (site["ids"][status], "Git commit", "Parameter set", "Data snapshot",
                 "MLflow run", "Champion decision"):  # fmt: skip
        assert fact in text


def test_index_shows_the_domain_metrics_of_the_smoke_run(visit: Any, site: dict[str, Any]) -> None:
    row = visit("site index")["rows"][f"run-{site['ids']['succeeded']}"]
    assert len(re.findall(r"\b[01]\.\d{3}\b", row)) == 4, row


def test_index_marks_the_failed_run_failed(visit: Any, site: dict[str, Any]) -> None:
    row = visit("site index")["rows"][f"run-{site['ids']['failed']}"]
    assert "failed" in row.lower()  # folded under the successes: its text is not styled
    assert "SchemaError: the input table does not fit" in row


def test_failed_report_shows_the_error(visit: Any) -> None:
    seen = visit("failed/01_extract")
    assert "This step failed in the cell below" in seen["text"]
    assert "failed-cell" in seen["ids"]
