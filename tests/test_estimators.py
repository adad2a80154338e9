"""leaklib.estimators: the catalogue of models a run may choose."""

from __future__ import annotations

import pytest
from sklearn.base import is_classifier

from leaklib import estimators
from leaklib import params as P


def test_names_are_the_catalogue_in_order():
    assert estimators.NAMES == ("hist_gradient_boosting", "random_forest", "logistic_regression")
    assert all(estimators.CATALOGUE[n].name == n for n in estimators.NAMES)


@pytest.mark.parametrize("name", estimators.NAMES)
def test_every_estimator_builds_from_its_defaults(name):
    entry = estimators.CATALOGUE[name]
    assert is_classifier(entry.cls(**entry.defaults))
    assert entry.numeric_inputs in ("passthrough", "impute", "impute_scale")


@pytest.mark.parametrize("name", estimators.NAMES)
def test_the_parameters_accept_every_catalogued_name(name):
    assert P.load(overrides=[("model.name", name)]).model.name == name


def test_a_name_outside_the_catalogue_is_refused_naming_the_choices():
    with pytest.raises(
        P.ParameterError, match=r"model\.name: Input should be 'hist_gradient_boosting'"
    ):
        P.load(overrides=[("model.name", "xgboost")])


def test_check_params_accepts_what_the_estimator_declares():
    assert (
        estimators.check_params("hist_gradient_boosting", {"max_iter": 10, "loss": "log_loss"})
        == []
    )


def test_check_params_names_each_unknown_or_refused_parameter():
    problems = estimators.check_params("random_forest", {"max_iterz": 1, "n_estimators": 0})
    assert [param for param, _ in problems] == ["max_iterz", "n_estimators"]
    assert problems[0][1].startswith("'max_iterz' is not a parameter of random_forest")
    assert "The 'n_estimators' parameter of RandomForestClassifier must be an int" in problems[1][1]
