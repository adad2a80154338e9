import pytest

from leaklib import runs
from leaklib.metadata import ConflictError, LocalMetadataStore, MetadataError


@pytest.fixture
def store(tmp_path):
    return LocalMetadataStore(tmp_path / "meta")


def started(store, run_id="r1"):
    return runs.start_run(
        store, run_id=run_id, params={"seed": 3}, param_files=["p.yaml"], origin="test"
    )


def test_new_run_has_lineage(store):
    record = started(store)
    assert record["status"] == "running" and record["seeds"] == {"seed": 3}
    assert record["git"]["commit"] is None or len(record["git"]["commit"]) == 40
    assert record["lock_hash"] and record["environment"]["python"]


def test_run_id_cannot_be_reused(store):
    started(store)
    with pytest.raises(ConflictError, match="exists already"):
        started(store)


def test_steps_in_order_finish_the_run(store):
    started(store)
    for step in runs.STEPS:
        runs.start_step(store, "r1", step)
        record = runs.finish_step(store, "r1", step)
    assert record["status"] == "succeeded" and record["finished_at"]
    assert all(s["status"] == "succeeded" for s in record["steps"].values())


def test_step_needs_the_previous_one(store):
    started(store)
    with pytest.raises(ConflictError, match="step 'extract' has not succeeded"):
        runs.start_step(store, "r1", "train")


def test_failed_step_fails_the_run_and_blocks_changes(store):
    started(store)
    runs.start_step(store, "r1", "extract")
    record = runs.finish_step(store, "r1", "extract", error="SchemaError: column 'x'")
    assert record["status"] == "failed" and "column 'x'" in record["error"]
    with pytest.raises(ConflictError, match="is failed"):
        runs.update_run(store, "r1", metrics={"a": 1})


def test_update_merges_mappings(store):
    started(store)
    runs.update_run(store, "r1", metrics={"a": 1})
    assert runs.update_run(store, "r1", metrics={"b": 2})["metrics"] == {"a": 1, "b": 2}


def test_latest_run_with_a_succeeded_step(store):
    started(store, "r1")
    runs.start_step(store, "r1", "extract")
    runs.finish_step(store, "r1", "extract")
    started(store, "r2")
    assert runs.latest_run(store, with_step="extract")["run_id"] == "r1"
    with pytest.raises(MetadataError, match="no run with a succeeded 'train' step"):
        runs.latest_run(store, with_step="train")


def test_unknown_run_is_named(store):
    with pytest.raises(MetadataError, match="run 'nope' not found"):
        runs.get_run(store, "nope")
