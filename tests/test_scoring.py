"""`leak score`: new readings scored with the champion, alarms kept once per input and model."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from leaklib import scoring
from leaklib.metadata import LocalMetadataStore
from leaklib.params import load
from leaklib.sources import SourceError
from tests.conftest import leak

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def readings(smoke_run):
    """Two scenarios of the smoke data without the target, as a utility would send them."""
    frame = pd.read_parquet(smoke_run.project / "data" / "l-town-leaks.parquet")
    table = frame[frame["scenario_id"].isin([0, 1])].drop(columns=["leaks"])
    path = smoke_run.project / "readings.parquet"
    table.to_parquet(path)
    return path


def _champion(smoke_run) -> dict:
    """The run record of the champion (other tests may add runs to the shared project)."""
    pointer = json.loads(
        (smoke_run.project / "stores/metadata/champion/leak-detector-smoke.json").read_text()
    )
    return smoke_run.record(pointer["run_id"])


def _score(smoke_run, readings, out, *extra):
    return leak(
        smoke_run.project,
        "score",
        "-f",
        "parameters/smoke.yaml",
        "-p",
        "dataset.source",
        str(readings),
        "--out",
        str(out),
        *extra,
    )


def test_scoring_writes_alarms_with_the_champions_model_and_threshold(
    smoke_run, readings, tmp_path
):
    done = _score(smoke_run, readings, tmp_path / "alarms.parquet")

    assert done.returncode == 0, done.stdout + done.stderr
    rows = pd.read_parquet(tmp_path / "alarms.parquet")
    record = _champion(smoke_run)
    assert len(rows) == 2 * 672 and "leaks" not in rows.columns
    assert set(rows["run_id"]) == {record["run_id"]}
    assert set(rows["model_sha256"]) == {record["model"]["sha256"]}
    assert set(rows["threshold"]) == {record["alarm"]["threshold"]}
    assert (rows["alarm"] == (rows["probability"] >= record["alarm"]["threshold"])).all()
    assert list(rows.columns[:2]) == ["scenario_id", "timestamp"]
    assert f"added {len(rows)} rows" in done.stdout


def test_scoring_the_same_input_again_adds_nothing_and_is_recorded_once(
    smoke_run, readings, tmp_path
):
    out = tmp_path / "alarms.csv"
    first = _score(smoke_run, readings, out)
    second = _score(smoke_run, readings, out)

    assert first.returncode == second.returncode == 0, second.stderr
    assert "already there, nothing added" in second.stdout
    assert len(pd.read_csv(out)) == 2 * 672
    scoring_id = first.stdout.rsplit("scoring ", 1)[1].strip()
    document = json.loads(
        (smoke_run.project / f"stores/metadata/scorings/{scoring_id}.json").read_text()
    )
    assert document["rows"] == 2 * 672 and document["alarms"] >= 0
    assert document["run_id"] == _champion(smoke_run)["run_id"]


def test_a_table_that_does_not_fit_writes_nothing_and_names_the_column(
    smoke_run, readings, tmp_path
):
    broken = tmp_path / "broken.parquet"
    pd.read_parquet(readings).drop(columns=["p_n1"]).to_parquet(broken)

    done = _score(smoke_run, broken, tmp_path / "alarms.parquet")

    assert done.returncode == 2
    assert "column 'p_n1' (feature) is declared but not in the table" in done.stderr
    assert not (tmp_path / "alarms.parquet").exists()


def test_the_operators_view_is_drawn_from_the_scored_rows(smoke_run, readings, tmp_path):
    done = _score(smoke_run, readings, tmp_path / "a.parquet", "--plot", str(tmp_path / "v.png"))
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "v.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_scoring_with_a_named_run(smoke_run, readings, tmp_path):
    run_id = _champion(smoke_run)["run_id"]
    done = _score(smoke_run, readings, tmp_path / "a.parquet", "--run", run_id)
    assert done.returncode == 0 and f"with run {run_id}" in done.stdout


def test_without_a_champion_scoring_says_how_to_get_one(tmp_path):
    with pytest.raises(scoring.ScoringError, match="no champion yet for model 'm'"):
        scoring.model_run(LocalMetadataStore(tmp_path), model_name="m", run_id=None)


def test_the_rows_scored_are_those_the_parameters_select():
    smoke = load(["parameters/smoke.yaml"])
    rows = scoring.selected_rows(smoke)
    assert rows["scenario_id"].nunique() == smoke.dataset.max_groups == 24
    sampled = scoring.selected_rows(
        load([], [("dataset.sample", "{groups: 3}")])
    )  # the default set, three groups chosen by their hash
    assert sampled["scenario_id"].nunique() == 3
    assert set(rows.columns) <= set(smoke.dataset.columns())  # declared columns only


def test_the_rows_of_a_missing_source_are_refused_naming_it():
    with pytest.raises(SourceError, match="source 'nowhere.parquet' does not exist"):
        scoring.selected_rows(load([], [("dataset.source", "nowhere.parquet")]))
