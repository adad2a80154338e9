"""The whole pipeline against a real MLflow server: behind a GitLab-like proxy, and plain (slow).

Behind the proxy every request needs the bearer token and every endpoint GitLab lacks
(aliases, model-version tags, dataset inputs, logged models) answers 404: the run, the
registration and the promotion gate must still succeed, champion comparison included.
"""

from __future__ import annotations

import uuid
from types import SimpleNamespace

import mlflow
import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from leaklib import modelling
from leaklib.features import model_features
from leaklib.params import Params
from leaklib.snapshots import load_snapshot, open_snapshot_store
from tests.conftest import leak_smoke_named, make_project

pytestmark = pytest.mark.slow


def _use(monkeypatch, env):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    mlflow.set_tracking_uri(env["MLFLOW_TRACKING_URI"])


@pytest.fixture(scope="module")
def gitlab(gitlab_runs):
    """The session's two runs through the GitLab-like proxy (conftest.gitlab_runs)."""
    return gitlab_runs


@pytest.fixture(scope="module")
def plain(mlflow_server, tmp_path_factory):
    """One run against the plain server, which has aliases and dataset inputs."""
    env = {"MLFLOW_TRACKING_URI": mlflow_server.uri}
    project = make_project(tmp_path_factory.mktemp("plain") / "project")
    name = f"plain-{uuid.uuid4().hex[:8]}"
    first = leak_smoke_named(project, name, env=env)
    return SimpleNamespace(env=env, project=project, name=name, first=first)


def test_gitlab_runs_succeed_behind_the_token_and_the_missing_endpoints(gitlab):
    assert (gitlab.first.returncode, gitlab.weak.returncode) == (0, 0), gitlab.weak.stderr
    assert [gitlab.first.record(r)["status"] for r in gitlab.first.run_ids()] == ["succeeded"] * 2


def test_gitlab_proxy_refused_what_gitlab_lacks_and_saw_no_unauthenticated_call(gitlab):
    refused = {(e.method, e.path.split("?")[0]) for e in gitlab.proxy.refused()}
    assert {
        ("DELETE", "/api/2.0/mlflow/registered-models/alias"),
        ("POST", "/api/2.0/mlflow/model-versions/set-tag"),
        ("POST", "/api/2.0/mlflow/runs/log-inputs"),
    } <= refused
    assert not [e for e in gitlab.proxy.exchanges if e.status == 401]


def test_gitlab_first_model_is_promoted_and_weaker_one_is_not(gitlab):
    first, weak = (gitlab.first.record(r) for r in gitlab.first.run_ids())
    assert first["promotion"]["decision"] == "promoted"
    assert weak["promotion"]["decision"] == "not promoted"
    assert weak["promotion"]["champion"]["run_id"] == first["run_id"]
    assert weak["promotion"]["difference"] < 0
    assert "lower bound is not above the minimum improvement" in weak["promotion"]["reason"]


def test_gitlab_search_runs_finds_params_metrics_and_lineage(gitlab, monkeypatch):
    _use(monkeypatch, gitlab.env)
    record = gitlab.first.record(gitlab.first.run_ids()[0])
    found = mlflow.search_runs(experiment_ids=[record["mlflow"]["experiment_id"]])
    row = found.set_index("run_id").loc[record["mlflow"]["run_id"]]
    assert row["params.model.name"] == "hist_gradient_boosting"
    assert row["metrics.holdout_roc_auc"] == pytest.approx(record["metrics"]["holdout_roc_auc"])
    assert row["tags.leak.snapshot_sha256"] == record["snapshot"]["sha256"]


def test_gitlab_registered_version_reproduces_the_holdout_roc_auc(gitlab, monkeypatch):
    _use(monkeypatch, gitlab.env)
    record = gitlab.first.record(gitlab.first.run_ids()[0])
    params = Params.model_validate(record["params"])
    store = open_snapshot_store(str(gitlab.project / params.snapshot_store))
    holdout = load_snapshot(record["holdout"]["sha256"], store=store)
    model = mlflow.pyfunc.load_model(record["model"]["registry_uri"])
    features = model_features(params.dataset, record["derived_features"])
    proba = np.asarray(model.predict(modelling.feature_frame(holdout, features)))
    proba = proba[:, 1] if proba.ndim == 2 else proba  # predict_proba: (rows, classes)
    score = round(float(roc_auc_score(holdout[params.dataset.target], proba)), 6)
    assert score == record["metrics"]["holdout_roc_auc"]


def test_gitlab_decision_is_tagged_on_the_run_and_described_on_the_version(gitlab, monkeypatch):
    _use(monkeypatch, gitlab.env)
    weak = gitlab.first.record(gitlab.first.run_ids()[1])
    client = mlflow.MlflowClient()
    tags = client.get_run(weak["mlflow"]["run_id"]).data.tags
    version = client.get_model_version(gitlab.name, weak["model"]["version"])
    assert tags["leak.promotion.decision"] == "not promoted"
    assert version.description == weak["promotion"]["reason"]


def test_plain_server_run_registers_promotes_and_sets_the_alias(plain, monkeypatch):
    assert plain.first.returncode == 0, plain.first.stdout + plain.first.stderr
    _use(monkeypatch, plain.env)
    record = plain.first.record()
    alias = mlflow.MlflowClient().get_model_version_by_alias(plain.name, "champion")
    assert record["promotion"]["decision"] == "promoted"
    assert str(alias.version) == record["model"]["version"] and alias.tags["champion"] == "true"


def test_plain_server_run_has_its_dataset_input(plain, monkeypatch):
    _use(monkeypatch, plain.env)
    record = plain.first.record()
    run = mlflow.get_run(record["mlflow"]["run_id"])
    assert run.inputs.dataset_inputs[0].dataset.digest == record["snapshot"]["sha256"][:36]
