"""leaklib.parameter_cells: each notebook's parameters cell mirrors the embedded default."""

from __future__ import annotations

import nbformat
import pytest

from leaklib.parameter_cells import (
    declared_names,
    notebook_paths,
    parameter_cell,
    parameters_cell_of,
)


@pytest.mark.parametrize("path", notebook_paths(), ids=lambda p: p.stem)
def test_notebook_parameter_cells_match_the_defaults(path):
    nb = nbformat.read(path, as_version=4)
    names = declared_names(nb)
    assert names[:2] == ["run_id", "dataset"]
    assert parameters_cell_of(nb).source == parameter_cell(names), (
        "run `leak params --sync-notebooks` after changing parameters/default.yaml"
    )


def test_parameter_cell_declares_the_dataset_as_one_mapping():
    cell = parameter_cell(["dataset", "seed"])
    assert cell.startswith('dataset: dict = {\n    "source": "data/l-town-stream.parquet",')
    assert cell.splitlines()[-1].startswith("seed: int = 42  # ")


def test_a_notebook_without_a_parameters_cell_is_refused():
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")])
    with pytest.raises(ValueError, match="notebook has no cell tagged 'parameters'"):
        parameters_cell_of(nb)
