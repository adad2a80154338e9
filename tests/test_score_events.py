"""Events of a scoring: leak alarm events continued across calls, sensor-fault events."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from leaklib import score_events
from leaklib.leak_events import EventError
from leaklib.params import EventsSpec, SensorChecks
from leaklib.sensor_faults import check_sensors
from leaklib.sinks import open_events

STEP = pd.Timedelta("15min")
RULES = EventsSpec(min_duration="30min", join_gap="1h")


def _rows(start: str, alarms: list[int]) -> pd.DataFrame:
    times = pd.date_range(start, periods=len(alarms), freq=STEP)
    return pd.DataFrame(
        {"timestamp": times, "alarm": [bool(a) for a in alarms], "probability": alarms}
    ).assign(probability=lambda f: 0.2 + 0.7 * f["probability"])


def _events(rows: pd.DataFrame, earlier: pd.DataFrame) -> pd.DataFrame:
    deviation = pd.DataFrame({"p_a": [0.1] * len(rows)})
    return score_events.leak_events(
        rows,
        timestamp="timestamp",
        spacing=STEP,
        rules=RULES,
        earlier=earlier,
        deviation=deviation,
    )


def _write(out, events: pd.DataFrame) -> pd.DataFrame:
    sink = open_events(str(out))
    sink.upsert(events.assign(model_sha256="m", run_id="r"))
    return sink.read(model_sha256="m")


def test_an_event_open_at_the_end_of_a_call_is_extended_not_duplicated(tmp_path):
    out = tmp_path / "alarms.parquet"
    first = _rows("2019-01-01 00:00", [0, 0, 1, 1])  # opens at 00:30, still alarming
    second = _rows("2019-01-01 01:00", [1, 1, 0, 0, 0, 0, 0, 0])  # continues, then quiet

    stored = _write(out, _events(first, pd.DataFrame()))
    assert stored[["closed", "rows"]].values.tolist() == [[False, 2]]
    stored = _write(out, _events(second, stored))
    one_call = _events(pd.concat([first, second], ignore_index=True), pd.DataFrame())

    assert len(stored) == 1  # one event, extended under its id
    assert stored["event_id"].tolist() == one_call["event_id"].tolist() == ["2019-01-01T00:30:00"]
    assert (
        stored[["closed", "rows", "last"]].values.tolist()
        == one_call[["closed", "rows", "last"]].values.tolist()
    )
    assert stored["top_sensors"].tolist() == ["p_a"]


def test_a_short_stretch_that_closes_is_removed(tmp_path):
    out = tmp_path / "alarms.csv"
    stored = _write(out, _events(_rows("2019-01-01 00:00", [0, 0, 0, 1]), pd.DataFrame()))
    assert stored["counts"].tolist() == [False]  # 15 minutes so far: kept to be extended
    stored = _write(out, _events(_rows("2019-01-01 01:00", [0] * 8), stored))
    assert stored.empty


def test_a_fault_run_reaching_the_end_continues_in_the_next_call(tmp_path):
    checks = SensorChecks(stuck_after="30min", jump_k=None, drift_k=None)
    values = [1.0, 2.0, 3.0, 4.0] + [5.0] * 8 + [6.0, 7.0, 8.0, 9.0]
    times = pd.date_range("2019-01-01", periods=len(values), freq=STEP)
    frame = pd.DataFrame({"timestamp": times, "p_a": values, "p_b": range(len(values))})
    found = check_sensors(
        frame, sensors={"p_a": "p", "p_b": "p"}, timestamp="timestamp", checks=checks
    )

    def part(lo: int, hi: int, earlier: pd.DataFrame) -> pd.DataFrame:
        keep = (frame.index >= lo) & (frame.index < hi)
        return score_events.fault_events(
            score_events.kept_faults(found, keep),
            spacing=STEP,
            earlier=earlier,
            last_row=pd.Timestamp(times[hi - 1]),
        )

    out = tmp_path / "alarms.parquet"
    stored = _write(out, part(0, 10, pd.DataFrame()))
    assert stored[["sensor", "fault", "closed"]].values.tolist() == [["p_a", "stuck", False]]
    stored = _write(out, part(10, 16, stored))
    whole = part(0, 16, pd.DataFrame())
    assert len(stored) == len(whole) == 1
    assert (
        stored[["event_id", "first", "last", "rows", "closed"]].values.tolist()
        == whole[["event_id", "first", "last", "rows", "closed"]].values.tolist()
    )


def test_a_carried_event_after_the_rows_is_refused():
    stored = _events(_rows("2019-01-01 00:00", [0, 0, 1, 1]), pd.DataFrame())
    with pytest.raises(EventError, match="not before the data's first time"):
        _events(_rows("2019-01-01 00:15", [1, 1]), stored)


# --- where a leak event is ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def locator(tmp_path_factory):
    """A locator on the small grid network of test_leak_location (its signatures solved here)."""
    pytest.importorskip("wntr")
    from leaklib import leak_location as L
    from leaklib.metadata import open_metadata_store
    from leaklib.params import DatasetSpec, LocalisationSpec
    from leaklib.snapshots import open_snapshot_store
    from tests.test_leak_location import SENSORS, _grid_inp

    folder = tmp_path_factory.mktemp("located")
    spec = LocalisationSpec(network=str(_grid_inp(folder)), workers=1, window="30min", top_k=3)
    dataset = DatasetSpec(
        source="data/l-town-stream.parquet",
        target="leaks",
        timestamp="timestamp",
        features={f"p_{s}": "numeric" for s in SENSORS},
    )
    return L.event_locator(
        spec,
        dataset=dataset,
        snapshots=open_snapshot_store(str(folder / "snapshots")),
        store=open_metadata_store(str(folder / "metadata")),
    )


def _derived(rows: pd.DataFrame, locator, node: str) -> pd.DataFrame:
    """The rows' derived deviations: the signature of a leak at ``node`` while they alarm."""
    signature = locator.sigs.matrix[locator.sigs.candidates.index(node)]
    columns = [f"{c}__{locator.spec.deviation}" for c in locator.sigs.sensors]
    values = rows["alarm"].to_numpy()[:, None] * signature
    return pd.DataFrame(values, columns=columns).assign(timestamp=rows["timestamp"].to_numpy())


def test_new_and_extended_leak_events_are_located_unchanged_ones_are_not(tmp_path, locator):
    out = tmp_path / "alarms.parquet"
    first = _rows("2019-01-01 00:00", [0, 0, 1, 1])  # opens at 00:30, still alarming
    events = score_events.locate_events(
        _events(first, pd.DataFrame()).assign(model_sha256="m", run_id="r"),
        earlier=pd.DataFrame(),
        derived=_derived(first, locator, "j2_3"),
        locator=locator,
        scoring_id="call-1",
    )
    stored = _write(out, events)
    assert score_events.located_count(events, scoring_id="call-1") == 1
    (row,) = stored.to_dict(orient="records")
    assert (row["top_node"], row["located_by"]) == ("j2_3", "call-1")
    assert row["top_pipes"] == ",".join(locator.network.incident_pipes("j2_3"))
    ranked = json.loads(row["candidates"])
    assert [c["rank"] for c in ranked] == [1, 2, 3] and ranked[0]["distance_m"] == 0.0
    assert score_events.location_of(row).best == "j2_3" and row["walk_m"] > 0

    # the next call extends it: ranked again; one after that only closes it: kept as stored
    second = _rows("2019-01-01 01:00", [1, 0, 0, 0, 0, 0, 0, 0])
    events = score_events.locate_events(
        _events(second, stored).assign(model_sha256="m", run_id="r"),
        earlier=stored,
        derived=_derived(pd.concat([first, second], ignore_index=True), locator, "j2_3"),
        locator=locator,
        scoring_id="call-2",
    )
    assert events["located_by"].tolist() == ["call-2"]
    unchanged = events.assign(closed=True)
    again = score_events.locate_events(
        unchanged, earlier=_write(out, events), derived=_derived(second, locator, "j0_0"),
        locator=locator, scoring_id="call-3",
    )  # fmt: skip
    assert again["located_by"].tolist() == ["call-2"] and again["top_node"].tolist() == ["j2_3"]
    assert score_events.located_count(again, scoring_id="call-3") == 0


def test_without_a_locator_events_are_not_located_and_old_files_still_read(tmp_path, locator):
    rows = _rows("2019-01-01 00:00", [0, 1, 1, 1])
    events = score_events.locate_events(
        _events(rows, pd.DataFrame()).assign(model_sha256="m", run_id="r"),
        earlier=pd.DataFrame(),
        derived=None,
        locator=None,
        scoring_id="s",
    )
    assert list(events.columns[-5:]) == list(score_events.LOCATION_COLUMNS)
    assert events["candidates"].tolist() == [""] and events["walk_m"].isna().all()
    # an events file written before the location columns existed: read as not located
    old = tmp_path / "old.parquet"
    stored = _write(old, events.drop(columns=list(score_events.LOCATION_COLUMNS)))
    assert score_events.location_of(stored.iloc[0]) is None
    more = _rows("2019-01-01 01:00", [1, 0, 0, 0, 0, 0])
    later = score_events.locate_events(
        _events(more, stored).assign(model_sha256="m", run_id="r"),
        earlier=stored,
        derived=_derived(more, locator, "j1_1"),  # from 01:00: the event began at 00:15
        locator=locator,
        scoring_id="s2",
    )
    assert later["top_node"].tolist() == [""]  # its window starts before the rows read
    assert "candidates" in _write(old, later)


def test_an_event_whose_window_has_no_derived_column_is_refused(locator):
    rows = _rows("2019-01-01 00:00", [0, 1, 1, 1])
    with pytest.raises(score_events.LocalisationError, match="has no derived column"):
        score_events.locate_events(
            _events(rows, pd.DataFrame()),
            earlier=pd.DataFrame(),
            derived=rows,
            locator=locator,
            scoring_id="s",
        )
