"""leaklib.sampling: which whole groups dataset.sample keeps, the same way every time."""

import hashlib

import pandas as pd
import pytest

from leaklib.params import SampleSpec
from leaklib.sampling import (
    FractionChooser,
    SampleError,
    chosen_groups,
    fraction_bound,
    group_hash,
    sample_frame,
    sql_group_hash,
)


def test_the_hash_is_sha256_of_the_text_form_as_bigquery_writes_it():
    # TO_HEX(SHA256(CAST(x AS STRING))) in BigQuery (and on the emulator) for 1, -4 and 'é'
    assert group_hash(1).startswith("6b86b273ff34fce1")
    assert group_hash(-4).startswith("e5e0093f285a4fb9")
    assert group_hash("é") == hashlib.sha256("é".encode()).hexdigest()
    assert sql_group_hash("`g`") == "TO_HEX(SHA256(CAST(`g` AS STRING)))"


def test_groups_n_keeps_the_n_smallest_hashes_whatever_the_order():
    values = list(range(100))
    kept = chosen_groups(values, SampleSpec(groups=10))
    assert kept == chosen_groups(list(reversed(values)), SampleSpec(groups=10))
    assert kept == set(sorted(values, key=group_hash)[:10])
    assert chosen_groups([1, 2], SampleSpec(groups=10)) == {1, 2}


def test_fraction_keeps_the_groups_below_the_bound_and_all_at_one():
    values = [f"scenario-{i}" for i in range(2000)]
    kept = chosen_groups(values, SampleSpec(fraction=0.25))
    assert 0.2 < len(kept) / len(values) < 0.3
    assert all(group_hash(v)[:16] < fraction_bound(0.25) for v in kept)
    assert fraction_bound(0.25) == "4000000000000000" and fraction_bound(1.0) is None
    assert chosen_groups(values, SampleSpec(fraction=1.0)) == set(values)


def test_a_smaller_fraction_keeps_a_subset_of_a_larger_one():
    values = range(500)
    small = chosen_groups(values, SampleSpec(fraction=0.1))
    assert small < chosen_groups(values, SampleSpec(fraction=0.3))


def test_the_fraction_chooser_decides_batch_by_batch_as_chosen_groups_does():
    chooser = FractionChooser(SampleSpec(fraction=0.3))
    kept = chooser.kept(list(range(0, 60))) + chooser.kept(list(range(40, 100)))
    assert set(kept) == chosen_groups(range(100), SampleSpec(fraction=0.3))
    assert chooser.seen == 100


def test_sample_frame_keeps_whole_groups_and_reports_what_it_kept(table):
    sampled, report = sample_frame(table, group="scenario_id", spec=SampleSpec(groups=5))
    kept = set(sampled["scenario_id"])
    assert kept == chosen_groups(range(24), SampleSpec(groups=5))
    assert len(sampled) == table["scenario_id"].isin(kept).sum()
    assert report.to_dict() == {
        "rule": "{groups: 5}",
        "kept_groups": 5,
        "of_groups": 24,
        "rows": len(sampled),
        "of_rows": len(table),
        "rows_without_group": 0,
    }


def test_rows_without_a_group_are_in_no_sample_and_counted():
    frame = pd.DataFrame({"g": ["a", None, "b", "c"], "x": [1, 2, 3, 4]})
    sampled, report = sample_frame(frame, group="g", spec=SampleSpec(fraction=1.0))
    assert sampled["x"].tolist() == [1, 3, 4] and report.rows_without_group == 1


@pytest.mark.parametrize(
    "values",
    [[1.0, 2.0], [pd.Timestamp("2024-01-01"), pd.Timestamp("2024-01-02")], [True, False]],
)
def test_a_group_column_of_floats_times_or_booleans_is_refused(values):
    frame = pd.DataFrame({"g": values, "x": [1, 2]})
    with pytest.raises(SampleError, match=r"dataset\.sample: the group column 'g' is of type"):
        sample_frame(frame, group="g", spec=SampleSpec(groups=1))


def test_a_missing_group_column_is_named():
    with pytest.raises(SampleError, match="the group column 'g' is not in the table"):
        sample_frame(pd.DataFrame({"x": [1]}), group="g", spec=SampleSpec(groups=1))
