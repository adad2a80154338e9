"""Shared fixtures: small tables, parameter sets and throw-away stores."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

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
    """One `leak run -f parameters/smoke.yaml` in a fresh project, shared by the tests that read it.

    Its store holds this one run: read it, never add runs to it. A test that runs more `leak`
    commands on it works on ``copy_smoke_project`` instead (seconds, not a pipeline run).
    """
    project = make_project(tmp_path_factory.mktemp("smoke") / "project")
    finished = leak(project, "run", "-f", "parameters/smoke.yaml")
    assert finished.returncode == 0, finished.stdout + finished.stderr
    return finished


def copy_smoke_project(smoke_run: Finished, target: Path) -> Finished:
    """Copy the session's smoke project (git, stores, MLflow, reports) to ``target``.

    The copy holds the smoke run, its model registered and promoted, as if `leak run` had run
    there; the data folder stays a link to the repository's.
    """
    shutil.copytree(smoke_run.project, target, symlinks=True)
    return Finished(target, smoke_run.returncode, smoke_run.stdout, smoke_run.stderr)


# one stump, one boosting round: a deliberately weaker challenger than the smoke model
WEAK = ("-p", "model.params.max_iter", "1", "-p", "model.params.max_depth", "1")


@pytest.fixture(scope="session")
def gitlab_runs(mlflow_server, tmp_path_factory) -> Iterator[SimpleNamespace]:
    """Two verbose smoke runs through the GitLab-like proxy: the first model, then a weaker one.

    The proxy's token is a canary: the MLflow tests read what the runs did behind GitLab's
    missing endpoints, the secrets tests search everything the runs left for the token.
    """
    from tests.mlflow_servers import start_gitlab_proxy

    token = f"glpat-CANARY{uuid.uuid4().hex}"
    proxy = start_gitlab_proxy(mlflow_server.uri, token=token)
    try:
        env = {"MLFLOW_TRACKING_URI": proxy.uri, "MLFLOW_TRACKING_TOKEN": token}
        project = make_project(tmp_path_factory.mktemp("gitlab") / "project")
        name = f"gitlab-{uuid.uuid4().hex[:8]}"
        first = leak_smoke_named(project, name, env=env, verbose=True)
        weak = leak_smoke_named(project, name, *WEAK, env=env, verbose=True)
        yield SimpleNamespace(
            proxy=proxy, token=token, env=env, project=project, name=name, first=first, weak=weak
        )
    finally:
        proxy.close()


@pytest.fixture(autouse=True)
def _quiet_mlflow(monkeypatch):
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")


def table_dataset(**keys) -> dict:
    """The ``dataset`` mapping that declares :func:`make_table`'s columns (``keys`` added)."""
    return {
        "target": "leaks",
        "features": {"p_a": "numeric", "p_b": "numeric", "zone": "categorical"},
        "group": "scenario_id",
        **keys,
    }


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


def fit_and_register(store, params: P.Params, table, holdout, *, run_id: str, experiment_id: str):
    """What 02_train does, in small: fit, log to MLflow, register, record in the run."""
    import mlflow

    from leaklib import model_registry, modelling, runs, tracking

    params = params.model_copy(update={"run_id": run_id})
    dataset = params.dataset
    runs.start_run(store, run_id=run_id, params=params.to_plain(), param_files=[], origin="test")
    runs.record_snapshot(
        store,
        run_id,
        snapshot={"sha256": "cd" * 32, "uri": "memory"},
        validation={},
        derived_features=[],
        leaks=None,
    )
    train = table[~table.index.isin(holdout.index)]
    if dataset.group:  # what 02_train records of its split, so the gate knows what it saw
        trained = sorted(train[dataset.group].unique().tolist())
        runs.record_split(store, run_id, {"units": "group", "train_groups": trained})
    X = modelling.feature_frame(train, dataset.features)
    fitted = modelling.build_pipeline(dataset.features, model=params.model, seed=params.seed)
    fitted.fit(X, train[dataset.target])
    with mlflow.start_run(experiment_id=experiment_id) as active:
        uri = tracking.log_model(fitted, example=X.head(3))
    run = runs.record_training(store, run_id, mlflow={"run_id": active.info.run_id})
    version = model_registry.register_model(model_uri=uri, name=dataset.model_name, run=run)
    run = runs.record_model(
        store, run_id, {"run_uri": uri, "mlflow_run_id": active.info.run_id, **version}
    )
    proba = fitted.predict_proba(modelling.feature_frame(holdout, dataset.features))[:, 1]
    return run, proba


@pytest.fixture(scope="session")
def promotion_history(local_mlflow_store, tmp_path_factory) -> SimpleNamespace:
    """Three runs through the gate: a first model, a weaker and then a stronger challenger.

    Shared by the gate, champion and command-line tests; read it, never change its store.
    """
    from leaklib import champion, gate, run_record, splits, tracking
    from leaklib.metadata import LocalMetadataStore

    root = tmp_path_factory.mktemp("promotion")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", local_mlflow_store.uri)
        tracking.configure()
        values = P.defaults()
        values.update(
            dataset=table_dataset(
                source="unused.parquet", model_name=f"gate-{uuid.uuid4().hex[:8]}"
            ),
            metadata_store=str(root / "metadata"),
            model={"name": "logistic_regression", "params": {}},
            promotion={
                "primary_metric": "roc_auc",
                "n_bootstrap": 300,
                "confidence": 0.9,
                "min_unseen_rows": 100,
            },
        )
        params = P.validate(values)
        store = LocalMetadataStore(root / "metadata")
        table = make_table(scenarios=40, rows_per=48)
        split = splits.split_holdout(
            table,
            target="leaks",
            group="scenario_id",
            columns=splits.identity_columns(params.dataset.features, "leaks"),
            test_size=0.3,
        )
        holdout = table.iloc[split.holdout]
        y = holdout["leaks"].to_numpy()
        decisions, records, scores = {}, {}, {}
        for name in ("first", "weaker", "stronger"):
            run, proba = fit_and_register(
                store,
                params,
                table,
                holdout,
                run_id=f"run-{name}",
                experiment_id=local_mlflow_store.experiment_id,
            )
            if name == "weaker":
                proba = np.random.default_rng(0).random(len(holdout))
            if name == "stronger":
                proba = np.clip(0.5 * y + 0.5 * proba, 0, 1)
            scores[name] = proba
            decisions[name] = gate.gate(
                store=store, params=params, run=run, holdout=holdout, challenger_proba=proba
            )
            records[name] = run_record.get_run(store, run.run_id)
    return SimpleNamespace(
        params=params,
        store=store,
        decisions=decisions,
        records=records,
        scores=scores,
        holdout=holdout,
        pointer=champion.current_champion(store, model_name=params.dataset.model_name),
    )
