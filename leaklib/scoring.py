"""Score new readings with a recorded model (the champion, or a given run's) and keep the alarms.

The table is checked against the model's recorded dataset (its declared features; the target
is optional), the same derivations are applied, and each row gets its leak probability and
an alarm at the model's own threshold. Rows go to a sink (:mod:`leaklib.sinks`) and each
scoring is recorded in the metadata store (collection ``scorings``): which model, which
input, how many rows and alarms. The same input scored with the same model again adds
nothing: its scoring id is the hash of both.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from leaklib import champion, models, plots, runs
from leaklib.errors import LeakError
from leaklib.features import derive_dataset, model_features
from leaklib.metadata import ConflictError, MetadataStore
from leaklib.modelling import feature_frame
from leaklib.params import DatasetSpec, Params
from leaklib.schema import limit_groups, validate_for_scoring
from leaklib.sinks import SCORING_ID, write_scores
from leaklib.snapshots import canonical_bytes, open_snapshot_store, sha256_hex
from leaklib.sources import extract_source

log = logging.getLogger(__name__)

SCORINGS = "scorings"


class ScoringError(LeakError, RuntimeError):
    """A table cannot be scored; the message says what is missing."""


@dataclass(frozen=True)
class Scoring:
    """One scoring: which model scored which input, and what it found."""

    scoring_id: str
    run_id: str
    model_sha256: str
    input_sha256: str
    rows: int
    alarms: int
    threshold: float
    destination: str
    scored_at: str
    added: int  # rows written this time (0: this scoring was there already)
    run_dataset: DatasetSpec | None = None  # the scoring model's dataset (keys, target)
    scored: pd.DataFrame | None = field(default=None, repr=False, compare=False)  # the rows

    def to_dict(self) -> dict[str, Any]:
        """Return the scoring as plain values for the ``scorings`` collection."""
        skip = ("added", "run_dataset", "scored")
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in skip}


def model_run(store: MetadataStore, *, model_name: str, run_id: str | None) -> dict[str, Any]:
    """Return the run whose model scores: ``run_id``'s, else the champion's of ``model_name``."""
    if run_id is None:
        pointer = champion.current_champion(store, model_name=model_name)
        if pointer is None:
            raise ScoringError(
                f"no champion yet for model {model_name!r} in {store.uri}: train one with "
                "`leak run`, or name a run with --run"
            )
        run_id = pointer["run_id"]
    run = runs.get_run(store, run_id)
    if not (run.get("model") or {}).get("sha256"):
        raise ScoringError(f"run {run_id!r} has no stored model file to score with")
    return run


def score_frame(
    raw: pd.DataFrame, *, run: dict[str, Any], scored_at: str, model: Any = None
) -> pd.DataFrame:
    """Return one row per input row: keys, probability, alarm, threshold and the model's ids.

    Args:
        raw: The readings, in the model's recorded schema (the target is optional).
        run: The run record whose model scores.
        scored_at: When, as an ISO-8601 string.
        model: That run's fitted model when the caller holds it already (a server scoring
            many requests); read from the model store, verified by hash, when omitted.
    """
    dataset = DatasetSpec.model_validate(runs.recorded_params(run)["dataset"])
    table = validate_for_scoring(raw, dataset=dataset)
    table, _ = derive_dataset(table, dataset)
    if model is None:
        model = load_run_model(run)
    features = model_features(dataset, run.get("derived_features"))
    proba = model.predict_proba(feature_frame(table, features))[:, 1]
    threshold = runs.recorded_threshold(run)
    keys = [c for c in (dataset.group, dataset.timestamp, dataset.target) if c in table]
    out = table[keys].reset_index(drop=True)
    out["probability"] = proba.round(6)
    out["alarm"] = proba >= threshold
    out["threshold"] = threshold
    out["model_sha256"] = run["model"]["sha256"]
    out["run_id"] = run["run_id"]
    out["scored_at"] = pd.Timestamp(scored_at)
    return out


def load_run_model(run: dict[str, Any]) -> Any:
    """Return a run's fitted model, read from its model store and verified by hash."""
    return models.load_model_file(
        run["model"]["sha256"], store=open_snapshot_store(run["model"]["store"])
    )


def operator_view(done: Scoring) -> Any:
    """Return the figure of a scoring's rows as an operator reads them (any destination)."""
    dataset = done.run_dataset
    return plots.plot_alarms(
        done.scored,
        group=dataset.group,
        timestamp=dataset.timestamp,
        target=dataset.target,
        threshold=done.threshold,
    )


def selected_rows(params: Params) -> pd.DataFrame:
    """Return the rows of ``params.dataset.source`` its parameters select, as a run keeps them.

    ``dataset.sample`` and ``dataset.max_groups`` apply (so ``-f parameters/smoke.yaml``
    scores the smoke set's groups, not the whole table); a Parquet file or a BigQuery table
    gives its declared columns only.
    """
    frame = extract_source(params).frame
    dataset = params.dataset
    if dataset.max_groups is not None and dataset.group in frame.columns:
        frame = limit_groups(frame, group=dataset.group, max_groups=dataset.max_groups)
    return frame


def score(
    params: Params, *, store: MetadataStore, destination: str, run_id: str | None = None
) -> Scoring:
    """Score ``params.dataset.source`` with the champion (or ``run_id``'s model) into ``destination``.

    The champion is that of ``params.dataset.model_name``, and the rows those the parameters
    select (:func:`selected_rows`). Nothing is written when the table does not fit the model's recorded schema.
    """
    run = model_run(store, model_name=params.dataset.model_name, run_id=run_id)
    raw = selected_rows(params)
    scored_at = datetime.now(UTC).isoformat(timespec="seconds")
    rows = score_frame(raw, run=run, scored_at=scored_at)
    input_sha = sha256_hex(canonical_bytes(raw))
    scoring_id = sha256_hex(f"{input_sha}:{run['model']['sha256']}".encode())[:32]
    rows[SCORING_ID] = scoring_id
    added = write_scores(rows, destination=destination, scoring_id=scoring_id)
    scoring = Scoring(
        scoring_id=scoring_id,
        run_id=run["run_id"],
        model_sha256=run["model"]["sha256"],
        input_sha256=input_sha,
        rows=len(rows),
        alarms=int(rows["alarm"].sum()),
        threshold=float(rows["threshold"].iloc[0]),
        destination=destination,
        scored_at=scored_at,
        added=added,
        run_dataset=DatasetSpec.model_validate(runs.recorded_params(run)["dataset"]),
        scored=rows,
    )
    try:
        store.create(SCORINGS, scoring_id, scoring.to_dict())
    except ConflictError:  # scored before: the first record stays, as the rows did
        log.info("scoring %s was recorded before; nothing new", scoring_id)
    return scoring
