"""leaklib.leak_events: alarm events, leak events, matching and the field's scores on known timelines."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from leaklib import leak_events as E
from leaklib import metrics
from leaklib import params as P

T0 = pd.Timestamp("2024-01-01")
HOUR = pd.Timedelta(hours=1)
DAYS = 10
TIMES = pd.date_range(T0, periods=DAYS * 24, freq="h")  # hourly rows: delays read in rows
RULES = {"min_duration": "2h", "join_gap": "1h"}
PRICE, FALSE_ALARM = 0.8, 500.0


def at(day: float, hour: float = 0) -> pd.Timestamp:
    return T0 + pd.Timedelta(days=day, hours=hour)


# five leaks over ten days: an early detection (L1), a late one (L2), a missed leak (L3),
# a leak lasting past the data (L4) and one overlapping it (L5)
LEAKS = pd.DataFrame(
    {
        "leak_id": ["L1", "L2", "L3", "L4", "L5"],
        "pipe": ["p1", "p2", "p3", "p4", "p5"],
        "start": [at(0, 10), at(2), at(5), at(6), at(7)],
        "end": [at(1, 10), at(4), at(5, 12), None, at(7, 12)],
        "kind": ["abrupt", "incipient", "abrupt", "incipient", "abrupt"],
    }
)
# 2-hour alarm runs starting at these times
ALARM_STARTS = {
    "L1 at once": at(0, 10),
    "false alarm": at(1, 20),
    "L2 a day late": at(3),
    "L4 after 6 h": at(6, 6),
    "repeat on L4": at(6, 20),
    "L5 after 2 h, inside L4": at(7, 2),
}


def volumes(rate: float = 10.0) -> pd.DataFrame:
    """Ten cubic metres per hourly window of each leak, and some outside the period."""
    rows = []
    for leak in E.leaks_from_table(LEAKS):
        end = leak.end if leak.end is not None else at(DAYS + 1)  # runs past the data
        for t in pd.date_range(leak.start, end - HOUR, freq="h"):
            rows.append({"leak_id": leak.leak_id, "timestamp": t, "volume_m3": rate})
    return pd.DataFrame(rows)


def alarms_at(starts, *, rows: int = 2, times=TIMES) -> np.ndarray:
    flags = np.zeros(len(times), dtype=bool)
    for start in starts:
        first = times.get_loc(start)
        flags[first : first + rows] = True
    return flags


def result_of(flags, *, leaks=LEAKS, grace="2h", water=True, times=TIMES) -> E.EventResult:
    found = E.alarm_events(times, flags, **RULES)
    return E.match_events(
        found.events,
        E.leaks_from_table(leaks),
        start=times[0],
        end=times[-1] + HOUR,
        grace=grace,
        spacing="1h",
        volumes=volumes() if water else None,
        water_price_eur_m3=PRICE,
        false_alarm_cost_eur=FALSE_ALARM,
    )


def early(delay: float, window: float) -> float:
    return 2 / (1 + math.exp(5 * delay / window))


# --- alarm events ---------------------------------------------------------------------------


def test_consecutive_alarms_merge_and_short_ones_do_not_count():
    flags = np.zeros(24, dtype=bool)
    flags[[2, 3, 5, 9, 10, 11, 22]] = True
    found = E.alarm_events(TIMES[:24], flags, min_duration="3h", join_gap="1h")
    # rows 2-3 and 5 join across a quiet hour (3 rows, 4 h); 9-11 is 3 h; 22 is one hour
    assert [(e.first_alarm.hour, e.last_alarm.hour, e.rows) for e in found.events] == [
        (2, 5, 3),
        (9, 11, 3),
    ]
    assert [e.duration / HOUR for e in found.events] == [4, 3]
    assert all(e.closed for e in found.events)
    assert found.tail is not None and found.tail.first_alarm.hour == 22  # open, too short yet


def test_join_gap_zero_joins_only_consecutive_rows():
    flags = np.array([1, 1, 0, 1, 1, 0], dtype=bool)
    found = E.alarm_events(TIMES[:6], flags, min_duration="1h", join_gap="0h")
    assert [e.rows for e in found.events] == [2, 2]


def test_an_event_is_open_while_a_later_alarm_could_still_join_it():
    flags = np.zeros(10, dtype=bool)
    flags[[1, 2, 7]] = True
    found = E.alarm_events(TIMES[:10], flags, min_duration="1h", join_gap="2h", proba=flags * 0.9)
    first, last = found.events
    assert first.closed and not last.closed  # 9 - 7 = 2 h: an alarm at row 10 would join
    assert found.tail == last and last.peak == pytest.approx(0.9)
    assert last.event_id == TIMES[7].isoformat()


@pytest.mark.parametrize("seed", range(5))
def test_calls_over_consecutive_stretches_find_the_events_of_one_call(seed):
    rng = np.random.default_rng(seed)
    n = 400
    flags = rng.random(n) < 0.3
    proba = rng.random(n)
    rules = {"min_duration": "45min", "join_gap": "30min", "spacing": "15min"}
    times = pd.date_range(T0, periods=n, freq="15min")
    whole = E.alarm_events(times, flags, proba=proba, **rules)
    cuts = np.sort(rng.choice(np.arange(1, n), size=6, replace=False))
    seen: dict[str, E.AlarmEvent] = {}
    carry = None
    for lo, hi in zip(np.r_[0, cuts], np.r_[cuts, n], strict=True):
        part = E.alarm_events(times[lo:hi], flags[lo:hi], proba=proba[lo:hi], carry=carry, **rules)
        seen |= {e.event_id: e for e in part.events}  # a later call extends an event
        carry = part.tail
    assert list(seen.values()) == whole.events
    assert carry == whole.tail


def test_a_carried_event_closes_when_the_next_call_shows_a_long_quiet_time():
    times = pd.date_range(T0, periods=8, freq="h")
    first = E.alarm_events(times[:4], [0, 0, 1, 1], min_duration="2h", join_gap="1h")
    assert first.tail is not None and [e.closed for e in first.events] == [False]
    later = E.alarm_events(times[4:], [0, 0, 0, 1], carry=first.tail, **RULES)
    assert [(e.event_id, e.closed) for e in later.events] == [(first.tail.event_id, True)]
    assert later.tail is not None and later.tail.rows == 1


def test_alarm_events_on_no_rows_return_the_carry_unchanged():
    open_event = E.alarm_events(TIMES[:3], [0, 1, 1], **RULES).tail
    empty = E.alarm_events(TIMES[:0], [], carry=open_event, **RULES)
    assert empty.events == [open_event] and empty.tail == open_event


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"alarms": [1, 0]}, r"alarms: \(2,\) values for 3 times"),
        ({"alarms": [2, 0, 1]}, "alarms: expected booleans or 0/1"),
        ({"proba": [0.1]}, r"proba: \(1,\) values for 3 times"),
        ({"min_duration": "soon"}, "min_duration: 'soon' is not a duration"),
        ({"join_gap": "-1h"}, "join_gap: '-1h' must be a duration of zero or more"),
        ({"times": TIMES[[2, 1, 3]]}, "times: times must increase strictly"),
        ({"times": [T0, None, T0]}, r"times: 1 missing time\(s\)"),
        ({"times": TIMES[:1], "alarms": [1]}, "spacing: give it when the data hold fewer"),
    ],
)
def test_alarm_events_refuse_bad_input_naming_it(kwargs, message):
    call = {"times": TIMES[:3], "alarms": [0, 1, 1], **RULES, **kwargs}
    with pytest.raises(E.EventError, match=message):
        E.alarm_events(**call)


def test_a_carry_must_be_open_and_end_before_the_data():
    found = E.alarm_events(TIMES[:6], [0, 1, 1, 0, 0, 0], **RULES)
    with pytest.raises(E.EventError, match="carry: event .* is closed"):
        E.alarm_events(TIMES[6:9], [0, 0, 0], carry=found.events[0], **RULES)
    tail = E.alarm_events(TIMES[:3], [0, 1, 1], **RULES).tail
    with pytest.raises(E.EventError, match="carry: event .* not before the data's first time"):
        E.alarm_events(TIMES[2:5], [0, 0, 0], carry=tail, **RULES)


def test_duration_and_spacing_parse_time_units():
    assert E.duration("90min", name="x") == pd.Timedelta(minutes=90)
    assert E.row_spacing(TIMES[:5]) == HOUR
    assert E.row_spacing(TIMES[:1], spacing="15min") == pd.Timedelta(minutes=15)
    with pytest.raises(E.EventError, match="spacing: '0h' must be longer than zero"):
        E.row_spacing(TIMES, spacing="0h")


# --- leak events --------------------------------------------------------------------------------


def test_leaks_from_table_read_open_ends_and_sort_by_start():
    table = LEAKS.iloc[::-1].assign(end=LEAKS["end"].iloc[::-1].astype(str).replace("NaT", ""))
    leaks = E.leaks_from_table(table)
    assert [leak.leak_id for leak in leaks] == ["L1", "L2", "L3", "L4", "L5"]
    assert leaks[3].end is None and leaks[0].end == at(1, 10) and leaks[0].pipe == "p1"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda t: t.drop(columns="kind"), r"leak table: missing column\(s\) kind"),
        (lambda t: t.assign(kind="burst"), "kind 'burst' is not one of abrupt, incipient"),
        (lambda t: t.assign(leak_id="L"), "leak_id 'L' repeats"),
        (lambda t: t.assign(end=t["start"]), "leak 'L1' ends before it starts"),
        (lambda t: t.assign(start=None), "leak 'L1' has no start"),
    ],
)
def test_leaks_from_table_refuse_a_bad_table(change, message):
    with pytest.raises(E.EventError, match=message):
        E.leaks_from_table(change(LEAKS.copy()))


def test_leaks_from_target_are_its_runs():
    target = np.array([0, 1, 1, 0, 0, 1, 0, 1, 1])
    leaks = E.leaks_from_target(TIMES[:9], target)
    assert [(leak.start.hour, leak.end and leak.end.hour) for leak in leaks] == [
        (1, 3),
        (5, 6),
        (7, None),  # reaches the last row: lasts past the data
    ]
    assert {leak.kind for leak in leaks} == {E.UNKNOWN_KIND}


def test_leaks_from_target_refuse_a_non_binary_target():
    with pytest.raises(E.EventError, match="target: expected 0/1 or booleans"):
        E.leaks_from_target(TIMES[:3], [0, 2, 1])


# --- matching and scores ----------------------------------------------------------------------------


def test_the_matcher_on_a_known_timeline():
    result = result_of(alarms_at(ALARM_STARTS.values()))
    alarms = result.alarms.set_index("first_alarm")
    assert list(alarms["outcome"]) == [
        "detection",
        "false alarm",
        "detection",
        "detection",
        "repeat",
        "detection",
    ]
    assert list(alarms["leak_id"].fillna("-")) == ["L1", "-", "L2", "L4", "L4", "L5"]
    leaks = result.leaks.set_index("leak_id")
    assert list(leaks["detected"]) == [True, True, False, True, True]
    assert leaks["delay_h"].fillna(-1).tolist() == [0, 24, -1, 6, 2]
    assert leaks.loc["L2", "detection_time"] == at(3)
    assert leaks["water_saved_m3"].tolist() == [240, 240, 0, 900, 100]
    assert leaks["volume_m3"].tolist() == [240, 480, 120, 960, 120]  # L4 up to the period's end


def test_every_score_on_the_known_timeline():
    scores = E.event_scores(result_of(alarms_at(ALARM_STARTS.values())))
    assert set(scores) == set(metrics.EVENT)
    windows = {"L1": 26, "L2": 50, "L4": 98, "L5": 14}  # duration + 2 h grace; L4 to day 10
    expected = {
        "event_recall": 0.8,
        "event_precision": 0.8,
        "event_f1": 0.8,
        "event_leaks_detected": 4,
        "event_false_alarms": 1,
        "event_false_alarms_per_30d": 3.0,
        "event_detection_hours_median": 4.0,
        "event_detection_hours_p90": 18.6,
        "event_early_detection": (
            early(0, windows["L1"])
            + early(24, windows["L2"])
            + early(6, windows["L4"])
            + early(2, windows["L5"])
        )
        / 5,
        "event_water_saved_m3": 1480,
        "event_economic_eur": 0.8 * 1480 - 500,
        "event_economic_perfect_eur": 0.8 * 1920,
        "event_economic_share": (0.8 * 1480 - 500) / (0.8 * 1920),
        "event_recall_abrupt": 2 / 3,
        "event_recall_incipient": 1.0,
        "event_detection_hours_median_abrupt": 1.0,
        "event_detection_hours_p90_abrupt": 1.8,
        "event_detection_hours_median_incipient": 15.0,
        "event_detection_hours_p90_incipient": 22.2,
        "event_early_detection_abrupt": (1 + early(2, 14)) / 3,
        "event_water_saved_share_abrupt": 340 / 480,
        "event_water_saved_share_incipient": 1140 / 1440,
    }
    for name, value in expected.items():
        assert scores[name] == pytest.approx(value, abs=1e-6), name


def test_the_perfect_submission_scores_exactly_the_perfect_score():
    starts = [at(0, 10), at(2), at(5), at(6), at(7)]
    scores = E.event_scores(result_of(alarms_at(starts)))
    assert scores["event_economic_eur"] == scores["event_economic_perfect_eur"] == 0.8 * 1920
    assert scores["event_economic_share"] == 1.0
    for name in ("event_recall", "event_precision", "event_f1", "event_early_detection"):
        assert scores[name] == 1.0
    assert scores["event_detection_hours_p90"] == 0.0 and scores["event_false_alarms"] == 0


def test_an_alarm_starting_in_the_grace_after_a_leak_still_detects_it():
    late = alarms_at([at(5, 13)])  # L3 ended at 12:00; 1 h into the grace
    assert result_of(late, grace="2h").alarms["outcome"].tolist() == ["detection"]
    assert result_of(late, grace="0h").alarms["outcome"].tolist() == ["false alarm"]


def test_overlapping_leaks_one_alarm_detects_the_earliest_undetected_leak():
    # one alarm inside both L4 and L5 (neither found yet): it detects L4, the earlier one
    result = result_of(alarms_at([at(7, 1)]))
    leaks = result.leaks.set_index("leak_id")
    assert leaks.loc["L4", "detected"] and not leaks.loc["L5", "detected"]
    # a second alarm, still inside both, then detects L5
    again = result_of(alarms_at([at(7, 1), at(7, 5)])).leaks.set_index("leak_id")
    assert again.loc["L5", "delay_h"] == 5


def test_a_leak_that_began_before_the_period_is_not_scored_and_its_alarms_are_not_false():
    times = TIMES[at(6, 12) <= TIMES]  # the period starts inside L4
    result = result_of(alarms_at([at(6, 14)], times=times), times=times)
    assert result.alarms["outcome"].tolist() == ["earlier leak"]
    assert result.leaks["leak_id"].tolist() == ["L5"]
    assert E.event_scores(result)["event_false_alarms"] == 0


def test_without_volumes_the_water_and_economic_scores_are_nan():
    scores = E.event_scores(result_of(alarms_at(ALARM_STARTS.values()), water=False))
    assert math.isnan(scores["event_economic_share"]) and math.isnan(scores["event_water_saved_m3"])
    assert scores["event_recall"] == 0.8


def test_no_alarm_at_all_scores_zero_not_an_error():
    scores = E.event_scores(result_of(np.zeros(len(TIMES), dtype=bool)))
    assert (scores["event_recall"], scores["event_precision"], scores["event_f1"]) == (0, 0, 0)
    assert math.isnan(scores["event_detection_hours_median"])
    assert scores["event_economic_eur"] == 0.0


def test_weights_score_a_draw_as_the_stacked_rows():
    result = result_of(alarms_at(ALARM_STARTS.values()))
    doubled = E.event_scores(
        result,
        leak_weights=np.full(5, 2.0),
        alarm_weights=np.full(6, 2.0),
        days=2 * result.days,
    )
    stacked = replace(
        result,
        leaks=pd.concat([result.leaks, result.leaks]),
        alarms=pd.concat([result.alarms, result.alarms]),
        end=result.end + (result.end - result.start),
    )
    assert doubled == E.event_scores(stacked)
    assert doubled["event_false_alarms"] == 2 and doubled["event_detection_hours_p90"] == 24


def test_event_scores_refuse_weights_of_another_length():
    with pytest.raises(E.EventError, match=r"weights: \(2,\) leak and \(6,\) alarm weights"):
        E.event_scores(result_of(alarms_at(ALARM_STARTS.values())), leak_weights=np.ones(2))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"water_price_eur_m3": -1}, "water_price_eur_m3: expected a number of zero or more"),
        ({"false_alarm_cost_eur": float("nan")}, "false_alarm_cost_eur: expected a number"),
        ({"grace": "later"}, "grace: 'later' is not a duration"),
        ({"end": T0}, "end: the period must end"),
        (
            {"volumes": pd.DataFrame({"leak_id": ["L9"], "timestamp": [T0], "volume_m3": [1]})},
            "leak volumes: leak_id 'L9' is not in the leak table",
        ),
        ({"volumes": pd.DataFrame({"leak_id": ["L1"]})}, r"leak volumes: missing column\(s\)"),
    ],
)
def test_match_events_refuse_bad_input_naming_it(kwargs, message):
    call = {
        "start": TIMES[0],
        "end": TIMES[-1] + HOUR,
        "grace": "2h",
        "spacing": "1h",
        "water_price_eur_m3": PRICE,
        "false_alarm_cost_eur": FALSE_ALARM,
        **kwargs,
    }
    with pytest.raises(E.EventError, match=message):
        E.match_events([], E.leaks_from_table(LEAKS), **call)


# --- from a scored table ------------------------------------------------------------------------


def scored_frame() -> pd.DataFrame:
    flags = alarms_at(ALARM_STARTS.values())
    leaking = np.zeros(len(TIMES), dtype=int)
    for leak in E.leaks_from_table(LEAKS):
        leaking[(leak.start <= TIMES) & ((leak.end > TIMES) if leak.end else True)] = 1
    frame = pd.DataFrame({"time": TIMES, "leaks": leaking, "proba": np.where(flags, 0.9, 0.1)})
    return frame.sample(frac=1, random_state=0)  # any row order


def test_evaluate_events_with_the_leak_table_scores_as_the_parts_do():
    frame = scored_frame()
    spec = P.EventsSpec(min_duration="2h", join_gap="1h", grace="2h")
    result = E.evaluate_events(
        frame,
        frame["proba"].to_numpy(),
        threshold=0.5,
        timestamp="time",
        target="leaks",
        spec=spec,
        leak_table=LEAKS,
        volumes=volumes(),
    )
    assert E.event_scores(result) == E.event_scores(result_of(alarms_at(ALARM_STARTS.values())))


def test_evaluate_events_without_a_leak_table_takes_runs_of_the_target():
    frame = scored_frame()
    spec = P.EventsSpec(min_duration="2h", join_gap="1h", grace="2h")
    result = E.evaluate_events(
        frame, frame["proba"].to_numpy(), threshold=0.5, timestamp="time", target="leaks", spec=spec
    )
    # L4 and L5 overlap: the target shows one run from L4's start, lasting past the data
    assert len(result.leaks) == 4 and set(result.leaks["kind"]) == {E.UNKNOWN_KIND}
    assert math.isnan(E.event_scores(result)["event_economic_share"])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"timestamp": "when"}, "timestamp column 'when' is not in the table"),
        ({"proba": np.ones(3)}, r"proba: \(3,\) values for 240 rows"),
        ({"volumes": pd.DataFrame()}, "volumes: leak volumes need the leak table"),
        ({"frame": pd.concat([scored_frame()] * 2)}, "'time' repeats a time: events need one"),
    ],
)
def test_evaluate_events_refuses_bad_input_naming_it(kwargs, message):
    frame = kwargs.pop("frame", scored_frame())
    call = {
        "proba": np.full(len(frame), 0.1),
        "threshold": 0.5,
        "timestamp": "time",
        "target": "leaks",
        "spec": P.EventsSpec(),
        **kwargs,
    }
    with pytest.raises(E.EventError, match=message):
        E.evaluate_events(frame, **call)


def test_read_table_reads_csv_and_parquet_and_names_the_parameter(tmp_path):
    LEAKS.to_csv(tmp_path / "leaks.csv", index=False)
    LEAKS.to_parquet(tmp_path / "leaks.parquet")
    from_csv = E.leaks_from_table(E.read_table(str(tmp_path / "leaks.csv"), parameter="x"))
    from_parquet = E.leaks_from_table(E.read_table(str(tmp_path / "leaks.parquet"), parameter="x"))
    assert from_csv == from_parquet == E.leaks_from_table(LEAKS)
    with pytest.raises(E.EventError, match="dataset.leak_table: '.*nowhere.csv' does not exist"):
        E.read_table(str(tmp_path / "nowhere.csv"), parameter="dataset.leak_table")
    with pytest.raises(E.EventError, match="dataset.leak_volumes: '.*v.json' must be a .csv"):
        E.read_table("v.json", parameter="dataset.leak_volumes")
