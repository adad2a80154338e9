import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from leaklib import estimators
from leaklib import params as P
from leaklib.modelling import (
    EstimatorError,
    build_pipeline,
    cross_validate,
    feature_frame,
    split_holdout,
    split_summary,
    summarise_cv,
    tune,
)
from leaklib.schema import validate_table


@pytest.fixture
def clean(table, params):
    return validate_table(table, params=params)[0]


def test_holdout_keeps_groups_whole_and_both_classes(clean):
    train, hold = split_holdout(clean, target="leaks", group="scenario_id", test_size=0.25, seed=1)
    assert not set(clean.iloc[train]["scenario_id"]) & set(clean.iloc[hold]["scenario_id"])
    assert clean.iloc[hold]["leaks"].nunique() == 2 and clean.iloc[train]["leaks"].nunique() == 2
    assert len(train) + len(hold) == len(clean)


def test_holdout_is_the_same_for_the_same_seed(clean):
    a = split_holdout(clean, target="leaks", group="scenario_id", test_size=0.25, seed=5)
    b = split_holdout(clean, target="leaks", group="scenario_id", test_size=0.25, seed=5)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def test_rows_are_split_without_a_group(clean):
    train, hold = split_holdout(clean, target="leaks", group=None, test_size=0.2, seed=1)
    assert abs(len(hold) / len(clean) - 0.2) < 0.01


def test_holdout_too_large_is_refused(clean):
    small = clean[clean["scenario_id"].isin([0, 3])]
    with pytest.raises(EstimatorError, match="leaves no training groups with class"):
        split_holdout(small, target="leaks", group="scenario_id", test_size=0.5, seed=1)


@pytest.mark.parametrize("name", estimators.NAMES)
def test_each_estimator_fits_mixed_types_with_missing_values(clean, params, name):
    clean.loc[:20, ["p_a", "zone", "valve_open"]] = np.nan
    pipe = build_pipeline(params.dataset.features, model=P.ModelSpec(name=name), seed=0)
    pipe.fit(feature_frame(clean, params.dataset.features), clean["leaks"])
    proba = pipe.predict_proba(feature_frame(clean, params.dataset.features))[:, 1]
    assert proba.shape == (len(clean),) and np.isfinite(proba).all()


def test_unknown_hyper_parameter_is_named(params):
    spec = P.ModelSpec(name="random_forest", params={"max_iter": 3})
    with pytest.raises(EstimatorError, match="'max_iter' is not a parameter of random_forest"):
        build_pipeline(params.dataset.features, model=spec, seed=0)


def test_bad_hyper_parameter_value_is_named(clean, params):
    spec = P.ModelSpec(name="hist_gradient_boosting", params={"max_iter": -1})
    pipe = build_pipeline(params.dataset.features, model=spec, seed=0)
    with pytest.raises(ValueError, match="max_iter"):
        pipe.fit(feature_frame(clean, params.dataset.features), clean["leaks"])


def test_grouped_cross_validation_scores_each_fold(clean, params):
    pipe = build_pipeline(params.dataset.features, model=params.model, seed=0)
    cv = cross_validate(
        pipe,
        clean,
        features=params.dataset.features,
        target="leaks",
        group="scenario_id",
        folds=3,
        seed=0,
    )
    assert len(cv.scores) == 3 and cv.scores["roc_auc"].between(0, 1).all()
    summary = summarise_cv(cv.scores)
    assert summary["cv_roc_auc"] > 0.7  # p_a carries a clear leak signal
    assert set(summary) >= {"cv_roc_auc", "cv_roc_auc_std", "cv_pr_auc", "cv_recall_at_1pct_fpr"}


def test_out_of_fold_predictions_come_from_the_folds_that_score_them(clean, params):
    pipe = build_pipeline(params.dataset.features, model=params.model, seed=0)
    common = {"features": params.dataset.features, "target": "leaks", "group": "scenario_id"}
    cv = cross_validate(pipe, clean, folds=3, seed=0, **common)
    assert cv.oof.shape == (len(clean),) and np.isfinite(cv.oof).all()
    y = clean["leaks"].to_numpy()
    for fold in (1, 2, 3):
        rows = cv.fold == fold
        assert roc_auc_score(y[rows], cv.oof[rows]) == cv.scores.loc[fold, "roc_auc"]
    groups = clean.groupby("scenario_id")["scenario_id"].transform("first").to_numpy()
    assert all(len(set(cv.fold[groups == g])) == 1 for g in set(groups))  # groups stay whole


def test_without_a_search_tune_cross_validates_the_given_model(clean, params):
    common = {"features": params.dataset.features, "target": "leaks", "group": "scenario_id"}
    tuned = tune(params.model, clean, folds=3, seed=0, primary="roc_auc", **common)
    assert tuned.model == params.model and len(tuned.candidates) == 1
    assert tuned.candidates["chosen"].all()


def test_a_search_keeps_the_best_candidate_by_the_primary_metric(clean, params):
    search = {"space": {"max_depth": [1, 3], "learning_rate": [0.05, 0.2]}, "n_candidates": 3}
    spec = P.ModelSpec(name="hist_gradient_boosting", params={"max_iter": 20}, search=search)
    common = {"features": params.dataset.features, "target": "leaks", "group": "scenario_id"}
    tuned = tune(spec, clean, folds=3, seed=0, primary="roc_auc", **common)
    table = tuned.candidates
    assert len(table) == 3 and table["chosen"].sum() == 1
    best = table[table["chosen"]].iloc[0]
    assert best["cv_roc_auc"] == table["cv_roc_auc"].max()
    assert tuned.model.params == {
        "max_iter": 20,
        "max_depth": best["max_depth"],
        "learning_rate": best["learning_rate"],
    }
    assert float(tuned.cv.scores["roc_auc"].mean()) == best["cv_roc_auc"]


def test_a_search_stops_drawing_once_its_budget_is_spent(clean, params):
    search = {"space": {"max_depth": [1, 2, 3, 4]}, "n_candidates": 4, "budget_s": 0.001}
    spec = P.ModelSpec(name="hist_gradient_boosting", params={"max_iter": 5}, search=search)
    common = {"features": params.dataset.features, "target": "leaks", "group": "scenario_id"}
    assert len(tune(spec, clean, folds=3, seed=0, primary="roc_auc", **common).candidates) == 1


def test_a_search_over_an_unknown_hyper_parameter_is_named(clean, params):
    spec = P.ModelSpec(name="random_forest", search={"space": {"max_iter": [1, 2]}})
    common = {"features": params.dataset.features, "target": "leaks", "group": "scenario_id"}
    with pytest.raises(EstimatorError, match="'max_iter' is not a parameter of random_forest"):
        tune(spec, clean, folds=3, seed=0, primary="roc_auc", **common)


def test_split_summary_reports_both_parts(clean):
    train, hold = split_holdout(clean, target="leaks", group="scenario_id", test_size=0.25, seed=1)
    summary = split_summary(
        clean.iloc[train], clean.iloc[hold], target="leaks", group="scenario_id"
    )
    assert summary.loc["holdout", "groups"] == 6
