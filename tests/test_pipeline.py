"""The whole pipeline through the `leak` command, in throw-away projects (slow)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml

from tests.conftest import copy_smoke_project, leak, make_project, make_table

pytestmark = pytest.mark.slow


def test_smoke_run_succeeds_with_reports_and_index(smoke_run):
    record = smoke_run.record()
    run_dir = smoke_run.project / "reports" / record["run_id"]
    for stem in ("01_extract", "02_train", "03_evaluate"):
        assert (run_dir / f"{stem}.html").stat().st_size > 10_000
    index = (smoke_run.project / "reports/index.html").read_text()
    assert record["run_id"] in index
    lines = smoke_run.stdout.strip().splitlines()
    assert [line.split()[1] for line in lines[1:4]] == ["extract", "train", "evaluate"]
    assert lines[-1].startswith("succeeded: report reports/") and lines[-1].endswith(
        "03_evaluate.html"
    )


def test_smoke_run_record_has_every_lineage_field(smoke_run):
    record = smoke_run.record()
    assert record["status"] == "succeeded"
    assert len(record["git"]["commit"]) == 40 and record["git"]["dirty"] is False
    assert len(record["snapshot"]["sha256"]) == 64 and record["snapshot"]["uri"].startswith(
        "file://"
    )
    assert len(record["lock_hash"]) == 64 and record["seeds"]["seed"] == 42
    assert record["param_files"] == ["parameters/smoke.yaml"]
    assert record["params"]["dataset"]["period"] == {
        "start": "2018-09-15T00:00:00",
        "end": "2019-03-15T00:00:00",
    }
    assert record["model"]["run_uri"].startswith("runs:/") and record["mlflow"]["run_id"]
    assert {
        "cv_roc_auc",
        "holdout_roc_auc",
        "holdout_recall_at_1pct_fpr",
        "holdout_alarms_per_day",
        "holdout_event_recall",
        "holdout_event_economic_share",
    } <= set(record["metrics"])
    assert set(record["leaks"]) == {"table", "volumes"}  # the leak files, snapshotted
    assert all(
        step["status"] == "succeeded" and step["duration_s"] is not None
        for step in record["steps"].values()
    )
    assert set(record["reports"]) == {"extract", "train", "evaluate"}


def test_smoke_run_is_in_mlflow_with_params_metrics_and_model(smoke_run, monkeypatch):
    import mlflow

    record = smoke_run.record()
    mlflow.set_tracking_uri(f"sqlite:///{smoke_run.project / 'mlflow.db'}")
    run = mlflow.get_run(record["mlflow"]["run_id"])
    assert run.data.params["model.name"] == "hist_gradient_boosting"
    assert run.data.metrics["holdout_roc_auc"] == pytest.approx(
        record["metrics"]["holdout_roc_auc"]
    )
    assert run.data.tags["leak.snapshot_sha256"] == record["snapshot"]["sha256"]
    assert run.inputs.dataset_inputs[0].dataset.digest == record["snapshot"]["sha256"][:36]
    schema = json.loads(run.inputs.dataset_inputs[0].dataset.schema)["mlflow_colspec"]
    assert {"name": "p_n1", "type": "double", "required": True} in schema


def test_smoke_runs_reports_are_attached_to_its_mlflow_run(smoke_run):
    import mlflow

    record = smoke_run.record()
    client = mlflow.MlflowClient(f"sqlite:///{smoke_run.project / 'mlflow.db'}")
    attached = client.list_artifacts(record["mlflow"]["run_id"], "reports")
    assert sorted(a.path for a in attached) == [
        "reports/01_extract.html",
        "reports/02_train.html",
        "reports/03_evaluate.html",
    ]


def test_extract_derives_the_declared_features_into_the_snapshot(smoke_run):
    record = smoke_run.record(smoke_run.run_ids()[0])
    derived = record["derived_features"]
    assert (
        len(derived) == 3 * 37
        and "p_n1__tdev96x7w4" in derived
        and "q_p227__tdev96x7w48" in derived
    )
    snapshot = smoke_run.project / "stores/snapshots" / f"{record['snapshot']['sha256']}.parquet"
    assert set(derived) <= set(pq.read_schema(snapshot).names)
    assert (
        record["alarm"]["chosen_by"] == "cv-events"
        and record["model"]["threshold"] == record["alarm"]["threshold"]
    )


def test_a_derivation_longer_than_any_group_fails_extract_naming_the_key(tmp_path):
    project = make_project(tmp_path / "project")
    block = "[{kind: diff, columns: 'p_*', steps: 20000}]"  # the stretch has 17,376 rows
    done = leak(project, "run", "-f", "parameters/smoke.yaml", "-p", "dataset.derive", block)
    assert done.returncode == 1
    record = done.record()
    assert record["status"] == "failed" and record["steps"]["extract"]["status"] == "failed"
    assert "derive[0].steps: 20000 needs 20000 earlier rows" in record["error"]
    assert not list((project / "stores/snapshots").glob("*.parquet"))


def test_same_inputs_give_the_same_metrics(smoke_run, tmp_path):
    project = copy_smoke_project(smoke_run, tmp_path / "project").project
    again = leak(project, "run", "-f", "parameters/smoke.yaml", "--no-cache")
    assert again.returncode == 0, again.stderr
    first, second = (again.record(r) for r in again.run_ids())
    assert first == smoke_run.record() and second["steps"]["extract"].get("cached_from") is None
    assert first["snapshot"]["sha256"] == second["snapshot"]["sha256"]
    for key in ("cv_roc_auc", "holdout_roc_auc", "holdout_pr_auc", "holdout_recall_at_1pct_fpr"):
        assert first["metrics"][key] == second["metrics"][key]


def test_other_table_runs_from_a_yaml_mapping_only(tmp_path):
    project = make_project(tmp_path / "project")
    table = make_table(scenarios=16, rows_per=40).rename(
        columns={"leaks": "burst", "scenario_id": "district"}
    )
    table.loc[::17, "p_b"] = np.nan
    table.loc[::23, "zone"] = None
    table.to_parquet(project / "other.parquet")
    (project / "other.yaml").write_text(
        yaml.safe_dump(
            {
                "dataset": {
                    "source": "other.parquet",
                    "target": "burst",
                    "features": {
                        "p_a": "numeric",
                        "p_b": {"type": "numeric", "min": 0},
                        "zone": "categorical",
                        "valve_open": "boolean",
                    },
                    "group": "district",
                    "timestamp": "timestamp",
                },
                "cv_folds": 3,
                "model": {"name": "random_forest", "params": {"n_estimators": 30}},
                "permutation_repeats": 1,
            }
        )
    )
    finished = leak(project, "run", "-f", "other.yaml")
    assert finished.returncode == 0, finished.stdout + finished.stderr
    record = finished.record()
    assert record["status"] == "succeeded"
    assert record["validation"]["missing"]["p_b"] > 0 and record["validation"][
        "ignored_columns"
    ] == ["note"]


def test_their_table_runs_from_a_dataset_mapping_alone_under_its_own_name(tmp_path):
    """Issue 9: a table without time or scenario columns, described by one dataset mapping."""
    project = make_project(tmp_path / "project")
    rng = np.random.default_rng(9)
    leaking = rng.random(400) < 0.3
    pd.DataFrame(
        {
            "flow": rng.normal(10, 1, 400) + 1.5 * leaking,
            "pressure": rng.normal(50, 2, 400) - 3.0 * leaking,
            "noise_db": rng.normal(30, 3, 400) + 2.0 * leaking,
            "burst": leaking.astype(int),
        }
    ).to_parquet(project / "their.parquet")
    dataset = {
        "source": "their.parquet",
        "target": "burst",
        "features": {"flow": "numeric", "pressure": "numeric", "noise_db": "numeric"},
        "group": None,
    }
    (project / "their.yaml").write_text(yaml.safe_dump({"dataset": dataset}))

    finished = leak(project, "run", "-f", "their.yaml")

    assert finished.returncode == 0, finished.stdout[-3000:] + finished.stderr[-3000:]
    record = finished.record()
    assert record["status"] == "succeeded"
    assert record["params"]["dataset"]["timestamp"] is None
    assert record["params"]["dataset"]["model_name"] == "their"
    assert record["model"]["name"] == "their"
    assert record["promotion"]["decision"] == "promoted"
    pointers = sorted(p.stem for p in (project / "stores/metadata/champion").glob("*.json"))
    assert pointers == ["their"]  # kept under its own name, not leak-detector


BROKEN = {
    "missing-column": (lambda t: t.drop(columns="p_b"), "'p_b'"),
    "not-binary": (lambda t: t.assign(leaks=t["leaks"] * 3), "'leaks'"),
    "nan-target": (
        lambda t: t.assign(leaks=t["leaks"].astype(float).where(t.index > 3)),
        "'leaks'",
    ),
    "one-class": (lambda t: t.assign(leaks=0), "'leaks'"),
    "empty": (lambda t: t.iloc[0:0], "no rows"),
    "wrong-type": (lambda t: t.assign(p_a="high"), "'p_a'"),
    "out-of-bounds": (lambda t: t.assign(p_b=-5.0), "'p_b'"),
    "too-few-groups": (lambda t: t[t["scenario_id"] < 3], "'leaks'"),
}


@pytest.fixture(scope="module")
def broken_project(tmp_path_factory):
    project = make_project(tmp_path_factory.mktemp("broken") / "project")
    (project / "mine.yaml").write_text(
        yaml.safe_dump(
            {
                "dataset": {
                    "source": "replaced-by-each-test.parquet",
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
                "cv_folds": 3,
            }
        )
    )
    return project


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_table_is_refused_and_nothing_is_written(broken_project, case):
    change, column = BROKEN[case]
    path = broken_project / f"{case}.parquet"
    change(make_table()).to_parquet(path)
    before = set((broken_project / "stores/snapshots").glob("*.parquet"))
    finished = leak(broken_project, "run", "-f", "mine.yaml", "-p", "dataset.source", path.name)
    assert finished.returncode != 0
    assert column in finished.stdout
    record = next(
        r
        for r in map(finished.record, finished.run_ids())
        if r["params"]["dataset"]["source"] == path.name
    )
    assert record["status"] == "failed" and column in record["error"]
    assert set((broken_project / "stores/snapshots").glob("*.parquet")) == before
    html = (broken_project / record["reports"]["extract"]).read_text()
    assert "SchemaError" in html


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("cv_folds", "1", "cv_folds: Input should be greater than or equal to 2"),
        ("seed", "-1", "seed: Input should be greater than or equal to 0 (got -1)"),
        (
            "model.params.max_iterz",
            "10",
            "model.params.max_iterz: 'max_iterz' is not a parameter of hist_gradient_boosting",
        ),
        (
            "model.params.max_iter",
            "0",
            "model.params.max_iter: The 'max_iter' parameter of HistGradientBoostingClassifier "
            "must be an int in the range [1, inf). Got 0 instead.",
        ),
        (
            "dataset.source",
            "does_not_exist.parquet",
            "dataset.source: source 'does_not_exist.parquet' does not exist",
        ),
        ("dataset.source", "data", "dataset.source: source 'data' is not a file"),
        ("dataset.source", "bigquery://p.d.t;x", "dataset.source: BigQuery project id 'p'"),
    ],
)
def test_bad_parameter_stops_before_any_run(tmp_path, key, value, message):
    project = make_project(tmp_path / "project")
    finished = leak(project, "run", "-p", key, value)
    assert finished.returncode == 2
    assert message in finished.stderr
    assert not (project / "stores").exists()  # no run record, no snapshot
    assert not (project / "reports").exists() or not any((project / "reports").iterdir())
