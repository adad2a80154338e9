"""The model registry on a local sqlite store and behind the GitLab-like proxy."""

from __future__ import annotations

import uuid

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.exceptions import MlflowException, RestException
from sklearn.linear_model import LogisticRegression

from leaklib import model_registry, tracking
from leaklib.run_record import RunRecord


def _logged_model(experiment_id: str) -> tuple[str, pd.DataFrame]:
    """Log a tiny fitted classifier in a new MLflow run; return its runs:/ URI and data."""
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": rng.normal(size=80), "b": rng.normal(size=80)})
    y = (X["a"] + 0.3 * rng.normal(size=80) > 0).astype(int)
    model = LogisticRegression().fit(X, y)
    with mlflow.start_run(experiment_id=experiment_id):
        uri = tracking.log_model(model, example=X.head(3))
    return uri, X


def _run(run_id: str = "20260101-000000-abcd") -> RunRecord:
    return RunRecord.from_doc(
        {
            "run_id": run_id,
            "git": {"commit": "c0ffee", "dirty": False},
            "snapshot": {"sha256": "ab" * 32},
        }
    )


def test_is_unsupported_for_an_unknown_gitlab_route():
    assert model_registry.is_unsupported(RestException({"error": "404 Not Found"}))


def test_is_unsupported_is_false_for_a_missing_model():
    missing = RestException({"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "404 no model"})
    assert not model_registry.is_unsupported(missing)


def test_version_tags_carry_run_snapshot_and_commit():
    tags = model_registry.version_tags(_run("r1"))
    assert (tags["leak.run_id"], tags["leak.snapshot_sha256"], tags["leak.git_commit"]) == (
        "r1",
        "ab" * 32,
        "c0ffee",
    )


def _decision(**changes) -> dict:
    return {
        "decision": "not promoted",
        "reason": "Not promoted: the interval includes zero.",
        "primary_metric": "roc_auc",
        "difference": 0.01,
        "ci_low": -0.02,
        "ci_high": 0.04,
        "confidence": 0.95,
        "decided_at": "2026-11-29T07:00:00+00:00",
        "champion": {"run_id": "r0"},
        "previous_champion": {"run_id": "r0"},
        **changes,
    }


def test_decision_tags_mirror_the_decision():
    tags = model_registry.decision_tags(_decision())
    assert tags["leak.promotion.decision"] == "not promoted"
    assert tags["leak.promotion.decided_by"] == "gate" and tags["leak.promotion.ci_low"] == "-0.02"
    assert tags["leak.promotion.champion_run_id"] == "r0" and "leak.champion" not in tags


def test_decision_tags_mark_a_manual_promotion_champion():
    tags = model_registry.decision_tags(_decision(decision="promoted", manual=True))
    assert tags["leak.champion"] == "true" and tags["leak.promotion.decided_by"] == "manual"


def test_mirror_decision_without_mlflow_ids_changes_nothing():
    assert model_registry.mirror_decision(_run("r1"), _decision(), model_name="m") == {
        "run": False,
        "version": False,
    }


def test_mirror_decision_never_fails_on_a_broken_decision():
    assert model_registry.mirror_decision(_run("r1"), {}, model_name="m") == {
        "run": False,
        "version": False,
    }


def test_model_version_uri_falls_back_for_a_semantic_version():
    assert (
        model_registry.model_version_uri("m", "1.0.0", fallback="runs:/x/model") == "runs:/x/model"
    )


def test_register_model_returns_a_uri_that_loads_the_version(local_mlflow):
    uri, X = _logged_model(local_mlflow.experiment_id)
    name = f"reg-{uuid.uuid4().hex[:8]}"
    version = model_registry.register_model(model_uri=uri, name=name, run=_run())
    loaded = mlflow.pyfunc.load_model(version["registry_uri"])
    assert version["registry_uri"] == f"models:/{name}/1" and len(loaded.predict(X)) == len(X)


def test_register_model_tags_the_version_with_lineage(local_mlflow):
    uri, _ = _logged_model(local_mlflow.experiment_id)
    name = f"reg-{uuid.uuid4().hex[:8]}"
    version = model_registry.register_model(model_uri=uri, name=name, run=_run("r-lineage"))
    tags = mlflow.MlflowClient().get_model_version(name, version["version"]).tags
    assert tags["leak.run_id"] == "r-lineage" and tags["leak.git_commit"] == "c0ffee"


def test_register_model_names_a_model_that_was_never_logged(local_mlflow):
    with pytest.raises(MlflowException, match="(?i)not found|no such|does not exist"):
        model_registry.register_model(
            model_uri=f"runs:/{uuid.uuid4().hex}/model", name="reg-missing", run=_run()
        )


def test_supports_aliases_on_a_full_mlflow_store(local_mlflow):
    name = f"reg-{uuid.uuid4().hex[:8]}"
    uri, _ = _logged_model(local_mlflow.experiment_id)
    model_registry.register_model(model_uri=uri, name=name, run=_run())
    assert model_registry.supports_aliases(mlflow.MlflowClient(), name=name)


def test_set_champion_markers_moves_tag_and_alias(local_mlflow):
    name = f"reg-{uuid.uuid4().hex[:8]}"
    first = model_registry.register_model(
        model_uri=_logged_model(local_mlflow.experiment_id)[0], name=name, run=_run()
    )
    second = model_registry.register_model(
        model_uri=_logged_model(local_mlflow.experiment_id)[0], name=name, run=_run()
    )
    model_registry.set_champion_markers(name, first["version"])
    model_registry.set_champion_markers(name, second["version"], previous_version=first["version"])
    client = mlflow.MlflowClient()
    assert str(client.get_model_version_by_alias(name, "champion").version) == second["version"]
    assert "champion" not in client.get_model_version(name, first["version"]).tags


@pytest.mark.slow
def test_supports_aliases_is_false_behind_gitlab(gitlab_mlflow, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", gitlab_mlflow.uri)
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", gitlab_mlflow.token)
    tracking.configure()
    name = f"reg-{uuid.uuid4().hex[:8]}"
    uri, _ = _logged_model(tracking.experiment_id(f"gitlab-{uuid.uuid4().hex[:8]}"))
    model_registry.register_model(model_uri=uri, name=name, run=_run())
    assert not model_registry.supports_aliases(model_registry.client(), name=name)


@pytest.mark.slow
def test_champion_marker_falls_back_to_the_description_behind_gitlab(gitlab_mlflow, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", gitlab_mlflow.uri)
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", gitlab_mlflow.token)
    client = model_registry.client()
    experiment = tracking.experiment_id(f"gitlab-{uuid.uuid4().hex[:8]}")
    name = f"reg-{uuid.uuid4().hex[:8]}"
    version = model_registry.register_model(
        model_uri=_logged_model(experiment)[0], name=name, run=_run()
    )
    markers = model_registry.set_champion_markers(name, version["version"], note="leak run r1")
    described = client.get_model_version(name, version["version"]).description
    assert markers == {
        "tag": False,
        "description": True,
        "alias": False,
        "previous_unmarked": False,
    } and described.startswith("champion")
