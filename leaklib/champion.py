"""The champion pointer: which run's model is the champion of a model name, and its history.

The pointer is the document ``champion/<model_name>`` of the metadata store. It changes only
through :func:`promote`, which the gate and ``leak promote`` share, atomically, and its
``history`` keeps every promotion, oldest first. Registry markers in MLflow mirror it.
"""

from __future__ import annotations

import logging
from typing import Any

from leaklib import metrics, model_registry, models, runs, tracking
from leaklib.errors import LeakError
from leaklib.metadata import CHAMPION, ConflictError, MetadataStore
from leaklib.run_record import ModelRecord, RunRecord
from leaklib.snapshots import open_snapshot_store

log = logging.getLogger(__name__)

ANY = object()  # promote(expected_champion=ANY): promote whoever holds the pointer now
BRIEF_KEYS = ("run_id", "version", "model_uri", "model_sha256", "mlflow_run_id", "promoted_at")


class ChampionError(LeakError, RuntimeError):
    """A run cannot be made the champion; the message says what is missing."""


def current_champion(store: MetadataStore, *, model_name: str) -> dict[str, Any] | None:
    """Return the champion pointer of ``model_name`` (with its history), or None."""
    return store.get(CHAMPION, model_name)


def brief(pointer: dict[str, Any] | None) -> dict[str, Any] | None:
    """Return the few fields that identify a champion (for decisions and summaries)."""
    if not pointer:
        return None
    return {k: pointer.get(k) for k in BRIEF_KEYS}


def model_of(run: RunRecord) -> ModelRecord:
    """Return the run's model record; ChampionError when its train step made none."""
    model = run.model or ModelRecord()
    if not (model.registry_uri or model.run_uri or model.sha256):
        raise ChampionError(
            f"run {run.run_id!r} has no logged model: its train step did not succeed"
        )
    return model


def model_uri(model: ModelRecord) -> str | None:
    """Return the MLflow URI that loads a run's model: its registry version, else its run."""
    return model.registry_uri or model.run_uri


def _entry(run: RunRecord, *, reason: str, decided_by: str, figures: dict[str, float]):
    model = model_of(run)
    return {
        "run_id": run.run_id,
        "model_uri": model_uri(model),
        "source_uri": model.run_uri,
        "model_sha256": model.sha256,
        "model_store": model.store,
        "model_file_uri": model.uri,
        "version": model.version,
        "mlflow_run_id": model.mlflow_run_id or run.mlflow_run_id,
        "threshold": run.threshold,
        "promoted_at": runs.now(),
        "reason": reason,
        "decided_by": decided_by,
        "metrics": figures or metrics.unprefixed(run.metrics),
    }


def promote(
    store: MetadataStore,
    *,
    run: RunRecord,
    model_name: str,
    reason: str,
    decided_by: str = "manual",
    figures: dict[str, float] | None = None,
    expected_champion: Any = ANY,
) -> dict[str, Any]:
    """Make ``run``'s model the champion of ``model_name``: the pointer, then registry markers.

    Args:
        store: The metadata store holding the ``champion`` collection.
        run: The run record whose model becomes the champion.
        model_name: The dataset's model name.
        reason: Why (one sentence; the gate's reason or the operator's).
        decided_by: ``gate`` or ``manual``.
        figures: The challenger's holdout metrics kept with the pointer (default: the run's).
        expected_champion: Refuse (ConflictError) unless the champion is still this run id
            (None: no champion); the gate passes the one it compared against.
    """
    entry = _entry(run, reason=reason, decided_by=decided_by, figures=figures or {})
    previous: dict[str, Any] = {}

    def change(current: dict[str, Any] | None) -> dict[str, Any]:
        holder = (current or {}).get("run_id")
        if expected_champion is not ANY and holder != expected_champion:
            raise ConflictError(
                f"the champion of {model_name!r} changed to run {holder!r} while run "
                f"{run.run_id!r} was compared with {expected_champion!r}"
            )
        previous.clear()
        previous.update(current or {})
        history = list((current or {}).get("history") or [])
        history.append({**entry, "previous_run_id": holder})
        return {"model_name": model_name, **entry, "previous_run_id": holder, "history": history}

    pointer = store.transact(CHAMPION, model_name, change)
    log.info(
        "run %s is the champion of %s (was %s)", run.run_id, model_name, previous.get("run_id")
    )
    if entry["version"]:
        model_registry.mirror_champion(
            model_name,
            str(entry["version"]),
            previous_version=str(previous["version"]) if previous.get("version") else None,
            note=f"leak run {run.run_id}, {entry['promoted_at']}",
        )
    return pointer


def load_champion_model(pointer: dict[str, Any]) -> Any:
    """Load the champion's fitted pipeline, verified by hash from the durable model store.

    A pointer without a model hash (written before models were stored beside the snapshots)
    is loaded through MLflow: its registry version, else the run it was logged in, and only
    when that version belongs to the champion's own MLflow run.
    """
    if pointer.get("model_sha256"):
        store = open_snapshot_store(pointer["model_store"])
        try:
            return models.load_model_file(pointer["model_sha256"], store=store)
        except models.ModelFileError as exc:
            raise ChampionError(f"the champion model of run {pointer['run_id']!r}: {exc}") from exc
    return _load_from_mlflow(pointer)


def _load_from_mlflow(pointer: dict[str, Any]) -> Any:
    """Load through MLflow, refusing a registry version that belongs to another MLflow run."""
    tried = []
    for uri in dict.fromkeys(u for u in (pointer.get("model_uri"), pointer.get("source_uri")) if u):
        try:
            model_registry.check_version_run(uri, expected_run_id=pointer.get("mlflow_run_id"))
            return tracking.load_logged_model(uri)
        except Exception as exc:  # MLflow raises many kinds; say which URIs failed and why
            log.warning("champion model %s cannot be loaded: %s", uri, exc)
            tried.append(f"{uri} ({exc})")
    raise ChampionError(f"the champion model cannot be loaded from {'; '.join(tried) or 'no URI'}")


def same_model(pointer: dict[str, Any], run: RunRecord) -> bool:
    """Return True when the pointer names the model of ``run`` (by hash or MLflow run)."""
    model = run.model or ModelRecord()
    if pointer.get("model_sha256") and pointer["model_sha256"] == model.sha256:
        return True
    mlflow_run = model.mlflow_run_id
    return bool(mlflow_run) and pointer.get("mlflow_run_id") == mlflow_run
