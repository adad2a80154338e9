"""The run record: one document per run in the metadata store, and its status transitions.

Document (collection ``runs``, id = run id)::

    run_id, status (running | succeeded | failed), created_at, updated_at, finished_at,
    origin, params, param_files, git {commit, dirty}, lock_hash, environment {python, platform},
    seeds {seed}, steps {extract|train|evaluate: {status, started_at, finished_at,
    duration_s, error, notebook, report, cached_from}}, snapshot {uri, sha256, rows, columns, size_bytes},
    validation {...}, metrics {...}, model {...}, mlflow {...}, promotion {...}, error

Every change goes through :meth:`MetadataStore.transact`, so two processes never overwrite
each other's record and a finished run cannot be reopened.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from leaklib.errors import NotFoundError
from leaklib.lineage import environment_info, git_info, lock_hash
from leaklib.metadata import RUNS, ConflictError, MetadataError, MetadataStore
from leaklib.steps import NOTEBOOKS, STEPS

log = logging.getLogger(__name__)

HEARTBEAT_S = 15.0  # how often a running step stamps heartbeat_at
ABANDONED_AFTER_S = 600.0  # a running record whose heartbeat is older than this was abandoned


class RunNotFound(MetadataError, NotFoundError):
    """No run of this id in the metadata store."""

    def __init__(self, run_id: str, *, store_uri: str | None = None) -> None:
        where = f" in {store_uri}" if store_uri else ""
        super().__init__(f"run {run_id!r} not found{where}")
        self.run_id = run_id


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
) -> dict[str, Any]:
    """Create the run document with its lineage; ConflictError if the id is taken."""
    stamp = now()
    record = {
        "run_id": run_id,
        "status": "running",
        "created_at": stamp,
        "updated_at": stamp,
        "finished_at": None,
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
        "snapshot": None,
        "metrics": {},
        "model": None,
        "mlflow": None,
        "promotion": None,
        "error": None,
    }
    store.create(RUNS, run_id, record)
    log.info("run %s recorded in %s", run_id, store.uri)
    return record


def get_run(store: MetadataStore, run_id: str) -> dict[str, Any]:
    """Return a run document; RunNotFound (a MetadataError) when it does not exist."""
    record = store.get(RUNS, run_id)
    if record is None:
        raise RunNotFound(run_id, store_uri=store.uri)
    return record


def get_run_or_none(store: MetadataStore, run_id: str) -> dict[str, Any] | None:
    """Return a run document, or None when it does not exist."""
    return store.get(RUNS, run_id)


def list_runs(store: MetadataStore) -> list[dict[str, Any]]:
    """Return every run, newest first."""
    return sorted(store.list(RUNS), key=lambda r: r.get("created_at") or "", reverse=True)


def latest_run(store: MetadataStore, *, with_step: str | None = None) -> dict[str, Any]:
    """Return the newest run, or the newest whose ``with_step`` succeeded."""
    for record in list_runs(store):
        if (
            with_step is None
            or record.get("steps", {}).get(with_step, {}).get("status") == "succeeded"
        ):
            return record
    wanted = f" with a succeeded {with_step!r} step" if with_step else ""
    raise MetadataError(f"no run{wanted} in {store.uri}: run the earlier notebook first")


def _transact(
    store: MetadataStore,
    run_id: str,
    change: Callable[[dict[str, Any]], dict[str, Any]],
    *,
    finished: str,
    why: str = "",
) -> dict[str, Any]:
    """Apply one named transition to a run's record atomically.

    Args:
        finished: What a run that is no longer ``running`` gets: ``refuse`` (ConflictError,
            ``run X is <status><why>``), ``keep`` (left as it is) or ``allow`` (changed too).
    """

    def guarded(current: dict[str, Any] | None) -> dict[str, Any]:
        if current is None:
            raise RunNotFound(run_id)
        if current["status"] != "running" and finished != "allow":
            if finished == "refuse":
                raise ConflictError(f"run {run_id!r} is {current['status']}{why}")
            return current
        return change(current)

    return store.transact(RUNS, run_id, guarded)


def _previous_step(step: str) -> str | None:
    """Return the step before ``step`` (None for the first); refuse an unknown step."""
    if step not in STEPS:
        raise MetadataError(f"unknown step {step!r}; steps are {', '.join(STEPS)}")
    return STEPS[STEPS.index(step) - 1] if step != STEPS[0] else None


def _require_succeeded(current: dict[str, Any], run_id: str, previous: str | None) -> None:
    """Refuse to go on when the previous step of the run has not succeeded."""
    if previous and current["steps"].get(previous, {}).get("status") != "succeeded":
        raise ConflictError(f"run {run_id!r}: step {previous!r} has not succeeded")


def start_step(store: MetadataStore, run_id: str, step: str) -> dict[str, Any]:
    """Mark a step running; refuse if the run is finished or the previous step did not succeed."""
    previous = _previous_step(step)

    def change(current: dict[str, Any]) -> dict[str, Any]:
        _require_succeeded(current, run_id, previous)
        stamp = now()
        steps = dict(current["steps"])
        steps[step] = {
            "status": "running",
            "started_at": stamp,
            "finished_at": None,
            "duration_s": None,
            "error": None,
            "notebook": NOTEBOOKS[step],
        }
        return {**current, "steps": steps, "updated_at": stamp}

    return _transact(store, run_id, change, finished="refuse", why="; start a new run")


def reuse_step(
    store: MetadataStore,
    run_id: str,
    step: str,
    *,
    source: dict[str, Any],
    outputs: dict[str, list[str] | None],
) -> dict[str, Any]:
    """Take a step from an earlier run (the step cache): copy what it wrote, mark it succeeded.

    Args:
        source: The earlier run's record; its step must have succeeded.
        outputs: The fields that step wrote (``None``: the whole field; a list: those keys of
            a mapping several steps fill, such as ``metrics``).

    The step gets ``cached_from`` (the earlier run id); a reused promotion decision too, so
    nobody reads it as a new verdict. The last step reused finishes the run.
    """
    previous = _previous_step(step)
    earlier = source["run_id"]
    done = (source.get("steps") or {}).get(step) or {}
    if done.get("status") != "succeeded":
        raise ConflictError(f"run {earlier!r}: step {step!r} did not succeed; it cannot be reused")

    def change(current: dict[str, Any]) -> dict[str, Any]:
        _require_succeeded(current, run_id, previous)
        new = dict(current)
        for name, keys in outputs.items():
            value = source.get(name)
            if keys is not None and isinstance(value, dict):
                new[name] = {**(new.get(name) or {}), **{k: value[k] for k in keys if k in value}}
            elif isinstance(value, dict) and name == "promotion":
                new[name] = {**value, "cached_from": earlier}
            else:
                new[name] = value
        stamp = now()
        steps = dict(current["steps"])
        steps[step] = {
            "status": "succeeded",
            "started_at": stamp,
            "finished_at": stamp,
            "duration_s": 0.0,
            "error": None,
            "notebook": NOTEBOOKS[step],
            "cached_from": earlier,
        }
        new.update(steps=steps, updated_at=stamp)
        if step == STEPS[-1]:
            new.update(status="succeeded", finished_at=stamp)
        return new

    return _transact(store, run_id, change, finished="refuse", why="; start a new run")


def update_run(store: MetadataStore, run_id: str, **fields: Any) -> dict[str, Any]:
    """Set top-level fields of a running run (snapshot, metrics, model, ...); dicts are merged."""

    def change(current: dict[str, Any]) -> dict[str, Any]:
        new = dict(current)
        for key, value in fields.items():
            if isinstance(value, dict) and isinstance(new.get(key), dict):
                new[key] = {**new[key], **value}
            else:
                new[key] = value
        new["updated_at"] = now()
        return new

    return _transact(store, run_id, change, finished="refuse", why=" and can no longer change")


def _elapsed(started: str | None, finished: str) -> float | None:
    if not started:
        return None
    delta = datetime.fromisoformat(finished) - datetime.fromisoformat(started)
    return round(delta.total_seconds(), 1)


def _ended(
    current: dict[str, Any],
    step: str,
    *,
    error: str | None,
    duration_s: float | None,
    run_error: str | None = None,
) -> dict[str, Any]:
    """Return the record with ``step`` ended: failed with ``error`` (and the run), or succeeded."""
    stamp = now()
    steps = dict(current["steps"])
    entry = dict(steps.get(step) or {"started_at": None, "notebook": NOTEBOOKS.get(step)})
    if duration_s is None:
        duration_s = _elapsed(entry.get("started_at"), stamp)
    entry.update(
        status="failed" if error else "succeeded",
        finished_at=stamp,
        duration_s=duration_s,
        error=error,
    )
    steps[step] = entry
    new = {**current, "steps": steps, "updated_at": stamp}
    if error:
        new.update(status="failed", error=run_error or f"{step}: {error}", finished_at=stamp)
    elif step == STEPS[-1]:
        new.update(status="succeeded", finished_at=stamp)
    return new


def finish_step(
    store: MetadataStore,
    run_id: str,
    step: str,
    *,
    error: str | None = None,
    duration_s: float | None = None,
) -> dict[str, Any]:
    """Mark a step succeeded (or failed with ``error``); the last success finishes the run."""

    def change(current: dict[str, Any]) -> dict[str, Any]:
        return _ended(current, step, error=error, duration_s=duration_s)

    return _transact(store, run_id, change, finished="refuse", why=" already")


def set_reports(
    store: MetadataStore,
    run_id: str,
    reports: dict[str, str],
    *,
    archive: dict[str, dict[str, str]] | None = None,
) -> dict[str, Any]:
    """Record where a run's reports are: rendered here, and archived beside its snapshots.

    Allowed after the run has finished: rendering comes last.
    """

    def change(current: dict[str, Any]) -> dict[str, Any]:
        new = {**current, "reports": {**(current.get("reports") or {}), **reports}}
        if archive:
            new["reports_archive"] = {**(current.get("reports_archive") or {}), **archive}
        return new

    return _transact(store, run_id, change, finished="allow")


def record_promotion(store: MetadataStore, run_id: str, decision: dict[str, Any]) -> dict[str, Any]:
    """Record the gate's decision on a running run."""
    return update_run(store, run_id, promotion=decision)


def supersede_promotion(
    store: MetadataStore, run_id: str, decision: dict[str, Any]
) -> dict[str, Any]:
    """Record a manual promotion on a finished run, keeping the gate's earlier verdict."""

    def change(current: dict[str, Any]) -> dict[str, Any]:
        earlier = current.get("promotion") or None
        kept = (
            {k: earlier.get(k) for k in ("decision", "reason", "decided_at")} if earlier else None
        )
        return {**current, "promotion": {**decision, "superseded": kept}}

    return _transact(store, run_id, change, finished="allow")


def fail_step(
    store: MetadataStore,
    run_id: str,
    step: str,
    *,
    error: str,
    duration_s: float | None = None,
    run_error: str | None = None,
) -> dict[str, Any]:
    """Record that a step failed outside the notebook's own record (the runner saw its error).

    The step is marked failed when it was still running; a run whose step never opened
    (a notebook that failed before ``open_step``) is failed as a whole. A finished run is
    left as it is.
    """

    def change(current: dict[str, Any]) -> dict[str, Any]:
        return _ended(current, step, error=error, duration_s=duration_s, run_error=run_error)

    return _transact(store, run_id, change, finished="keep")


def interrupt(store: MetadataStore, run_id: str, step: str, *, signal: str) -> dict[str, Any]:
    """Record that the run was stopped by ``signal`` while ``step`` ran: both are failed."""
    return fail_step(
        store,
        run_id,
        step,
        error=f"interrupted by {signal}",
        run_error=f"interrupted during {step} ({signal})",
    )


def heartbeat(store: MetadataStore, run_id: str) -> dict[str, Any]:
    """Stamp ``heartbeat_at`` on a running run; a finished run is left as it is."""

    def change(current: dict[str, Any]) -> dict[str, Any]:
        return {**current, "heartbeat_at": now()}

    return _transact(store, run_id, change, finished="keep")


SHOWN_STATUSES = ("running", "succeeded", "failed", "abandoned")  # what shown_status returns


def shown_status(record: dict[str, Any], *, at: datetime | None = None) -> str:
    """Return the status a reader should see: ``abandoned`` for a running run gone silent.

    A run is abandoned when it is still ``running`` but its last sign of life (heartbeat,
    else last update, else creation) is older than :data:`ABANDONED_AFTER_S`.
    """
    status = record.get("status") or "unknown"
    if status != "running":
        return status
    last = record.get("heartbeat_at") or record.get("updated_at") or record.get("created_at")
    try:
        moment = datetime.fromisoformat(str(last))
    except ValueError:
        return status
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    silent = ((at or datetime.now(UTC)) - moment).total_seconds()
    return "abandoned" if silent > ABANDONED_AFTER_S else status


def reached_a_step(record: dict[str, Any], *, at: datetime | None = None) -> bool:
    """Whether a run is a pipeline run to list: it opened a step, or is still starting.

    A run that ended before its first step (a start refused after its record was written, a
    crash in between) ran nothing and has no report; parameter problems are refused before a
    record exists, so such a run is rare, and the index leaves it out.
    """
    return bool(record.get("steps")) or shown_status(record, at=at) == "running"


def close_run(store: MetadataStore, run_id: str) -> dict[str, Any]:
    """Return the finished run; one still running (a step did not record its end) is failed."""

    def change(current: dict[str, Any]) -> dict[str, Any]:
        stamp = now()
        return {
            **current,
            "status": "failed",
            "error": "a step did not record its end",
            "finished_at": stamp,
            "updated_at": stamp,
        }

    return _transact(store, run_id, change, finished="keep")


def recorded_params(record: dict[str, Any]) -> dict[str, Any]:
    """Return a run's parameters as recorded, the features back in their declared order.

    Stores may sort a mapping's keys (JSON files, Firestore), and a model's columns follow the
    declared order; ``feature_order`` keeps it.
    """
    values = dict(record["params"])
    features = values["dataset"]["features"]
    order = record.get("feature_order") or list(features)
    values["dataset"] = {**values["dataset"], "features": {n: features[n] for n in order}}
    return values


LEGACY_THRESHOLD = 0.5  # records made before thresholds were chosen per model


def recorded_threshold(record: dict[str, Any]) -> float:
    """Return the alarm threshold a run's model was given (chosen on CV, or the parameter)."""
    alarm = record.get("alarm") or {}
    if alarm.get("threshold") is not None:
        return float(alarm["threshold"])
    given = (record.get("params") or {}).get("threshold")
    return float(given) if given is not None else LEGACY_THRESHOLD
