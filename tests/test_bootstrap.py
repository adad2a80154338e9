"""leaklib.bootstrap: the paired group bootstrap behind the promotion gate."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from leaklib import bootstrap, leak_events, metrics


def _scores(seed: int = 0, n: int = 400, groups: int = 20):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.4).astype(int)
    good = np.clip(0.35 * y + rng.random(n) * 0.65, 0, 1)
    noisy = rng.random(n)
    return y, good, noisy, np.repeat(np.arange(groups), n // groups)


def test_group_weights_keep_each_group_whole():
    codes = np.array([0, 0, 1, 1, 1, 2])
    weights = bootstrap.group_weights(codes, np.array([[2, 2, 0], [1, 0, 1]]))
    assert weights.tolist() == [[1, 1, 0, 0, 0, 2], [1, 1, 2, 2, 2, 0]]


@pytest.mark.parametrize(
    ("metric", "reference"),
    [
        ("roc_auc", roc_auc_score),
        ("pr_auc", average_precision_score),
        ("recall_at_1pct_fpr", lambda y, p: metrics.recall_at_fpr(y, p, fpr=0.01)),
    ],
)
def test_weighted_scores_equal_the_metric_on_the_drawn_rows(metric, reference):
    y, good, _, codes = _scores()
    proba = np.round(good, 2)  # ties, as real scores have
    picks = np.random.default_rng(1).integers(0, 20, (5, 20))
    weights = bootstrap.group_weights(codes, picks)
    drawn = [np.repeat(np.arange(len(y)), w.astype(int)) for w in weights]
    expected = [reference(y[rows], proba[rows]) for rows in drawn]
    assert np.allclose(bootstrap.weighted_scores(metric, y, proba, weights), expected, atol=1e-12)


def test_weighted_scores_refuse_a_metric_outside_the_catalogue():
    y, good, _, codes = _scores()
    weights = bootstrap.group_weights(codes, np.zeros((1, 20), dtype=int))
    with pytest.raises(metrics.MetricError, match="unknown metric 'accuracy'"):
        bootstrap.weighted_scores("accuracy", y, good, weights)


def test_paired_bootstrap_is_reproducible_with_the_seed():
    y, good, noisy, codes = _scores()
    kwargs = dict(metric="roc_auc", groups=codes, n_bootstrap=200, seed=7, confidence=0.9)
    assert bootstrap.paired_bootstrap(y, good, noisy, **kwargs) == bootstrap.paired_bootstrap(
        y, good, noisy, **kwargs
    )


def test_paired_bootstrap_of_a_model_against_itself_is_zero():
    y, good, _, codes = _scores()
    boot = bootstrap.paired_bootstrap(
        y, good, good, metric="pr_auc", groups=codes, n_bootstrap=200, seed=0, confidence=0.95
    )
    assert (boot["ci_low"], boot["ci_high"]) == (0.0, 0.0)


def test_paired_bootstrap_interval_excludes_zero_for_a_clearly_better_model():
    y, good, noisy, codes = _scores()
    boot = bootstrap.paired_bootstrap(
        y, good, noisy, metric="roc_auc", groups=codes, n_bootstrap=300, seed=0, confidence=0.95
    )
    assert 0 < boot["ci_low"] < boot["ci_high"]
    assert boot["unit"] == "groups" and boot["n_units"] == 20
    assert sum(boot["histogram"]["counts"]) == boot["n_valid"]


def test_paired_bootstrap_without_groups_draws_rows():
    y, good, noisy, _ = _scores()
    boot = bootstrap.paired_bootstrap(
        y, good, noisy, metric="roc_auc", groups=None, n_bootstrap=100, seed=0, confidence=0.9
    )
    assert boot["unit"] == "rows" and boot["n_units"] == len(y)


def test_paired_bootstrap_refuses_a_holdout_whose_groups_hold_one_class():
    y = np.array([0, 0, 0, 0, 1, 1])
    codes = np.array([0, 0, 0, 0, 1, 1])  # two groups: most draws hold a single class
    with pytest.raises(bootstrap.BootstrapError, match="draws hold both classes"):
        bootstrap.paired_bootstrap(
            y,
            y * 0.9,
            y * 0.8,
            metric="roc_auc",
            groups=codes,
            n_bootstrap=200,
            seed=0,
            confidence=0.95,
        )


# --- event metrics over blocks of time ----------------------------------------------------------

STREAM = pd.date_range("2024-01-01", periods=60 * 24, freq="h")  # 60 days, hourly


def _stream_result(caught, *, false_alarms=(), days_apart: int = 3) -> leak_events.EventResult:
    """Twenty one-day leaks, three days apart; ``caught`` are detected at their start."""
    table = pd.DataFrame(
        {
            "leak_id": [f"L{i:02d}" for i in range(20)],
            "start": [STREAM[0] + pd.Timedelta(days=days_apart * i) for i in range(20)],
            "kind": ["abrupt", "incipient"] * 10,
        }
    ).assign(end=lambda t: t["start"] + pd.Timedelta(days=1))
    flags = np.zeros(len(STREAM), dtype=bool)
    for start in [*table["start"].iloc[list(caught)], *false_alarms]:
        flags[STREAM.get_loc(start) : STREAM.get_loc(start) + 2] = True
    found = leak_events.alarm_events(STREAM, flags, min_duration="2h", join_gap="1h")
    return leak_events.match_events(
        found.events,
        leak_events.leaks_from_table(table),
        start=STREAM[0],
        end=STREAM[-1] + pd.Timedelta(hours=1),
        grace="0h",
        spacing="1h",
        water_price_eur_m3=0.8,
        false_alarm_cost_eur=500,
    )


def test_event_bootstrap_of_a_model_against_itself_is_zero():
    result = _stream_result(range(0, 20, 2))
    boot = bootstrap.event_bootstrap(
        result, result, metric="event_f1", n_bootstrap=200, seed=0, confidence=0.95
    )
    assert (boot["ci_low"], boot["ci_high"]) == (0.0, 0.0)
    assert boot["unit"] == "blocks of 7D" and boot["n_units"] == 9  # 60 days: 8 weeks and 4 days


def test_event_bootstrap_interval_excludes_zero_for_a_model_finding_more_leaks():
    better = _stream_result(range(20))
    worse = _stream_result(range(0, 20, 2), false_alarms=[STREAM[0] + pd.Timedelta(days=2)])
    boot = bootstrap.event_bootstrap(
        better, worse, metric="event_recall", n_bootstrap=300, seed=0, confidence=0.95
    )
    assert 0 < boot["ci_low"] <= 0.5 <= boot["ci_high"]
    assert boot["mean"] == pytest.approx(0.5, abs=0.05)
    assert set(boot) == set(
        bootstrap.paired_bootstrap(
            *_scores()[:3], metric="roc_auc", groups=None, n_bootstrap=100, seed=0, confidence=0.9
        )
    )


def test_event_bootstrap_is_reproducible_with_the_seed():
    a, b = _stream_result(range(15)), _stream_result(range(0, 20, 3))
    kwargs = dict(metric="event_early_detection", n_bootstrap=100, seed=3, confidence=0.9)
    assert bootstrap.event_bootstrap(a, b, **kwargs) == bootstrap.event_bootstrap(a, b, **kwargs)


def test_a_draw_scores_its_blocks_as_if_stacked():
    # one block holding everything: every draw is the whole period, the difference exact
    a, b = _stream_result(range(20)), _stream_result(range(10))
    boot = bootstrap.event_bootstrap(
        a, b, metric="event_recall", block="60D", n_bootstrap=100, seed=0, confidence=0.9
    )
    assert boot["n_units"] == 1 and boot["ci_low"] == boot["ci_high"] == 0.5


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"metric": "roc_auc"}, "'roc_auc' is a row metric: bootstrap it with paired_bootstrap"),
        ({"block": "weekly"}, "block: 'weekly' is not a duration"),
        ({"block": "0D"}, "block: '0D' must be longer than zero"),
        (
            {"metric": "event_detection_hours_median", "champion": _stream_result([])},
            "bootstrap draws define event_detection_hours_median",
        ),
    ],
)
def test_event_bootstrap_refuses_what_it_cannot_compare(kwargs, message):
    call = {
        "challenger": _stream_result(range(20)),
        "champion": _stream_result(range(5)),
        "metric": "event_f1",
        "n_bootstrap": 50,
        "seed": 0,
        "confidence": 0.9,
        **kwargs,
    }
    with pytest.raises(bootstrap.BootstrapError, match=message):
        bootstrap.event_bootstrap(**call)


def test_event_bootstrap_refuses_results_over_different_periods():
    whole = _stream_result(range(20))
    shorter = replace(whole, end=whole.end - pd.Timedelta(days=1))
    with pytest.raises(bootstrap.BootstrapError, match="cover different periods"):
        bootstrap.event_bootstrap(
            whole, shorter, metric="event_f1", n_bootstrap=50, seed=0, confidence=0.9
        )


def test_paired_bootstrap_refuses_an_event_metric():
    y, good, noisy, codes = _scores()
    with pytest.raises(bootstrap.BootstrapError, match="'event_f1' is an event metric"):
        bootstrap.paired_bootstrap(
            y, good, noisy, metric="event_f1", groups=codes, n_bootstrap=10, seed=0, confidence=0.9
        )
