import numpy as np
import pandas as pd
import pytest

from leaklib import params as P
from leaklib.params import SampleSpec
from leaklib.schema import SchemaError, limit_groups, most_separating, profile, validate_table
from leaklib.sources import SourceTable


def test_valid_table_is_typed_and_undeclared_columns_listed(table, params):
    clean, report = validate_table(table, params=params)
    assert list(clean.columns) == [
        "scenario_id",
        "timestamp",
        "p_a",
        "p_b",
        "zone",
        "valve_open",
        "leaks",
    ]
    assert clean["leaks"].dtype == "int8"
    assert set(clean["valve_open"].unique()) <= {0.0, 1.0}
    assert report.ignored_columns == ["note"]
    assert report.groups == 24


def test_missing_feature_values_are_allowed_and_counted(table, params):
    table.loc[:9, "p_a"] = np.nan
    _, report = validate_table(table, params=params)
    assert report.missing == {"p_a": 10}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda t: t.drop(columns="p_b"),
            "column 'p_b' .feature. is declared but not in the table",
        ),
        (
            lambda t: t.drop(columns="leaks"),
            "column 'leaks' .target. is declared but not in the table",
        ),
        (
            lambda t: t.assign(leaks=t["leaks"].replace(1, 2)),
            "column 'leaks' .target.: must be binary",
        ),
        (
            lambda t: t.assign(leaks=t["leaks"].astype(float).where(t.index > 0)),
            "'leaks' .target.: 1 missing",
        ),
        (lambda t: t.assign(leaks=0), "only class 0 present"),
        (lambda t: t.iloc[0:0], "has no rows"),
        (
            lambda t: t.assign(p_a=t["p_a"].astype(object).where(t.index != 5, "high")),
            r"column 'p_a' \(numeric\): non-numeric values 'high'",
        ),
        (
            lambda t: t.assign(p_a=t["p_a"].where(t.index != 5, np.inf)),
            r"'p_a' \(numeric\): 1 infinite",
        ),
        (
            lambda t: t.assign(p_b=-t["p_b"]),
            r"'p_b' \(numeric\): \d+ value\(s\) below the declared min 0",
        ),
        (
            lambda t: t.assign(valve_open="maybe"),
            r"'valve_open' \(boolean\): values that are not true/false",
        ),
        (
            lambda t: t[t["scenario_id"] < 4],
            "class 1 appears in only 3 groups of 'scenario_id'; need at least 4",
        ),
        (
            lambda t: t.assign(timestamp="soon"),
            r"'timestamp' \(timestamp\): values that are not times",
        ),
    ],
    ids=[
        "missing-feature",
        "missing-target",
        "non-binary",
        "nan-target",
        "one-class",
        "empty",
        "wrong-type",
        "inf",
        "below-min",
        "bad-boolean",
        "too-few-groups",
        "bad-time",
    ],
)
def test_broken_tables_are_refused_naming_the_column(table, params, change, message):
    with pytest.raises(SchemaError, match=message):
        validate_table(change(table), params=params)


def test_every_problem_is_listed_at_once(table, params):
    broken = table.assign(p_a="x", valve_open="maybe")
    with pytest.raises(SchemaError) as caught:
        validate_table(broken, params=params)
    assert len(caught.value.problems) == 2


def test_missing_columns_and_bad_values_are_reported_together(table, params):
    broken = table.drop(columns="p_b").assign(leaks=table["scenario_id"] % 3)
    with pytest.raises(
        SchemaError, match=r"(?s)'p_b' \(feature\).*found the values 0, 1, 2"
    ) as caught:
        validate_table(broken, params=params)
    assert caught.value.problems == [
        "column 'p_b' (feature) is declared but not in the table",
        "column 'leaks' (target): must be binary 0/1 or true/false, found the values 0, 1, 2",
    ]


def test_boolean_target_is_accepted(table, params):
    clean, _ = validate_table(table.assign(leaks=table["leaks"].astype(bool)), params=params)
    assert clean["leaks"].sum() == table["leaks"].sum()


def test_max_groups_keeps_the_first_groups(table, params):
    plain = params.to_plain()
    limited = P.validate({**plain, "dataset": {**plain["dataset"], "max_groups": 8}, "cv_folds": 2})
    clean, report = validate_table(table, params=limited)
    assert sorted(clean["scenario_id"].unique()) == list(range(8)) and report.groups == 8


def test_limit_groups_needs_the_group_column(table):
    with pytest.raises(KeyError):
        limit_groups(table, group="missing", max_groups=2)


def test_profile_has_one_row_per_feature(table, params):
    clean, _ = validate_table(table, params=params)
    summary = profile(clean, params=params)
    assert list(summary.index) == list(params.dataset.features)
    assert pd.isna(summary.loc["zone", "min"])


def test_most_separating_finds_the_leak_signal(table, params):
    clean, _ = validate_table(table, params=params)
    assert most_separating(clean, params=params, n=1) == ["p_a"]


def test_csv_values_are_coerced(tmp_path, table, params):
    path = tmp_path / "t.csv"
    table.to_csv(path, index=False)
    clean, _ = validate_table(pd.read_csv(path), params=params)
    assert clean["valve_open"].isin([0.0, 1.0]).all()


# --- dataset.sample: validation sees the kept groups only ------------------------------------


def sampled(params, **sample):
    dataset = params.dataset.model_copy(update={"sample": SampleSpec(**sample)})
    return params.model_copy(update={"dataset": dataset})


def test_a_sample_is_validated_on_its_groups_and_recorded_in_the_report(table, params):
    clean, report = validate_table(table, params=sampled(params, groups=12))

    assert clean["scenario_id"].nunique() == 12 == report.groups
    assert report.to_dict()["sample"] == {
        "rule": "{groups: 12}",
        "kept_groups": 12,
        "of_groups": 24,
        "rows": len(clean),
        "of_rows": len(table),
        "rows_without_group": 0,
    }
    assert report.notes == ["rows of unsampled groups were not validated"]
    shown = report.summary()
    assert shown["sample"] == "{groups: 12}" and shown["groups"] == "12 of 24"
    assert shown["rows"] == f"{len(clean):,} of {len(table):,}"


def test_without_a_sample_the_report_says_every_group(table, params):
    _, report = validate_table(table, params=params)
    assert report.sample is None and report.to_dict()["sample"] is None
    assert report.summary()["sample"] == "none: every group"


def test_a_bad_row_outside_the_sample_is_not_reported(table, params):
    spec = sampled(params, groups=6)
    kept = set(validate_table(table, params=spec)[0]["scenario_id"])
    outside = table["scenario_id"] == min(set(range(24)) - kept)
    table.loc[outside, "p_b"] = -1.0  # below the declared min 0, in a group not sampled

    validate_table(table, params=spec)  # no error: those rows were never checked
    with pytest.raises(SchemaError, match="below the declared min"):
        validate_table(table, params=params)


def test_rows_without_a_group_are_a_problem_even_in_a_sample(table, params):
    table.loc[:4, "scenario_id"] = np.nan
    table["scenario_id"] = table["scenario_id"].astype("Int64")
    with pytest.raises(SchemaError, match=r"'scenario_id' \(group\): 5 missing value\(s\) in the"):
        validate_table(table, params=sampled(params, fraction=1.0))


def test_a_sample_that_keeps_no_group_names_the_parameter(table, params):
    with pytest.raises(SchemaError, match=r"dataset.sample \{fraction: 1e-09\} kept no group"):
        validate_table(table, params=sampled(params, fraction=1e-9))


def test_a_source_table_lists_the_columns_it_did_not_read(table, params):
    read = table[params.dataset.columns()].rename(columns={"p_b": "P_B"})
    raw = SourceTable(read.drop(columns="P_B"), (*read.columns, "note"))

    with pytest.raises(SchemaError, match="the table has 'P_B', which differs only in case"):
        validate_table(raw, params=params)
    _, report = validate_table(
        SourceTable(table[params.dataset.columns()], tuple(table.columns)), params=params
    )
    assert report.ignored_columns == ["note"]


def test_a_period_keeps_its_stretch_of_time_before_validation(table, params):
    values = params.to_plain()
    values["dataset"]["period"] = {"start": "2024-01-01 02:00", "end": "2024-01-01 06:00"}
    frame, _ = validate_table(table, params=P.validate(values))
    assert frame["timestamp"].min() == pd.Timestamp("2024-01-01 02:00")
    assert frame["timestamp"].max() == pd.Timestamp("2024-01-01 05:45")


def test_a_period_needs_a_timestamp_and_an_order(params):
    values = params.to_plain()
    values["dataset"]["period"] = {"start": "2024-02-01", "end": "2024-01-01"}
    with pytest.raises(P.ParameterError, match="start .* must be before end"):
        P.validate(values)
    values["dataset"].update(period={"start": "2024-01-01"}, timestamp=None)
    with pytest.raises(P.ParameterError, match="dataset.period needs dataset.timestamp"):
        P.validate(values)
