"""leaklib.splits: a holdout that stays put as the table grows, and what a champion saw."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from leaklib import splits
from leaklib.run_record import RunRecord
from leaklib.splits import SplitError, TrainedOn
from tests.conftest import make_table

COLUMNS = splits.identity_columns(["p_a", "p_b", "zone", "valve_open"], "leaks")


def _split(frame: pd.DataFrame, *, group: str | None = "scenario_id", test_size: float = 0.25):
    return splits.split_holdout(
        frame, target="leaks", group=group, columns=COLUMNS, test_size=test_size
    )


def _held_groups(frame: pd.DataFrame, split: splits.HoldoutSplit) -> set[int]:
    return set(frame.iloc[split.holdout]["scenario_id"])


def test_holdout_keeps_groups_whole_and_both_classes():
    table = make_table(scenarios=40)
    split = _split(table)
    held, trained = _held_groups(table, split), set(table.iloc[split.train]["scenario_id"])
    assert not held & trained and len(split.train) + len(split.holdout) == len(table)
    assert table.iloc[split.holdout]["leaks"].nunique() == 2
    assert set(split.train_groups) == trained


def test_a_grown_table_keeps_every_old_groups_side():
    small, grown = make_table(scenarios=20), make_table(scenarios=60)
    before, after = _split(small), _split(grown)
    assert before.rule.startswith(splits.RULE_GROUP)
    assert _held_groups(small, before) == _held_groups(grown, after) & set(range(20))
    assert _held_groups(grown, after) - set(range(20))  # new groups go to both sides too


def test_membership_depends_on_nothing_but_the_groups_value():
    table = make_table(scenarios=40)
    shuffled = table.sample(frac=1.0, random_state=3).reset_index(drop=True)
    assert _held_groups(table, _split(table)) == _held_groups(shuffled, _split(shuffled))


def test_the_holdout_share_follows_test_size():
    table = make_table(scenarios=400, rows_per=10)
    share = len(_held_groups(table, _split(table, test_size=0.2))) / 400
    assert 0.15 < share < 0.25


def test_rows_without_a_group_keep_their_side_in_a_grown_table():
    grown = make_table(scenarios=30, rows_per=40)
    small = grown[grown["scenario_id"] < 20]
    before, after = _split(small, group=None), _split(grown, group=None)
    held_before = set(small.index[before.holdout])
    held_after = set(grown.index[after.holdout]) & set(small.index)
    assert held_before == held_after and before.units == "row"
    assert abs(len(after.holdout) / len(grown) - 0.25) < 0.03


def test_a_class_held_out_whole_keeps_its_highest_hash_group_for_training():
    table = make_table(scenarios=8)  # quiet groups 3 and 7 both hash below 0.4 (0.334, 0.075)
    split = _split(table, test_size=0.4)
    assert split.rule.endswith("class 0's highest-hash group kept for training")
    assert _held_groups(table, split) == {7, 4, 5}  # 4 and 5 leak and hash below 0.4


def test_a_class_with_no_group_held_out_gets_its_lowest_hash_group_in():
    table = make_table(scenarios=12)  # quiet groups 3 (0.334), 7 (0.075), 11 (0.425)
    split = _split(table, test_size=0.07)
    assert "class 0's lowest-hash group held out" in split.rule
    assert 7 in _held_groups(table, split)


def test_an_adjusted_holdout_never_takes_in_a_group_the_smaller_table_trained_on():
    for size in range(8, 40, 4):
        small, grown = _split(make_table(scenarios=size)), _split(make_table(scenarios=size + 4))
        trained = set(small.train_groups)
        held_later = _held_groups(make_table(scenarios=size + 4), grown)
        assert not trained & held_later, size


def test_a_holdout_that_leaves_a_class_no_training_group_is_refused():
    table = make_table(scenarios=8)
    small = table[table["scenario_id"].isin([0, 3])]
    with pytest.raises(SplitError, match="leaves no training groups with class"):
        _split(small, test_size=0.5)


def test_the_record_names_the_rule_and_the_training_groups():
    table = make_table(scenarios=12)
    plain = _split(table).to_dict()
    assert plain["units"] == "group" and plain["rule"].startswith(splits.RULE_GROUP)
    assert plain["train_rows"] + plain["holdout_rows"] == len(table)
    assert "salted SHA-256" in _split(table).describe()


def test_an_empty_identity_is_refused():
    with pytest.raises(SplitError, match="needs at least one declared column"):
        splits.row_hashes(pd.DataFrame({"a": [1]}), [])


def test_a_rows_hash_depends_on_its_values_only():
    frame = pd.DataFrame({"a": [1.5, 2.5, 1.5], "b": ["x", "y", "x"]}, index=[7, 8, 9])
    hashes = splits.row_hashes(frame, ["a", "b"])
    assert list(hashes.index) == [7, 8, 9] and hashes[7] == hashes[9] != hashes[8]


# ---------------------------------------------------------------- what the champion saw


def _snapshots(table: pd.DataFrame, holdout: pd.DataFrame) -> dict[str, pd.DataFrame]:
    return {"a" * 64: table, "b" * 64: holdout}


def _old_record() -> RunRecord:
    return RunRecord.from_doc({"snapshot": {"sha256": "a" * 64}, "holdout": {"sha256": "b" * 64}})


def test_trained_on_reads_the_training_groups_from_the_record():
    seen = splits.trained_on(
        RunRecord.from_doc({"split": {"units": "group", "train_groups": [1, 2]}}),
        group="scenario_id",
        columns=COLUMNS,
        load_snapshot=lambda sha: pytest.fail("the record is enough"),
    )
    assert seen == TrainedOn(units="group", keys=frozenset({"1", "2"}), source="record")


def test_trained_on_reconstructs_an_old_record_from_its_snapshots():
    table = make_table(scenarios=20)
    split = _split(table)
    frames = _snapshots(table, table.iloc[split.holdout])
    seen = splits.trained_on(
        _old_record(), group="scenario_id", columns=COLUMNS, load_snapshot=frames.__getitem__
    )
    assert seen.source == "snapshots" and seen.keys == {str(g) for g in split.train_groups}


def test_trained_on_rows_without_groups_from_the_snapshots():
    table = make_table(scenarios=6, rows_per=30)
    split = _split(table, group=None)
    frames = _snapshots(table, table.iloc[split.holdout])
    seen = splits.trained_on(
        _old_record(), group=None, columns=COLUMNS, load_snapshot=frames.__getitem__
    )
    mask = seen.seen(table, group=None, columns=COLUMNS)
    assert np.array_equal(np.flatnonzero(mask), split.train)


def test_trained_on_says_when_the_snapshots_cannot_be_read():
    def missing(sha256: str) -> pd.DataFrame:
        raise FileNotFoundError(f"no snapshot {sha256[:8]}")

    seen = splits.trained_on(
        _old_record(), group="scenario_id", columns=COLUMNS, load_snapshot=missing
    )
    assert not seen.known and "may favour it" in seen.note and "no snapshot aaaaaaaa" in seen.note


def test_comparison_leaves_out_the_rows_the_champion_saw_and_counts_them():
    table = make_table(scenarios=20)
    holdout = table[table["scenario_id"] < 6]
    seen = TrainedOn(units="group", keys=frozenset({"0", "1"}), source="record")
    mask, comparison = splits.comparison_rows(
        holdout, seen, group="scenario_id", columns=COLUMNS, min_rows=100
    )
    assert set(holdout[mask]["scenario_id"]) == {2, 3, 4, 5}
    assert (comparison.left_out_rows, comparison.left_out_groups) == (96, 2)
    assert comparison.enough and "trained on them" in comparison.why


def test_comparison_with_too_few_unseen_rows_is_not_enough():
    holdout = make_table(scenarios=3)
    seen = TrainedOn(units="group", keys=frozenset({"0", "1"}), source="record")
    _, comparison = splits.comparison_rows(
        holdout, seen, group="scenario_id", columns=COLUMNS, min_rows=100
    )
    assert comparison.rows == 48 and not comparison.enough


def test_a_group_split_champion_cannot_judge_a_table_without_groups():
    seen = TrainedOn(units="group", keys=frozenset({"0"}), source="record")
    with pytest.raises(SplitError, match="split by group, but this table has no group"):
        seen.seen(make_table(scenarios=2), group=None, columns=COLUMNS)


# ---------------------------------------------------------------- by time


def _stream(days: int = 40) -> pd.DataFrame:
    """One series of 15-minute rows with a leak in each ten days."""
    stamps = pd.date_range("2018-01-01", periods=days * 96, freq="15min")
    leaks = ((np.arange(len(stamps)) // 96) % 10 >= 6).astype(int)
    return pd.DataFrame({"timestamp": stamps, "p_a": np.arange(len(stamps)) % 7, "leaks": leaks})


def test_a_time_split_holds_out_the_last_share_of_the_span():
    stream = _stream()
    split = splits.split_by_time(stream, target="leaks", timestamp="timestamp", test_size=0.25)
    held = stream.iloc[split.holdout]["timestamp"]
    trained = stream.iloc[split.train]["timestamp"]
    assert trained.max() < held.min() == pd.Timestamp("2018-01-31")
    assert split.train_period == (str(trained.min()), str(trained.max()))
    assert "never on the future" in split.describe()


def test_a_time_split_from_a_fixed_start_keeps_it_as_the_stream_grows():
    start = pd.Timestamp("2018-01-21")
    small, grown = _stream(30), _stream(50)
    a, b = (
        splits.split_by_time(
            s, target="leaks", timestamp="timestamp", test_size=0.2, holdout_start=start
        )
        for s in (small, grown)
    )
    assert a.holdout_start == b.holdout_start == str(start) and a.train_period == b.train_period


def test_a_time_split_with_a_single_class_holdout_is_refused():
    stream = _stream(12)
    with pytest.raises(SplitError, match="the holdout holds a single class"):
        splits.split_by_time(
            stream,
            target="leaks",
            timestamp="timestamp",
            test_size=0.2,
            holdout_start=pd.Timestamp("2018-01-12"),
        )


def test_a_grown_stream_leaves_out_the_champions_training_period():
    champion = splits.split_by_time(
        _stream(30), target="leaks", timestamp="timestamp", test_size=0.25
    )
    grown = _stream(40)
    challenger = splits.split_by_time(grown, target="leaks", timestamp="timestamp", test_size=0.2)
    record = RunRecord.from_doc({"split": champion.to_dict()})
    seen = splits.trained_on(
        record,
        group=None,
        columns=["p_a", "leaks"],
        load_snapshot=dict().__getitem__,
        timestamp="timestamp",
    )
    holdout = grown.iloc[challenger.holdout]
    mask, comparison = splits.comparison_rows(
        holdout, seen, group=None, columns=["p_a", "leaks"], min_rows=10, timestamp="timestamp"
    )
    assert seen.source == "record" and seen.units == "time"
    assert comparison.left_out_rows == 0 and comparison.rows == len(holdout)
    wide = splits.split_by_time(grown, target="leaks", timestamp="timestamp", test_size=0.5)
    holdout = grown.iloc[wide.holdout]
    mask, comparison = splits.comparison_rows(
        holdout, seen, group=None, columns=["p_a", "leaks"], min_rows=10, timestamp="timestamp"
    )
    inside = pd.to_datetime(holdout["timestamp"]) <= pd.Timestamp(champion.train_period[1])
    assert comparison.left_out_rows == int(inside.sum()) > 0
    assert holdout[mask]["timestamp"].min() > pd.Timestamp(champion.train_period[1])
    assert "its training period" in comparison.why
