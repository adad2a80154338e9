"""leaklib.evaluation: holdout metrics in the operator's terms."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from leaklib import evaluation as E
from leaklib import params as P
from leaklib.metrics import recall_at_fpr


def test_threshold_for_false_alarm_rate_is_the_lowest_that_keeps_the_rate():
    y = np.array([0] * 100 + [1] * 4)
    proba = np.r_[np.linspace(0, 0.5, 100), [0.2, 0.499, 0.8, 0.9]]
    # one false alarm in 100 is allowed: the top negative (0.5) may alarm, the next (0.4949)
    # may not, so the lowest score above it, the positive at 0.499, is the threshold
    threshold = E.threshold_for_false_alarm_rate(y, proba, max_false_alarm_rate=0.01)
    assert threshold == 0.499
    assert ((proba >= threshold) & (y == 0)).mean() / (y == 0).mean() <= 0.01
    assert recall_at_fpr(y, proba, fpr=0.01) == ((proba >= threshold) & (y == 1)).sum() / 4


def test_threshold_for_false_alarm_rate_counts_tied_negatives_together():
    y = np.array([0] * 100 + [1, 1])
    proba = np.r_[np.zeros(98), [0.7, 0.7], [0.6, 0.8]]  # two negatives tie at 0.7
    threshold = E.threshold_for_false_alarm_rate(y, proba, max_false_alarm_rate=0.01)
    assert threshold == 0.8


def test_threshold_for_false_alarm_rate_above_every_score_when_none_is_quiet_enough():
    y = np.array([0, 0, 1])
    proba = np.array([0.9, 0.1, 0.5])
    threshold = E.threshold_for_false_alarm_rate(y, proba, max_false_alarm_rate=0.01)
    assert 0.9 < threshold < 0.9 + 1e-9


def test_threshold_for_false_alarm_rate_refuses_a_rate_outside_0_1():
    with pytest.raises(E.EvaluationError, match="max_false_alarm_rate must be between 0 and 1"):
        E.threshold_for_false_alarm_rate(
            np.array([0, 1]), np.array([0.1, 0.9]), max_false_alarm_rate=0
        )


def test_holdout_metrics_counts_and_keys():
    y = np.array([0, 0, 1, 1])
    m = E.holdout_metrics(y, np.array([0.1, 0.6, 0.4, 0.9]), threshold=0.5)
    assert (m["tp"], m["fp"], m["tn"], m["fn"]) == (1, 1, 1, 1)
    assert {"recall_at_0_5pct_fpr", "recall_at_1pct_fpr", "recall_at_5pct_fpr"} <= set(m)


def test_single_class_labels_are_refused():
    with pytest.raises(E.EvaluationError, match="single class"):
        E.holdout_metrics(np.zeros(4), np.linspace(0, 1, 4), threshold=0.5)


def test_length_mismatch_is_refused():
    with pytest.raises(E.EvaluationError, match="differ in length"):
        E.holdout_metrics(np.array([0, 1]), np.array([0.5]), threshold=0.5)


def frame():
    stamps = pd.date_range("2024-01-01", periods=8, freq="6h")
    return pd.DataFrame(
        {
            "g": [1] * 8 + [2] * 8 + [3] * 8,
            "t": list(stamps) * 3,
            "y": [0, 0, 1, 1, 1, 1, 1, 1] + [0, 0, 0, 1, 1, 1, 1, 1] + [0] * 8,
        }
    )


def test_detection_delay_per_leak():
    data = frame()
    proba = np.zeros(24)
    proba[4] = 0.9  # group 1: leak starts at row 2 (12:00), first alarm at row 4 (+12 h)
    proba[16 + 1] = 0.9  # group 3 has no leak: a false alarm, not a detection
    delays = E.detection_delays(data, proba, threshold=0.5, timestamp="t", target="y", group="g")
    assert list(delays["g"]) == [1, 2]
    assert delays.loc[0, "delay_hours"] == 12.0 and not delays.loc[1, "detected"]
    assert E.detection_summary(delays)["leaks_detected_share"] == 0.5


def test_alarms_per_day():
    data = frame()
    proba = np.r_[np.ones(4), np.zeros(20)]
    rates = E.alarms_per_day(data, proba, threshold=0.5, timestamp="t", target="y", group="g")
    assert rates["observed_days"] == 6.0 and rates["alarms_per_day"] == pytest.approx(
        4 / 6, abs=1e-3
    )
    assert rates["false_alarms_per_day"] == pytest.approx(2 / (13 * 0.25), abs=1e-3)


def test_alarms_per_day_needs_two_times():
    data = frame().groupby("g").head(1)
    with pytest.raises(E.EvaluationError, match="column 't': need at least two times"):
        E.alarms_per_day(data, np.zeros(3), threshold=0.5, timestamp="t", target="y", group="g")


def test_headline_puts_cv_beside_holdout():
    hold = E.holdout_metrics(np.array([0, 0, 1, 1]), np.array([0.1, 0.6, 0.4, 0.9]), threshold=0.5)
    table = E.headline({"cv_roc_auc": 0.8, "cv_roc_auc_std": 0.05}, hold)
    assert table.loc["ROC-AUC", "cross-validated"] == "0.800 ± 0.050"
    assert table.loc["ROC-AUC", "holdout"] == "0.750"


def test_operations_without_a_timestamp_show_the_threshold_only(params):
    dataset = {**params.to_plain()["dataset"], "timestamp": None}
    no_time = P.validate({**params.to_plain(), "dataset": dataset})
    facts = E.operations(frame(), np.zeros(24), params=no_time, threshold=0.5).to_dict()
    assert facts == {"threshold": 0.5}


def test_delays_need_a_group_and_a_timestamp(params):
    dataset = {**params.to_plain()["dataset"], "timestamp": None}
    no_time = P.validate({**params.to_plain(), "dataset": dataset})
    delays = E.delays_if_possible(frame(), np.zeros(24), params=no_time, threshold=0.5)
    assert delays.empty and "delay_hours" in list(delays.columns)


def test_the_alarm_threshold_meets_the_false_alarm_rate_fold_by_fold():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 4000)
    proba = np.clip(rng.normal(0.3 + 0.4 * y, 0.15), 0, 1)
    folds = np.repeat([1, 2, 3, 4], 1000)
    alarm = E.choose_alarm_threshold(y, proba, folds, max_false_alarm_rate=0.01)
    assert alarm.chosen_by == "cv" and alarm.max_false_alarm_rate == 0.01
    assert alarm.cv_false_alarm_rate <= 0.02 and 0 < alarm.cv_recall < 1
    assert alarm.cv_false_alarm_rate == round(float((proba[y == 0] >= alarm.threshold).mean()), 6)


def test_an_explicit_threshold_overrides_the_choice():
    alarm = E.choose_alarm_threshold(
        np.array([0, 1, 0, 1]),
        np.array([0.1, 0.9, 0.6, 0.4]),
        np.array([1, 1, 2, 2]),
        max_false_alarm_rate=0.01,
        override=0.5,
    )
    assert alarm.threshold == 0.5 and alarm.chosen_by == "parameter"
    assert alarm.max_false_alarm_rate is None and alarm.cv_false_alarm_rate == 0.5


def test_the_alarm_summary_puts_target_oof_and_holdout_side_by_side():
    alarm = {
        "threshold": 0.8,
        "chosen_by": "cv",
        "max_false_alarm_rate": 0.01,
        "cv_false_alarm_rate": 0.008,
        "cv_recall": 0.6,
    }
    table = E.alarm_summary(alarm, {"false_positive_rate": 0.012, "recall": 0.55})
    assert table.loc["false-alarm rate"].tolist() == ["1.00%", "0.80%", "1.20%"]
    assert table.index.name == "at threshold 0.8000 (cv)"


def test_lowest_passing_bisects_to_the_first_candidate_that_passes():
    from leaklib.evaluation import _lowest_passing

    candidates = np.linspace(0.1, 0.9, 9)
    assert _lowest_passing(candidates, lambda t: t >= 0.45) == pytest.approx(0.5)
    assert _lowest_passing(candidates, lambda t: False) == pytest.approx(0.9)  # the last kept
