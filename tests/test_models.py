"""Model files: skops bytes written once beside the snapshots, verified and trusted on load."""

from __future__ import annotations

import os

import numpy as np
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.ensemble import HistGradientBoostingClassifier

from leaklib import models
from leaklib.snapshots import LocalSnapshotStore


class Foreign(ClassifierMixin, BaseEstimator):
    """A classifier from outside scikit-learn: its type must never be trusted."""

    def fit(self, X, y):
        self.classes_ = np.unique(y)
        return self


@pytest.fixture
def fitted():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3))
    return HistGradientBoostingClassifier(max_iter=5, random_state=0).fit(X, X[:, 0] > 0), X


def test_a_saved_model_loads_back_and_predicts_the_same(tmp_path, fitted):
    model, X = fitted
    store = LocalSnapshotStore(tmp_path / "snapshots")
    saved = models.save_model(model, store=store)
    assert saved.uri.endswith(f"/models/{saved.sha256}.skops") and saved.format == "skops"
    loaded = models.load_model_file(saved.sha256, store=LocalSnapshotStore(tmp_path / "snapshots"))
    assert np.array_equal(loaded.predict_proba(X), model.predict_proba(X))


def test_the_same_model_is_stored_once(tmp_path, fitted):
    store = LocalSnapshotStore(tmp_path / "snapshots")
    first = models.save_model(fitted[0], store=store)
    second = models.save_model(fitted[0], store=store)
    assert first == second
    assert len(list((tmp_path / "snapshots" / "models").glob("*.skops"))) == 1


def test_an_altered_model_file_is_refused_naming_its_hash(tmp_path, fitted):
    store = LocalSnapshotStore(tmp_path / "snapshots")
    saved = models.save_model(fitted[0], store=store)
    path = tmp_path / "snapshots" / "models" / f"{saved.sha256}.skops"
    os.chmod(path, 0o644)
    path.write_bytes(path.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(models.ModelFileError, match=f"model {saved.sha256}: .*is corrupt"):
        models.load_model_file(saved.sha256, store=store)


def test_a_missing_model_is_named(tmp_path):
    with pytest.raises(models.ModelFileError, match=f"model {'0' * 64}: .*not found"):
        models.load_model_file("0" * 64, store=LocalSnapshotStore(tmp_path))


def test_a_model_with_foreign_types_is_refused_before_it_is_written(tmp_path):
    with pytest.raises(models.ModelFileError, match="cannot be trusted: tests.test_models.Foreign"):
        models.save_model(Foreign().fit([[0], [1]], [0, 1]), store=LocalSnapshotStore(tmp_path))
    assert not (tmp_path / "models").exists() or not any((tmp_path / "models").iterdir())
