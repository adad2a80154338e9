import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from leaklib import params as P
from leaklib.features import DeriveError, DeriveSpec, derive_features, lookback

PERIOD = 4  # rows per "day" in the fixture
FEATURES = {
    "p_a": P.FeatureSpec(type="numeric"),
    "p_b": P.FeatureSpec(type="numeric"),
    "q_in": P.FeatureSpec(type="numeric"),
    "zone": P.FeatureSpec(type="categorical"),
}


def readings(rng, n) -> dict:
    """The declared columns and the target for ``n`` rows, drawn in a fixed order."""
    return {
        "p_a": rng.normal(50, 1, n),
        "p_b": rng.normal(30, 1, n),
        "q_in": rng.normal(10, 1, n),
        "zone": rng.choice(["x", "y"], n),
        "leaks": rng.integers(0, 2, n),
    }


def series_table(lengths=(14, 11, 9), seed=0) -> pd.DataFrame:
    """Groups of different lengths, rows shuffled, index not a range."""
    rng = np.random.default_rng(seed)
    parts = []
    for g, n in enumerate(lengths):
        parts.append(
            pd.DataFrame(
                {
                    "site": f"s{g}",
                    "time": pd.date_range("2024-01-01", periods=n, freq="15min"),
                    **readings(rng, n),
                }
            )
        )
    table = pd.concat(parts, ignore_index=True)
    table.index = table.index * 10 + 7
    return table.sample(frac=1, random_state=seed)


def derive(table, blocks, **roles):
    spec = DeriveSpec.model_validate(blocks)
    return derive_features(
        table,
        spec=spec,
        group=roles.get("group", "site"),
        timestamp=roles.get("timestamp", "time"),
        features=FEATURES,
    )


def ordered(frame, site):
    return frame[frame["site"] == site].sort_values("time")


ALL_KINDS = [
    {"kind": "diff", "columns": "p_*", "steps": 3},
    {"kind": "seasonal_deviation", "columns": ["p_*", "q_in"], "period": PERIOD, "periods": 2},
    {"kind": "seasonal_deviation", "columns": "*", "period": PERIOD, "baseline": "first"},
    {
        "kind": "seasonal_deviation",
        "columns": "q_in",
        "period": PERIOD,
        "periods": 2,
        "baseline": "first",
        "window": 3,
    },
    {"kind": "rolling", "columns": "p_a", "window": 3, "stats": ["mean", "std", "min", "max"]},
    {
        "kind": "seasonal_deviation",
        "columns": "p_*",
        "period": PERIOD,
        "baseline": "trailing",
        "days": 2,
    },
    {
        "kind": "seasonal_deviation",
        "columns": "q_in",
        "period": PERIOD,
        "baseline": "trailing",
        "days": 1,
        "window": 2,
    },
]
# every kind that a stream (no group) allows: no baseline first; same weekday needs weeks
STREAM_KINDS = [block for block in ALL_KINDS if block.get("baseline") != "first"] + [
    {
        "kind": "seasonal_deviation",
        "columns": ["p_a", "q_in"],
        "period": PERIOD,
        "baseline": "trailing",
        "days": 2,
        "same_weekday": True,
        "window": 3,
    },
]


def stream_table(n=80, seed=0) -> pd.DataFrame:
    """One series without a group column: 20 "days" of 4 rows, rows shuffled."""
    rng = np.random.default_rng(seed)
    table = pd.DataFrame(
        {"time": pd.date_range("2024-01-01", periods=n, freq="6h"), **readings(rng, n)}
    )
    return table.sample(frac=1, random_state=seed)


def derive_stream(table, blocks):
    return derive(table, blocks, group=None)


def test_diff_is_the_change_against_steps_rows_earlier_in_the_group():
    out, _ = derive(series_table(), [{"kind": "diff", "columns": "p_a", "steps": 3}])
    part = ordered(out, "s0")
    x = part["p_a"].to_numpy()
    assert np.isnan(part["p_a__diff3"].to_numpy()[:3]).all()
    np.testing.assert_allclose(part["p_a__diff3"].to_numpy()[3:], x[3:] - x[:-3])


def test_seasonal_deviation_averages_the_previous_periods():
    block = {"kind": "seasonal_deviation", "columns": "p_a", "period": PERIOD, "periods": 2}
    out, _ = derive(series_table(), [block])
    part = ordered(out, "s0")
    x, d = part["p_a"].to_numpy(), part["p_a__sdev4x2"].to_numpy()
    assert np.isnan(d[: 2 * PERIOD]).all()
    np.testing.assert_allclose(d[8:], x[8:] - (x[4:-4] + x[:-8]) / 2)


def test_first_baseline_is_the_same_phase_of_the_groups_first_period():
    block = {"kind": "seasonal_deviation", "columns": "p_a", "period": PERIOD, "baseline": "first"}
    out, _ = derive(series_table(), [block])
    part = ordered(out, "s1")
    x, d = part["p_a"].to_numpy(), part["p_a__fdev4x1"].to_numpy()
    reference = np.resize(x[:PERIOD], len(x))
    np.testing.assert_allclose(d, x - reference)  # 0 in the first period: it is the reference


def test_first_baseline_over_two_periods_waits_until_both_are_seen():
    block = {
        "kind": "seasonal_deviation",
        "columns": "p_a",
        "period": PERIOD,
        "periods": 2,
        "baseline": "first",
    }
    out, _ = derive(series_table(), [block])
    part = ordered(out, "s0")
    x, d = part["p_a"].to_numpy(), part["p_a__fdev4x2"].to_numpy()
    assert np.isnan(d[:PERIOD]).all()
    reference = np.resize((x[:4] + x[4:8]) / 2, len(x))
    np.testing.assert_allclose(d[PERIOD:], (x - reference)[PERIOD:])


def test_window_smooths_the_deviation_with_a_trailing_mean():
    plain = {"kind": "seasonal_deviation", "columns": "p_a", "period": PERIOD, "baseline": "first"}
    out, _ = derive(series_table(), [plain, {**plain, "window": 3}])
    part = ordered(out, "s0")
    expected = part["p_a__fdev4x1"].rolling(3).mean()
    np.testing.assert_allclose(part["p_a__fdev4x1w3"], expected)


def test_rolling_statistics_match_pandas_within_each_group():
    block = {"kind": "rolling", "columns": "p_b", "window": 3, "stats": ["mean", "std", "max"]}
    out, new = derive(series_table(), [block])
    assert list(new) == ["p_b__mean3", "p_b__std3", "p_b__max3"]
    for site in ("s0", "s2"):
        part = ordered(out, site)
        rolling = part["p_b"].rolling(3)
        np.testing.assert_allclose(part["p_b__mean3"], rolling.mean())
        np.testing.assert_allclose(part["p_b__std3"], rolling.std())
        np.testing.assert_allclose(part["p_b__max3"], rolling.max())


def test_rows_keep_their_order_and_index_and_the_input_is_untouched():
    table = series_table()
    before = table.copy()
    out, new = derive(table, ALL_KINDS)
    pd.testing.assert_frame_equal(table, before)
    assert out.index.equals(table.index)
    pd.testing.assert_frame_equal(out[table.columns], table)
    assert list(out.columns) == [*table.columns, *new]


def test_new_columns_are_named_readably_and_typed_numeric():
    _, new = derive(series_table(), ALL_KINDS)
    assert list(new)[:2] == ["p_a__diff3", "p_b__diff3"]
    assert {"q_in__sdev4x2", "q_in__fdev4x1", "q_in__fdev4x2w3", "p_a__std3"} <= set(new)
    assert all(spec.type == "numeric" for spec in new.values())


def test_patterns_select_numeric_features_in_declared_order_only():
    block = {"kind": "diff", "columns": ["q_*", "p_b", "*"], "steps": 1}
    out, new = derive(series_table(), [block])
    assert list(new) == ["p_a__diff1", "p_b__diff1", "q_in__diff1"]  # not zone, site or leaks


def test_each_group_is_derived_on_its_own():
    table = series_table()
    together, _ = derive(table, ALL_KINDS)
    alone, _ = derive(table[table["site"] == "s1"], ALL_KINDS)
    pd.testing.assert_frame_equal(together.loc[alone.index], alone)


def test_output_is_deterministic():
    a, _ = derive(series_table(), ALL_KINDS)
    b, _ = derive(series_table(), ALL_KINDS)
    pd.testing.assert_frame_equal(a, b)


@pytest.mark.parametrize("seed", range(6))
def test_no_look_ahead_later_rows_never_change_earlier_values(seed):
    """Change, append or remove rows after a random cut: values up to the cut stay exactly."""
    rng = np.random.default_rng(seed)
    table = series_table(seed=seed)
    base, new = derive(table, ALL_KINDS)
    for site, part in table.groupby("site"):
        times = np.sort(part["time"].to_numpy())
        cut = pd.Timestamp(times[rng.integers(0, len(times))])
        later = (table["site"] == site) & (table["time"] > cut)
        kept = (table["site"] == site) & (table["time"] <= cut)

        changed = table.copy()
        for column in ("p_a", "p_b", "q_in"):
            changed.loc[later, column] = rng.normal(0, 100, later.sum())
        changed.loc[later, "leaks"] = 1 - changed.loc[later, "leaks"]
        changed.loc[later, "zone"] = "z"
        extra = part.iloc[:3].assign(time=cut + pd.to_timedelta([30, 31, 32], unit="D"))
        extra.index = extra.index + 1
        appended = pd.concat([changed, extra])
        removed = table[~later]
        for variant in (changed, appended, removed):
            out, _ = derive(variant, ALL_KINDS)
            np.testing.assert_array_equal(
                out.loc[kept[kept].index, list(new)].to_numpy(),
                base.loc[kept[kept].index, list(new)].to_numpy(),
            )


def test_an_empty_block_returns_the_frame_unchanged_without_roles():
    table = series_table()
    out, new = derive(table, [], group=None, timestamp=None)
    assert out is table and new == {}


def test_derive_without_a_timestamp_is_refused():
    with pytest.raises(DeriveError, match="derive needs a timestamp column.*timestamp is null"):
        derive(series_table(), ALL_KINDS, timestamp=None)


def test_a_first_baseline_without_a_group_is_refused_with_the_reason():
    with pytest.raises(
        DeriveError, match=r"derive\[2\]\.baseline: first needs a group: without one the table"
    ):
        derive(series_table(), ALL_KINDS, group=None)


def test_a_pattern_that_matches_nothing_is_named():
    block = {"kind": "diff", "columns": ["p_*", "h_*"], "steps": 1}
    with pytest.raises(DeriveError, match=r"derive\[1\]\.columns: 'h_\*' matches no numeric"):
        derive(series_table(), [ALL_KINDS[0], block])


def test_a_categorical_feature_cannot_be_derived():
    with pytest.raises(DeriveError, match=r"derive\[0\]\.columns: 'zone' matches no numeric"):
        derive(series_table(), [{"kind": "diff", "columns": "zone", "steps": 1}])


@pytest.mark.parametrize(
    ("block", "key"),
    [
        ({"kind": "diff", "columns": "p_a", "steps": 14}, "steps: 14 needs 14 earlier rows"),
        ({"kind": "rolling", "columns": "p_a", "window": 15}, "window: 15 needs 14 earlier rows"),
        (
            {"kind": "seasonal_deviation", "columns": "p_a", "period": 15, "baseline": "first"},
            "period: 15 needs 14 earlier rows",
        ),
        (
            {"kind": "seasonal_deviation", "columns": "p_a", "period": 5, "periods": 3},
            "periods: 3 needs 15 earlier rows",
        ),
    ],
)
def test_history_longer_than_the_longest_group_is_refused(block, key):
    with pytest.raises(DeriveError, match=rf"derive\[0\]\.{key}, but the longest 'site' group"):
        derive(series_table(), [block])


def test_a_repeated_time_within_a_group_is_refused():
    table = series_table()
    table.loc[table.index[:2], ["site", "time"]] = ["s0", pd.Timestamp("2024-01-01")]
    with pytest.raises(DeriveError, match="'time' repeats a time within a 'site' group"):
        derive(table, ALL_KINDS)


def test_a_column_derived_twice_is_refused():
    block = {"kind": "diff", "columns": "p_a", "steps": 2}
    with pytest.raises(DeriveError, match=r"derive\[1\]: column 'p_a__diff2' is derived twice"):
        derive(series_table(), [block, block])


@pytest.mark.parametrize(
    ("block", "message"),
    [
        (
            {"kind": "diff", "columns": "p_a", "steps": 1, "lag": 2},
            "Extra inputs are not permitted",
        ),
        ({"kind": "lag", "columns": "p_a"}, "does not match any of the expected tags"),
        ({"kind": "diff", "columns": "p_a", "steps": 0}, "greater than 0"),
        ({"kind": "diff", "columns": [], "steps": 1}, "select at least one column"),
        ({"kind": "rolling", "columns": "p_a", "window": 3, "stats": ["mean", "mean"]}, "once"),
    ],
)
def test_a_malformed_block_is_refused_by_the_spec(block, message):
    with pytest.raises(ValidationError, match=message):
        DeriveSpec.model_validate([block])


# --- the trailing baseline, streams without a group, lookback ---------------------------------


def test_trailing_baseline_is_the_median_of_the_same_phase_over_previous_days():
    block = {
        "kind": "seasonal_deviation",
        "columns": "p_a",
        "period": PERIOD,
        "baseline": "trailing",
        "days": 3,
    }
    out, new = derive(series_table(), [block])
    assert list(new) == ["p_a__tdev4x3"]
    part = ordered(out, "s0")
    x, d = part["p_a"].to_numpy(), part["p_a__tdev4x3"].to_numpy()
    assert np.isnan(d[: 3 * PERIOD]).all()
    expected = x[12:] - np.median([x[8:-4], x[4:-8], x[:-12]], axis=0)
    np.testing.assert_allclose(d[12:], expected)
    assert np.isnan(ordered(out, "s2")["p_a__tdev4x3"]).all()  # 9 rows: never 3 days back


def test_same_weekday_takes_the_same_phase_of_previous_weeks():
    block = {
        "kind": "seasonal_deviation",
        "columns": "p_a",
        "period": PERIOD,
        "baseline": "trailing",
        "days": 2,
        "same_weekday": True,
    }
    out, new = derive_stream(stream_table(), [block])
    assert list(new) == ["p_a__tdev4x2wk"]
    part = out.sort_values("time")
    x, d = part["p_a"].to_numpy(), part["p_a__tdev4x2wk"].to_numpy()
    week = 7 * PERIOD
    assert np.isnan(d[: 2 * week]).all()
    np.testing.assert_allclose(d[2 * week :], x[2 * week :] - (x[week:-week] + x[: -2 * week]) / 2)


def test_a_missing_reading_is_left_out_of_the_trailing_median():
    table = stream_table().sort_values("time").reset_index(drop=True)
    table.loc[8, "p_a"] = np.nan  # a gap, two days before row 16
    block = {
        "kind": "seasonal_deviation",
        "columns": "p_a",
        "period": PERIOD,
        "baseline": "trailing",
        "days": 3,
    }
    out, _ = derive_stream(table, [block])
    x = table["p_a"].to_numpy()
    assert out.loc[16, "p_a__tdev4x3"] == pytest.approx(x[16] - np.median([x[12], x[4]]))


def test_a_stream_without_a_group_is_one_series():
    stream = stream_table()
    alone, new = derive_stream(stream, STREAM_KINDS)
    grouped, _ = derive(stream.assign(site="all"), STREAM_KINDS)
    pd.testing.assert_frame_equal(alone, grouped.drop(columns="site"))
    assert alone.index.equals(stream.index) and len(new) == 14


def test_a_repeated_time_in_a_stream_is_refused():
    stream = stream_table()
    with pytest.raises(DeriveError, match="'time' repeats a time \\(the table is one series"):
        derive_stream(pd.concat([stream, stream.iloc[:1]]), STREAM_KINDS)


def test_history_longer_than_a_stream_is_refused_naming_the_table():
    block = {
        "kind": "seasonal_deviation",
        "columns": "p_a",
        "period": PERIOD,
        "baseline": "trailing",
        "days": 3,
        "same_weekday": True,
    }
    with pytest.raises(
        DeriveError,
        match=r"derive\[0\]\.days: 3 needs 84 earlier rows, but the table \(one series\)",
    ):
        derive_stream(stream_table(), [block])


@pytest.mark.parametrize("seed", range(4))
def test_no_look_ahead_on_a_stream_for_every_kind(seed):
    """Change, append or remove rows after a random cut: values up to the cut stay exactly."""
    rng = np.random.default_rng(seed)
    stream = stream_table(seed=seed)
    base, new = derive_stream(stream, STREAM_KINDS)
    cut = pd.Timestamp(np.sort(stream["time"].to_numpy())[rng.integers(60, len(stream))])
    later, kept = stream["time"] > cut, stream["time"] <= cut
    changed = stream.copy()
    for column in ("p_a", "p_b", "q_in"):
        changed.loc[later, column] = rng.normal(0, 100, later.sum())
    extra = stream.iloc[:3].assign(time=cut + pd.to_timedelta([30, 31, 32], unit="D"))
    extra.index = extra.index + 1000
    for variant in (changed, pd.concat([changed, extra]), stream[kept]):
        out, _ = derive_stream(variant, STREAM_KINDS)
        np.testing.assert_array_equal(
            out.loc[kept[kept].index, list(new)].to_numpy(),
            base.loc[kept[kept].index, list(new)].to_numpy(),
        )


def test_each_derivation_states_its_lookback():
    spec = DeriveSpec.model_validate(ALL_KINDS)
    assert [d.lookback for d in spec.root] == [3, 8, None, None, 2, 8, 5]
    assert spec.lookback is None and lookback(spec) is None  # first: the series from its start
    stream = DeriveSpec.model_validate(STREAM_KINDS)
    assert [d.lookback for d in stream.root][-1] == 2 * 7 * PERIOD + 2
    assert lookback(stream) == 58 and lookback(DeriveSpec()) == 0


@pytest.mark.parametrize("cut", [58, 63, 71])
def test_lookback_rows_before_a_cut_give_the_values_of_the_whole_stream(cut):
    """What `leak score --since` relies on: read lookback rows before the first row written."""
    stream = stream_table().sort_values("time").reset_index(drop=True)
    spec = DeriveSpec.model_validate(STREAM_KINDS)
    whole, new = derive_stream(stream, STREAM_KINDS)
    part, _ = derive_stream(stream.iloc[cut - lookback(spec) :], STREAM_KINDS)
    np.testing.assert_array_equal(
        part.loc[cut:, list(new)].to_numpy(), whole.loc[cut:, list(new)].to_numpy()
    )
    assert part.loc[cut:, list(new)].notna().all().all()
    shorter, _ = derive_stream(stream.iloc[cut - lookback(spec) + 1 :], STREAM_KINDS)
    assert shorter.loc[cut, list(new)].isna().any()  # one row fewer is not enough


@pytest.mark.parametrize(
    ("block", "message"),
    [
        ({"baseline": "trailing", "periods": 2}, "counts its periods in days"),
        ({"baseline": "previous", "days": 3}, "days applies to baseline trailing only"),
        ({"baseline": "first", "same_weekday": True}, "same_weekday applies to baseline trailing"),
    ],
)
def test_trailing_keys_belong_to_the_trailing_baseline(block, message):
    block = {"kind": "seasonal_deviation", "columns": "p_a", "period": PERIOD, **block}
    with pytest.raises(ValidationError, match=message):
        DeriveSpec.model_validate([block])
