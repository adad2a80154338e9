"""The run record's named transitions: one document per run (collection ``runs``).

The record's type, its statuses and parts, and its reads (``get_run``, ``list_runs``,
``latest_run``) are :mod:`leaklib.run_record`. Every change is a named transition here and goes
through :meth:`MetadataStore.transact`, so two processes never overwrite each other's record
and a finished run cannot be reopened.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from leaklib.lineage import environment_info, git_info, lock_hash
from leaklib.metadata import RUNS, ConflictError, MetadataError, MetadataStore
from leaklib.run_record import RunNotFound, RunRecord, RunStatus, StepStatus, plain
from leaklib.steps import NOTEBOOKS, STEPS

log = logging.getLogger(__name__)

HEARTBEAT_S = 15.0  # how often a running step stamps heartbeat_at
SHOWN_STATUSES = tuple(status.value for status in RunStatus)  # what RunRecord.shown returns


def now() -> str:
    """Return the current UTC time as an ISO-8601 string."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def new_run_id() -> str:
    """Return a sortable, unique run id such as ``20261128-211530-3fa2``."""
    return datetime.now(UTC).strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(2)


def start_run(
    store: MetadataStore,
    *,
    run_id: str,
    params: dict[str, Any],
    param_files: list[str],
    origin: str,
) -> RunRecord:
    """Create the run document with its lineage; ConflictError if the id is taken."""
    stamp = now()
    record = {
        "run_id": run_id,
        "status": RunStatus.RUNNING.value,
        "created_at": stamp,
        "updated_at": stamp,
        "origin": origin,
        "params": params,
        # stores may sort a mapping's keys (JSON files, Firestore); the column order is a fact
        "feature_order": list((params.get("dataset") or {}).get("features") or {}),
        "param_files": param_files,
        "git": git_info(),
        "lock_hash": lock_hash(),
        "environment": environment_info(),
        "seeds": {"seed": params.get("seed")},
        "steps": {},
        "metrics": {},
        **dict.fromkeys(("finished_at", "snapshot", "model", "mlflow", "promotion", "error")),
    }
    store.create(RUNS, run_id, record)
    log.info("run %s recorded in %s", run_id, store.uri)
    return RunRecord.from_doc(record)


Doc = dict[str, Any]  # a run document as the store keeps it; only this module changes one


def _transact(
    store: MetadataStore,
    run_id: str,
    change: Callable[[Doc], Doc],
    *,
    finished: str,
    why: str = "",
) -> RunRecord:
    """Apply one named transition to a run's record atomically.

    Args:
        finished: What a run that is no longer ``running`` gets: ``refuse`` (ConflictError,
            ``run X is <status><why>``), ``keep`` (left as it is) or ``allow`` (changed too).
    """

    def guarded(current: Doc | None) -> Doc:
        if current is None:
            raise RunNotFound(run_id)
        if current["status"] != RunStatus.RUNNING and finished != "allow":
            if finished == "refuse":
                raise ConflictError(f"run {run_id!r} is {current['status']}{why}")
            return current
        return change(current)

    return RunRecord.from_doc(store.transact(RUNS, run_id, guarded))


def _previous_step(step: str) -> str | None:
    """Return the step before ``step`` (None for the first); refuse an unknown step."""
    if step not in STEPS:
        raise MetadataError(f"unknown step {step!r}; steps are {', '.join(STEPS)}")
    return STEPS[STEPS.index(step) - 1] if step != STEPS[0] else None


def _require_succeeded(current: Doc, run_id: str, previous: str | None) -> None:
    """Refuse to go on when the previous step of the run has not succeeded."""
    if previous and current["steps"].get(previous, {}).get("status") != StepStatus.SUCCEEDED:
        raise ConflictError(f"run {run_id!r}: step {previous!r} has not succeeded")


def _step_entry(step: str, status: StepStatus, stamp: str, **more: Any) -> Doc:
    """Return a step's entry as a document keeps it, opened (or reused) at ``stamp``."""
    done = status is not StepStatus.RUNNING
    return {
        "status": status.value,
        "started_at": stamp,
        "finished_at": stamp if done else None,
        "duration_s": 0.0 if done else None,
        "error": None,
        "notebook": NOTEBOOKS[step],
        **more,
    }


def start_step(store: MetadataStore, run_id: str, step: str) -> RunRecord:
    """Mark a step running; refuse if the run is finished or the previous step did not succeed."""
    previous = _previous_step(step)

    def change(current: Doc) -> Doc:
        _require_succeeded(current, run_id, previous)
        stamp = now()
        steps = {**current["steps"], step: _step_entry(step, StepStatus.RUNNING, stamp)}
        return {**current, "steps": steps, "updated_at": stamp}

    return _transact(store, run_id, change, finished="refuse", why="; start a new run")


def reuse_step(
    store: MetadataStore,
    run_id: str,
    step: str,
    *,
    source: RunRecord,
    outputs: dict[str, list[str] | None],
) -> RunRecord:
    """Take a step from an earlier run (the step cache): copy what it wrote, mark it succeeded.

    Args:
        source: The earlier run's record; its step must have succeeded.
        outputs: The fields that step wrote (``None``: the whole field; a list: those keys of
            a mapping several steps fill, such as ``metrics``).

    The step gets ``cached_from`` (the earlier run id); a reused promotion decision too, so
    nobody reads it as a new verdict. The last step reused finishes the run.
    """
    previous = _previous_step(step)
    earlier = source.run_id
    if not source.succeeded(step):
        raise ConflictError(f"run {earlier!r}: step {step!r} did not succeed; it cannot be reused")
    written = source.to_doc()

    def change(current: Doc) -> Doc:
        _require_succeeded(current, run_id, previous)
        new = dict(current)
        for name, keys in outputs.items():
            value = written.get(name)
            if keys is not None and isinstance(value, dict):
                new[name] = {**(new.get(name) or {}), **{k: value[k] for k in keys if k in value}}
            elif isinstance(value, dict) and name == "promotion":
                new[name] = {**value, "cached_from": earlier}
            else:
                new[name] = value
        stamp = now()
        entry = _step_entry(step, StepStatus.SUCCEEDED, stamp, cached_from=earlier)
        new.update(steps={**current["steps"], step: entry}, updated_at=stamp)
        if step == STEPS[-1]:
            new.update(status=RunStatus.SUCCEEDED.value, finished_at=stamp)
        return new

    return _transact(store, run_id, change, finished="refuse", why="; start a new run")


def _update(store: MetadataStore, run_id: str, **fields: Any) -> RunRecord:
    """Set fields of a running run (a mapping merged into the one recorded); each is read as
    a record first, so a value a record cannot hold (an unknown decision) is never written."""
    fields = {key: plain(value) for key, value in fields.items()}
    RunRecord.from_doc({"run_id": run_id, **fields})

    def change(current: Doc) -> Doc:
        new = dict(current)
        for key, value in fields.items():
            if isinstance(value, dict) and isinstance(new.get(key), dict):
                new[key] = {**new[key], **value}
            else:
                new[key] = value
        new["updated_at"] = now()
        return new

    return _transact(store, run_id, change, finished="refuse", why=" and can no longer change")


def record_params(store: MetadataStore, run_id: str, params: dict[str, Any]) -> RunRecord:
    """Replace a running run's parameters (a notebook edited by hand in JupyterLab)."""
    return _update(store, run_id, params=params)


def record_snapshot(
    store: MetadataStore,
    run_id: str,
    *,
    snapshot: Mapping[str, Any],
    validation: Mapping[str, Any],
    derived_features: list[str],
    leaks: Mapping[str, Any] | None,
) -> RunRecord:
    """Record what the extract step wrote: the validated table, its report, the leak tables."""
    return _update(
        store,
        run_id,
        snapshot=snapshot,
        validation=validation,
        derived_features=list(derived_features),
        leaks=leaks,
    )


def record_split(store: MetadataStore, run_id: str, split: Mapping[str, Any]) -> RunRecord:
    """Record which rows the train step held out (``splits.Split.to_dict``)."""
    return _update(store, run_id, split=split)


def record_training(
    store: MetadataStore,
    run_id: str,
    *,
    mlflow: Mapping[str, Any] | None = None,
    metrics: Mapping[str, float] | None = None,
    holdout: Mapping[str, Any] | None = None,
    alarm: Mapping[str, Any] | None = None,
) -> RunRecord:
    """Record the train step's MLflow run, CV metrics, holdout and alarm (None: left as is)."""
    given = {"mlflow": mlflow, "metrics": metrics, "holdout": holdout, "alarm": alarm}
    return _update(store, run_id, **{k: v for k, v in given.items() if v is not None})


def record_model(store: MetadataStore, run_id: str, model: Mapping[str, Any]) -> RunRecord:
    """Record the trained model: its file, MLflow run and registry version."""
    return _update(store, run_id, model=model)


def record_metrics(store: MetadataStore, run_id: str, metrics: Mapping[str, float]) -> RunRecord:
    """Add metrics to a running run's record (merged with those already there)."""
    return _update(store, run_id, metrics=metrics)


def record_promotion(store: MetadataStore, run_id: str, decision: Mapping[str, Any]) -> RunRecord:
    """Record the gate's decision on a running run."""
    return _update(store, run_id, promotion=decision)


def _ended(
    current: Doc,
    step: str,
    *,
    error: str | None,
    duration_s: float | None,
    run_error: str | None = None,
) -> Doc:
    """Return the record with ``step`` ended: failed with ``error`` (and the run), or succeeded."""
    stamp = now()
    steps = dict(current["steps"])
    entry = dict(steps.get(step) or {"started_at": None, "notebook": NOTEBOOKS.get(step)})
    if duration_s is None and entry.get("started_at"):
        delta = datetime.fromisoformat(stamp) - datetime.fromisoformat(entry["started_at"])
        duration_s = round(delta.total_seconds(), 1)
    status = StepStatus.FAILED if error else StepStatus.SUCCEEDED
    entry.update(status=status.value, finished_at=stamp, duration_s=duration_s, error=error)
    steps[step] = entry
    new = {**current, "steps": steps, "updated_at": stamp}
    if error:
        failed = RunStatus.FAILED.value
        new.update(status=failed, error=run_error or f"{step}: {error}", finished_at=stamp)
    elif step == STEPS[-1]:
        new.update(status=RunStatus.SUCCEEDED.value, finished_at=stamp)
    return new


def finish_step(
    store: MetadataStore,
    run_id: str,
    step: str,
    *,
    error: str | None = None,
    duration_s: float | None = None,
) -> RunRecord:
    """Mark a step succeeded (or failed with ``error``); the last success finishes the run."""

    def change(current: Doc) -> Doc:
        return _ended(current, step, error=error, duration_s=duration_s)

    return _transact(store, run_id, change, finished="refuse", why=" already")


def set_reports(
    store: MetadataStore,
    run_id: str,
    reports: dict[str, str],
    *,
    archive: dict[str, dict[str, str]] | None = None,
) -> RunRecord:
    """Record where a run's reports are: rendered here, and archived beside its snapshots.

    Allowed after the run has finished: rendering comes last.
    """

    def change(current: Doc) -> Doc:
        new = {**current, "reports": {**(current.get("reports") or {}), **reports}}
        if archive:
            new["reports_archive"] = {**(current.get("reports_archive") or {}), **archive}
        return new

    return _transact(store, run_id, change, finished="allow")


def supersede_promotion(
    store: MetadataStore, run_id: str, decision: Mapping[str, Any]
) -> RunRecord:
    """Record a manual promotion on a finished run, keeping the gate's earlier verdict."""

    def change(current: Doc) -> Doc:
        earlier = current.get("promotion") or None
        kept = (
            {k: earlier.get(k) for k in ("decision", "reason", "decided_at")} if earlier else None
        )
        return {**current, "promotion": {**plain(decision), "superseded": kept}}

    return _transact(store, run_id, change, finished="allow")


def fail_step(
    store: MetadataStore,
    run_id: str,
    step: str,
    *,
    error: str,
    duration_s: float | None = None,
    run_error: str | None = None,
) -> RunRecord:
    """Record that a step failed outside the notebook's own record (the runner saw its error).

    The step is marked failed when it was still running; a run whose step never opened
    (a notebook that failed before ``open_step``) is failed as a whole. A finished run is
    left as it is.
    """

    def change(current: Doc) -> Doc:
        return _ended(current, step, error=error, duration_s=duration_s, run_error=run_error)

    return _transact(store, run_id, change, finished="keep")


def interrupt(store: MetadataStore, run_id: str, step: str, *, signal: str) -> RunRecord:
    """Record that the run was stopped by ``signal`` while ``step`` ran: both are failed."""
    return fail_step(
        store,
        run_id,
        step,
        error=f"interrupted by {signal}",
        run_error=f"interrupted during {step} ({signal})",
    )


def heartbeat(store: MetadataStore, run_id: str) -> RunRecord:
    """Stamp ``heartbeat_at`` on a running run; a finished run is left as it is."""

    def change(current: Doc) -> Doc:
        return {**current, "heartbeat_at": now()}

    return _transact(store, run_id, change, finished="keep")


def close_run(store: MetadataStore, run_id: str) -> RunRecord:
    """Return the finished run; one still running (a step did not record its end) is failed."""

    def change(current: Doc) -> Doc:
        stamp = now()
        return {
            **current,
            "status": RunStatus.FAILED.value,
            "error": "a step did not record its end",
            "finished_at": stamp,
            "updated_at": stamp,
        }

    return _transact(store, run_id, change, finished="keep")
