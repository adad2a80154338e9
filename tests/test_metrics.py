"""leaklib.metrics: the catalogue every score, gate and report reads."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from leaklib import metrics as M


def _ranking():
    y = np.array([0] * 100 + [1] * 4)
    # one negative (0.5) outranks the positive at 0.499: allowing one false alarm finds it
    proba = np.r_[np.linspace(0, 0.5, 100), [0.2, 0.499, 0.8, 0.9]]
    return y, proba


def test_rate_key_names_a_false_alarm_rate_in_percent():
    assert [M.rate_key(r) for r in M.FALSE_ALARM_RATES] == [
        "recall_at_0_5pct_fpr",
        "recall_at_1pct_fpr",
        "recall_at_5pct_fpr",
    ]


def test_recall_at_fpr_on_a_known_ranking():
    y, proba = _ranking()
    assert M.recall_at_fpr(y, proba, fpr=0.01) == 0.75
    assert M.recall_at_fpr(y, proba, fpr=0.001) == 0.5


def test_recall_at_fpr_refuses_a_rate_outside_0_1():
    with pytest.raises(M.MetricError, match="fpr must be between 0 and 1, got 5"):
        M.recall_at_fpr(np.array([0, 1]), np.array([0.1, 0.9]), fpr=5)


def test_checked_returns_arrays():
    y, proba = M.checked([0, 1], [0.2, 0.7])
    assert isinstance(y, np.ndarray) and proba.dtype == float


@pytest.mark.parametrize(
    ("y", "proba", "message"),
    [
        ([0, 1], [0.5], r"labels \(\(2,\)\) and scores \(\(1,\)\) differ in length"),
        ([1, 1], [0.5, 0.6], "the labels hold a single class"),
    ],
)
def test_checked_refuses_what_cannot_be_scored(y, proba, message):
    with pytest.raises(M.MetricError, match=message):
        M.checked(np.array(y), np.array(proba))


def test_primary_metrics_are_row_ranking_metrics_and_event_metrics():
    assert M.PRIMARY == (
        "roc_auc",
        "pr_auc",
        "recall_at_1pct_fpr",
        "event_recall",
        "event_precision",
        "event_f1",
        "event_early_detection",
        "event_economic_share",
    )
    assert M.CV_METRICS == ("roc_auc", "pr_auc", "recall_at_1pct_fpr")
    assert all(M.RANKING[name].score is not None for name in M.CV_METRICS)
    assert all(M.CATALOGUE[name].higher_is_better for name in M.PRIMARY)
    assert M.HEADLINE[-1] == "cv_roc_auc" and "holdout_roc_auc" in M.HEADLINE


def test_each_metric_says_what_it_needs():
    assert {m.kind for m in M.RANKING.values()} | {m.kind for m in M.AT_THRESHOLD.values()} == {
        "row"
    }
    assert {m.kind for m in M.EVENT.values()} == {"event"}
    assert all(m.score is None for m in M.EVENT.values())


def test_event_metrics_are_also_named_per_leak_kind():
    for kind in M.LEAK_KINDS:
        assert f"event_recall_{kind}" in M.EVENT
        assert M.label(f"holdout_event_recall_{kind}") == f"holdout leaks detected (share) ({kind})"
    assert not M.EVENT["event_false_alarms_per_30d"].higher_is_better
    assert not M.EVENT["event_detection_hours_median_abrupt"].higher_is_better


def test_score_refuses_an_event_metric():
    with pytest.raises(M.MetricError, match="'event_f1' is an event metric: it needs alarm events"):
        M.score("event_f1", np.array([0, 1]), np.array([0.1, 0.9]))


def test_catalogue_knows_which_direction_is_better():
    assert not M.CATALOGUE["false_positive_rate"].higher_is_better
    assert all(m.higher_is_better for m in M.RANKING.values())


def test_metric_refuses_an_unknown_name():
    with pytest.raises(M.MetricError, match="unknown metric 'accuracy'; known: roc_auc, pr_auc"):
        M.metric("accuracy")


def test_score_is_the_catalogue_function():
    y, proba = _ranking()
    assert M.score("roc_auc", y, proba) == pytest.approx(roc_auc_score(y, proba))
    assert M.score("recall_at_1pct_fpr", y, proba) == 0.75


def test_score_refuses_a_metric_measured_at_a_threshold():
    with pytest.raises(M.MetricError, match="'f1' is measured at a threshold"):
        M.score("f1", np.array([0, 1]), np.array([0.1, 0.9]))


@pytest.mark.parametrize(
    ("key", "shown"),
    [
        ("roc_auc", "ROC-AUC"),
        ("cv_roc_auc", "CV ROC-AUC"),
        ("holdout_recall_at_1pct_fpr", "holdout recall at 1 % FPR"),
        ("holdout_alarms_per_day", "holdout alarms per day"),
    ],
)
def test_label_is_what_a_reader_sees(key, shown):
    assert M.label(key) == shown


def test_prefixed_and_unprefixed_are_inverse():
    merged = M.prefixed({"roc_auc": 0.9}, {"f1": 0.5})
    assert merged == {"holdout_roc_auc": 0.9, "holdout_f1": 0.5}
    assert M.unprefixed({**merged, "cv_roc_auc": 0.8}) == {"roc_auc": 0.9, "f1": 0.5}
    assert M.unprefixed({"cv_roc_auc": 0.8}, prefix=M.CV_PREFIX) == {"roc_auc": 0.8}
