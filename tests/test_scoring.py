"""`leak score`: the stream scored as its readings arrive, alarms and faults kept as events."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from leaklib import scoring
from leaklib.metadata import LocalMetadataStore
from leaklib.params import load
from leaklib.run_record import RunRecord
from leaklib.sources import SourceError
from tests.conftest import copy_smoke_project, leak

pytestmark = pytest.mark.slow

CALL = ["scoring_id", "scored_at", "written_at", "located_by"]  # names the call, not the result
DAY = timedelta(days=1)
START = datetime(2019, 2, 14)  # a stretch of the smoke holdout with alarm events across days


@pytest.fixture(scope="module")
def project(smoke_run, tmp_path_factory):
    """A copy of the smoke project: scorings are added to its metadata store."""
    copy = copy_smoke_project(smoke_run, tmp_path_factory.mktemp("scoring") / "project").project
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LEAK_PROJECT_DIR", str(copy))
        yield copy


@pytest.fixture(scope="module")
def params(project):
    return load([str(project / "parameters/smoke.yaml")])


def _champion(project) -> RunRecord:
    pointer = json.loads(
        (project / "stores/metadata/champion/leak-detector-smoke.json").read_text()
    )
    doc = json.loads((project / f"stores/metadata/runs/{pointer['run_id']}.json").read_text())
    return RunRecord.from_doc(doc)


def _score(project, out, *extra):
    return leak(project, "score", "-f", "parameters/smoke.yaml", "--out", str(out), *extra)


def _library(params, project, out, since, until):
    store = LocalMetadataStore(project / "stores/metadata")
    return scoring.score(params, store=store, destination=str(out), since=since, until=until)


def _written(out) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The rows and events written to ``out``, sorted, without the columns naming the call."""
    rows = pd.read_parquet(out).drop(columns=CALL, errors="ignore")
    events_at = out.with_name(out.name.replace(".parquet", ".events.parquet"))
    events = pd.read_parquet(events_at).drop(columns=CALL, errors="ignore")
    return (
        rows.sort_values("timestamp").reset_index(drop=True),
        events.sort_values(["kind", "event_id"]).reset_index(drop=True),
    )


def test_since_scores_the_rows_from_since_with_the_champions_model(project, tmp_path):
    out = tmp_path / "alarms.parquet"
    done = _score(project, out, "--since", "2019-02-14", "--until", "2019-02-16")

    assert done.returncode == 0, done.stdout + done.stderr
    rows = pd.read_parquet(out)
    record = _champion(project)
    assert len(rows) == 2 * 96 and rows["timestamp"].min() == pd.Timestamp("2019-02-14")
    assert set(rows["run_id"]) == {record.run_id}
    assert set(rows["model_sha256"]) == {record.model.sha256}
    threshold = record.alarm.threshold
    assert (rows["alarm"] == ((rows["probability"] >= threshold) & ~rows["sensor_fault"])).all()
    assert f"added {len(rows)} rows" in done.stdout
    assert "alarms.events.parquet" in done.stdout


def test_day_by_day_calls_write_what_one_call_writes(params, project, tmp_path):
    daily, whole = tmp_path / "daily.parquet", tmp_path / "whole.parquet"
    for day in range(5):
        _library(params, project, daily, START + day * DAY, START + (day + 1) * DAY)
    _library(params, project, whole, START, START + 5 * DAY)

    rows, events = _written(daily)
    one_rows, one_events = _written(whole)
    pd.testing.assert_frame_equal(rows, one_rows)
    pd.testing.assert_frame_equal(events, one_events)
    leaks = events[events["kind"] == "leak"]
    assert len(leaks) >= 2
    crossing = leaks["first"].dt.date != leaks["last"].dt.date
    assert crossing.any()  # an event open at midnight was extended by the next day's call


def test_overlapping_calls_write_what_one_call_writes(params, project, tmp_path):
    both, whole = tmp_path / "both.parquet", tmp_path / "whole.parquet"
    _library(params, project, both, START, START + 3 * DAY)
    second = _library(params, project, both, START + 1.5 * DAY, START + 5 * DAY)
    _library(params, project, whole, START, START + 5 * DAY)

    assert second.rows == 2 * 96  # only the rows after the first call's
    for mine, one in zip(_written(both), _written(whole), strict=True):
        pd.testing.assert_frame_equal(mine, one)


def test_rescoring_adds_nothing_and_the_record_points_to_the_events(project, tmp_path):
    out = tmp_path / "alarms.csv"
    first = _score(project, out, "--since", "2019-02-15", "--until", "2019-02-16")
    second = _score(project, out, "--since", "2019-02-15", "--until", "2019-02-16")

    assert first.returncode == second.returncode == 0, second.stderr
    assert "already there, nothing added" in second.stdout
    assert len(pd.read_csv(out)) == 96
    scoring_id = first.stdout.rsplit("scoring ", 1)[1].strip()
    document = json.loads((project / f"stores/metadata/scorings/{scoring_id}.json").read_text())
    assert document["rows"] == 96 and document["events_destination"] == str(
        tmp_path / "alarms.events.csv"
    )
    events = pd.read_csv(tmp_path / "alarms.events.csv")
    assert sorted(events["event_id"]) == document["event_ids"] and document["leak_events"] >= 1
    assert document["suppressed_alarms"] == 0


def test_without_since_the_rows_without_a_whole_lookback_are_skipped(params, project, tmp_path):
    period = ("dataset.period", "{start: 2019-01-25, end: 2019-02-14}")
    short = load([str(project / "parameters/smoke.yaml")], [period])
    done = _library(short, project, tmp_path / "a.parquet", None, None)

    lookback = scoring.lookback_rows(
        scoring.recorded_dataset(_champion(project)),
        checks=params.sensor_checks,
        spacing=timedelta(minutes=15),
    )
    assert done.skipped == lookback and done.rows == 20 * 96 - lookback


def test_a_stuck_sensor_gives_a_fault_event_and_no_leak_alarm(project, tmp_path):
    table = pd.read_parquet(project / "data/l-town-stream.parquet")
    stuck = (table["timestamp"] >= "2019-02-15 06:00") & (table["timestamp"] < "2019-02-15 14:00")
    table.loc[stuck, "q_p227"] = table.loc[stuck, "q_p227"].iloc[0]
    table.loc[table["timestamp"] == "2019-02-16 03:00", "h_t1"] = -1.0  # below its min 0
    readings = tmp_path / "readings.parquet"
    table.drop(columns=["leaks"]).to_parquet(readings)
    out = tmp_path / "alarms.parquet"

    done = _score(
        project, out, "-p", "dataset.source", str(readings),
        "--since", "2019-02-15", "--until", "2019-02-17",
    )  # fmt: skip

    assert done.returncode == 0, done.stdout + done.stderr
    rows = pd.read_parquet(out)
    events = pd.read_parquet(tmp_path / "alarms.events.parquet")
    faults = events[events["kind"] == "sensor_fault"]
    assert {"stuck", "out_of_range"} <= set(faults["fault"])
    assert set(faults.loc[faults["fault"] == "stuck", "sensor"]) == {"q_p227"}
    marked = rows[rows["sensor_fault"]]
    assert marked["fault_sensors"].str.contains("q_p227").any() and not marked["alarm"].any()
    assert rows["suppressed"].sum() > 0  # alarms the faulty readings would have raised
    assert f"suppressed {int(rows['suppressed'].sum())} leak alarms" in done.stdout


def test_the_operators_timeline_is_drawn(project, tmp_path):
    png = tmp_path / "v.png"
    done = _score(
        project, tmp_path / "a.parquet", "--since", "2019-02-14", "--until", "2019-02-18",
        "--plot", str(png),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    located = int(done.stdout.split("located ", 1)[1].split()[0])
    maps = sorted(tmp_path.glob("v.event-*.png"))
    assert located >= 1 and len(maps) == located  # one map per leak event it ranked
    assert all(m.read_bytes()[:4] == b"\x89PNG" for m in maps)
    assert "map of leak event" in done.stdout


def _leak_events(out) -> pd.DataFrame:
    events = pd.read_parquet(out.with_name(out.name.replace(".parquet", ".events.parquet")))
    return events[events["kind"] == "leak"].set_index("event_id")


def _scoring_id(done) -> str:
    return done.stdout.rsplit("scoring ", 1)[1].strip()


def test_leak_events_are_located_once_each_change_and_the_signatures_are_not_solved_again(
    project, tmp_path
):
    out = tmp_path / "alarms.parquet"
    # the smoke model's leak events here: 02-15 07:00 (closed that night), 02-16 11:45 (open
    # at the end of the first call, extended by the second), then new ones on 02-17 and 02-18
    first = _score(project, out, "--since", "2019-02-15", "--until", "2019-02-17")
    assert first.returncode == 0, first.stderr
    index = sorted((project / "stores/metadata/signatures").glob("*.json"))
    built = [p.read_bytes() for p in index]
    before = _leak_events(out)
    assert len(before) >= 1 and (before["located_by"] == _scoring_id(first)).all()
    assert f"located {len(before)} new or extended leak events" in first.stdout

    second = _score(project, out, "--since", "2019-02-17", "--until", "2019-02-19")  # a new process
    assert second.returncode == 0, second.stderr
    after = _leak_events(out)
    kept = after.index.intersection(before.index)
    unchanged = kept[after.loc[kept, "last"] == before.loc[kept, "last"]]
    changed = after.index.difference(unchanged)
    assert list(unchanged) == ["2019-02-15T07:00:00"]
    assert "2019-02-16T11:45:00" in changed and len(changed.difference(before.index)) >= 2
    # what the second call opened or extended it ranked; what it did not touch keeps its ranking
    assert (after.loc[changed, "located_by"] == _scoring_id(second)).all()
    for column in ("located_by", "top_node", "candidates", "walk_m"):
        assert after.loc[unchanged, column].tolist() == before.loc[unchanged, column].tolist()
    assert f"located {len(changed)} new or extended leak events" in second.stdout
    for _, event in after.iterrows():
        ranked = json.loads(event["candidates"])
        assert [c["rank"] for c in ranked] == [1, 2, 3, 4, 5]  # localisation.top_k
        assert ranked[0]["node"] == event["top_node"] and ranked[0]["distance_m"] == 0.0
        assert event["top_pipes"] == ",".join(ranked[0]["pipes"]) and event["walk_m"] > 0
    # the signatures were read from the stores by both processes, never solved again
    assert len(index) == 1 and [p.read_bytes() for p in index] == built
    assert len(list((project / "stores/snapshots/signatures").glob("*.npz"))) == 1


def test_a_missing_network_model_file_is_named_and_nothing_is_written(smoke_run, tmp_path):
    copy = copy_smoke_project(smoke_run, tmp_path / "project").project
    record_file = next((copy / "stores/metadata/runs").glob("*.json"))
    record = json.loads(record_file.read_text())
    record["params"]["localisation"]["network"] = "nets/missing.inp"
    record_file.write_text(json.dumps(record))
    out = tmp_path / "alarms.parquet"

    done = _score(copy, out, "--since", "2019-02-14", "--until", "2019-02-15")

    assert done.returncode == 2
    assert "localisation.network" in done.stderr and "nets/missing.inp" in done.stderr
    assert not out.exists() and not out.with_name("alarms.events.parquet").exists()


def test_a_table_that_does_not_fit_writes_nothing_and_names_the_column(project, tmp_path):
    broken = tmp_path / "broken.parquet"
    pd.read_parquet(project / "data/l-town-stream.parquet").drop(columns=["p_n1"]).to_parquet(
        broken
    )
    done = _score(
        project, tmp_path / "a.parquet", "-p", "dataset.source", str(broken),
        "--since", "2019-02-14", "--until", "2019-02-15",
    )  # fmt: skip
    assert done.returncode == 2
    assert "column 'p_n1' (feature) is declared but not in the table" in done.stderr
    assert not (tmp_path / "a.parquet").exists()


def test_until_before_since_is_refused_naming_the_option(params, project, tmp_path):
    with pytest.raises(scoring.ScoringError, match="--until 2019-02-13 00:00:00 must be after"):
        _library(params, project, tmp_path / "a.parquet", START, START - DAY)


def test_the_row_spacing_is_measured_unless_given(params, project, tmp_path):
    spaced = params.model_copy(
        update={"dataset": params.dataset.model_copy(update={"row_spacing": timedelta(minutes=15)})}
    )
    assert params.dataset.row_spacing is None
    assert scoring.measured_spacing(params, since=START, until=None) == timedelta(minutes=15)
    with pytest.raises(scoring.ScoringError, match="give dataset.row_spacing"):
        _library(params, project, tmp_path / "a.parquet", datetime(2030, 1, 1), None)
    done = _library(spaced, project, tmp_path / "b.parquet", START, START + DAY)
    assert done.rows == 96


def test_scoring_with_a_named_run(project, tmp_path):
    run_id = _champion(project).run_id
    done = _score(project, tmp_path / "a.parquet", "--run", run_id, "--since", "2019-03-01")
    assert done.returncode == 0 and f"with run {run_id}" in done.stdout


def test_without_a_champion_scoring_says_how_to_get_one(tmp_path):
    with pytest.raises(scoring.ScoringError, match="no champion yet for model 'm'"):
        scoring.model_run(LocalMetadataStore(tmp_path), model_name="m", run_id=None)


def test_the_rows_scored_are_those_the_parameters_select():
    smoke = load(["parameters/smoke.yaml"])
    rows = scoring.selected_rows(smoke)
    times = rows["timestamp"]
    assert times.min() == pd.Timestamp("2018-09-15") and times.max() < pd.Timestamp("2019-03-15")
    assert set(rows.columns) <= set(smoke.dataset.columns())  # declared columns only
    assert np.all(np.diff(times.to_numpy()) > np.timedelta64(0))


def test_the_rows_of_a_missing_source_are_refused_naming_it():
    with pytest.raises(SourceError, match="source 'nowhere.parquet' does not exist"):
        scoring.selected_rows(load([], [("dataset.source", "nowhere.parquet")]))
