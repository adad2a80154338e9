"""``leak run``: the three notebooks through papermill, rendered reports, and the run index."""

from __future__ import annotations

import contextlib
import logging
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import papermill
from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel
from nbclient.exceptions import CellTimeoutError

from leaklib import reports, run_record, runs, tracking
from leaklib.errors import LeakError
from leaklib.kernelspec import KERNEL
from leaklib.leak_location import localisation_problems
from leaklib.metadata import open_metadata_store
from leaklib.params import Check, Params, flatten, load, read_yaml, validate
from leaklib.paths import is_local_path, project_root
from leaklib.pipeline import cache
from leaklib.pipeline.guard import Heartbeat, Interrupted, interruptible, stop_kernels
from leaklib.pipeline.kernel import KernelError, RunKernel
from leaklib.run_record import RunRecord
from leaklib.snapshots import open_snapshot_store
from leaklib.sources import source_problems
from leaklib.steps import PARAMS, notebook_path

log = logging.getLogger(__name__)


class RunnerError(LeakError, RuntimeError):
    """The pipeline could not be started (not a failed step: those are recorded)."""


@dataclass
class RunResult:
    """How a run ended and where its reports are."""

    run_id: str
    status: str
    reports: dict[str, Path]
    index: Path | None
    error: str | None
    exit_code: int | None = None  # set when a signal ended the run (128 + signal number)


def _kernel_ready() -> None:
    try:
        KernelSpecManager().get_kernel_spec(KERNEL)
    except NoSuchKernel:
        raise RunnerError(
            f"Jupyter kernel {KERNEL!r} is not registered: run `make install` "
            f"(python -m leaklib.kernelspec)"
        ) from None


def _error_text(exc: BaseException) -> str:
    ename = getattr(exc, "ename", type(exc).__name__)
    evalue = getattr(exc, "evalue", str(exc))
    return f"{ename}: {evalue}".strip()


def step_parameters(step: str, params: Params) -> dict[str, Any]:
    """Return the parameters a step reads (its notebook declares them), with the run's values."""
    plain = params.to_plain()
    return {name: plain[name] for name in PARAMS[step]}


def execute_step(
    step: str, *, params: Params, out_dir: Path, kernel: RunKernel
) -> tuple[Path, str | None]:
    """Run one notebook with the parameters it declares; return (executed notebook, error).

    Args:
        kernel: The run's kernel (started if need be, left running for the next step).
    """
    source = notebook_path(step)
    output = out_dir / source.name
    values = step_parameters(step, params)
    try:
        papermill.execute_notebook(
            str(source),
            str(output),
            parameters=values,
            kernel_name=KERNEL,
            cwd=str(project_root()),
            progress_bar=False,
            log_output=False,
            request_save_on_cell_execute=True,  # an interrupted step shows its progress
            execution_timeout=params.step_timeout_s,
            km=kernel.ready(),
        )
    except papermill.PapermillExecutionError as exc:
        return output, _error_text(exc)
    except CellTimeoutError:
        return output, (
            f"step {step}: a cell ran longer than step_timeout_s = {params.step_timeout_s} s "
            "and was stopped"
        )
    except Exception as exc:  # a kernel death or timeout is a failed step, not a crash
        log.exception("step %s could not run", step)
        return output, _error_text(exc)
    return output, None


def require_durable(params: Params) -> None:
    """Refuse stores that live only inside this machine or CI job (``leak run --durable``).

    A scheduled retrain compares with the champion of an earlier pipeline and publishes every
    run's reports, so its run records and snapshots (models and reports live beside them)
    must outlive the job. Values still equal to the placeholders of
    ``parameters/gcp.example.yaml`` are refused first, naming ``LEAK_PARAMS_FILE``.
    """
    _refuse_placeholders(params)
    local = [
        f"{name} {value!r}"
        for name, value in (
            ("snapshot_store", params.snapshot_store),
            ("metadata_store", params.metadata_store),
        )
        if is_local_path(value)
    ]
    if local:
        raise RunnerError(
            f"--durable: {' and '.join(local)} would live only inside this job and be lost "
            "when it ends; set LEAK_PARAMS_FILE to a parameter set whose snapshot_store is "
            "gs://BUCKET/PREFIX and metadata_store firestore://PROJECT/DATABASE (docs/ci.md)"
        )
    if tracking.is_local_tracking(tracking.tracking_uri()):
        log.warning(
            "MLFLOW_TRACKING_URI is not set: this job's MLflow history (runs, registry) ends "
            "with the job; the champion and reports are kept in the durable stores"
        )


EXAMPLE = "parameters/gcp.example.yaml"


def _refuse_placeholders(params: Params) -> None:
    """Refuse parameters still equal to the example file's ``my-...`` placeholders."""
    example = project_root() / EXAMPLE
    if not example.is_file():
        return
    mine = flatten(params.to_plain())
    found = [
        f"{key} {value!r}"
        for key, value in flatten(read_yaml(example)).items()
        if isinstance(value, str) and "my-" in value and mine.get(key) == value
    ]
    if found:
        raise RunnerError(
            f"LEAK_PARAMS_FILE still holds the placeholders of {EXAMPLE} ({', '.join(found)}): "
            "copy that file, put your project, bucket and database names in, commit it and "
            "point LEAK_PARAMS_FILE at the copy"
        )


# what a run checks beyond the contract before it exists: only the table's contents are left
# to the extract step
RUN_CHECKS: tuple[Check, ...] = (source_problems, localisation_problems)


def _open_run(
    files: list[str] | None,
    overrides: list[tuple[str, str]] | None,
    *,
    durable: bool = False,
    params: Params | None = None,
    origin: str = "leak run",
) -> tuple[Params, Any]:
    """Validate the parameters once, check the stores and MLflow, and record the new run.

    Every parameter problem (the contract, the estimator's own constraints, a source that
    cannot be there) is raised at once, before anything is written.
    """
    if params is None:
        params = load(files, overrides, checks=RUN_CHECKS)
    else:
        params = validate(params.to_plain(), checks=RUN_CHECKS)
    if durable:
        require_durable(params)
    _kernel_ready()
    params = params.model_copy(update={"run_id": params.run_id or runs.new_run_id()})
    store = open_metadata_store(params.metadata_store)
    store.check()
    open_snapshot_store(params.snapshot_store).check()  # a missing bucket stops us before reading
    tracking.check_reachable()  # an unreachable server fails here in seconds, not in train
    runs.start_run(
        store,
        run_id=params.run_id,
        params=params.to_plain(),
        param_files=[str(f) for f in files or []],
        origin=origin,
    )
    return params, store


def run_pipeline(
    *,
    files: list[str] | None = None,
    overrides: list[tuple[str, str]] | None = None,
    show_code: bool = False,
    durable: bool = False,
    params: Params | None = None,
    origin: str = "leak run",
    use_cache: bool = True,
    progress: Callable[[str], None] = lambda line: None,
    kernel: RunKernel | None = None,
) -> RunResult:
    """Validate the parameters, then run extract, train and evaluate and render each report.

    Parameter and store errors raise before anything is written. A failing step stops the
    run, is recorded as failed with its error, and its executed notebook is rendered all the
    same. SIGTERM or SIGINT marks the current step and the run failed ("interrupted during
    <step>"), renders what exists, and sets the result's ``exit_code``. ``params``, when
    given, is used as it is (``files`` then only name the parameter set, as a reproduction
    does). A step whose inputs match a succeeded step of an earlier run is taken from it
    (:mod:`leaklib.pipeline.cache`) unless ``use_cache`` is false. ``kernel``: the run's
    kernel already started by ``leak run``; the run closes it.
    """
    params, store = _open_run(files, overrides, durable=durable, params=params, origin=origin)
    run_id = params.run_id
    reports_root = project_root() / "reports"
    out_dir = reports_root / run_id
    out_dir.mkdir(parents=True, exist_ok=True)
    progress(f"run {run_id}: {params.dataset.source}")
    executed: dict[str, Path] = {}
    reused: dict[str, RunRecord] = {}  # step -> the earlier run it was taken from
    rendering: dict[str, Future[Path]] = {}  # step -> its report, rendered while the next runs
    kernel = kernel or RunKernel()  # started by the first step that runs, unless already
    options = {"kernel": kernel, "show_code": show_code}
    with (
        interruptible(),
        ThreadPoolExecutor(1, thread_name_prefix="render") as renderer,
        contextlib.closing(kernel),
    ):
        interrupted = _steps_until_stopped(
            params,
            store,
            out_dir,
            executed,
            reused,
            progress,
            use_cache=use_cache,
            rendering=rendering,
            renderer=renderer,
            **options,
        )
        record = runs.close_run(store, run_id)
        try:
            rendered, index = _render(
                store, record, executed, reused, rendering, reports_root=reports_root, **options
            )
        except Interrupted as stop:  # the record is final; leave the rendering unfinished
            interrupted = interrupted or stop
            rendered, index = {}, None
    return _result(record, rendered, index, interrupted=interrupted, progress=progress)


def _steps_until_stopped(
    params: Params,
    store: Any,
    out_dir: Path,
    executed: dict[str, Path],
    reused: dict[str, RunRecord],
    progress: Callable[[str], None],
    **options: Any,
) -> Interrupted | None:
    """Run the steps (:func:`_run_steps`); a signal fails the current step and the run.

    Returns the interruption (None when the steps ended on their own), after recording it
    and collecting the executed notebooks papermill left behind.
    """
    current: list[str] = []  # the step running now, for an interruption's record
    try:
        _run_steps(params, store, out_dir, executed, reused, current, progress, **options)
    except Interrupted as stop:
        stop_kernels()
        step = current[-1] if current else runs.STEPS[0]
        runs.interrupt(store, params.run_id, step, signal=stop.signal)
        progress(f"interrupted by {stop.signal} during {step}: recorded, rendering")
        _collect(out_dir, executed)
        return stop
    return None


def _result(
    record: RunRecord,
    rendered: dict[str, Path],
    index: Path | None,
    *,
    interrupted: Interrupted | None,
    progress: Callable[[str], None],
) -> RunResult:
    """Say how the run ended and return its result."""
    final = rendered.get("evaluate") or next(reversed(rendered.values()), None)
    shown = final.relative_to(project_root()) if final else "(none)"
    progress(f"{record.status}: report {shown}")
    return RunResult(
        run_id=record.run_id,
        status=record.status.value,
        reports=rendered,
        index=index,
        error=record.error,
        exit_code=interrupted.exit_code if interrupted else None,
    )


def _key(step: str, params: Params, record: RunRecord) -> cache.StepKey | None:
    """Return the step's cache key; None when an input cannot be read (the step will say why)."""
    try:
        return cache.step_key(
            step,
            notebook=notebook_path(step),
            declared=step_parameters(step, params),
            run=record,
            params=params,
        )
    except Exception as exc:  # e.g. a missing source: the notebook reports it properly
        log.info("step %s has no cache key: %s", step, exc)
        return None


def explain(
    files: list[str] | None = None, overrides: list[tuple[str, str]] | None = None
) -> list[tuple[str, str]]:
    """Return, per step, whether ``leak run`` would take it from the cache, and if not why.

    Nothing is written. A step after one that would run cannot be looked up: its input is
    the earlier step's output, unknown until it has run.
    """
    params = load(files, overrides, checks=RUN_CHECKS)
    store = open_metadata_store(params.metadata_store)
    store.check()
    record = RunRecord()
    lines = []
    for step in runs.STEPS:
        if lines and not lines[-1][1].startswith("cached"):
            lines.append((step, f"runs: its input comes from {lines[-1][0]}, which runs"))
            continue
        key = _key(step, params, record)
        if key is None:
            lines.append((step, "runs: its inputs cannot be read (the step will say why)"))
            continue
        found = cache.lookup(store, key)
        lines.append((step, found.explain()))
        if found.hit:
            outputs = [n for n in found.entry["outputs"] if hasattr(found.source, n)]
            record = replace(record, **{n: getattr(found.source, n) for n in outputs})
    return lines


def _run_steps(
    params: Params,
    store: Any,
    out_dir: Path,
    executed: dict[str, Path],
    reused: dict[str, RunRecord],
    current: list[str],
    progress: Callable[[str], None],
    *,
    kernel: RunKernel,
    use_cache: bool,
    rendering: dict[str, Future[Path]],
    renderer: ThreadPoolExecutor,
    show_code: bool,
) -> None:
    """Run or reuse the steps in order under a heartbeat; stop at the first failed step.

    The steps that run share ``kernel``; the previous step's report renders in ``renderer``
    while the next step runs (its header is redone at the end).
    """
    run_id = params.run_id
    with Heartbeat(store, run_id):
        for number, step in enumerate(runs.STEPS, start=1):
            current.append(step)
            counter = f"[{number}/{len(runs.STEPS)}] {step:<9}"
            before = run_record.get_run(store, run_id)
            key = _key(step, params, before)
            found = cache.lookup(store, key) if use_cache and key else None
            if found and found.hit:
                runs.reuse_step(
                    store, run_id, step, source=found.source, outputs=found.entry["outputs"]
                )
                reused[step] = found.source
                progress(f"{counter} cached from run {found.run_id}")
                continue
            started = time.monotonic()
            output, error = execute_step(step, params=params, out_dir=out_dir, kernel=kernel)
            elapsed = time.monotonic() - started
            if output.exists():
                executed[step] = output
            if error:
                runs.fail_step(store, run_id, step, error=error, duration_s=round(elapsed, 1))
                progress(f"{counter} FAILED after {elapsed:.1f} s: {error}")
                return
            after = run_record.get_run(store, run_id)
            if key:
                cache.remember(store, key, run_id=run_id, outputs=cache.step_outputs(before, after))
            if number < len(runs.STEPS):  # the last one renders after the run is closed
                rendering[step] = renderer.submit(
                    reports.render_report, output, run=after, step=step, show_code=show_code
                )
            progress(f"{counter} ok in {elapsed:.1f} s")


def _collect(out_dir: Path, executed: dict[str, Path]) -> None:
    """Add the executed notebooks papermill left behind (an interrupted one too)."""
    for step in runs.STEPS:
        output = out_dir / notebook_path(step).name
        if output.exists():
            executed.setdefault(step, output)


def _render(
    store: Any,
    record: RunRecord,
    executed: dict[str, Path],
    reused: dict[str, RunRecord],
    rendering: dict[str, Future[Path]],
    *,
    kernel: RunKernel,
    reports_root: Path,
    show_code: bool,
) -> tuple[dict[str, Path], Path | None]:
    """Render each executed notebook, archive the reports durably, refresh the local index.

    A step taken from the cache gets the earlier run's report under this run's header.
    """
    run_id = record.run_id
    rendered: dict[str, Path] = {}
    for step, earlier in reused.items():
        try:
            rendered[step] = reports.reuse_report(
                earlier, run=record, step=step, reports_root=reports_root
            )
        except Exception:  # a report that cannot be fetched must not hide the run's outcome
            log.exception("report of step %s could not be taken from run %s", step, earlier)
    for step, notebook in executed.items():
        try:
            if step in rendering:  # rendered while the next step ran: only the header is redone
                rendered[step] = reports.refresh_header(
                    rendering[step].result(), run=record, step=step
                )
                continue
            rendered[step] = reports.render_report(
                notebook, run=record, step=step, show_code=show_code
            )
        except Exception:  # a report that cannot render must not hide the run's own outcome
            log.exception("report of step %s could not be rendered", step)
    archived = _archive(record, rendered)
    root = project_root()
    record = runs.set_reports(
        store,
        run_id,
        {s: str(p.relative_to(root)) for s, p in rendered.items()},
        archive=archived,
    )
    index = reports.write_index(
        run_record.list_runs(store), out_dir=reports_root, reports_root=reports_root
    )
    if "train" not in reused:  # a reused train's MLflow run is the earlier run's
        _attach_to_mlflow(record, rendered, kernel=kernel)
    return {s: rendered[s] for s in runs.STEPS if s in rendered}, index


def _archive(record: RunRecord, rendered: dict[str, Path]) -> dict[str, dict[str, str]]:
    """Write the reports beside the run's snapshots; a storage hiccup is logged, not fatal."""
    try:
        snapshots = open_snapshot_store(record.params["snapshot_store"])
        return reports.archive_reports(rendered, run_id=record.run_id, snapshots=snapshots)
    except Exception:  # the run's outcome is recorded already; its reports stay on disk
        log.exception("reports of run %s could not be archived", record.run_id)
        return {}


def _attach_to_mlflow(record: RunRecord, rendered: dict[str, Path], *, kernel: RunKernel) -> None:
    """Attach standalone copies of the reports (links to the site, or none) to the MLflow run.

    The run's kernel does it when it is alive: it has MLflow loaded and connected already
    (seconds the runner would spend importing it); otherwise the runner does.
    """
    mlflow_run = record.mlflow_run_id
    if not (mlflow_run and rendered):
        return
    site = reports.pages_url()
    with tempfile.TemporaryDirectory() as tmp:
        copies = []
        for path in rendered.values():
            copy = Path(tmp) / path.name
            text = path.read_text(encoding="utf-8")
            copy.write_text(
                reports.standalone(text, run_id=record.run_id, site=site), encoding="utf-8"
            )
            copies.append(copy)
        index_url = f"{site}/index.html" if site else None
        if kernel.started:
            try:
                kernel.execute(
                    "from leaklib import tracking as _tracking\n"
                    f"_tracking.log_reports({mlflow_run!r}, {[str(c) for c in copies]!r}, "
                    f"index_url={index_url!r})\n"
                    "del _tracking"
                )
                return
            except KernelError as exc:  # a dead kernel (a signal, a crash): the runner does it
                log.info("the run's kernel could not attach the reports: %s", exc)
        try:
            tracking.log_reports(mlflow_run, copies, index_url=index_url)
        except Exception:  # the run is recorded; a tracking server hiccup must not fail it
            log.exception("reports could not be attached to MLflow run %s", mlflow_run)
