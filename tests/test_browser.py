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
from urllib.parse import unquote, urldefrag, urlparse

import pytest

from tests.test_gitlab_ci import need, project_copy

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
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
def site(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A project copy with a smoke run, a run failed by a bad source, and `leak pages`."""
    project = project_copy(tmp_path_factory.mktemp("browser") / "project")
    smoke = leak(project, "run", "-f", "parameters/smoke.yaml")
    assert smoke.returncode == 0, smoke.stdout[-3000:] + smoke.stderr[-3000:]
    failed = leak(
        project,
        "run",
        "-f",
        "parameters/smoke.yaml",
        "-p",
        "dataset.source",
        "data/no-such.parquet",
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
    need(CHROMIUM.is_file(), f"headless Chromium ({CHROMIUM}) is not installed")
    need(CHROMEDRIVER.is_file(), f"chromedriver ({CHROMEDRIVER}) is not installed")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ["SE_OFFLINE"] = "true"  # never let Selenium Manager download a driver
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        "--disable-sync",
        "--window-size=1280,1024",
        # any name lookup fails, so nothing can leave the machine even by mistake
        "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE localhost",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    browser = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    browser.get("about:blank")  # the start page's own chrome:// loads are not the site's
    try:
        yield browser
    finally:
        browser.quit()


_visits: dict[str, dict[str, Any]] = {}

_INSPECT = """
return {
  images: Array.from(document.images).map(i => ({src: i.src.slice(0, 60), ok: i.complete && i.naturalWidth > 0})),
  links: Array.from(document.querySelectorAll('a[href]')).map(a => a.getAttribute('href')),
  ids: Array.from(document.querySelectorAll('[id]')).map(e => e.id),
  resources: performance.getEntriesByType('resource').map(r => r.name),
  rows: Object.fromEntries(Array.from(document.querySelectorAll('tr[id]')).map(r => [r.id, r.innerText])),
  text: document.body.innerText,
};
"""


def inspect(driver: Any, path: Path) -> dict[str, Any]:
    """Open a file in the browser and return what it logged, requested and shows."""
    driver.get_log("performance")  # drop what earlier pages logged
    driver.get_log("browser")
    driver.get(path.as_uri())
    seen = driver.execute_script(_INSPECT)
    seen["console"] = driver.get_log("browser")
    messages = (json.loads(e["message"])["message"] for e in driver.get_log("performance"))
    seen["requests"] = [
        m["params"]["request"]["url"]
        for m in messages
        if m["method"] == "Network.requestWillBeSent"
    ]
    seen["path"] = path
    return seen


@pytest.fixture
def visit(driver: Any, site: dict[str, Any]) -> Any:
    """Open a page of the site once and return what the browser saw (cached per page)."""

    def open_page(name: str) -> dict[str, Any]:
        if name not in _visits:
            path = site["paths"][name]
            assert path.is_file(), f"{name}: {path} was not written"
            _visits[name] = inspect(driver, path)
        return _visits[name]

    return open_page


def test_the_check_sees_a_page_that_reaches_the_network(driver: Any, tmp_path: Path) -> None:
    page = tmp_path / "cdn.html"
    page.write_text(
        '<html><body><script src="https://cdn.example.com/require.js"></script></body></html>'
    )
    assert "https://cdn.example.com/require.js" in inspect(driver, page)["requests"]


@pytest.mark.parametrize("name", PAGES)
def test_page_has_no_console_errors(visit: Any, name: str) -> None:
    assert [e for e in visit(name)["console"] if e["level"] in ("SEVERE", "WARNING")] == []


@pytest.mark.parametrize("name", PAGES)
def test_page_loads_every_image(visit: Any, name: str) -> None:
    images = visit(name)["images"]
    assert [i for i in images if not i["ok"]] == []


@pytest.mark.parametrize("name", PAGES)
def test_page_links_resolve(visit: Any, site: dict[str, Any], name: str) -> None:
    seen = visit(name)
    page = seen["path"]
    root = site["project"] / ("reports" if name == "reports index" else "public")
    broken = []
    for href in seen["links"]:
        if urlparse(href).scheme in ("http", "https"):
            continue  # MLflow: a link to follow, not something the page loads
        target, fragment = urldefrag(href)
        if not target:
            # browsers match the fragment as written, then percent-decoded
            if fragment not in seen["ids"] and unquote(fragment) not in seen["ids"]:
                broken.append(href)
            continue
        resolved = (page.parent / unquote(target)).resolve()
        inside = resolved.is_relative_to(root.resolve())
        if urlparse(href).scheme or href.startswith("/") or not inside or not resolved.is_file():
            broken.append(href)
    assert broken == []


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
    assert "FAILED" in row
    assert "no-such.parquet" in row


def test_failed_report_shows_the_error(visit: Any) -> None:
    seen = visit("failed/01_extract")
    assert "This step failed in the cell below" in seen["text"]
    assert "failed-cell" in seen["ids"]
