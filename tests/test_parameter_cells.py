"""leaklib.parameter_cells: each notebook's parameters cell declares what its step reads."""

from __future__ import annotations

import shutil

import nbformat
import pytest

from leaklib import params as P
from leaklib.parameter_cells import (
    HEADER,
    ParameterCellError,
    comment,
    declaration,
    declared_names,
    notebook_paths,
    parameter_cell,
    parameters_cell_of,
    sync_parameter_cells,
)
from leaklib.steps import PARAMS, STEPS
from tests.conftest import REPO


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A copy of the notebooks and parameter sets, as the project the cells are synced in."""
    for folder in ("notebooks", "parameters"):
        shutil.copytree(REPO / folder, tmp_path / folder)
    monkeypatch.setenv("LEAK_PROJECT_DIR", str(tmp_path))
    return tmp_path


@pytest.mark.parametrize("step", STEPS)
def test_each_notebook_declares_what_its_step_reads(step):
    path = dict(zip(STEPS, notebook_paths(), strict=True))[step]
    nb = nbformat.read(path, as_version=4)
    assert declared_names(nb) == list(PARAMS[step])
    assert parameters_cell_of(nb).source == parameter_cell(step), (
        "run `leak params --sync-notebooks` after changing parameters/default.yaml or a description"
    )


def test_a_cell_reads_like_papermills_one_typed_line_each():
    cell = parameter_cell("evaluate").splitlines()
    assert cell[: len(HEADER.splitlines())] == HEADER.splitlines()
    lines = cell[len(HEADER.splitlines()) :]
    assert len(lines) == len(PARAMS["evaluate"])
    assert 'run_id: "Optional[str]" = None  # Run id; a new one is made when empty' in lines[0]
    assert (
        "permutation_repeats: int = 5  # Repeats of the permutation importance on the holdout."
        in lines
    )
    assert (
        "localisation: dict = {}  # Where each detected leak is (leaklib.leak_location); null turns it off."
        in lines
    )


def test_a_cell_runs_and_holds_the_embedded_defaults():
    namespace: dict = {}
    exec(parameter_cell("train"), namespace)
    defaults = P.defaults()
    assert namespace["cv_folds"] == defaults["cv_folds"] and namespace["threshold"] is None
    assert namespace["model"] == {} and namespace["run_id"] is None


def test_a_comment_is_the_whole_lead_sentence_of_the_description():
    # the lead ends at its full stop, not at the one of "e.g." in the second sentence
    assert comment("model") == "The estimator and how it is trained."
    assert (
        comment("seed") == "Seed for the estimator, the cross-validation folds and the bootstrap."
    )
    for name in {n for step in STEPS for n in PARAMS[step]}:
        description = P.Params.model_fields[name].description
        assert description.startswith(comment(name)), name


def test_a_description_without_a_short_lead_sentence_is_refused(monkeypatch):
    monkeypatch.setattr(P.Params.model_fields["seed"], "description", "Seed " + "and so on " * 12)
    with pytest.raises(
        ParameterCellError, match="'seed': its description must open with a sentence of at most 100"
    ):
        declaration("seed")


def test_a_drifted_cell_is_found_then_rewritten_and_a_second_sync_changes_nothing(project):
    path = project / "notebooks/02_train.ipynb"
    nb = nbformat.read(path, as_version=4)
    other = [c.source for c in nb.cells if "parameters" not in c.metadata.get("tags", [])]
    parameters_cell_of(nb).source += '\nsplit: dict = {"by": "time"}  # a key added by hand'
    nbformat.write(nb, path)

    assert sync_parameter_cells(check=True) == [path]
    assert "a key added by hand" in path.read_text()  # checking writes nothing
    assert sync_parameter_cells() == [path]
    synced = nbformat.read(path, as_version=4)
    assert parameters_cell_of(synced).source == parameter_cell("train")
    assert [
        c.source for c in synced.cells if "parameters" not in c.metadata.get("tags", [])
    ] == other
    assert sync_parameter_cells() == [] and sync_parameter_cells(check=True) == []


def test_a_changed_default_reaches_the_cells_on_sync(project):
    default = project / "parameters/default.yaml"
    default.write_text(default.read_text().replace("cv_folds: 5", "cv_folds: 4"))
    assert len(sync_parameter_cells()) == 2  # extract and train read cv_folds
    for path in notebook_paths()[:2]:
        assert (
            "cv_folds: int = 4  # " in parameters_cell_of(nbformat.read(path, as_version=4)).source
        )


def test_a_notebook_without_a_parameters_cell_is_refused():
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")])
    with pytest.raises(ValueError, match="notebook has no cell tagged 'parameters'"):
        parameters_cell_of(nb)
