"""The metric catalogue: every metric's name, function, label and direction, defined once.

Cross-validation, the holdout evaluation, the promotion gate, the parameters (which metrics
may be primary or carry a floor) and the reports all read this module. A new metric is one
entry in :data:`RANKING` (scored from probabilities) or :data:`AT_THRESHOLD` (scored from
alarms at the threshold).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

from leaklib.errors import LeakError

FALSE_ALARM_RATES = (0.005, 0.01, 0.05)
CV_PREFIX = "cv_"
HOLDOUT_PREFIX = "holdout_"


class MetricError(LeakError, ValueError):
    """Scores cannot be computed from what was given."""


@dataclass(frozen=True)
class Metric:
    """One metric: how it is computed from labels and scores, how it is shown."""

    name: str
    label: str
    score: Callable[[np.ndarray, np.ndarray], float] | None
    higher_is_better: bool = True
    primary: bool = False  # may be the gate's primary metric or carry a floor


def checked(y: np.ndarray, proba: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return labels and scores as arrays; MetricError when they cannot be scored."""
    y = np.asarray(y)
    proba = np.asarray(proba, dtype=float)
    if y.shape != proba.shape:
        raise MetricError(f"labels ({y.shape}) and scores ({proba.shape}) differ in length")
    if len(np.unique(y)) < 2:
        raise MetricError("the labels hold a single class; ROC and recall need both 0 and 1")
    return y, proba


def rate_key(fpr: float) -> str:
    """Return the metric name for a false-positive rate, e.g. 0.01 -> ``recall_at_1pct_fpr``."""
    pct = f"{fpr * 100:g}".replace(".", "_")
    return f"recall_at_{pct}pct_fpr"


def recall_at_fpr(y: np.ndarray, proba: np.ndarray, *, fpr: float) -> float:
    """Return the best recall reachable with a false-positive rate of at most ``fpr``."""
    if not 0 < fpr < 1:
        raise MetricError(f"fpr must be between 0 and 1, got {fpr}")
    y, proba = checked(y, proba)
    fprs, tprs, _ = roc_curve(y, proba)
    return float(tprs[fprs <= fpr].max())


def _recall_at(rate: float) -> Callable[[np.ndarray, np.ndarray], float]:
    return lambda y, proba: recall_at_fpr(y, proba, fpr=rate)


def _rate_label(rate: float) -> str:
    return f"recall at {rate * 100:g} % FPR"


RANKING: dict[str, Metric] = {
    metric.name: metric
    for metric in (
        Metric("roc_auc", "ROC-AUC", roc_auc_score, primary=True),
        Metric("pr_auc", "PR-AUC", average_precision_score, primary=True),
        *(
            Metric(rate_key(rate), _rate_label(rate), _recall_at(rate), primary=rate == 0.01)
            for rate in FALSE_ALARM_RATES
        ),
    )
}
AT_THRESHOLD: dict[str, Metric] = {
    metric.name: metric
    for metric in (
        Metric("precision", "precision", None),
        Metric("recall", "recall", None),
        Metric("f1", "F1", None),
        Metric("false_positive_rate", "false-positive rate", None, higher_is_better=False),
    )
}
CATALOGUE: dict[str, Metric] = {**RANKING, **AT_THRESHOLD}
PRIMARY = tuple(name for name, metric in RANKING.items() if metric.primary)
# the ranking metrics cross-validation reports per fold, in this order
CV_METRICS = PRIMARY
# what a reader sees first: the header of a report, the run index, a run's summary
HEADLINE = tuple(f"{HOLDOUT_PREFIX}{name}" for name in PRIMARY) + (f"{CV_PREFIX}roc_auc",)


def metric(name: str) -> Metric:
    """Return a metric of the catalogue; MetricError naming the known ones otherwise."""
    if name not in CATALOGUE:
        raise MetricError(f"unknown metric {name!r}; known: {', '.join(CATALOGUE)}")
    return CATALOGUE[name]


def score(name: str, y: np.ndarray, proba: np.ndarray) -> float:
    """Return one ranking metric of ``proba`` against ``y``."""
    entry = metric(name)
    if entry.score is None:
        raise MetricError(f"{name!r} is measured at a threshold, not from scores alone")
    y, proba = checked(y, proba)
    return float(entry.score(y, proba))


def label(key: str) -> str:
    """Return a reader's label for a metric key, prefixed ones included (``cv_roc_auc``)."""
    for prefix, scope in ((HOLDOUT_PREFIX, "holdout "), (CV_PREFIX, "CV ")):
        if key.startswith(prefix) and key.removeprefix(prefix) in CATALOGUE:
            return scope + CATALOGUE[key.removeprefix(prefix)].label
    return CATALOGUE[key].label if key in CATALOGUE else key.replace("_", " ")


def unprefixed(metrics: dict[str, float], *, prefix: str = HOLDOUT_PREFIX) -> dict[str, float]:
    """Return the metrics recorded under ``prefix`` without it (``holdout_roc_auc`` -> ``roc_auc``)."""
    return {k.removeprefix(prefix): v for k, v in metrics.items() if k.startswith(prefix)}


def prefixed(*parts: dict[str, float], prefix: str = HOLDOUT_PREFIX) -> dict[str, float]:
    """Merge metric dictionaries under one prefix, e.g. ``roc_auc`` -> ``holdout_roc_auc``."""
    merged: dict[str, float] = {}
    for part in parts:
        merged.update({f"{prefix}{k}": v for k, v in part.items()})
    return merged
