"""What a notebook does first and last: open its step in a run, and record that it is done.

``open_step`` reads the notebook's parameter variables, validates them, finds the run (the
injected ``run_id``; in JupyterLab with no id, a new run for the first step or the latest
run whose previous step succeeded) and marks the step running. ``StepContext.done`` marks
it succeeded. A failed cell is recorded by the runner, which sees the error.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from leaklib import metrics, run_record, runs
from leaklib.features import model_features
from leaklib.leak_events import Leaks, leaks_from_record, load_leaks
from leaklib.metadata import MetadataStore, open_metadata_store
from leaklib.params import FeatureSpec, Params, defaults, field_names, merge, validate
from leaklib.run_record import RunRecord, SnapshotRef
from leaklib.snapshots import SnapshotStore, load_snapshot, open_snapshot_store

log = logging.getLogger(__name__)


@dataclass
class StepContext:
    """The open step of a run, with its validated parameters and stores."""

    step: str
    params: Params
    store: MetadataStore
    snapshots: SnapshotStore
    run: RunRecord
    started: float = field(default_factory=time.monotonic)

    @property
    def run_id(self) -> str:
        """The id of the run this step belongs to."""
        return self.run.run_id

    @property
    def features(self) -> dict[str, FeatureSpec]:
        """The columns the model is fitted on: the declared features, then the derived ones."""
        return model_features(self.params.dataset, self.run.derived_features)

    @property
    def threshold(self) -> float:
        """The alarm threshold of this run's model (chosen in training, or the parameter)."""
        return self.run.threshold

    def record_snapshot(
        self,
        *,
        snapshot: dict[str, Any],
        validation: dict[str, Any],
        derived_features: list[str],
        leaks: dict[str, Any] | None,
    ) -> RunRecord:
        """Record the extract step's table, validation report, derived features and leak tables."""
        self.run = runs.record_snapshot(
            self.store,
            self.run_id,
            snapshot=snapshot,
            validation=validation,
            derived_features=derived_features,
            leaks=leaks,
        )
        return self.run

    def record_split(self, split: dict[str, Any]) -> RunRecord:
        """Record which rows the train step held out."""
        self.run = runs.record_split(self.store, self.run_id, split)
        return self.run

    def record_training(
        self,
        *,
        mlflow: dict[str, Any],
        metrics: dict[str, float],
        holdout: dict[str, Any],
        alarm: dict[str, Any],
    ) -> RunRecord:
        """Record the train step's MLflow run, cross-validated metrics, holdout and alarm."""
        self.run = runs.record_training(
            self.store, self.run_id, mlflow=mlflow, metrics=metrics, holdout=holdout, alarm=alarm
        )
        return self.run

    def record_model(self, model: dict[str, Any]) -> RunRecord:
        """Record the trained model: its file, MLflow run and registry version."""
        self.run = runs.record_model(self.store, self.run_id, model)
        return self.run

    def record_metrics(self, metrics: dict[str, float]) -> RunRecord:
        """Add metrics to the run record (the evaluate step's holdout figures)."""
        self.run = runs.record_metrics(self.store, self.run_id, metrics)
        return self.run

    def load_snapshot(self) -> pd.DataFrame:
        """Return the run's validated table, verified against its recorded SHA-256."""
        snapshot = self.run.snapshot
        if not snapshot:
            raise runs.MetadataError(f"run {self.run_id!r} has no snapshot: run 01_extract first")
        return load_snapshot(snapshot.sha256, store=self.snapshots)

    def load_holdout(self) -> pd.DataFrame:
        """Return the run's frozen holdout, verified against its recorded SHA-256."""
        holdout = self.run.holdout
        if not holdout:
            raise runs.MetadataError(f"run {self.run_id!r} has no holdout: run 02_train first")
        return load_snapshot(holdout.sha256, store=self.snapshots)

    def load_leaks(self) -> Leaks:
        """Return the leak table and volumes the extract step snapshotted (else the files)."""
        recorded = self.run.leaks
        if recorded:
            return leaks_from_record(recorded, store=self.snapshots)
        return load_leaks(self.params.dataset)

    def done(self) -> pd.Series:
        """Mark the step succeeded and return a one-column summary of the run record."""
        self.run = runs.finish_step(
            self.store, self.run_id, self.step, duration_s=round(time.monotonic() - self.started, 1)
        )
        return summary(self.run)


def summary(run: RunRecord) -> pd.Series:
    """Return the run's headline facts as a small table for the end of a notebook."""
    snapshot = run.snapshot or SnapshotRef()
    facts = {
        "run id": run.run_id,
        "status": run.status.value,
        "steps": ", ".join(
            f"{name} {run.steps[name].status}" for name in runs.STEPS if name in run.steps
        ),
        "git commit": (run.git_commit or "")[:12],
        "snapshot sha256": (snapshot.sha256 or "")[:16],
        "rows": snapshot.rows,
    }
    facts.update(
        {
            k: v
            for k, v in run.metrics.items()
            if k in metrics.HEADLINE or k == f"{metrics.CV_PREFIX}roc_auc_std"
        }
    )
    return pd.Series(facts, name="value", dtype=object)


def notebook_values(namespace: dict[str, Any]) -> dict[str, Any]:
    """Pick the parameter variables a notebook declares out of its global namespace."""
    return {name: namespace[name] for name in field_names() if name in namespace}


def _find_run(store: MetadataStore, step: str, run_id: str | None) -> RunRecord | None:
    """Return the run this step continues: the given one, or in JupyterLab the latest fit one."""
    if step == runs.STEPS[0]:
        return run_record.get_run_or_none(store, run_id) if run_id else None
    if run_id:
        return run_record.get_run(store, run_id)
    previous = runs.STEPS[runs.STEPS.index(step) - 1]
    existing = run_record.latest_run(store, with_step=previous)
    log.info("no run_id given: continuing run %s", existing.run_id)
    return existing


def _params_for(existing: RunRecord | None, values: dict[str, Any]) -> Params:
    """Return the step's parameters: the run's validated set, with any JupyterLab edits.

    Under ``leak run`` the notebook's values are the run's own, so nothing changes. By hand,
    a value replaces the run's (the embedded default's, for a new run), and a mapping sets
    only the keys it gives, as ``-p model.name random_forest`` would: the cell's ``{}`` keeps
    the whole mapping.
    """
    base = existing.params if existing is not None else defaults()
    overrides: list[tuple[str, Any]] = []
    for name, value in values.items():
        if isinstance(value, dict):
            overrides += [(f"{name}.{key}", inner) for key, inner in value.items()]
        else:
            overrides.append((name, value))
    merged = merge([base], overrides)
    merged["run_id"] = values.get("run_id") or (existing.run_id if existing else None)
    return validate(merged)


def open_step(step: str, namespace: dict[str, Any]) -> StepContext:
    """Find or create the step's run, mark the step running and return its context.

    Args:
        step: ``extract``, ``train`` or ``evaluate``.
        namespace: The notebook's ``globals()`` after its ``parameters`` cell.
    """
    values = notebook_values(namespace)
    store = open_metadata_store(values.get("metadata_store") or defaults()["metadata_store"])
    store.check()
    existing = _find_run(store, step, values.get("run_id"))
    params = _params_for(existing, values)
    snapshots = open_snapshot_store(params.snapshot_store)
    if existing is None:  # the first step, opened by hand: a new run
        snapshots.check()
        params = params.model_copy(update={"run_id": params.run_id or runs.new_run_id()})
        runs.start_run(
            store, run_id=params.run_id, params=params.to_plain(), param_files=[], origin="notebook"
        )
    elif existing.params != params.to_plain():  # edited in JupyterLab
        runs.record_params(store, params.run_id, params.to_plain())
    record = runs.start_step(store, params.run_id, step)
    log.info("run %s: step %s started", params.run_id, step)
    return StepContext(step=step, params=params, store=store, snapshots=snapshots, run=record)
