"""leaklib.params: the parameter contract, its YAML layers and the dataset mapping."""

from __future__ import annotations

import pytest
import yaml

from leaklib import params as P
from leaklib.params import listing

# the 150 scenarios: a table of groups, for the tests of group keys
SCENARIOS = [P.default_file().parent / "scenarios.yaml"]


def write(tmp_path, name, data):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


MINE = {
    "source": "data/pumps.parquet",
    "target": "burst",
    "features": {"pressure": "numeric"},
    "group": None,
}


def test_default_set_is_valid_and_complete():
    loaded = P.load()
    assert set(P.defaults()) == set(P.field_names())
    assert loaded.dataset.target == "leaks" and loaded.dataset.group is None
    assert loaded.dataset.is_stream and loaded.split.by == "time"
    assert loaded.promotion.primary_metric == "event_economic_share"
    assert loaded.dataset.model_name == "leak-detector"


def test_the_scenarios_set_keeps_the_grouped_table_and_its_own_champion():
    scenarios = P.load([P.default_file().parent / "scenarios.yaml"])
    assert scenarios.dataset.group == "scenario_id" and scenarios.split.by == "group"
    assert scenarios.promotion.primary_metric == "roc_auc"
    assert scenarios.dataset.model_name == "leak-detector-scenarios"


def test_auto_splits_a_users_table_of_groups_by_group(tmp_path):
    grouped = {**MINE, "group": "district", "timestamp": "time"}
    loaded = P.load([write(tmp_path, "mine.yaml", {"dataset": grouped})])
    assert (loaded.split.by, loaded.promotion.primary_metric) == ("group", "roc_auc")


def test_an_event_metric_on_a_table_of_groups_is_refused_naming_auto(tmp_path):
    grouped = {**MINE, "group": "district", "timestamp": "time"}
    mine = write(
        tmp_path, "mine.yaml", {"dataset": grouped, "promotion.primary_metric": "event_recall"}
    )
    with pytest.raises(P.ParameterError, match="event_recall is an event metric.*auto chooses"):
        P.load([mine])


def test_later_file_and_override_win(tmp_path):
    first = write(tmp_path, "a.yaml", {"seed": 1, "cv_folds": 3})
    second = write(tmp_path, "b.yaml", {"seed": 2})
    loaded = P.load([first, second], [("cv_folds", "4")])
    assert (loaded.seed, loaded.cv_folds) == (2, 4)


def test_a_dataset_mapping_replaces_the_default_dataset_whole(tmp_path):
    loaded = P.load([write(tmp_path, "mine.yaml", {"dataset": MINE})])
    dataset = loaded.dataset
    assert list(dataset.features) == ["pressure"] and dataset.target == "burst"
    assert (dataset.group, dataset.timestamp, dataset.max_groups) == (None, None, None)
    assert dataset.model_name == "pumps"  # from the source's file name, not leak-detector


def test_a_dotted_key_in_a_file_sets_one_dataset_value(tmp_path):
    period = {"start": "2018-03-01", "end": "2018-04-01"}
    loaded = P.load([write(tmp_path, "quick.yaml", {"dataset.period": period})])
    assert loaded.dataset.period.end.month == 4
    assert loaded.dataset.source == P.load().dataset.source and len(loaded.dataset.features) > 3


def test_the_smoke_set_cuts_the_default_stream_and_names_its_own_model():
    smoke = P.load([P.default_file().parent / "smoke.yaml"])
    assert smoke.dataset.period.start.isoformat() == "2018-09-15T00:00:00"
    assert smoke.dataset.source == P.load().dataset.source
    assert smoke.dataset.model_name == "leak-detector-smoke"


def test_a_dataset_mapping_after_a_dotted_key_replaces_it(tmp_path):
    dotted = write(tmp_path, "a.yaml", {"dataset.max_groups": 24})
    whole = write(tmp_path, "b.yaml", {"dataset": MINE})
    assert P.load([dotted, whole]).dataset.max_groups is None


def test_dotted_override_sets_the_source():
    loaded = P.load(overrides=[("dataset.source", "other.parquet")])
    assert loaded.dataset.source == "other.parquet" and loaded.dataset.target == "leaks"


@pytest.mark.parametrize("key", ["source", "model_name", "max_groups"])
def test_an_old_top_level_key_in_a_file_says_where_it_moved(tmp_path, key):
    old = write(tmp_path, "old.yaml", {key: None})
    with pytest.raises(
        P.ParameterError,
        match=rf"parameter '{key}' in '.*old.yaml' has moved: it is now dataset\.{key}",
    ):
        P.load([old])


@pytest.mark.parametrize(("key", "moved"), [("source", "source"), ("features.p_n1", "features")])
def test_an_old_top_level_override_says_where_it_moved(key, moved):
    with pytest.raises(
        P.ParameterError, match=rf"parameter '{moved}' has moved: it is now dataset\.{moved}"
    ):
        P.load(overrides=[(key, "x")])


def test_null_clears_an_optional_dataset_key():
    loaded = P.load(
        overrides=[
            ("dataset.derive", "[]"),
            ("dataset.group", "null"),
            ("dataset.max_groups", "null"),
        ]
    )
    assert loaded.dataset.group is None


def test_derive_needs_a_timestamp():
    with pytest.raises(
        P.ParameterError, match="derive needs a timestamp column to order each series"
    ):
        P.load(SCENARIOS, overrides=[("dataset.timestamp", "null")])


def test_a_first_baseline_without_a_group_is_refused_with_the_reason():
    with pytest.raises(
        P.ParameterError, match=r"derive\[0\].baseline: first needs a group: without one"
    ):
        P.load(SCENARIOS, overrides=[("dataset.group", "null")])


def test_a_trailing_baseline_derives_a_stream_without_a_group():
    block = "[{kind: seasonal_deviation, columns: 'p_*', period: 96, baseline: trailing}]"
    loaded = P.load(overrides=[("dataset.group", "null"), ("dataset.derive", block)])
    (derivation,) = loaded.dataset.derive.root
    assert (derivation.days, derivation.same_weekday, derivation.lookback) == (7, False, 672)
    assert loaded.dataset.derive.lookback == 672


def test_a_derive_pattern_that_matches_no_feature_is_named():
    block = "[{kind: diff, columns: 'x_*', steps: 4}]"
    with pytest.raises(
        P.ParameterError, match=r"derive\[0\].columns: 'x_\*' matches no numeric feature"
    ):
        P.load(overrides=[("dataset.derive", block)])


def test_max_groups_needs_a_group():
    with pytest.raises(P.ParameterError, match="max_groups needs a group column"):
        P.load(
            overrides=[
                ("dataset.derive", "[]"),
                ("dataset.group", "null"),
                ("dataset.max_groups", "3"),
            ]
        )


@pytest.mark.parametrize(
    ("value", "expected"),
    [("null", None), ("{groups: 24}", {"groups": 24}), ("{fraction: 0.25}", {"fraction": 0.25})],
)
def test_sample_is_null_or_one_rule_and_is_recorded_as_written(value, expected):
    loaded = P.load(SCENARIOS, overrides=[("dataset.sample", value)])
    assert loaded.to_plain()["dataset"]["sample"] == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("{groups: 0}", r"dataset\.sample\.groups: Input should be greater than 0"),
        ("{groups: true}", r"dataset\.sample\.groups: Input should be a valid integer"),
        ("{fraction: 0}", r"dataset\.sample\.fraction: Input should be greater than 0"),
        ("{fraction: 1.5}", r"dataset\.sample\.fraction: Input should be less than or equal to 1"),
        ("{}", r"dataset\.sample: .*exactly one of groups .* or fraction"),
        ("{groups: 2, fraction: 0.1}", r"dataset\.sample: .*exactly one of groups"),
        ("24", r"dataset\.sample: .*expected a mapping: .*\{groups: 24\} or \{fraction: 0\.1\}"),
        ("{group: 3}", r"dataset\.sample\.group: Extra inputs are not permitted"),
    ],
)
def test_a_bad_sample_is_named_with_the_expected_form(value, message):
    with pytest.raises(P.ParameterError, match=message):
        P.load(overrides=[("dataset.sample", value)])


def test_sample_needs_a_group():
    with pytest.raises(P.ParameterError, match="dataset.sample needs dataset.group"):
        P.load(
            overrides=[
                ("dataset.derive", "[]"),
                ("dataset.group", "null"),
                ("dataset.sample", "{groups: 3}"),
            ]
        )


def test_sample_and_max_groups_are_refused_together():
    with pytest.raises(
        P.ParameterError, match="dataset.sample and dataset.max_groups cannot both be set"
    ):
        P.load(
            SCENARIOS,
            overrides=[("dataset.max_groups", "3"), ("dataset.sample", "{fraction: 0.5}")],
        )


def test_dotted_override_sets_nested_value():
    loaded = P.load(overrides=[("model.params.max_iter", "7")])
    assert loaded.model.params["max_iter"] == 7 and loaded.model.name == "hist_gradient_boosting"


def test_switching_estimator_drops_the_old_estimators_params():
    loaded = P.load(overrides=[("model.name", "logistic_regression")])
    assert loaded.model.params == {}


def test_unknown_key_in_file_is_named(tmp_path):
    bad = write(tmp_path, "bad.yaml", {"sead": 3})
    with pytest.raises(P.ParameterError, match="unknown parameter 'sead'"):
        P.load([bad])


def test_unknown_override_is_named():
    with pytest.raises(P.ParameterError, match="unknown parameter 'colour'"):
        P.load(overrides=[("colour", "red")])


def test_unknown_dataset_key_is_named():
    with pytest.raises(P.ParameterError, match=r"dataset\.colour: Extra inputs are not permitted"):
        P.load(overrides=[("dataset.colour", "red")])


def test_wrong_type_names_the_key():
    with pytest.raises(P.ParameterError, match="cv_folds"):
        P.load(overrides=[("cv_folds", "many")])


def test_bad_feature_type_names_the_column():
    with pytest.raises(P.ParameterError, match=r"dataset\.features\.p_n1"):
        P.load(overrides=[("dataset.features.p_n1", "text")])


def test_target_cannot_be_a_feature():
    with pytest.raises(P.ParameterError, match="'p_n1' is the target"):
        P.load(overrides=[("dataset.target", "p_n1")])


def test_reversed_bounds_are_refused():
    with pytest.raises(P.ParameterError, match="greater than max"):
        P.load(overrides=[("dataset.features.h_t1", "{type: numeric, min: 5, max: 1}")])


def test_a_model_name_with_spaces_is_refused():
    with pytest.raises(P.ParameterError, match=r"dataset\.model_name: Value error, must be"):
        P.load(overrides=[("dataset.model_name", "my model")])


def test_missing_file_is_named(tmp_path):
    with pytest.raises(P.ParameterError, match="does not exist"):
        P.load([tmp_path / "nope.yaml"])


@pytest.mark.parametrize(
    ("source", "name"),
    [
        ("data/l-town-leaks.parquet", "l-town-leaks"),
        ("file:///tmp/x/pumps.csv", "pumps"),
        ("bigquery://proj.dataset.readings", "readings"),
    ],
)
def test_default_model_name_is_the_table_or_file_stem(source, name):
    assert P.default_model_name(source) == name


def test_dataset_columns_and_roles():
    dataset = P.load(SCENARIOS).dataset
    assert dataset.columns()[-3:] == ["leaks", "scenario_id", "timestamp"]
    roles = [dataset.role_of(c) for c in ("leaks", "scenario_id", "timestamp", "p_n1")]
    assert roles == ["target", "group", "timestamp", "feature"]


def test_describe_lists_every_parameter_with_default_and_description():
    rows = listing.describe()
    names = [r["name"] for r in rows]
    assert [n for n in names if "." not in n] == P.field_names()
    assert names[names.index("dataset") + 1 :][:2] == ["dataset.source", "dataset.target"]
    assert all(r["description"] and r["type"] for r in rows)
    assert next(r for r in rows if r["name"] == "cv_folds")["default"] == "5"
    source = next(r for r in rows if r["name"] == "dataset.source")
    assert source["default"] == "data/l-town-stream.parquet" and source["type"] == "text"
    nested = [n for n in names if n.startswith(("promotion.", "bigquery.", "model."))]
    assert {"promotion.confidence", "bigquery.where", "model.params", "model.search.space"} <= set(
        nested
    )


def test_events_defaults_and_their_descriptions():
    events = P.load().events
    assert (events.min_duration, events.join_gap, events.grace) == ("30min", "2h", "1h")
    assert (events.water_price_eur_m3, events.false_alarm_cost_eur) == (0.8, 500.0)
    rows = {r["name"]: r for r in listing.describe()}
    assert rows["events.grace"]["default"] == "1h"
    assert "joins them into one event" in rows["events.join_gap"]["description"]
    assert rows["dataset.leak_table"]["default"] == "data/l-town-stream.leaks.csv"


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("events.min_duration", "soon", r"events.min_duration: .*'soon' is not a duration"),
        ("events.grace", "-1h", r"events.grace: .*'-1h' must be a duration of zero or more"),
        ("events.false_alarm_cost_eur", "-5", r"events.false_alarm_cost_eur: .*greater than"),
    ],
)
def test_a_bad_events_value_is_named(key, value, message):
    with pytest.raises(P.ParameterError, match=message):
        P.load(overrides=[(key, value)])


def test_a_leak_table_and_its_volumes_are_optional_paths():
    loaded = P.load(
        overrides=[("dataset.leak_table", "data/leaks.csv"), ("dataset.leak_volumes", "v.csv")]
    )
    assert (loaded.dataset.leak_table, loaded.dataset.leak_volumes) == ("data/leaks.csv", "v.csv")
    assert P.load([P.default_file().parent / "scenarios.yaml"]).dataset.leak_table is None


def test_leak_volumes_need_a_leak_table_and_a_leak_table_a_timestamp():
    with pytest.raises(P.ParameterError, match="leak_volumes needs dataset.leak_table"):
        P.load(SCENARIOS, overrides=[("dataset.leak_volumes", "v.csv")])
    with pytest.raises(P.ParameterError, match="leak_table needs dataset.timestamp"):
        P.load(
            SCENARIOS,
            overrides=[
                ("dataset.derive", "[]"),
                ("dataset.timestamp", "null"),
                ("dataset.leak_table", "leaks.csv"),
            ],
        )


@pytest.mark.parametrize(
    ("name", "shown"),
    [
        ("threshold", "number (> 0.0, < 1.0) or null"),
        ("dataset.max_groups", "integer (> 0) or null"),
        ("seed", "integer (>= 0, < 4294967296)"),
        ("model.name", "one of hist_gradient_boosting | random_forest | logistic_regression"),
        ("serve_allowed_locations", "list of text"),
        ("dataset.features", "mapping of text to mapping"),
    ],
)
def test_describe_prints_whole_types(name, shown):
    assert next(r for r in listing.describe() if r["name"] == name)["type"] == shown


def test_type_text_of_an_unknown_annotation_names_it():
    class Pressure:
        pass

    assert listing.type_text(Pressure) == "Pressure"
