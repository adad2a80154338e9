"""leaklib.steps: the step table, and each step reading only the parameters it lists."""

from __future__ import annotations

from typing import Any

import matplotlib
import nbformat
import pytest
import yaml

from leaklib import params as P
from leaklib.parameter_cells import notebook_paths, sync_parameter_cells
from leaklib.steps import PARAMS, STEPS
from tests.conftest import make_project

# listed, yet not read on the smoke set: open_step reads these before the step's code runs,
# bigquery is read for a bigquery:// source only, and the gate reads snapshot_store when there
# is a champion to load
UNREAD_ON_SMOKE = {"run_id", "snapshot_store", "metadata_store", "bigquery"}


class ReadParams:
    """A run's parameters that note which of them the step's code reads."""

    def __init__(self, params: P.Params) -> None:
        self._params = params
        self.read: set[str] = set()

    def __getattr__(self, name: str) -> Any:
        if name in P.Params.model_fields:
            self.read.add(name)
        return getattr(self._params, name)


def test_each_step_lists_parameters_in_leak_params_order():
    for step in STEPS:
        assert list(PARAMS[step]) == [n for n in P.field_names() if n in PARAMS[step]], step
        assert PARAMS[step][:4] == ("run_id", "dataset", "snapshot_store", "metadata_store")


@pytest.mark.slow
def test_each_step_reads_only_the_parameters_it_lists(tmp_path, monkeypatch):
    """The notebooks run by hand (in this process, as JupyterLab runs them) on the smoke set,
    their ``params`` noting what is read: a step reading a parameter it does not list would
    be cached although that parameter changed."""
    matplotlib.use("Agg")
    project = make_project(tmp_path / "project")
    smoke = P.merge(
        [
            P.read_yaml(project / "parameters/default.yaml"),
            P.read_yaml(project / "parameters/smoke.yaml"),
        ],
        [],
    )
    (project / "parameters/default.yaml").write_text(yaml.safe_dump(smoke, sort_keys=False))
    monkeypatch.setenv("LEAK_PROJECT_DIR", str(project))
    monkeypatch.chdir(project)
    sync_parameter_cells()

    read: dict[str, set[str]] = {}
    for step, path in zip(STEPS, notebook_paths(), strict=True):
        namespace: dict[str, Any] = {}
        for cell in nbformat.read(path, as_version=4).cells:
            if cell.cell_type != "code":
                continue
            exec(compile(cell.source, path.name, "exec"), namespace)
            if "open_step(" in cell.source:
                noted = ReadParams(namespace["step"].params)
                namespace["step"].params = namespace["params"] = noted
        read[step] = noted.read

    for step in STEPS:
        assert read[step] <= set(PARAMS[step]), (step, read[step] - set(PARAMS[step]))
        assert set(PARAMS[step]) - read[step] <= UNREAD_ON_SMOKE, (step, read[step])
    assert read["train"] >= {"model", "split", "threshold", "alarm", "promotion", "events"}
