"""leaklib.runs: the run record and its named transitions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from leaklib import run_record, runs
from leaklib.metadata import ConflictError, LocalMetadataStore, MetadataError
from leaklib.run_record import RunRecord, RunStatus, StepStatus, Verdict


@pytest.fixture
def store(tmp_path):
    return LocalMetadataStore(tmp_path / "meta")


def started(store, run_id="r1"):
    return runs.start_run(
        store, run_id=run_id, params={"seed": 3}, param_files=["p.yaml"], origin="test"
    )


def test_new_run_has_lineage(store):
    record = started(store)
    assert record.status is RunStatus.RUNNING and record.seed == 3
    assert record.git_commit is None or len(record.git_commit) == 40
    assert record.lock_hash and record.environment["python"]
    stored = run_record.get_run(store, "r1").to_doc()  # what a plain dict reader sees
    assert stored["status"] == "running" and type(stored["status"]) is str
    assert {"snapshot", "model", "mlflow", "promotion", "error"} <= set(stored)


def test_run_id_cannot_be_reused(store):
    started(store)
    with pytest.raises(ConflictError, match="exists already"):
        started(store)


def test_steps_in_order_finish_the_run(store):
    started(store)
    for step in runs.STEPS:
        runs.start_step(store, "r1", step)
        record = runs.finish_step(store, "r1", step)
    assert record.status is RunStatus.SUCCEEDED and record.finished_at
    assert all(s.status is StepStatus.SUCCEEDED for s in record.steps.values())


def test_step_needs_the_previous_one(store):
    started(store)
    with pytest.raises(ConflictError, match="step 'extract' has not succeeded"):
        runs.start_step(store, "r1", "train")


def test_failed_step_fails_the_run_and_blocks_changes(store):
    started(store)
    runs.start_step(store, "r1", "extract")
    record = runs.finish_step(store, "r1", "extract", error="SchemaError: column 'x'")
    assert record.status is RunStatus.FAILED and "column 'x'" in record.error
    with pytest.raises(ConflictError, match="is failed"):
        runs.record_metrics(store, "r1", {"a": 1})


def test_record_metrics_merges_with_the_metrics_recorded(store):
    started(store)
    runs.record_metrics(store, "r1", {"a": 1})
    assert runs.record_metrics(store, "r1", {"b": 2}).metrics == {"a": 1, "b": 2}


def test_record_snapshot_keeps_what_the_extract_step_wrote(store):
    started(store)
    snapshot = {"uri": "file:///s.parquet", "sha256": "ab" * 32, "rows": 4, "columns": 3}
    record = runs.record_snapshot(
        store,
        "r1",
        snapshot={**snapshot, "size_bytes": 10},
        validation={"rows": 4, "notes": []},
        derived_features=["p_diff"],
        leaks=None,
    )
    assert (record.snapshot.sha256, record.snapshot.rows) == ("ab" * 32, 4)
    assert record.validation == {"rows": 4, "notes": []} and record.derived_features == ["p_diff"]


def test_record_split_keeps_the_held_out_rows(store):
    started(store)
    record = runs.record_split(store, "r1", {"units": "time", "train_period": ["a", "b"]})
    assert record.split == {"units": "time", "train_period": ["a", "b"]}


def test_record_training_keeps_mlflow_metrics_holdout_and_alarm(store):
    started(store)
    record = runs.record_training(
        store,
        "r1",
        mlflow={"run_id": "m1", "experiment_id": "1"},
        metrics={"cv_roc_auc": 0.8},
        holdout={"sha256": "cd" * 32, "rows": 2},
        alarm={"threshold": 0.7, "chosen_by": "cv-events"},
    )
    assert record.mlflow_run_id == "m1" and record.metrics == {"cv_roc_auc": 0.8}
    assert record.holdout.sha256 == "cd" * 32 and record.threshold == 0.7


def test_record_model_keeps_the_model_and_merges_its_version(store):
    started(store)
    runs.record_model(store, "r1", {"sha256": "ef" * 32, "store": "stores/snapshots"})
    record = runs.record_model(store, "r1", {"version": "3"})
    assert (record.model.sha256, record.model.store, record.model.version) == (
        "ef" * 32,
        "stores/snapshots",
        "3",
    )


def test_record_params_replaces_the_parameters(store):
    started(store)
    assert runs.record_params(store, "r1", {"seed": 4}).params == {"seed": 4}


def test_latest_run_with_a_succeeded_step(store):
    started(store, "r1")
    runs.start_step(store, "r1", "extract")
    runs.finish_step(store, "r1", "extract")
    started(store, "r2")
    assert run_record.latest_run(store, with_step="extract").run_id == "r1"
    with pytest.raises(MetadataError, match="no run with a succeeded 'train' step"):
        run_record.latest_run(store, with_step="train")


def test_unknown_run_is_named(store):
    with pytest.raises(MetadataError, match="run 'nope' not found"):
        run_record.get_run(store, "nope")


def test_fail_step_fails_a_running_step_and_the_run(store):
    started(store)
    runs.start_step(store, "r1", "extract")
    record = runs.fail_step(store, "r1", "extract", error="kernel died", duration_s=3.5)
    step = record.steps["extract"]
    assert (step.status, step.error, step.duration_s) == ("failed", "kernel died", 3.5)
    assert record.status is RunStatus.FAILED and record.error == "extract: kernel died"


def test_fail_step_of_a_step_that_never_opened_fails_the_run(store):
    started(store)
    record = runs.fail_step(store, "r1", "extract", error="ModuleNotFoundError: leaklib")
    assert record.status is RunStatus.FAILED and record.steps["extract"].notebook == "01_extract"


def test_fail_step_leaves_a_finished_run_as_it_is(store):
    started(store)
    runs.start_step(store, "r1", "extract")
    runs.finish_step(store, "r1", "extract", error="SchemaError")
    record = runs.fail_step(store, "r1", "extract", error="later")
    assert record.error == "extract: SchemaError"


def test_fail_step_names_an_unknown_run(store):
    with pytest.raises(MetadataError, match="run 'nope' not found"):
        runs.fail_step(store, "nope", "extract", error="x")


def test_close_run_fails_a_run_a_step_left_open(store):
    started(store)
    runs.start_step(store, "r1", "extract")
    record = runs.close_run(store, "r1")
    assert record.status is RunStatus.FAILED and record.error == "a step did not record its end"


def test_close_run_returns_a_finished_run_unchanged(store):
    started(store)
    for step in runs.STEPS:
        runs.start_step(store, "r1", step)
        runs.finish_step(store, "r1", step)
    assert runs.close_run(store, "r1").status is RunStatus.SUCCEEDED


def test_close_run_names_an_unknown_run(store):
    with pytest.raises(MetadataError, match="run 'nope' not found"):
        runs.close_run(store, "nope")


def test_record_promotion_keeps_the_decision_on_the_running_run(store):
    started(store)
    record = runs.record_promotion(store, "r1", {"decision": "promoted", "reason": "first"})
    assert record.promotion.decision is Verdict.PROMOTED and record.promotion.reason == "first"
    assert record.to_doc()["promotion"] == {"decision": "promoted", "reason": "first"}


def test_record_promotion_refuses_an_unknown_decision(store):
    started(store)
    with pytest.raises(MetadataError, match="run 'r1': unknown promotion decision 'maybe'"):
        runs.record_promotion(store, "r1", {"decision": "maybe"})
    assert run_record.get_run(store, "r1").promotion is None  # nothing was written


def test_record_promotion_refuses_a_finished_run(store):
    started(store)
    runs.fail_step(store, "r1", "extract", error="stopped")  # before the step opened
    with pytest.raises(ConflictError, match="run 'r1' is failed and can no longer change"):
        runs.record_promotion(store, "r1", {"decision": "promoted"})


def test_supersede_promotion_keeps_the_gates_earlier_verdict(store):
    started(store)
    gate = {"decision": "not promoted", "reason": "CI too wide", "decided_at": "t0", "ci_low": -1}
    runs.record_promotion(store, "r1", gate)
    for step in runs.STEPS:
        runs.start_step(store, "r1", step)
        runs.finish_step(store, "r1", step)
    record = runs.supersede_promotion(store, "r1", {"decision": "promoted", "reason": "by hand"})
    assert record.status is RunStatus.SUCCEEDED and record.promotion.promoted
    assert record.promotion.superseded == {
        "decision": "not promoted",
        "reason": "CI too wide",
        "decided_at": "t0",
    }


def test_supersede_promotion_names_an_unknown_run(store):
    with pytest.raises(MetadataError, match="run 'nope' not found"):
        runs.supersede_promotion(store, "nope", {"decision": "promoted"})


def _finished_run(store, run_id="earlier"):
    started(store, run_id)
    for step in runs.STEPS:
        runs.start_step(store, run_id, step)
        if step == "extract":
            runs.record_snapshot(
                store,
                run_id,
                snapshot={"sha256": step},
                validation={},
                derived_features=[],
                leaks=None,
            )
        if step == "train":
            runs.record_model(store, run_id, {"sha256": step})
        if step == "evaluate":
            runs.record_promotion(store, run_id, {"decision": "promoted", "reason": "r"})
        runs.record_metrics(store, run_id, {f"{step}_m": 1.0})
        runs.finish_step(store, run_id, step)
    return run_record.get_run(store, run_id)


def test_reuse_step_copies_what_the_step_wrote_and_says_from_where(store):
    earlier = _finished_run(store)
    started(store, "later")
    runs.reuse_step(
        store,
        "later",
        "extract",
        source=earlier,
        outputs={"snapshot": None, "metrics": ["extract_m"]},
    )
    record = runs.reuse_step(
        store, "later", "train", source=earlier, outputs={"model": None, "metrics": ["train_m"]}
    )
    assert record.metrics == {"extract_m": 1.0, "train_m": 1.0}
    assert record.snapshot.sha256 == "extract" and record.model.sha256 == "train"
    assert record.steps["train"].cached_from == "earlier"
    record = runs.reuse_step(
        store, "later", "evaluate", source=earlier, outputs={"promotion": None}
    )
    assert record.status is RunStatus.SUCCEEDED
    assert record.to_doc()["promotion"] == {
        "decision": "promoted",
        "reason": "r",
        "cached_from": "earlier",
    }


def test_reuse_step_refuses_a_step_that_did_not_succeed(store):
    started(store, "earlier")
    runs.start_step(store, "earlier", "extract")
    runs.finish_step(store, "earlier", "extract", error="boom")
    started(store, "later")
    with pytest.raises(ConflictError, match="step 'extract' did not succeed"):
        runs.reuse_step(
            store, "later", "extract", source=run_record.get_run(store, "earlier"), outputs={}
        )


def test_reuse_step_keeps_the_order_of_steps(store):
    earlier = _finished_run(store)
    started(store, "later")
    with pytest.raises(ConflictError, match="step 'extract' has not succeeded"):
        runs.reuse_step(store, "later", "train", source=earlier, outputs={})


def test_a_run_is_listed_once_it_opened_a_step_or_while_it_starts():
    at = datetime(2026, 11, 28, 21, 0, tzinfo=UTC)
    recent = (at - timedelta(seconds=5)).isoformat()
    failed = RunRecord.from_doc({"status": "failed", "steps": {"extract": {"status": "failed"}}})
    assert failed.reached_a_step()
    starting = RunRecord.from_doc({"status": "running", "steps": {}, "created_at": recent})
    assert starting.reached_a_step(at=at)


def test_a_run_that_ended_before_its_first_step_is_not_listed():
    at = datetime(2026, 11, 28, 21, 0, tzinfo=UTC)
    long_ago = (at - timedelta(hours=2)).isoformat()
    assert not RunRecord.from_doc({"status": "failed", "steps": {}}).reached_a_step()
    silent = RunRecord.from_doc({"status": "running", "steps": {}, "created_at": long_ago})
    assert not silent.reached_a_step(at=at)
