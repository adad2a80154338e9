"""Rendered reports: executed notebooks as self-contained HTML, the run index and the report site.

Every report opens with a lineage header built from the run document (run id, date, status,
git commit, parameter set, data snapshot, MLflow run, champion decision). Code is hidden by
default, stderr (warnings, logging, progress bars) is dropped, and a failed step keeps its
traceback, marked clearly, with nothing after the failing cell. The pages load nothing from
the network: the nbconvert template (``leaklib/templates/leak_report``) empties the lab
template's CDN script blocks, CSS is inlined and plots stay embedded images.
"""

from __future__ import annotations

import copy
import html
import logging
import os
import re
import shutil
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2
import nbformat
import yaml

from leaklib import metrics, run_record
from leaklib.errors import LeakError
from leaklib.params import ID_PATTERN, default_model_name
from leaklib.paths import write_atomic
from leaklib.run_record import MlflowRun, Promotion, RunRecord, RunStatus, SnapshotRef, StepRecord
from leaklib.snapshots import (
    SnapshotError,
    SnapshotStore,
    open_snapshot_store,
    sha256_hex,
)
from leaklib.steps import NOTEBOOKS, STEPS, TITLES

if TYPE_CHECKING:
    from leaklib.plots import Trend

log = logging.getLogger(__name__)

TEMPLATES = Path(__file__).parent / "templates"
ARCHIVE = "reports"  # the folder of archived reports beside the snapshots
REPORT_TEMPLATE = "leak_report"
# Metrics shown in the header and the index: (key in run["metrics"], column label).
KEY_METRICS = tuple((key, metrics.label(key)) for key in metrics.HEADLINE)
# Outputs a static page cannot show: live widgets (tqdm bars) and scripts.
_DROPPED_MIMETYPES = (
    "application/vnd.jupyter.widget-view+json",
    "application/vnd.jupyter.widget-state+json",
    "application/javascript",
)
_SAFE_ID = re.compile(ID_PATTERN)  # a run id becomes a folder and a file name


class ReportError(LeakError, RuntimeError):
    """A report or the run index cannot be rendered or written."""


# --- the run document, as the pages show it ---------------------------------------------


def _date(stamp: str | None) -> str:
    if not stamp:
        return ""
    try:
        moment = datetime.fromisoformat(stamp)
    except ValueError:
        return stamp
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def _fmt_metric(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "—" if value is None else str(value)
    return f"{value:.3f}"


def short_error(text: str | None, *, limit: int = 300) -> str:
    """Return the first line of an error message, cut to ``limit`` characters."""
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    first = lines[0] if lines else ""
    if len(first) > limit or len(lines) > 1:
        first = first[:limit].rstrip() + " …"
    return first


def _param_set(run: RunRecord) -> str:
    files = run.param_files or []
    names = [str(f) for f in files]
    return ", ".join(names) if names else "embedded default"


def _primary_metric(runs: Sequence[RunRecord]) -> str:
    """Return the promotion metric of the newest run that names one (default ROC AUC)."""
    for run in runs:
        name = (run.params.get("promotion") or {}).get("primary_metric")
        if name:
            return str(name)
    return "roc_auc"


def _left_out(comparison: dict[str, Any] | None) -> str:
    """Return what the gate left out of its comparison, in a few words ("" for nothing)."""
    if not comparison:
        return ""
    if comparison.get("source") == "unknown":
        return "compared on the whole holdout (the champion's training rows are unknown)"
    left = comparison.get("left_out_rows") or 0
    groups = comparison.get("left_out_groups")
    if not left:
        return ""
    return f"{left:,} holdout rows" + (f" ({groups} groups)" if groups else "") + " left out"


def _run_facts(run: RunRecord, *, step: str | None = None) -> dict[str, Any]:
    """Flatten the run record into what the header and the index print."""
    git = run.git or {}
    snapshot = run.snapshot or SnapshotRef()
    mlflow = run.mlflow or MlflowRun()
    promotion = run.promotion or Promotion()
    step_doc = run.step(step) if step else StepRecord()
    rows, columns = snapshot.rows, snapshot.columns
    shape = f"{rows} rows × {columns} columns" if rows is not None and columns is not None else ""
    params = run.params
    duration = step_doc.duration_s
    return {
        "run_id": str(run.run_id or ""),
        "status": run.shown().value,
        "date": _date(run.created_at),
        "finished": _date(run.finished_at),
        "step_status": str(step_doc.status or "not run"),
        "step_duration": f"{duration:.1f} s" if isinstance(duration, int | float) else "",
        "commit": run.git_commit,
        "dirty": bool(git.get("dirty")),
        "param_set": _param_set(run),
        "params_yaml": yaml.safe_dump(params, sort_keys=False).strip() if params else "",
        "snapshot_sha": snapshot.sha256,
        "snapshot_uri": snapshot.uri or "",
        "snapshot_shape": shape,
        "mlflow_id": mlflow.run_id,
        "mlflow_url": mlflow.run_url,
        "mlflow_experiment": mlflow.experiment_id,
        "decision": promotion.decision.value if promotion.decision else None,
        "reason": promotion.reason or "",
        "decision_cached_from": promotion.cached_from,
        "left_out": _left_out(promotion.get("comparison")),
        "cached_from": step_doc.cached_from,
        "lock_hash": run.lock_hash,
        "error": short_error(run.error),
        "full_error": run.error or "",
    }


def _check_run(run: RunRecord) -> str:
    run_id = run.run_id if isinstance(run, RunRecord) else None
    if not isinstance(run_id, str) or not _SAFE_ID.match(run_id):
        raise ReportError(f"run document has no usable run_id (got {run_id!r})")
    return run_id


def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _css() -> str:
    return (TEMPLATES / "leak.css").read_text()


# --- one step report ---------------------------------------------------------------------


def _failing_cell(cells: list[Any]) -> int | None:
    for index, cell in enumerate(cells):
        if cell.cell_type != "code":
            continue
        if any(out.get("output_type") == "error" for out in cell.get("outputs", [])):
            return index
        if (cell.metadata.get("papermill") or {}).get("exception"):
            return index
    return None


_IMAGE_MIMETYPES = ("image/png", "image/jpeg", "image/svg+xml")


def _clean_outputs(outputs: list[Any]) -> list[Any]:
    """Drop stderr streams and outputs a static page cannot show; keep error tracebacks."""
    kept = []
    for output in outputs:
        kind = output.get("output_type")
        if kind == "stream" and output.get("name") == "stderr":
            continue
        if kind in ("display_data", "execute_result"):
            data = output.get("data", {})
            if "application/vnd.jupyter.widget-view+json" in data:
                continue
            for mimetype in _DROPPED_MIMETYPES:
                data.pop(mimetype, None)
            if not data:
                continue
        kept.append(output)
    return kept


def prepare_notebook(
    nb: nbformat.NotebookNode, *, show_code: bool = False
) -> tuple[nbformat.NotebookNode, bool]:
    """Return a copy ready to render, and whether it holds the cell that failed.

    Drops papermill's error markers, everything after a failing cell, stderr output and
    widgets; hides code (and then drops code cells left with nothing to show) unless
    ``show_code``. The failing cell gets a banner with the anchor ``#failed-cell``.
    """
    nb = copy.deepcopy(nb)
    nb.metadata.pop("widgets", None)
    cells = [c for c in nb.cells if "papermill-error-cell-tag" not in c.metadata.get("tags", [])]
    failed = _failing_cell(cells)
    skipped = 0
    if failed is not None:
        skipped = len(cells) - failed - 1
        cells = cells[: failed + 1]
    kept = []
    for index, cell in enumerate(cells):
        if cell.cell_type == "code":
            cell.outputs = _clean_outputs(cell.get("outputs", []))
            if not show_code:
                if not cell.outputs:
                    continue
                cell.metadata["transient"] = {"remove_source": True}
        if index == failed:
            error = next((o for o in cell.outputs if o.get("output_type") == "error"), None)
            what = (
                short_error(f"{error.get('ename', 'Error')}: {error.get('evalue', '')}")
                if error
                else "an error"
            )
            later = (
                f" {skipped} later cell{'s' if skipped != 1 else ''} did not run."
                if skipped
                else ""
            )
            kept.append(
                nbformat.v4.new_markdown_cell(
                    f'<div id="failed-cell" class="leak-failed-banner">This step failed in the '
                    f"cell below with {html.escape(what)}{'' if what.endswith(('.', '…')) else '.'}"
                    f"{later}</div>"
                )
            )
            cell.metadata.setdefault("tags", []).append("leak-failed-cell")
        kept.append(cell)
    figures = 0
    for cell in kept:
        for output in cell.get("outputs", []):
            if any(m in output.get("data", {}) for m in _IMAGE_MIMETYPES):
                figures += 1
                output.setdefault("metadata", {})["leak_alt"] = f"Figure {figures} of this report"
    nb.cells = kept
    return nb, failed is not None


def _step_links(run: RunRecord, *, current: str) -> list[dict[str, Any]]:
    started = run.steps
    return [
        {
            "title": TITLES[step],
            "href": f"{NOTEBOOKS[step]}.html" if step in started else None,
            "current": step == current,
        }
        for step in STEPS
    ]


def _header(run: RunRecord, *, step: str, failed_here: bool) -> str:
    facts = _run_facts(run, step=step)
    metrics = run.metrics
    shown = [
        {"label": label, "value": _fmt_metric(metrics[key])}
        for key, label in KEY_METRICS
        if metrics.get(key) is not None
    ]
    return (
        _environment()
        .get_template("lineage.html.j2")
        .render(
            title=f"{TITLES[step]} — run {facts['run_id']}",
            run=facts,
            metrics=shown,
            steps=_step_links(run, current=step),
            index_href="../index.html",
            failed_here=failed_here,
        )
    )


_NAV = re.compile(r'(<nav class="leak-nav".*?</nav>)', re.S)
_HREF = re.compile(r'<a href="([^"#:]+\.html)">([^<]*)</a>')
PAGES_URL_VARIABLES = ("LEAK_PAGES_URL", "CI_PAGES_URL")


def pages_url() -> str | None:
    """Return the published site's address (``$LEAK_PAGES_URL``, else GitLab's ``$CI_PAGES_URL``)."""
    for name in PAGES_URL_VARIABLES:
        if os.environ.get(name):
            return os.environ[name].rstrip("/")
    return None


def standalone(html_text: str, *, run_id: str, site: str | None) -> str:
    """Return a report whose navigation works outside the site (MLflow's artifact view).

    The relative links of the header (``../index.html``, sibling steps) point at the
    published site when its address is known, and become plain text when it is not, so no
    link is left that leads nowhere.
    """

    def absolute(match: re.Match[str]) -> str:
        href, text = match.group(1), match.group(2)
        if site is None:
            return f'<span class="leak-muted">{text}</span>'
        target = f"{site}/index.html" if href == "../index.html" else f"{site}/{run_id}/{href}"
        return f'<a href="{html.escape(target, quote=True)}">{text}</a>'

    return _NAV.sub(lambda nav: _HREF.sub(absolute, nav.group(1)), html_text, count=1)


def render_report(notebook: Path, *, run: RunRecord, step: str, show_code: bool = False) -> Path:
    """Render an executed notebook to self-contained HTML beside it, under a lineage header.

    Args:
        notebook: The executed notebook (``reports/<run_id>/01_extract.ipynb``); it may end
            in a failed cell, as papermill leaves it.
        run: The run record the header is built from.
        step: ``extract``, ``train`` or ``evaluate``.
        show_code: Show code cells too (hidden by default).

    Returns:
        The path of the HTML file (same folder and stem as the notebook).
    """
    from nbconvert import HTMLExporter  # heavy: only rendering needs it

    notebook = Path(notebook)
    if step not in STEPS:
        raise ReportError(f"unknown step {step!r}; steps are {', '.join(STEPS)}")
    _check_run(run)
    if not notebook.is_file():
        raise ReportError(f"executed notebook {str(notebook)!r} does not exist")
    try:
        nb = nbformat.read(notebook, as_version=4)
    except Exception as exc:  # nbformat raises several unrelated types on bad input
        raise ReportError(f"executed notebook {str(notebook)!r} cannot be read: {exc}") from exc
    nb, failed_here = prepare_notebook(nb, show_code=show_code)
    nb.metadata["title"] = f"{TITLES[step]} — run {run.run_id}"
    exporter = HTMLExporter(
        template_name=REPORT_TEMPLATE,
        extra_template_basedirs=[str(TEMPLATES)],
        embed_images=True,
        exclude_input_prompt=not show_code,
        exclude_output_prompt=not show_code,
        theme="light",
    )
    resources = {
        "leak": {"css": _css(), "header": _header(run, step=step, failed_here=failed_here)},
    }
    body, _ = exporter.from_notebook_node(nb, resources=resources)
    target = write_atomic(notebook.with_suffix(".html"), body)  # a full disk leaves no half page
    log.info("report %s written (%s step of run %s)", target, step, run.run_id)
    return target


_LINEAGE = re.compile(r'<header class="leak-lineage" id="lineage">.*?</header>', re.S)
_TITLE = re.compile(r"<title>.*?</title>", re.S)


def _with_header(text: str, *, run: RunRecord, step: str) -> str:
    """Return a rendered report with the lineage header and title built from ``run``."""
    header = _header(run, step=step, failed_here=False)
    run_id = run.run_id
    title = f"<title>{html.escape(f'{TITLES[step]} — run {run_id}')}</title>"
    return _TITLE.sub(lambda _: title, _LINEAGE.sub(lambda _: header, text, count=1), count=1)


def refresh_header(report: Path, *, run: RunRecord, step: str) -> Path:
    """Rebuild the lineage header of a report rendered before its run finished; return it.

    The runner renders a step's report while the next step runs; the header (status,
    metrics, decision) is only known once the run is closed.
    """
    _check_run(run)
    report = Path(report)
    report.write_text(
        _with_header(report.read_text(encoding="utf-8"), run=run, step=step), encoding="utf-8"
    )
    return report


def fetch_report(record: RunRecord, step: str, *, reports_root: Path) -> bytes | None:
    """Return a run's rendered report of ``step``, or None when it kept none.

    The one way a single report is read: from the archive beside the run's snapshots
    (verified by hash), else the copy rendered on this machine, ``reports_root/<run>/``.
    """
    run_id = _check_run(record)  # a safe id: it becomes a path
    archived = record.reports_archive.get(step)
    location = record.params.get("snapshot_store")
    if archived and location:
        try:
            return archive_store(open_snapshot_store(location), run_id).get(archived["sha256"])
        except LeakError as exc:  # missing or altered in the archive: try the local copy
            log.warning("archived %s report of run %s: %s", step, run_id, exc)
    local = reports_root / run_id / f"{NOTEBOOKS[step]}.html"
    if local.is_file() and local.resolve().is_relative_to(reports_root.resolve()):
        return local.read_bytes()
    return None


def reuse_report(earlier: RunRecord, *, run: RunRecord, step: str, reports_root: Path) -> Path:
    """Give a step taken from the step cache the earlier run's report, under this run's header.

    The earlier report is read as :func:`fetch_report` reads it (the archive beside the
    snapshots, verified by hash, else ``reports_root/<earlier run>/``). Its executed notebook
    is copied too when it is here.

    Args:
        earlier: The run record the step was taken from.
        run: This run's record; its step carries ``cached_from``.
        step: ``extract``, ``train`` or ``evaluate``.
        reports_root: The folder of rendered reports (``reports/``).

    Returns:
        The path of this run's report (``reports_root/<run_id>/NN_step.html``).
    """
    run_id, earlier_id = _check_run(run), _check_run(earlier)  # safe ids: they become paths
    name = NOTEBOOKS[step]
    local = reports_root / earlier_id / f"{name}.html"
    data = fetch_report(earlier, step, reports_root=reports_root)
    if data is None:
        raise ReportError(f"run {earlier_id!r} kept no report of its {step} step")
    text = _with_header(data.decode("utf-8"), run=run, step=step)
    target = reports_root / run_id / f"{name}.html"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    notebook = local.with_suffix(".ipynb")
    if notebook.is_file():
        shutil.copyfile(notebook, target.with_suffix(".ipynb"))
    log.info("report %s taken from run %s (%s step)", target, earlier_id, step)
    return target


# --- the index and the report site ---------------------------------------------------------


def _moment(stamp: Any) -> datetime:
    """Parse an ISO time for ordering; unknown times sort first."""
    try:
        moment = datetime.fromisoformat(str(stamp))
    except ValueError:
        return datetime.min.replace(tzinfo=UTC)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _promotions(runs: Sequence[RunRecord]) -> list[tuple[datetime, RunRecord]]:
    """Return the promoted runs ordered by when they were promoted (the gate or by hand)."""
    events = [
        (_moment(promotion.decided_at or r.finished_at or r.created_at), r)
        for r in runs
        if (promotion := r.promotion or Promotion()).promoted
        and not promotion.cached_from  # a carried-over verdict promotes nothing
    ]
    return sorted(events, key=lambda event: event[0])


def _champion_id(runs: Sequence[RunRecord]) -> str | None:
    """Return the run promoted last: the current champion."""
    events = _promotions(runs)
    return events[-1][1].run_id if events else None


def _metric(run: RunRecord, key: str) -> float | None:
    value = run.metrics.get(key)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def trend_series(runs: Sequence[RunRecord], *, metric: str) -> Trend | None:
    """Return the holdout ``metric`` of each run, oldest first, with the champion history.

    The champion line holds, at each run, the metric of the run promoted last by the time
    that run finished. None when no run has the metric yet.
    """
    key = f"holdout_{metric}"
    ordered = sorted(runs, key=lambda r: _moment(r.created_at))
    points = [(i, v) for i, r in enumerate(ordered) if (v := _metric(r, key)) is not None]
    if not points:
        return None
    events = [(when, _metric(r, key)) for when, r in _promotions(ordered)]
    champion_line = []
    for i, run in enumerate(ordered):
        done = _moment(run.finished_at or run.created_at)
        held = [value for when, value in events if when <= done and value is not None]
        if held:
            champion_line.append((i, held[-1]))
    label = metrics.label(key)
    # matplotlib and scikit-learn (30 MiB): `leak run` needs them only for this chart, drawn
    # after the steps, so its runner does not hold them beside the kernel at its peak
    from leaklib import plots

    return plots.Trend(
        points=points,
        champion=champion_line,
        promoted=[(i, v) for i, v in points if (ordered[i].promotion or Promotion()).promoted],
        failed=[i for i, r in enumerate(ordered) if r.status is RunStatus.FAILED],
        dates=[_date(r.created_at).removesuffix(" UTC") for r in ordered],
        title=label[0].upper() + label[1:],
    )


def trend_chart(runs: Sequence[RunRecord], *, metric: str) -> tuple[str, int, int] | None:
    """Return the trend chart as base64 PNG with its pixel width and height (None: no data)."""
    series = trend_series(runs, metric=metric)
    from leaklib import plots  # matplotlib: only for the chart (see trend_series)

    return plots.trend_png(series) if series else None


def _report_links(run: RunRecord, *, out_dir: Path, reports_root: Path) -> list[dict[str, Any]]:
    links = []
    for step in STEPS:
        target = reports_root / run.run_id / f"{NOTEBOOKS[step]}.html"
        href = Path(os.path.relpath(target, out_dir)).as_posix() if target.is_file() else None
        links.append({"title": TITLES[step], "href": href})
    return links


def run_model_name(run: RunRecord) -> str:
    """Return the model name a run's models and champion are kept under (its index section)."""
    dataset = run.params.get("dataset") or {}
    if dataset.get("model_name"):
        return str(dataset["model_name"])
    source = dataset.get("source")
    return default_model_name(str(source)) if source else "unnamed"


def _index_section(
    name: str, runs: list[RunRecord], *, out_dir: Path, reports_root: Path
) -> dict[str, Any]:
    """Return one model name's part of the index: its champion, its chart, its runs.

    Failed runs are set apart (listed under the others, folded), so however many there are
    the successes stay in view; the chart draws the runs that did not fail.
    """
    metric = _primary_metric(runs)
    champion = _champion_id(runs)
    rows = []
    for run in runs:
        facts = _run_facts(run)
        figures = run.metrics
        facts.update(
            metrics=[_fmt_metric(figures.get(key)) for key, _ in KEY_METRICS],
            reports=_report_links(run, out_dir=out_dir, reports_root=reports_root),
            is_champion=run.run_id == champion,
            primary=_fmt_metric(figures.get(f"holdout_{metric}")),
            error=short_error(run.error, limit=120),
        )
        rows.append(facts)
    chart = trend_chart([r for r in runs if r.status is not RunStatus.FAILED], metric=metric)
    return {
        "model_name": name,
        "runs": [row for row in rows if row["status"] != RunStatus.FAILED],
        "failed": [row for row in rows if row["status"] == RunStatus.FAILED],
        "champion": next((row for row in rows if row["is_champion"]), None),
        "primary_label": metrics.label(f"{metrics.HOLDOUT_PREFIX}{metric}"),
        "chart": chart[0] if chart else None,
        "chart_width": chart[1] if chart else 0,
        "chart_height": chart[2] if chart else 0,
    }


def write_index(runs: list[RunRecord], *, out_dir: Path, reports_root: Path) -> Path:
    """Write ``out_dir/index.html``: a section per model name, runs newest first, links relative.

    Each model name (``dataset.model_name``) has its own champion, trend chart and table, so
    a smoke run never shares a chart with a default run; in each, failed runs are listed
    apart from the others. Runs that ended before their first step are left out
    (:meth:`leaklib.run_record.RunRecord.reached_a_step`).

    Args:
        runs: Run records, e.g. from :func:`leaklib.run_record.list_runs`.
        out_dir: Where the index goes.
        reports_root: The folder holding ``<run_id>/NN_step.html``; only reports that exist
            there are linked.
    """
    out_dir, reports_root = Path(out_dir), Path(reports_root)
    for run in runs:
        _check_run(run)
    if out_dir.exists() and not out_dir.is_dir():
        raise ReportError(f"index folder {str(out_dir)!r} exists and is not a folder")
    out_dir.mkdir(parents=True, exist_ok=True)
    listed = [run for run in runs if run.reached_a_step()]
    ordered = sorted(listed, key=lambda r: r.created_at or "", reverse=True)
    by_name: dict[str, list[RunRecord]] = {}
    for run in ordered:  # the model name of the newest run first
        by_name.setdefault(run_model_name(run), []).append(run)
    sections = [
        _index_section(name, named, out_dir=out_dir, reports_root=reports_root)
        for name, named in by_name.items()
    ]
    page = (
        _environment()
        .get_template("index.html.j2")
        .render(
            title="Leak detection runs",
            css=_css(),
            total=len(ordered),
            sections=sections,
            metric_labels=[label for _, label in KEY_METRICS],
            generated=_date(datetime.now(UTC).isoformat()),
        )
    )
    target = write_atomic(out_dir / "index.html", page)
    log.info("index of %d runs (%d model names) written to %s", len(ordered), len(sections), target)
    return target


def archive_store(snapshots: SnapshotStore, run_id: str) -> SnapshotStore:
    """Return where a run's rendered reports are archived: ``reports/<run_id>/`` beside snapshots."""
    return snapshots.within(f"{ARCHIVE}/{run_id}", suffix=".html", content_type="text/html")


def archive_reports(
    rendered: dict[str, Path], *, run_id: str, snapshots: SnapshotStore
) -> dict[str, dict[str, str]]:
    """Write each rendered report once to the durable archive; return {step: {uri, sha256}}."""
    archived = {}
    for step, path in rendered.items():
        data = path.read_bytes()
        digest = sha256_hex(data)
        uri, _ = archive_store(snapshots, run_id).put(data, sha256=digest)
        archived[step] = {"uri": uri, "sha256": digest, "file": path.name}
    return archived


def _fetch_archived(run: RunRecord, target: Path, stores: dict[str, SnapshotStore]) -> int:
    """Copy a run's archived reports into ``target``, verified by hash; return how many."""
    archived = run.reports_archive
    location = run.params.get("snapshot_store")
    if not archived or not location:
        return 0
    if location not in stores:
        stores[location] = open_snapshot_store(location)
    written = 0
    for entry in archived.values():
        try:
            data = archive_store(stores[location], run.run_id).get(entry["sha256"])
        except SnapshotError as exc:
            log.warning("report %s of run %s not fetched: %s", entry["file"], run.run_id, exc)
            continue
        target.mkdir(parents=True, exist_ok=True)
        (target / entry["file"]).write_bytes(data)
        written += 1
    return written


def _copy_local(run_id: str, target: Path, reports_root: Path) -> int:
    """Copy the reports ``leak run`` rendered on this machine; return how many."""
    source = reports_root / run_id
    pages = sorted(source.glob("*.html")) if source.is_dir() else []
    if pages and source.resolve() != target.resolve():
        target.mkdir(parents=True, exist_ok=True)
        for page in pages:
            shutil.copy2(page, target / page.name)
    return len(pages)


def build_site(store: Any, *, out: Path, reports_root: Path, keep: int = 50) -> Path:
    """Build the static report site from the metadata store and the report archive.

    Every run is listed in the index; the newest ``keep`` runs carry their full reports,
    fetched (and verified) from the durable archive whatever pipeline made them, or copied
    from ``reports_root`` for runs rendered here before the archive existed.

    Args:
        store: The metadata store (:class:`leaklib.metadata.MetadataStore`) listing the runs.
        out: The site folder (``public`` for GitLab Pages); each run's folder in it is replaced.
        reports_root: Where ``leak run`` rendered the reports (``reports/``).
        keep: How many of the newest runs carry their reports (``pages_keep_reports``).

    Returns:
        The path of ``out/index.html``.
    """
    out, reports_root = Path(out), Path(reports_root)
    if out.exists() and not out.is_dir():
        raise ReportError(f"site folder {str(out)!r} exists and is not a folder")
    runs = run_record.list_runs(store)
    out.mkdir(parents=True, exist_ok=True)
    stores: dict[str, SnapshotStore] = {}
    same = out.resolve() == reports_root.resolve()
    for position, run in enumerate(runs):
        run_id = _check_run(run)
        target = out / run_id
        if not same and target.exists():
            shutil.rmtree(target)
        if position >= keep:
            continue
        if not (_fetch_archived(run, target, stores) or _copy_local(run_id, target, reports_root)):
            log.warning("run %s has no reports in the archive or in %s", run_id, reports_root)
    index = write_index(runs, out_dir=out, reports_root=out)
    log.info("report site of %d runs built in %s", len(runs), out)
    return index
