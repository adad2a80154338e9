import pytest
import yaml

from leaklib import params as P
from leaklib.notebooks import declared_names, notebook_paths, parameter_cell, parameters_cell_of


def write(tmp_path, name, data):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


def test_default_set_is_valid_and_complete():
    loaded = P.load()
    assert set(P.defaults()) == set(P.field_names())
    assert loaded.target == "leaks" and loaded.group == "scenario_id"


def test_later_file_and_override_win(tmp_path):
    first = write(tmp_path, "a.yaml", {"seed": 1, "cv_folds": 3})
    second = write(tmp_path, "b.yaml", {"seed": 2})
    loaded = P.load([first, second], [("cv_folds", "4")])
    assert (loaded.seed, loaded.cv_folds) == (2, 4)


def test_later_mapping_replaces_features_whole(tmp_path):
    mine = write(
        tmp_path,
        "mine.yaml",
        {"features": {"pressure": "numeric"}, "group": None, "max_groups": None},
    )
    loaded = P.load([mine])
    assert list(loaded.features) == ["pressure"]


def test_null_clears_optional_key():
    assert P.load(overrides=[("group", "null"), ("max_groups", "null")]).group is None


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


def test_wrong_type_names_the_key():
    with pytest.raises(P.ParameterError, match="cv_folds"):
        P.load(overrides=[("cv_folds", "many")])


def test_bad_feature_type_names_the_column():
    with pytest.raises(P.ParameterError, match=r"features\.p_n1"):
        P.load(overrides=[("features.p_n1", "text")])


def test_target_cannot_be_a_feature():
    with pytest.raises(P.ParameterError, match="'p_n1' is the target"):
        P.load(overrides=[("target", "p_n1")])


def test_reversed_bounds_are_refused():
    with pytest.raises(P.ParameterError, match="greater than max"):
        P.load(overrides=[("features.h_t1", "{type: numeric, min: 5, max: 1}")])


def test_missing_file_is_named(tmp_path):
    with pytest.raises(P.ParameterError, match="does not exist"):
        P.load([tmp_path / "nope.yaml"])


def test_describe_lists_every_parameter_with_default_and_description():
    rows = P.describe()
    assert [r["name"] for r in rows] == P.field_names()
    assert all(r["description"] and r["type"] for r in rows)
    assert next(r for r in rows if r["name"] == "cv_folds")["default"] == "5"


@pytest.mark.parametrize("path", notebook_paths(), ids=lambda p: p.stem)
def test_notebook_parameter_cells_match_the_defaults(path):
    import nbformat

    nb = nbformat.read(path, as_version=4)
    names = declared_names(nb)
    assert "run_id" in names
    assert parameters_cell_of(nb).source == parameter_cell(names), (
        "run `leak params --sync-notebooks` after changing parameters/default.yaml"
    )


def test_columns_are_features_target_then_group_and_timestamp(params):
    assert params.columns() == [
        "p_a",
        "p_b",
        "zone",
        "valve_open",
        "leaks",
        "scenario_id",
        "timestamp",
    ]
    assert params.model_copy(update={"timestamp": None}).columns()[-1] == "scenario_id"
