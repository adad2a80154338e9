"""`leak reproduce`: a past run again on its recorded snapshot, after the source changed."""

from __future__ import annotations

import json
import subprocess

import pandas as pd
import pytest

from leaklib.params import load
from leaklib.pipeline import reproduce
from leaklib.run_record import RunRecord
from leaklib.sources import SourceError, read_source
from tests.conftest import REPO, copy_smoke_project, leak, make_project


@pytest.fixture(scope="module")
def reproduced(smoke_run, tmp_path_factory):
    """The session's smoke run, copied; its source table then changed, and the run reproduced."""
    project = copy_smoke_project(
        smoke_run, tmp_path_factory.mktemp("reproduce") / "project"
    ).project
    original = smoke_run.record()
    source = project / original["params"]["dataset"]["source"]
    (project / "data").unlink()  # the copy's data folder links to the repository's: make it its own
    (project / "data").mkdir()
    table = pd.read_parquet(REPO / "data" / source.name)
    table["p_n1"] = table["p_n1"] + 5.0  # the source table changes after the run
    table.to_parquet(source)
    again = leak(project, "reproduce", original["run_id"])
    return project, original, again


@pytest.mark.slow
def test_reproduce_after_the_source_changed_gives_identical_metrics(reproduced):
    project, original, again = reproduced
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"reproduces {original['run_id']}: metrics identical" in again.stdout
    runs = sorted(p.stem for p in (project / "stores/metadata/runs").glob("*.json"))
    copy = json.loads((project / f"stores/metadata/runs/{runs[-1]}.json").read_text())
    assert copy["origin"] == f"leak reproduce {original['run_id']}"
    assert copy["snapshot"]["sha256"] == original["snapshot"]["sha256"]
    assert copy["params"]["dataset"]["source"] == f"snapshot:{original['snapshot']['sha256']}"
    assert set(copy["metrics"]) == set(original["metrics"])
    assert reproduce.compare_metrics(original["metrics"], copy["metrics"])["identical"].all()
    assert copy["param_files"] == original["param_files"] == ["parameters/smoke.yaml"]
    assert copy["params"]["dataset"]["model_name"] == "leak-detector-smoke"


@pytest.mark.slow
def test_reproduce_strict_refuses_another_commit(reproduced):
    project, original, _ = reproduced
    (project / "CHANGES").write_text("a change after the run\n")
    git = ["git", "-C", str(project), "-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    subprocess.run([*git, "add", "CHANGES"], check=True)
    subprocess.run([*git, "commit", "-qm", "later"], check=True)

    done = leak(project, "reproduce", original["run_id"], "--strict")

    assert done.returncode == 2
    assert "--strict: git commit" in done.stderr and "differs from the recorded" in done.stderr


def test_reproduce_names_an_unknown_run(tmp_path):
    project = make_project(tmp_path / "project")
    done = leak(project, "reproduce", "no-such-run")
    assert done.returncode == 2 and "run 'no-such-run' not found" in done.stderr


def test_a_run_without_snapshot_cannot_be_reproduced():
    with pytest.raises(reproduce.ReproduceError, match="has no snapshot: its extract step"):
        reproduce.reproduction_params(
            RunRecord.from_doc({"run_id": "r", "snapshot": None, "params": {}})
        )


def test_reproduction_keeps_the_declared_feature_order():
    params = load(["parameters/smoke.yaml"]).to_plain()
    shuffled = dict(sorted(params["dataset"]["features"].items()))  # as a JSON store keeps it
    record = {
        "run_id": "r",
        "snapshot": {"sha256": "ab" * 32},
        "params": {**params, "dataset": {**params["dataset"], "features": shuffled}},
        "feature_order": list(params["dataset"]["features"]),
    }
    again = reproduce.reproduction_params(RunRecord.from_doc(record))
    assert list(again.dataset.features) == list(params["dataset"]["features"])
    assert again.dataset.source == "snapshot:" + "ab" * 32 and again.run_id is None


def test_a_reproduction_is_labelled_with_the_runs_parameter_files():
    labelled = RunRecord.from_doc({"param_files": ["parameters/smoke.yaml"]})
    assert reproduce.reproduction_files(labelled) == ["parameters/smoke.yaml"]
    assert (
        reproduce.reproduction_files(RunRecord.from_doc({"param_files": None})) == []
    )  # the embedded default


def test_compare_metrics_says_which_differ():
    table = reproduce.compare_metrics({"a": 1.0, "b": 2.0}, {"a": 1.0, "b": 2.5, "c": 3.0})
    assert table["identical"].to_dict() == {"a": True, "b": False, "c": False}


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("snapshot:" + "0" * 64, "snapshot 0{64} not found"),
        ("snapshot:../../etc/passwd", "does not name a snapshot"),
        ("gs://bucket/snapshots/table.parquet", "does not name a snapshot"),
    ],
)
def test_a_snapshot_source_that_does_not_exist_is_named(tmp_path, source, message):
    params = load([], [("dataset.source", source), ("snapshot_store", str(tmp_path / "snapshots"))])
    with pytest.raises(SourceError, match=message):
        read_source(params)


def test_a_missing_figure_in_both_runs_counts_as_identical():
    table = reproduce.compare_metrics(
        {"a": float("nan"), "b": None, "c": 1.0}, {"a": float("nan"), "b": None, "c": 2.0}
    )
    assert table["identical"].to_dict() == {"a": True, "b": True, "c": False}
