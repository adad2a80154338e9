from datetime import timedelta

import numpy as np
import pandas as pd
import pytest

from leaklib import params as P
from leaklib import sensor_faults as S
from leaklib.params import listing

DAY = 96  # 15-minute rows per day
PRESSURES = ["p_a", "p_b", "p_c", "p_d", "p_e", "p_f"]
FLOWS = ["q_a", "q_b"]
SENSORS = [*PRESSURES, *FLOWS, "h_t1"]
KINDS = {**{p: "p_*" for p in PRESSURES}, **{q: "q_*" for q in FLOWS}, "h_t1": "h_t1"}
CHECKS = P.SensorChecks()


def stream(days: int = 4, seed: int = 0) -> pd.DataFrame:
    """Readings every 15 minutes: a shared daily demand cycle plus each sensor's own noise."""
    rng = np.random.default_rng(seed)
    n = days * DAY
    cycle = np.sin(np.arange(n) * 2 * np.pi / DAY)
    data = {"timestamp": pd.date_range("2019-01-01", periods=n, freq="15min")}
    for i, name in enumerate(PRESSURES):
        data[name] = 40 + i - 2 * cycle + rng.normal(0, 0.05, n)
    for name in FLOWS:
        data[name] = 20 + 5 * cycle + rng.normal(0, 0.2, n)
    data["h_t1"] = 3 + 0.5 * cycle + rng.normal(0, 0.01, n)
    data["hour_sin"] = cycle
    frame = pd.DataFrame(data)
    frame[SENSORS] = frame[SENSORS].round(3)
    return frame


def check(frame, checks=CHECKS, **options):
    return S.check_sensors(
        frame,
        sensors=options.pop("sensors", KINDS),
        timestamp="timestamp",
        bounds=options.pop("bounds", {"h_t1": (0.0, None)}),
        checks=checks,
        **options,
    )


def flagged(found, kind, sensor):
    """Rows (in time order) where one kind flagged one sensor."""
    return list(np.flatnonzero(found.flags[kind][:, found.sensors.index(sensor)]))


def test_clean_readings_raise_no_fault():
    found = check(stream())
    assert found.counts() == dict.fromkeys(S.FAULT_KINDS, 0)
    rows = found.rows()
    assert not rows["sensor_fault"].any() and (rows["fault_sensors"] == "").all()
    assert found.events().empty


def test_a_value_frozen_beyond_the_limit_is_stuck_from_then_on():
    frame = stream()
    frame.loc[200:215, "p_a"] = frame.loc[200, "p_a"]  # 16 equal rows: 3 h 45 min
    found = check(frame)
    # stuck once it has lasted more than 2 h: rows 209 (2 h 15 after row 200) to 215
    assert flagged(found, "stuck", "p_a") == list(range(209, 216))
    events = found.events()
    assert events[["sensor", "kind", "rows"]].values.tolist() == [["p_a", "stuck", 7]]
    assert events["first"][0] == frame["timestamp"][209]
    assert events["last"][0] == frame["timestamp"][215]


def test_a_value_frozen_for_exactly_the_limit_is_not_stuck():
    frame = stream()
    frame.loc[100:108, "p_b"] = frame.loc[100, "p_b"]  # 9 equal rows: exactly 2 h
    assert check(frame).counts()["stuck"] == 0
    shorter = P.SensorChecks(stuck_after="105min")
    assert flagged(check(frame, shorter), "stuck", "p_b") == [108]


def test_a_stopped_pump_reading_zero_is_not_stuck_unless_zero_is_not_allowed():
    frame = stream()
    frame.loc[40:80, "q_b"] = 0.0
    assert check(frame).counts()["stuck"] == 0
    strict = P.SensorChecks(stuck_allowed=[])
    assert flagged(check(frame, strict), "stuck", "q_b") == list(range(49, 81))


def test_every_missing_reading_is_a_gap():
    frame = stream()
    frame.loc[150:153, "p_c"] = np.nan
    found = check(frame)
    assert flagged(found, "gap", "p_c") == [150, 151, 152, 153]
    events = found.events()
    assert events[["sensor", "kind", "rows"]].values.tolist() == [["p_c", "gap", 4]]
    # a gap is not a jump, and the reading after it is not judged against the missing one
    assert found.counts()["jump"] == 0


def test_a_value_outside_the_declared_range_is_flagged_when_a_range_is_declared():
    frame = stream()
    frame.loc[300, "h_t1"] = -0.2
    frame.loc[301, "p_a"] = -5.0  # no range declared for p_a: not out of range
    found = check(frame)
    assert flagged(found, "out_of_range", "h_t1") == [300]
    assert found.counts()["out_of_range"] == 1


def test_declared_bounds_come_from_the_features():
    dataset = P.DatasetSpec(
        source="x.csv",
        target="leaks",
        features={"h_t1": {"type": "numeric", "min": 0, "max": 6}, "p_a": "numeric"},
    )
    assert S.declared_bounds(dataset) == {"h_t1": (0.0, 6.0)}


def test_a_jump_one_sensor_shows_alone_is_flagged():
    frame = stream()
    frame.loc[250:, "p_d"] += 3.0  # a step of 3 m on one sensor: 60 times its noise
    frame.loc[330, "q_a"] += 8.0  # a one-row spike on one flow: up, then back down
    found = check(frame)
    assert flagged(found, "jump", "p_d") == [250]
    assert flagged(found, "jump", "q_a") == [330, 331]
    assert found.counts()["jump"] == 3


def test_a_jump_the_whole_network_shows_is_not_flagged():
    frame = stream()
    frame.loc[270:, PRESSURES] -= 3.0  # a demand step: every pressure drops together
    frame.loc[270:, FLOWS] += 6.0
    assert check(frame).counts()["jump"] == 0


def test_an_abrupt_leak_felt_by_its_neighbours_too_is_not_a_jump():
    frame = stream()
    frame.loc[260:, "p_e"] -= 3.0  # the sensor nearest the leak
    frame.loc[260:, "p_f"] -= 0.5  # a neighbour: ten times its noise
    assert check(frame).counts()["jump"] == 0


def test_a_gradual_leak_like_drop_on_several_sensors_raises_no_fault():
    frame = stream()
    ramp = np.clip(np.arange(len(frame)) - 200, 0, None) * 0.02  # 2 cm per row from row 200
    for name, share in (("p_a", 1.0), ("p_b", 0.7), ("p_c", 0.4)):
        frame[name] = (frame[name] - share * ramp).round(3)
    frame["q_a"] = (frame["q_a"] + 0.05 * ramp).round(3)
    assert check(frame).counts() == dict.fromkeys(S.FAULT_KINDS, 0)


def drifting(frame, name, start, metres_per_day):
    """Let one sensor drift linearly from row ``start`` on."""
    ramp = np.clip(np.arange(len(frame)) - start, 0, None) * metres_per_day / DAY
    frame[name] = (frame[name] - ramp).round(3)
    return frame


def test_a_sensor_drifting_alone_is_flagged_once_the_drift_has_lasted():
    frame = drifting(stream(days=5), "p_b", 2 * DAY, 1.0)  # 1 m a day from day 3
    found = check(frame)
    rows = flagged(found, "drift", "p_b")
    assert rows and found.counts() == {**dict.fromkeys(S.FAULT_KINDS, 0), "drift": len(rows)}
    first = rows[0]
    # judged only after it lasted 4 h beyond drift_k, and never before the drift began
    assert 2 * DAY + 16 < first < 3 * DAY
    events = found.events()
    assert events[["sensor", "kind"]].values.tolist() == [["p_b", "drift"]]
    assert events["first"][0] == frame["timestamp"][first]
    assert check(frame, P.SensorChecks(drift_k=None)).counts()["drift"] == 0


def test_a_drift_felt_by_a_neighbour_too_or_by_every_sensor_is_not_a_drift():
    leak = drifting(drifting(stream(days=5), "p_b", 2 * DAY, 1.0), "p_c", 2 * DAY, 0.4)
    assert check(leak).counts()["drift"] == 0
    network = stream(days=5)
    for name in PRESSURES:
        network = drifting(network, name, 2 * DAY, 1.0)  # demand growing everywhere
    assert check(network).counts()["drift"] == 0


def test_a_faulty_reading_is_no_baseline_for_the_next_days_drift():
    frame = stream(days=5)
    frame.loc[2 * DAY + 20 : 2 * DAY + 60, "p_a"] = frame.loc[2 * DAY + 20, "p_a"]  # 10 h
    found = check(frame)
    assert flagged(found, "stuck", "p_a") == list(range(2 * DAY + 29, 2 * DAY + 61))
    drift = flagged(found, "drift", "p_a")  # a stuck sensor leaves its pattern, that day only
    assert drift and max(drift) < 3 * DAY


def test_the_first_day_is_not_checked_for_jumps_nor_a_sensor_without_peers():
    frame = stream()
    frame.loc[50:, "p_a"] += 3.0  # day 1: no earlier day to judge the change by
    frame.loc[250:, "h_t1"] += 2.0  # the only level sensor: nothing to compare it with
    found = check(frame)
    assert found.counts()["jump"] == 0
    assert check(frame, P.SensorChecks(jump_k=None)).counts()["jump"] == 0


def test_excluded_sensors_never_jump():
    frame = stream()
    frame.loc[250:, "q_b"] += 8.0
    assert flagged(check(frame), "jump", "q_b") == [250]
    assert check(frame, P.SensorChecks(peer_exclude=["q_b"])).counts()["jump"] == 0


def test_rows_name_every_faulty_sensor_in_the_tables_own_order():
    frame = stream()
    frame.loc[150:151, "p_c"] = np.nan
    frame.loc[151, "h_t1"] = -1.0
    frame.index = frame.index * 10 + 3
    shuffled = frame.sample(frac=1, random_state=1)
    rows = check(shuffled).rows()
    assert rows.index.equals(shuffled.index)
    assert rows.loc[1503, "fault_sensors"] == "p_c"
    assert rows.loc[1513, "fault_sensors"] == "p_c,h_t1"
    assert rows["sensor_fault"].sum() == 2
    assert set(rows.loc[~rows["sensor_fault"], "fault_sensors"]) == {""}


def test_runs_do_not_cross_from_one_group_to_the_next():
    one, two = stream(days=2), stream(days=2, seed=1)
    one.loc[DAY * 2 - 3 :, "p_a"] = np.nan  # the last 3 rows of the first series
    two.loc[:1, "p_a"] = np.nan  # the first 2 rows of the second
    one["site"], two["site"] = "north", "south"
    table = pd.concat([one, two], ignore_index=True)
    events = check(table, group="site").events()
    assert events[["site", "sensor", "kind", "rows"]].values.tolist() == [
        ["north", "p_a", "gap", 3],
        ["south", "p_a", "gap", 2],
    ]


def test_the_mark_spreads_forward_over_the_rows_whose_features_read_the_fault():
    frame = stream()
    frame.loc[150, "p_c"] = np.nan
    frame.loc[160, "q_a"] = np.nan
    found = check(frame)
    spread = found.spread(3)
    assert flagged(spread, "gap", "p_c") == [150, 151, 152, 153]
    rows = spread.rows()
    assert rows.loc[153, "fault_sensors"] == "p_c" and not rows.loc[154, "sensor_fault"]
    per_sensor = found.spread({"p_c": 2})  # q_a not named: its own row only
    assert flagged(per_sensor, "gap", "p_c") == [150, 151, 152]
    assert flagged(per_sensor, "gap", "q_a") == [160]
    assert found.spread(0) is found
    # events describe the faults as found
    assert found.events()["rows"].tolist() == [1, 1]


def test_the_mark_does_not_spread_into_the_next_group():
    one, two = stream(days=2), stream(days=2, seed=1)
    one.loc[DAY * 2 - 1, "p_a"] = np.nan
    one["site"], two["site"] = "north", "south"
    table = pd.concat([one, two], ignore_index=True)
    rows = check(table, group="site").spread(5).rows()
    assert rows["sensor_fault"].sum() == 1


def test_a_bad_lookback_is_refused_naming_the_sensor():
    found = check(stream())
    with pytest.raises(S.SensorCheckError, match="lookback of 'p_a'.*>= 0, got -1"):
        found.spread(-1)
    with pytest.raises(S.SensorCheckError, match=r"not checked: \['p_z'\]"):
        found.spread({"p_z": 4})


def test_checking_in_two_calls_with_the_lookback_gives_the_same_marks_as_one_call():
    frame = stream(days=10)
    frame.loc[700:760, "p_a"] = frame.loc[700, "p_a"]
    frame.loc[705, "p_b"] = np.nan
    frame.loc[770:, "p_d"] += 3.0
    frame = drifting(frame, "p_e", 600, 1.0)
    checks = P.SensorChecks(scale_days=2)
    whole = check(frame, checks).rows()
    since = 712  # the second call scores from here, reading its lookback before it
    lookback = S.lookback_rows(checks, step=timedelta(minutes=15))
    assert lookback == 4 * DAY + 32 + 1  # drift: 1 day back, 3 days of scale, 4 h + 4 h
    later = check(frame.loc[since - lookback :], checks).rows()
    assert later.loc[since:].equals(whole.loc[since:])
    found = check(frame.loc[since - lookback :], checks).events().set_index(["sensor", "kind"])
    # p_b missing at 705; p_a stuck until 760, then back to its true value with a jump (and no
    # drift the next day: a stuck reading is no baseline); p_d's step at 770, which stays away
    # from the day before for a day; p_e drifting from row 600
    expected = {
        ("p_b", "gap"),
        ("p_a", "stuck"),
        ("p_a", "jump"),
        ("p_d", "jump"),
        ("p_d", "drift"),
        ("p_e", "drift"),
    }
    assert set(found.index) == expected
    assert found.loc[("p_d", "jump"), "first"] == frame["timestamp"][770]
    short = check(frame.loc[since - 5 :], checks).rows()  # the stuck run looks younger
    assert not short.loc[since:].equals(whole.loc[since:])


def test_lookback_rows_follows_the_checks():
    step = timedelta(minutes=15)
    stuck_only = P.SensorChecks(jump_k=None, drift_k=None)
    assert S.lookback_rows(stuck_only, step=step) == 9  # 2 h and one row
    assert S.lookback_rows(P.SensorChecks(drift_k=None), step=step) == 8 * DAY + 1
    assert S.lookback_rows(CHECKS, step=step) == 9 * DAY + 32 + 1
    with pytest.raises(S.SensorCheckError, match="step must be a positive duration"):
        S.lookback_rows(CHECKS, step=timedelta(0))


def dataset(**changes):
    spec = {
        "source": "stream.parquet",
        "target": "leaks",
        "features": {
            **dict.fromkeys(SENSORS, "numeric"),
            "hour_sin": {"type": "numeric", "min": -1, "max": 1},
            "zone": "categorical",
        },
        "timestamp": "timestamp",
        **changes,
    }
    return P.DatasetSpec.model_validate(spec)


def test_sensors_and_kinds_come_from_the_derive_block_else_every_numeric_feature():
    derived = dataset(
        group="site",
        derive=[{"kind": "diff", "columns": ["p_*", "q_*", "h_t1"], "steps": 4}],
    )
    assert S.sensor_kinds(derived, checks=CHECKS) == KINDS
    plain = S.sensor_kinds(dataset(), checks=CHECKS)  # the clock feature is excluded
    assert plain == {**{p: "p" for p in PRESSURES}, **{q: "q" for q in FLOWS}, "h_t1": "h"}
    named = S.sensor_kinds(dataset(), checks=P.SensorChecks(sensors=["q_*", "p_[ab]"]))
    assert named == {"p_a": "p_[ab]", "p_b": "p_[ab]", "q_a": "q_*", "q_b": "q_*"}


def test_a_sensor_pattern_that_matches_nothing_is_refused_naming_the_key():
    with pytest.raises(S.SensorCheckError, match=r"sensor_checks.sensors: 'x_\*' matches no"):
        S.sensor_kinds(dataset(), checks=P.SensorChecks(sensors=["x_*"]))
    with pytest.raises(S.SensorCheckError, match="no numeric feature is left to check"):
        S.sensor_kinds(dataset(), checks=P.SensorChecks(exclude=["*"]))


def test_check_dataset_reads_the_sensors_bounds_and_order_from_the_dataset():
    frame = stream()
    frame.loc[300, "h_t1"] = -0.2
    spec = dataset(
        features={**dict.fromkeys(SENSORS, "numeric"), "h_t1": {"type": "numeric", "min": 0}}
    )
    found = S.check_dataset(frame, dataset=spec, checks=CHECKS)
    assert found.sensors == tuple(SENSORS)
    assert flagged(found, "out_of_range", "h_t1") == [300]
    with pytest.raises(S.SensorCheckError, match="need dataset.timestamp"):
        S.check_dataset(frame, dataset=dataset(timestamp=None), checks=CHECKS)


def test_times_with_a_zone_come_back_with_it():
    frame = stream()
    frame["timestamp"] = frame["timestamp"].dt.tz_localize("Europe/Athens")
    frame.loc[10, "p_a"] = np.nan
    first = check(frame).events()["first"][0]
    assert first == frame["timestamp"][10] and str(first.tz) == "Europe/Athens"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda f: f.drop(columns="p_a"), r"sensor column\(s\) not in the table: \['p_a'\]"),
        (lambda f: f.drop(columns="timestamp"), "timestamp column 'timestamp' is not in the table"),
        (lambda f: f.assign(timestamp=f["timestamp"].astype(str)), "does not hold times"),
        (lambda f: pd.concat([f, f.tail(1)], ignore_index=True), "repeats a time in the table"),
        (lambda f: f.iloc[:0], "the table has no rows"),
        (lambda f: f.set_axis([0] * len(f)), "index repeats a label"),
    ],
)
def test_a_table_the_checks_cannot_read_is_refused_saying_why(change, message):
    with pytest.raises(S.SensorCheckError, match=message):
        check(change(stream()))


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("stuck_after", "2 hours", "stuck_after"),
        ("stuck_after", 7200, "give a duration with its unit"),
        ("stuck_after", "-2h", "stuck_after"),
        ("stuck_after", "0min", "must be a positive duration"),
        ("jump_k", 0, "greater than 0"),
        ("peers_below", -1, "greater than 0"),
        ("scale_days", 0, "greater than or equal to 1"),
        ("sensors", ["p_*", "p_*"], "each column pattern at most once"),
        ("exclude", [""], "a column pattern cannot be empty"),
        ("no_such_check", 1, "Extra inputs are not permitted"),
    ],
)
def test_a_bad_sensor_check_is_refused_naming_its_key(key, value, message):
    with pytest.raises(P.ParameterError) as caught:
        P.validate(P.merge([P.defaults()], [(f"sensor_checks.{key}", value)]))
    assert f"sensor_checks.{key}" in str(caught.value) and message in str(caught.value)


def test_the_checks_can_be_turned_off_and_durations_read_in_several_forms():
    assert P.validate(P.merge([P.defaults()], [("sensor_checks", None)])).sensor_checks is None
    assert P.load().sensor_checks.stuck_after == timedelta(hours=2)
    for text, expected in (("90min", 90), ("1.5d", 2160), ("PT3H", 180), ("45 min", 45)):
        assert P.SensorChecks(stuck_after=text).stuck_after == timedelta(minutes=expected)


def test_leak_params_lists_each_sensor_check_with_its_default_and_a_sentence():
    rows = {row["name"]: row for row in listing.describe()}
    for key in P.SensorChecks.model_fields:
        row = rows[f"sensor_checks.{key}"]
        assert row["description"].endswith(".") and row["default"] != "", key
    assert rows["sensor_checks.stuck_after"]["default"] == "2h"


def test_the_median_of_the_other_sensors_leaves_each_one_out_ties_and_gaps_included():
    rng = np.random.default_rng(3)
    values = rng.integers(0, 4, (400, 5)).astype(float)
    values[rng.random(values.shape) < 0.2] = np.nan
    expected = np.full(values.shape, np.nan)
    for i, row in enumerate(values):
        for j in np.flatnonzero(~np.isnan(row)):
            others = np.delete(row, j)
            if (~np.isnan(others)).any():
                expected[i, j] = np.nanmedian(others)
    np.testing.assert_array_equal(S._median_of_others(values), expected)
