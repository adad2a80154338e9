"""The notebooks as files: clean in git, thin, and runnable top to bottom as in JupyterLab."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys

import nbformat
import pytest
import yaml

from leaklib import params as P
from leaklib.parameter_cells import notebook_paths
from tests.conftest import leak, make_project

NOTEBOOKS = notebook_paths()


def test_the_three_steps_exist():
    assert [p.stem for p in NOTEBOOKS] == ["01_extract", "02_train", "03_evaluate"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_stored_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert not any(c.outputs for c in code), "strip outputs (nbstripout) before committing"
    assert not any(c.execution_count for c in code)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_opening_the_step_shows_nothing_in_the_report(path):
    """The cell that opens the step ends in a statement: a bare value there (the run id) was a
    stray line in every report, whose header names the run already."""
    nb = nbformat.read(path, as_version=4)
    opening = next(c for c in nb.cells if c.cell_type == "code" and "open_step(" in c.source)
    assert not isinstance(ast.parse(opening.source).body[-1], ast.Expr), opening.source


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_thin_and_portable(path):
    nb = nbformat.read(path, as_version=4)
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# ")
    assert nb.metadata.kernelspec.name == "leaklib"
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        assert not re.search(r"^\s*(def|class) ", cell.source, re.M), "logic belongs in leaklib"
        assert (
            "!pip" not in cell.source
            and "/work/" not in cell.source
            and "/home/" not in cell.source
        )
        assert len(cell.source.splitlines()) <= 12 or "parameters" in cell.metadata.get("tags", [])


@pytest.mark.slow
def test_notebooks_run_top_to_bottom_with_their_defaults(tmp_path):
    """As in JupyterLab: no injected parameters, each step continues the latest run (nbval).

    To keep the suite fast, the throw-away project's defaults are first made the smoke set,
    the way a user changes defaults: edit parameters/default.yaml, then sync the cells.
    """
    project = make_project(tmp_path / "project")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_TRACKING")}
    env.update(LEAK_PROJECT_DIR=str(project), MLFLOW_DISABLE_TELEMETRY="true")
    smoke = P.merge(
        [
            P.read_yaml(project / "parameters/default.yaml"),
            P.read_yaml(project / "parameters/smoke.yaml"),
        ],
        [],
    )
    (project / "parameters/default.yaml").write_text(yaml.safe_dump(smoke, sort_keys=False))
    synced = leak(project, "params", "--sync-notebooks")
    assert synced.returncode == 0 and synced.stdout.count("updated") == 3, synced.stderr
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--nbval-lax",
            "-p",
            "no:cacheprovider",
            "-q",
            "--rootdir",
            str(project),
            *(str(project / "notebooks" / p.name) for p in NOTEBOOKS),
        ],
        cwd=project / "notebooks",
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert done.returncode == 0, done.stdout[-4000:]
    runs = sorted((project / "stores/metadata/runs").glob("*.json"))
    assert len(runs) == 1 and '"status": "succeeded"' in runs[0].read_text()
