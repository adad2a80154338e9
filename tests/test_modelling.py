import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from leaklib import estimators, splits
from leaklib import params as P
from leaklib.modelling import (
    EstimatorError,
    build_pipeline,
    cross_validate,
    feature_frame,
    split_summary,
    summarise_cv,
    tune,
)
from leaklib.schema import validate_table


@pytest.fixture
def clean(table, params):
    return validate_table(table, params=params)[0]


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


def test_bad_hyper_parameter_value_is_named_before_fitting(params):
    spec = P.ModelSpec(name="hist_gradient_boosting", params={"max_iter": -1})
    with pytest.raises(EstimatorError, match=r"model\.params: The 'max_iter' parameter .* Got -1"):
        build_pipeline(params.dataset.features, model=spec, seed=0)


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
    split = splits.split_holdout(
        clean,
        target="leaks",
        group="scenario_id",
        columns=splits.identity_columns(["p_a"], "leaks"),
        test_size=0.25,
    )
    train, hold = split.train, split.holdout
    summary = split_summary(
        clean.iloc[train], clean.iloc[hold], target="leaks", group="scenario_id"
    )
    assert summary.loc["holdout", "groups"] == 6


def test_forward_folds_never_train_on_the_future_and_keep_a_gap(clean):
    from leaklib.modelling import Folds, _folds

    frame = clean.sort_values("timestamp", kind="stable").reset_index(drop=True)
    frame["timestamp"] = pd.date_range("2018-01-01", periods=len(frame), freq="15min")
    spec = Folds(count=3, forward="timestamp", gap=10)
    folds = _folds(frame, frame["leaks"].to_numpy(), group=None, folds=spec, seed=0)
    assert len(folds) == 3
    for train, test in folds:
        assert frame["timestamp"].iloc[train].max() < frame["timestamp"].iloc[test].min()
        assert test.min() - train.max() == 11  # ten rows of gap between them


def _stream_frame(days: int = 20) -> pd.DataFrame:
    stamps = pd.date_range("2018-01-01", periods=days * 96, freq="15min")
    leaks = ((stamps >= "2018-01-05") & (stamps < "2018-01-12")).astype(int)
    return pd.DataFrame({"timestamp": stamps, "p_a": np.arange(len(stamps)) % 5, "leaks": leaks})


def test_onset_rows_keep_quiet_rows_and_each_leaks_first_hours():
    from leaklib.modelling import onset_rows

    frame = _stream_frame()
    keep = onset_rows(frame, target="leaks", timestamp="timestamp", onset="2D")
    leak_times = frame["timestamp"][(frame["leaks"] == 1) & keep]
    assert keep[frame["leaks"].to_numpy() == 0].all()
    assert leak_times.min() == pd.Timestamp("2018-01-05")
    assert leak_times.max() == pd.Timestamp("2018-01-07")


def test_onset_rows_follow_the_leak_table_when_leaks_overlap():
    from leaklib.modelling import onset_rows

    frame = _stream_frame()
    table = pd.DataFrame(
        {"start": pd.to_datetime(["2018-01-05", "2018-01-09"]), "end": [pd.NaT, "2018-01-12"]}
    )
    keep = onset_rows(frame, target="leaks", timestamp="timestamp", onset="1D", leak_table=table)
    kept = frame["timestamp"][(frame["leaks"] == 1) & keep]
    assert set(kept.dt.date.astype(str)) == {"2018-01-05", "2018-01-06", "2018-01-09", "2018-01-10"}


def test_a_leak_onset_applies_to_a_stream_only(params):
    from leaklib.modelling import learning_rows

    values = params.to_plain()
    values["model"]["leak_onset"] = "2D"
    grouped = learning_rows(_stream_frame(), params=P.validate(values))
    assert grouped.all()  # a table of groups learns from every row
    values["dataset"].update(group=None, derive=[])
    stream = learning_rows(_stream_frame(), params=P.validate(values))
    assert stream.sum() == 20 * 96 - (7 * 96 - (2 * 96 + 1))  # a 7-day leak, its first 2 days kept


def test_folds_go_forward_with_the_lookback_as_gap_on_a_time_split(params):
    from leaklib.modelling import folds_for

    values = params.to_plain()
    values["split"] = {"by": "time"}
    values["dataset"]["derive"] = [
        {
            "kind": "seasonal_deviation",
            "columns": "p_a",
            "period": 4,
            "baseline": "trailing",
            "days": 3,
            "window": 2,
        }
    ]
    folds = folds_for(P.validate(values))
    assert folds.forward == "timestamp" and folds.gap == 4 * 3 + 1
    assert folds_for(params).forward is None and folds_for(params).group == "scenario_id"


def test_cross_validation_ranks_event_metrics_by_roc_auc():
    from leaklib.modelling import cv_primary

    assert cv_primary("event_economic_share") == "roc_auc" and cv_primary("pr_auc") == "pr_auc"
