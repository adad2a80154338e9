"""Events of a scoring: leak alarm events continued across calls, sensor-fault events."""

from __future__ import annotations

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
