"""leaklib.run_record: the typed run record reads stored documents and writes them back as is."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from leaklib.metadata import LocalMetadataStore, MetadataError
from leaklib.run_record import (
    LEGACY_THRESHOLD,
    ModelRecord,
    Promotion,
    RunRecord,
    RunRecordError,
    RunStatus,
    SnapshotRef,
    StepStatus,
    Verdict,
)

# A record written by `leak run` before the typed record existed (a real smoke run's document).
SUCCEEDED = Path(__file__).parent / "data" / "run_records" / "succeeded.json"

# A record from before thresholds, heartbeats, leak snapshots and report archives.
LEGACY = {
    "run_id": "20261101-120000-abcd",
    "status": "succeeded",
    "created_at": "2026-11-01T12:00:00+00:00",
    "finished_at": "2026-11-01T12:05:00+00:00",
    "params": {"seed": 1, "dataset": {"features": {"b": {}, "a": {}}}},
    "steps": {"extract": {"status": "succeeded", "notebook": "01_extract"}},
    "snapshot": {"uri": "file:///s", "sha256": "ab" * 32, "rows": 3, "columns": 2},
    "metrics": {"holdout_roc_auc": 0.7},
    "model": {"sha256": "cd" * 32, "store": "stores/snapshots", "old_field": 1},
    "promotion": {"decision": "not promoted", "reason": "old"},
    "mlflow": None,
    "error": None,
    "a_field_from_the_future": {"kept": True},
}


@pytest.fixture
def stored() -> dict:
    return json.loads(SUCCEEDED.read_text())


def test_a_record_written_before_the_type_loads_with_typed_parts(stored):
    record = RunRecord.from_doc(stored)
    assert record.status is RunStatus.SUCCEEDED
    assert all(step.status is StepStatus.SUCCEEDED for step in record.steps.values())
    assert isinstance(record.snapshot, SnapshotRef) and record.snapshot.rows == 70080
    assert isinstance(record.model, ModelRecord) and record.model.version == "1"
    assert record.promotion.decision is Verdict.PROMOTED and record.promotion.promoted
    assert record.threshold == stored["alarm"]["threshold"]
    assert record.mlflow_run_id == stored["mlflow"]["run_id"]
    assert record.reports["train"].endswith("02_train.html")


def test_to_doc_gives_back_the_stored_document_key_for_key(stored):
    doc = RunRecord.from_doc(stored).to_doc()
    assert doc == stored
    assert json.dumps(doc) == json.dumps(stored)  # same key order, enums as plain strings
    assert list(doc["promotion"]) == list(stored["promotion"])


def test_a_legacy_record_loads_and_gains_no_keys():
    record = RunRecord.from_doc(LEGACY)
    assert record.alarm is None and record.threshold == LEGACY_THRESHOLD
    assert record.heartbeat_at is None and record.reports == {}
    assert record.model.extra == {"old_field": 1}
    assert record.extra == {"a_field_from_the_future": {"kept": True}}
    assert record.promotion.decision is Verdict.NOT_PROMOTED and not record.promotion.promoted
    assert record.to_doc() == LEGACY
    assert list(record.recorded_params()["dataset"]["features"]) == ["b", "a"]


def test_a_new_record_is_read_by_a_plain_dict_reader(tmp_path, stored):
    store = LocalMetadataStore(tmp_path / "meta")
    store.create("runs", "r1", RunRecord.from_doc({**stored, "run_id": "r1"}).to_doc())
    plain = store.get("runs", "r1")
    assert plain["status"] == "succeeded" and plain["promotion"]["decision"] == "promoted"
    assert plain["steps"]["train"]["status"] == "succeeded"
    assert plain["model"]["sha256"] == stored["model"]["sha256"]


def test_enums_are_their_stored_strings():
    assert RunStatus("failed") is RunStatus.FAILED and StepStatus.RUNNING == "running"
    assert Verdict("not promoted") is Verdict.NOT_PROMOTED
    assert json.dumps({"s": RunStatus.SUCCEEDED}) == '{"s": "succeeded"}'


def test_a_part_missing_from_a_document_is_none_and_an_empty_one_stays_empty():
    record = RunRecord.from_doc({"run_id": "r", "status": "running", "promotion": {}})
    assert record.model is None and record.promotion == Promotion()
    assert record.to_doc() == {"run_id": "r", "status": "running", "promotion": {}}


def test_an_unknown_status_is_named_with_the_known_ones():
    with pytest.raises(
        RunRecordError, match=r"run 'r9': unknown run status 'paused'; known: running"
    ):
        RunRecord.from_doc({"run_id": "r9", "status": "paused"})


def test_an_unknown_step_status_is_a_metadata_error():
    doc = {"run_id": "r9", "status": "running", "steps": {"train": {"status": "done"}}}
    with pytest.raises(MetadataError, match="unknown step status 'done'"):
        RunRecord.from_doc(doc)


def test_a_silent_running_run_is_shown_abandoned():
    at = datetime(2026, 11, 28, 21, 0, tzinfo=UTC)
    old = (at - timedelta(hours=1)).isoformat()
    record = RunRecord.from_doc({"run_id": "r", "status": "running", "heartbeat_at": old})
    assert record.shown(at=at) is RunStatus.ABANDONED
    fresh = (at - timedelta(seconds=30)).isoformat()
    assert replace(record, heartbeat_at=fresh).shown(at=at) is RunStatus.RUNNING
