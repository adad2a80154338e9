"""leaklib.reports: step reports, the run index and the report site (`leak pages`: test_cli)."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import nbformat
import papermill
import pytest

from leaklib import reports
from leaklib.metadata import RUNS, LocalMetadataStore
from leaklib.reports import ReportError, build_site
from leaklib.run_record import RunRecord

RUN_ID = "20261128-211530-3fa2"


def render_report(notebook: Path, *, run: dict[str, Any], **options: Any) -> Path:
    """Render with the run document read as a store's reader reads it."""
    return reports.render_report(notebook, run=RunRecord.from_doc(run), **options)


def write_index(runs: list[dict[str, Any]], **options: Any) -> Path:
    """Write the index of run documents read as a store's reader reads them."""
    return reports.write_index([RunRecord.from_doc(run) for run in runs], **options)


def run_doc(run_id: str = RUN_ID, **fields: Any) -> dict[str, Any]:
    """A finished, promoted run document as leaklib.runs writes it."""
    doc = {
        "run_id": run_id,
        "status": "succeeded",
        "created_at": "2026-11-28T21:15:30+00:00",
        "finished_at": "2026-11-28T21:17:02+00:00",
        "params": {
            "dataset": {"source": "data/l-town-leaks.parquet"},
            "promotion": {"primary_metric": "roc_auc"},
        },
        "param_files": ["parameters/smoke.yaml"],
        "git": {"commit": "0123456789abcdef0123456789abcdef01234567", "dirty": False},
        "lock_hash": "f" * 64,
        "snapshot": {
            "uri": "stores/snapshots/ab/abcdef.parquet",
            "sha256": "abcdef0123456789" * 4,
            "rows": 1200,
            "columns": 41,
        },
        "metrics": {
            "cv_roc_auc": 0.91,
            "holdout_roc_auc": 0.934,
            "holdout_pr_auc": 0.71,
            "holdout_recall_at_1pct_fpr": 0.42,
        },
        "model": {"name": "hist_gradient_boosting"},
        "mlflow": {
            "run_id": "9f8e7d6c5b4a",
            "experiment_id": "1",
            "run_url": "https://gitlab.example.com/group/leak/-/ml/candidates/9",
        },
        "promotion": {"decision": "promoted", "reason": "first model: no champion yet"},
        "steps": {
            s: {"status": "succeeded", "duration_s": 2.5, "error": None}
            for s in ("extract", "train", "evaluate")
        },
        "error": None,
    }
    doc.update(fields)
    return doc


def failed_doc(
    run_id: str = RUN_ID, created_at: str = "2026-11-28T21:15:30+00:00"
) -> dict[str, Any]:
    """A run whose extract step failed (e.g. a bad ``source``)."""
    return run_doc(
        run_id,
        status="failed",
        created_at=created_at,
        snapshot=None,
        metrics={},
        mlflow=None,
        promotion=None,
        steps={"extract": {"status": "failed", "duration_s": 1.0, "error": "FileNotFoundError"}},
        error="extract: FileNotFoundError: source 'nope.parquet' does not exist",
    )


def executed_notebook(path: Path, *cells: Any) -> Path:
    """Write a notebook whose code cells already carry outputs, as papermill leaves them."""
    nb = nbformat.v4.new_notebook()
    nb.cells = list(cells)
    nbformat.write(nb, path)
    return path


def code(source: str, *outputs: Any, tags: list[str] | None = None) -> Any:
    cell = nbformat.v4.new_code_cell(source, execution_count=1)
    cell.outputs = list(outputs)
    if tags:
        cell.metadata["tags"] = tags
    return cell


def stream(name: str, text: str) -> Any:
    return nbformat.v4.new_output("stream", name=name, text=text)


PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="


@pytest.fixture
def notebook(tmp_path: Path) -> Path:
    folder = tmp_path / "reports" / RUN_ID
    folder.mkdir(parents=True)
    return executed_notebook(
        folder / "01_extract.ipynb",
        nbformat.v4.new_markdown_cell("# Extract the table\nWhy this step exists."),
        code("source: str = 'data/x.parquet'  # input table", tags=["parameters"]),
        code("# Parameters\nsource = 'data/l-town.parquet'\n", tags=["injected-parameters"]),
        code(
            "frame = load_table(source)",
            stream("stderr", "UserWarning: pandas noise\nINFO leaklib: loading\n"),
            stream("stdout", "1200 rows read\n"),
        ),
        code(
            "plot_rows(frame)",
            nbformat.v4.new_output(
                "display_data", data={"image/png": PNG, "text/plain": "<Figure>"}
            ),
        ),
    )


@pytest.fixture(scope="module")
def failed_notebook(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A notebook really executed by papermill that stops in its third cell."""
    folder = tmp_path_factory.mktemp("reports") / RUN_ID
    folder.mkdir()
    source = folder / "source.ipynb"
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nb.cells = [
        nbformat.v4.new_markdown_cell("# Extract"),
        nbformat.v4.new_code_cell("source = 'data/x.parquet'", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell("print('reading', source)"),
        nbformat.v4.new_code_cell("raise FileNotFoundError(f'source {source!r} does not exist')"),
        nbformat.v4.new_markdown_cell("## Summary of the extracted table"),
        nbformat.v4.new_code_cell("print('never printed')"),
    ]
    nbformat.write(nb, source)
    target = folder / "01_extract.ipynb"
    with pytest.raises(papermill.PapermillExecutionError):
        papermill.execute_notebook(
            str(source), str(target), parameters={"source": "nope.parquet"}, progress_bar=False
        )
    return target


def attributes(page: str, name: str) -> list[str]:
    return re.findall(rf'\b{name}="([^"]*)"', page)


# --- render_report ------------------------------------------------------------------------


def test_render_report_writes_html_beside_the_notebook(notebook: Path) -> None:
    assert render_report(notebook, run=run_doc(), step="extract") == notebook.with_suffix(".html")


def test_render_report_header_shows_the_lineage(notebook: Path) -> None:
    page = render_report(notebook, run=run_doc(), step="extract").read_text()
    header = page[page.index('id="lineage"') : page.index("</header>")]
    for fact in (
        RUN_ID,
        "2026-11-28 21:15 UTC",
        "succeeded",
        "0123456789ab",
        "parameters/smoke.yaml",
        "abcdef012345",
        "stores/snapshots/ab/abcdef.parquet",
        'href="https://gitlab.example.com/group/leak/-/ml/candidates/9"',
        "promoted",
        "first model: no champion yet",
        "0.934",
    ):
        assert fact in header, fact


def test_render_report_hides_code_and_keeps_outputs(notebook: Path) -> None:
    page = render_report(notebook, run=run_doc(), step="extract").read_text()
    assert "load_table" not in page
    assert "1200 rows read" in page


def test_render_report_hides_the_injected_parameters(notebook: Path) -> None:
    page = render_report(notebook, run=run_doc(), step="extract").read_text()
    assert "l-town.parquet" not in page.split("</header>", 1)[1]


def test_render_report_shows_code_on_request(notebook: Path) -> None:
    page = render_report(notebook, run=run_doc(), step="extract", show_code=True).read_text()
    assert "load_table" in page


def test_render_report_drops_warnings_and_log_lines(notebook: Path) -> None:
    page = render_report(notebook, run=run_doc(), step="extract").read_text()
    assert "pandas noise" not in page
    assert "INFO leaklib" not in page


def test_render_report_loads_nothing_from_the_network(notebook: Path) -> None:
    page = render_report(notebook, run=run_doc(), step="extract").read_text()
    assert "<script src" not in page
    assert "<link" not in page
    assert all(src.startswith("data:") for src in attributes(page, "src"))


def test_render_report_embeds_plots_with_alt_text(notebook: Path) -> None:
    page = render_report(notebook, run=run_doc(), step="extract").read_text()
    assert f'alt="Figure 1 of this report" src="data:image/png;base64,{PNG}"' in page


def test_render_report_drops_widgets_and_scripts(tmp_path: Path) -> None:
    widget = nbformat.v4.new_output(
        "display_data",
        data={
            "application/vnd.jupyter.widget-view+json": {"model_id": "x"},
            "text/plain": "HBox()",
        },
    )
    script = nbformat.v4.new_output(
        "display_data", data={"application/javascript": "fetch('https://cdn.example.com')"}
    )
    path = executed_notebook(tmp_path / "02_train.ipynb", code("fit()", widget, script))
    page = render_report(path, run=run_doc(), step="train").read_text()
    assert "HBox()" not in page
    assert "cdn.example.com" not in page


def test_render_report_of_a_failed_step_keeps_the_traceback(failed_notebook: Path) -> None:
    page = render_report(failed_notebook, run=failed_doc(), step="extract").read_text()
    body = page.split("</header>", 1)[1]
    assert "FileNotFoundError" in body
    assert "reading nope.parquet" in body


def test_render_report_of_a_failed_step_marks_the_failing_cell(failed_notebook: Path) -> None:
    page = render_report(failed_notebook, run=failed_doc(), step="extract").read_text()
    assert 'id="failed-cell"' in page
    assert 'href="#failed-cell"' in page


def test_render_report_of_a_failed_step_stops_at_the_failing_cell(failed_notebook: Path) -> None:
    page = render_report(failed_notebook, run=failed_doc(), step="extract").read_text()
    assert "Summary of the extracted table" not in page
    assert "papermill-error-cell" not in page


def test_render_report_of_a_failed_run_says_failed(failed_notebook: Path) -> None:
    page = render_report(failed_notebook, run=failed_doc(), step="extract").read_text()
    header = html.unescape(page.split("</header>", 1)[0])
    assert "leak-status-failed" in header
    assert "extract: FileNotFoundError: source 'nope.parquet' does not exist" in header


def test_render_report_links_only_steps_that_ran(failed_notebook: Path) -> None:
    page = render_report(failed_notebook, run=failed_doc(), step="extract").read_text()
    nav = page[page.index("<nav") : page.index("</nav>")]
    assert attributes(nav, "href") == ["../index.html"]


def test_render_report_refuses_a_missing_notebook(tmp_path: Path) -> None:
    with pytest.raises(ReportError, match="01_extract.ipynb' does not exist"):
        render_report(tmp_path / "01_extract.ipynb", run=run_doc(), step="extract")


def test_render_report_refuses_an_unknown_step(notebook: Path) -> None:
    with pytest.raises(ReportError, match="unknown step 'deploy'"):
        render_report(notebook, run=run_doc(), step="deploy")


def test_render_report_refuses_a_run_without_id(notebook: Path) -> None:
    with pytest.raises(ReportError, match="no usable run_id"):
        render_report(notebook, run=run_doc(run_id="../escape"), step="extract")


# --- write_index ------------------------------------------------------------------------


def rendered(root: Path, run_id: str, *stems: str) -> None:
    """Pretend `leak run` rendered these reports."""
    (root / run_id).mkdir(parents=True, exist_ok=True)
    for stem in stems:
        (root / run_id / f"{stem}.html").write_text("<html></html>")


def three_runs() -> list[dict[str, Any]]:
    """Oldest promoted, then a challenger kept out, then a failed run (newest)."""
    return [
        failed_doc("run-c", created_at="2026-11-28T23:00:00+00:00"),
        run_doc(
            "run-b",
            created_at="2026-11-28T22:00:00+00:00",
            promotion={"decision": "not promoted", "reason": "not better than the champion"},
            metrics={"holdout_roc_auc": 0.90},
        ),
        run_doc("run-a", created_at="2026-11-28T21:00:00+00:00"),
    ]


def test_write_index_lists_runs_newest_first_failures_apart(tmp_path: Path) -> None:
    runs = list(reversed(three_runs()))
    page = write_index(runs, out_dir=tmp_path, reports_root=tmp_path).read_text()
    assert re.findall(r'<tr id="run-([^"]+)"', page) == ["run-b", "run-a", "run-c"]
    folded = page[page.index('<details class="leak-failed"') :].split("</details>", 1)[0]
    assert "<summary>1 failed run</summary>" in folded and 'id="run-run-c"' in folded


def named(run: dict[str, Any], model_name: str) -> dict[str, Any]:
    """The run, recorded under ``model_name``."""
    params = run["params"]
    return {**run, "params": {**params, "dataset": {**params["dataset"], "model_name": model_name}}}


def test_write_index_keeps_the_successes_first_however_many_runs_failed(tmp_path: Path) -> None:
    failures = [
        failed_doc(f"run-f{i:02d}", created_at=f"2026-11-29T{i:02d}:00:00+00:00") for i in range(20)
    ]
    page = write_index(
        [*failures, *three_runs()], out_dir=tmp_path, reports_root=tmp_path
    ).read_text()
    ids = re.findall(r'<tr id="run-([^"]+)"', page)
    assert ids[:2] == ["run-b", "run-a"] and len(ids) == 23
    assert "<summary>21 failed runs</summary>" in page


def test_write_index_has_a_section_chart_and_champion_per_model_name(tmp_path: Path) -> None:
    runs = [
        named(run_doc("smoke-1", created_at="2026-11-28T23:30:00+00:00"), "leak-detector-smoke"),
        *[named(run, "leak-detector") for run in three_runs()],
    ]
    page = write_index(runs, out_dir=tmp_path, reports_root=tmp_path).read_text()
    sections = re.findall(r'<section class="leak-model" id="model-([^"]+)"', page)
    assert sections == ["leak-detector-smoke", "leak-detector"]  # the newest run's name first
    smoke, default = page.split('<section class="leak-model"')[1:]
    assert 'href="#run-smoke-1"' in smoke and "run-a" not in smoke
    assert 'href="#run-run-a"' in default and "smoke-1" not in default
    for part in (smoke, default):
        assert part.count("&#9733; champion") == 1
        assert sum(src.startswith("data:image/png") for src in attributes(part, "src")) == 1


def test_write_index_leaves_out_a_run_that_ended_before_its_first_step(tmp_path: Path) -> None:
    never_started = {**failed_doc("run-x"), "steps": {}, "error": "metadata store unreachable"}
    starting = {**run_doc("run-y"), "status": "running", "steps": {}, "updated_at": None}
    starting["created_at"] = starting["heartbeat_at"] = datetime.now(UTC).isoformat()
    page = write_index(
        [never_started, starting, *three_runs()], out_dir=tmp_path, reports_root=tmp_path
    ).read_text()
    ids = re.findall(r'<tr id="run-([^"]+)"', page)
    assert "run-x" not in ids and "run-y" in ids and "run-c" in ids


def test_write_index_marks_a_failed_run_with_its_partial_report(tmp_path: Path) -> None:
    rendered(tmp_path, "run-c", "01_extract")
    page = write_index(three_runs(), out_dir=tmp_path, reports_root=tmp_path).read_text()
    row = page[page.index('<tr id="run-run-c"') :].split("</tr>", 1)[0]
    assert "leak-status-failed" in row
    assert "source &#39;nope.parquet&#39; does not exist" in row
    assert attributes(row, "href") == ["run-c/01_extract.html"]


def test_write_index_links_relative_to_its_folder(tmp_path: Path) -> None:
    rendered(tmp_path / "reports", "run-a", "01_extract", "02_train", "03_evaluate")
    page = write_index(
        three_runs(), out_dir=tmp_path / "site", reports_root=tmp_path / "reports"
    ).read_text()
    assert "../reports/run-a/03_evaluate.html" in attributes(page, "href")


def test_write_index_marks_the_champion(tmp_path: Path) -> None:
    page = write_index(three_runs(), out_dir=tmp_path, reports_root=tmp_path).read_text()
    row = page[page.index('<tr id="run-run-a"') :].split("</tr>", 1)[0]
    assert "&#9733; champion" in row


def test_write_index_follows_a_promotion_back_to_an_older_run(tmp_path: Path) -> None:
    runs = [
        run_doc(
            "run-new",
            created_at="2026-11-28T22:00:00+00:00",
            promotion={"decision": "promoted", "decided_at": "2026-11-28T22:05:00+00:00"},
        ),
        run_doc(
            "run-old",
            created_at="2026-11-28T21:00:00+00:00",
            promotion={"decision": "promoted", "decided_at": "2026-11-29T08:00:00+00:00"},
        ),
    ]
    page = write_index(runs, out_dir=tmp_path, reports_root=tmp_path).read_text()
    row = page[page.index('<tr id="run-run-old"') :].split("</tr>", 1)[0]
    assert "&#9733; champion" in row


def test_write_index_shows_the_domain_metrics(tmp_path: Path) -> None:
    page = write_index(three_runs(), out_dir=tmp_path, reports_root=tmp_path).read_text()
    row = page[page.index('<tr id="run-run-a"') :].split("</tr>", 1)[0]
    assert re.findall(r'class="leak-num">([^<]*)', row) == ["0.934", "0.710", "0.420", "0.910"]


def test_write_index_embeds_the_trend_chart(tmp_path: Path) -> None:
    page = write_index(three_runs(), out_dir=tmp_path, reports_root=tmp_path).read_text()
    assert any(src.startswith("data:image/png;base64,") for src in attributes(page, "src"))


def test_write_index_without_metrics_says_there_is_no_trend(tmp_path: Path) -> None:
    page = write_index([failed_doc()], out_dir=tmp_path, reports_root=tmp_path).read_text()
    assert "no trend to show" in page


def test_write_index_refuses_a_file_as_folder(tmp_path: Path) -> None:
    (tmp_path / "site").write_text("")
    with pytest.raises(ReportError, match="exists and is not a folder"):
        write_index(three_runs(), out_dir=tmp_path / "site", reports_root=tmp_path)


# --- build_site --------------------------------------------------------------------------


@pytest.fixture
def store(tmp_path: Path) -> LocalMetadataStore:
    store = LocalMetadataStore(tmp_path / "metadata")
    for run in three_runs():
        store.create(RUNS, run["run_id"], run)
    rendered(tmp_path / "reports", "run-a", "01_extract", "02_train", "03_evaluate")
    rendered(tmp_path / "reports", "run-c", "01_extract")
    (tmp_path / "reports" / "run-a" / "01_extract.ipynb").write_text("{}")
    return store


def test_build_site_copies_each_runs_reports(tmp_path: Path, store: LocalMetadataStore) -> None:
    build_site(store, out=tmp_path / "public", reports_root=tmp_path / "reports")
    copied = sorted(
        p.relative_to(tmp_path / "public").as_posix() for p in (tmp_path / "public").rglob("*.*")
    )
    assert copied == [
        "index.html",
        "run-a/01_extract.html",
        "run-a/02_train.html",
        "run-a/03_evaluate.html",
        "run-c/01_extract.html",
    ]


def test_build_site_index_links_stay_inside_the_site(
    tmp_path: Path, store: LocalMetadataStore
) -> None:
    index = build_site(store, out=tmp_path / "public", reports_root=tmp_path / "reports")
    links = [h for h in attributes(index.read_text(), "href") if not h.startswith(("#", "https:"))]
    assert links and all((index.parent / link).is_file() for link in links)
    assert not any(link.startswith(("/", "..")) for link in links)


def test_build_site_refuses_a_file_as_folder(tmp_path: Path, store: LocalMetadataStore) -> None:
    (tmp_path / "public").write_text("")
    with pytest.raises(ReportError, match="site folder .* is not a folder"):
        build_site(store, out=tmp_path / "public", reports_root=tmp_path / "reports")
