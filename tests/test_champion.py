"""leaklib.champion: the champion pointer, its history, and loading the champion's model."""

from __future__ import annotations

import pytest

from leaklib import champion, runs
from leaklib.metadata import ConflictError, LocalMetadataStore
from leaklib.run_record import ModelRecord, RunRecord


def _bare_run(store, run_id: str, *, with_model: bool = True) -> dict:
    run = runs.start_run(store, run_id=run_id, params={"seed": 1}, param_files=[], origin="test")
    if with_model:
        run = runs.record_model(store, run_id, {"run_uri": f"runs:/{run_id}/model"})
    return run


@pytest.fixture
def store(tmp_path) -> LocalMetadataStore:
    return LocalMetadataStore(tmp_path / "metadata")


def test_current_champion_is_none_before_any_promotion(store):
    assert champion.current_champion(store, model_name="m") is None


def test_promote_sets_the_pointer_and_keeps_its_history(store):
    champion.promote(store, run=_bare_run(store, "a"), model_name="m", reason="first")
    champion.promote(store, run=_bare_run(store, "b"), model_name="m", reason="better")
    pointer = champion.current_champion(store, model_name="m")
    assert (pointer["run_id"], pointer["previous_run_id"], pointer["reason"]) == (
        "b",
        "a",
        "better",
    )
    assert [e["run_id"] for e in pointer["history"]] == ["a", "b"]
    assert pointer["model_uri"] == "runs:/b/model" and pointer["decided_by"] == "manual"


def test_promote_refuses_when_the_champion_changed_since_the_comparison(store):
    champion.promote(store, run=_bare_run(store, "a"), model_name="m", reason="first")
    with pytest.raises(ConflictError, match="changed to run 'a'"):
        champion.promote(
            store, run=_bare_run(store, "b"), model_name="m", reason="late", expected_champion=None
        )


def test_promote_refuses_a_run_without_a_model(store):
    with pytest.raises(champion.ChampionError, match="run 'a' has no logged model"):
        champion.promote(
            store, run=_bare_run(store, "a", with_model=False), model_name="m", reason="x"
        )


def test_brief_keeps_the_identifying_fields():
    pointer = {"run_id": "a", "version": "3", "reason": "long", "history": [1, 2]}
    assert champion.brief(pointer) == {
        "run_id": "a",
        "version": "3",
        "model_uri": None,
        "model_sha256": None,
        "mlflow_run_id": None,
        "promoted_at": None,
    }
    assert champion.brief(None) is None


def test_model_uri_prefers_the_registry_version():
    model = ModelRecord(run_uri="runs:/r/model", registry_uri="models:/m/2")
    assert champion.model_uri(model) == "models:/m/2"
    assert champion.model_uri(ModelRecord(run_uri="runs:/r/model")) == "runs:/r/model"


def test_model_of_refuses_a_run_whose_train_step_made_no_model():
    with pytest.raises(champion.ChampionError, match="its train step did not succeed"):
        champion.model_of(RunRecord.from_doc({"run_id": "r", "model": None}))


def test_the_gate_keeps_the_history_of_promotions(promotion_history):
    assert promotion_history.pointer["run_id"] == "run-stronger"
    assert [e["run_id"] for e in promotion_history.pointer["history"]] == [
        "run-first",
        "run-stronger",
    ]


def test_load_model_falls_back_to_the_run_it_was_logged_in(promotion_history, local_mlflow):
    pointer = {**promotion_history.pointer, "model_uri": "models:/no-such-model/1"}
    assert hasattr(champion.load_champion_model(pointer), "predict_proba")


def test_load_model_names_the_uris_it_tried(local_mlflow):
    with pytest.raises(champion.ChampionError, match="cannot be loaded from models:/none/1"):
        champion.load_champion_model({"model_uri": "models:/none/1"})
