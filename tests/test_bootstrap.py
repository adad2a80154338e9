"""leaklib.bootstrap: the paired group bootstrap behind the promotion gate."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from leaklib import bootstrap, metrics


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
