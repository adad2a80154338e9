"""leaklib.pipeline.step: a notebook opened by hand takes its parameters cell's values."""

from __future__ import annotations

import pytest

from leaklib import params as P
from leaklib import run_record, runs
from leaklib.parameter_cells import parameter_cell
from leaklib.pipeline.step import open_step


def _cell(step: str, tmp_path, **edits) -> dict:
    """The namespace of a step's parameters cell as synced, with the stores under tmp_path."""
    namespace: dict = {}
    exec(parameter_cell(step), namespace)
    namespace.update(
        snapshot_store=str(tmp_path / "snapshots"), metadata_store=str(tmp_path / "metadata")
    )
    return {**namespace, **edits}


def test_by_hand_a_value_replaces_and_a_mapping_sets_only_its_keys(tmp_path):
    cell = _cell("extract", tmp_path, cv_folds=4, dataset={"model_name": "mine"})
    step = open_step("extract", cell)

    default = P.validate(P.defaults())
    assert step.params.cv_folds == 4
    assert step.params.dataset.model_name == "mine"
    assert step.params.dataset.source == default.dataset.source  # the keys not given stay
    assert step.params.bigquery == default.bigquery  # {}: the default's whole mapping
    assert step.run.params == step.params.to_plain() and step.run.origin == "notebook"


def test_a_later_step_by_hand_continues_the_run_with_its_mappings(tmp_path):
    extract = open_step("extract", _cell("extract", tmp_path, dataset={"model_name": "mine"}))
    runs.finish_step(extract.store, extract.run_id, "extract")
    train = open_step("train", _cell("train", tmp_path, model={"name": "random_forest"}, seed=7))

    assert train.run_id == extract.run_id
    assert train.params.dataset.model_name == "mine"  # {} in the cell: the run's dataset
    assert train.params.model.name == "random_forest" and train.params.model.params == {}
    assert train.params.seed == 7
    assert run_record.get_run(train.store, train.run_id).params["seed"] == 7


def test_a_bad_value_in_the_cell_is_refused_naming_its_key(tmp_path):
    cell = _cell("extract", tmp_path, cv_folds=1, dataset={"max_grups": 3})
    with pytest.raises(P.ParameterError, match="cv_folds") as raised:
        open_step("extract", cell)
    assert "dataset.max_grups" in str(raised.value)
