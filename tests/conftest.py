"""Shared fixtures: small tables, parameter sets and throw-away stores."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before scikit-learn loads OpenMP

from leaklib import params as P  # noqa: E402

REPO = Path(__file__).resolve().parents[1]

# real local services: the Google Cloud emulators and MLflow servers (plain and GitLab-like)
pytest_plugins = ["tests.emulators.plugin", "tests.mlflow_servers"]


@dataclass
class Finished:
    """A finished `leak` command in a throw-away project."""

    project: Path
    returncode: int
    stdout: str
    stderr: str

    def run_ids(self) -> list[str]:
        return sorted(p.stem for p in (self.project / "stores/metadata/runs").glob("*.json"))

    def record(self, run_id: str | None = None) -> dict:
        run_id = run_id or self.run_ids()[-1]
        return json.loads((self.project / f"stores/metadata/runs/{run_id}.json").read_text())


def make_project(root: Path) -> Path:
    """Copy the project's notebooks, parameters and lock into ``root`` as a fresh git checkout.

    The dataset is linked, not copied. Stores, MLflow and reports then land under ``root``.
    """
    root.mkdir(parents=True, exist_ok=True)
    for folder in ("notebooks", "parameters", "requirements"):
        shutil.copytree(
            REPO / folder, root / folder, ignore=shutil.ignore_patterns(".ipynb_checkpoints")
        )
    (root / "data").symlink_to(REPO / "data", target_is_directory=True)
    (root / ".gitignore").write_text("stores/\nreports/\nmlflow.db\nmlartifacts/\ndata\n")
    git = ["git", "-C", str(root), "-c", "user.name=test", "-c", "user.email=test@example.invalid"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "fixture"], check=True)
    return root


def leak(
    project: Path, *args: str, env: dict[str, str] | None = None, timeout: int = 900
) -> Finished:
    """Run the `leak` command in a project folder, as a user would."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_TRACKING")}
    full_env.update(LEAK_PROJECT_DIR=str(project), MLFLOW_DISABLE_TELEMETRY="true", **(env or {}))
    done = subprocess.run(
        [sys.executable, "-m", "leaklib.cli", *args],
        cwd=project,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return Finished(project, done.returncode, done.stdout, done.stderr)


def leak_smoke_named(
    project: Path, name: str, *extra: str, env: dict[str, str], verbose: bool = False
) -> Finished:
    """`leak run -f parameters/smoke.yaml` with its own registered model and experiment name."""
    flags = ["-v"] if verbose else []
    named = ["-p", "dataset.model_name", name, "-p", "mlflow_experiment", name]
    return leak(project, *flags, "run", "-f", "parameters/smoke.yaml", *named, *extra, env=env)


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory) -> Finished:
    """One `leak run -f parameters/smoke.yaml` in a fresh project, shared by the tests that read it."""
    project = make_project(tmp_path_factory.mktemp("smoke") / "project")
    finished = leak(project, "run", "-f", "parameters/smoke.yaml")
    assert finished.returncode == 0, finished.stdout + finished.stderr
    return finished


@pytest.fixture(autouse=True)
def _quiet_mlflow(monkeypatch):
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")


def make_table(*, scenarios: int = 24, rows_per: int = 48, seed: int = 0) -> pd.DataFrame:
    """A table of the default dataset's shape with a weak, learnable leak signal."""
    rng = np.random.default_rng(seed)
    frames = []
    for sid in range(scenarios):
        stamps = pd.date_range("2024-01-01", periods=rows_per, freq="15min")
        leak = np.zeros(rows_per, dtype=int)
        if sid % 4 != 3:
            leak[rng.integers(4, rows_per - 4) :] = 1
        frames.append(
            pd.DataFrame(
                {
                    "scenario_id": sid,
                    "timestamp": stamps,
                    "p_a": rng.normal(40, 1, rows_per) - 1.5 * leak,
                    "p_b": rng.normal(30, 1, rows_per),
                    "zone": rng.choice(["north", "south"], rows_per),
                    "valve_open": rng.choice([True, False], rows_per),
                    "leaks": leak,
                    "note": "undeclared",
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


@pytest.fixture
def table() -> pd.DataFrame:
    return make_table()


@pytest.fixture
def params(tmp_path) -> P.Params:
    """Parameters for ``make_table`` with stores under the test's temporary folder."""
    values = P.defaults()
    values.update(
        dataset={
            "source": str(tmp_path / "table.parquet"),
            "target": "leaks",
            "features": {
                "p_a": "numeric",
                "p_b": {"type": "numeric", "min": 0},
                "zone": "categorical",
                "valve_open": "boolean",
            },
            "group": "scenario_id",
            "timestamp": "timestamp",
        },
        snapshot_store=str(tmp_path / "snapshots"),
        metadata_store=str(tmp_path / "metadata"),
        cv_folds=3,
        model={"name": "hist_gradient_boosting", "params": {"max_iter": 20}},
    )
    return P.validate(values)
