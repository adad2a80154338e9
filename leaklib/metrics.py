"""The metric catalogue: every metric's name, function, label and direction, defined once.

Cross-validation, the holdout evaluation, the promotion gate, the parameters (which metrics
may be primary or carry a floor) and the reports all read this module. A new metric is one
entry in :data:`RANKING` (scored from probabilities), :data:`AT_THRESHOLD` (scored from
alarms at the threshold), :data:`EVENT` (scored from alarm events matched to leak events by
:mod:`leaklib.leak_events`, which computes exactly these names) or :data:`LOCATION` (where the
detected leaks are, computed by :func:`leaklib.leak_location.location_scores`).

A metric says what it needs in ``kind``: ``row`` metrics are computed from labels and
probabilities row by row; ``event`` metrics need the alarm events and leak events of a
time-ordered stream (:func:`leaklib.leak_events.event_scores`), so they have no ``score`` function
here and are bootstrapped over blocks of time (:func:`leaklib.bootstrap.event_bootstrap`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

from leaklib.errors import LeakError

FALSE_ALARM_RATES = (0.005, 0.01, 0.05)
# the kinds of leak a leak table names; event metrics are also reported for each
LEAK_KINDS = ("abrupt", "incipient")
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
    # what it is computed from: "row" (labels and probabilities, row by row) or "event"
    # (alarm events matched to leak events: leaklib.leak_events.event_scores) or "location"
    # (the detected leaks' ranked candidate nodes: leaklib.leak_location.location_scores)
    kind: Literal["row", "event", "location"] = "row"


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


def _event(name: str, label: str, *, lower: bool = False, primary: bool = False) -> Metric:
    return Metric(name, label, None, higher_is_better=not lower, primary=primary, kind="event")


# scored over all leaks (false alarms have no kind, so they are only here)
_EVENT_OVERALL = (
    _event("event_recall", "leaks detected (share)", primary=True),
    _event("event_precision", "event precision", primary=True),
    _event("event_f1", "event F1", primary=True),
    _event("event_leaks_detected", "leaks detected"),
    _event("event_false_alarms", "false alarms", lower=True),
    _event("event_false_alarms_per_30d", "false alarms per 30 days", lower=True),
    _event("event_detection_hours_median", "median detection time (h)", lower=True),
    _event("event_detection_hours_p90", "P90 detection time (h)", lower=True),
    _event("event_early_detection", "early detection score (LeakDB)", primary=True),
    _event("event_water_saved_m3", "water saved (m³)"),
    _event("event_economic_eur", "economic score (EUR)"),
    _event("event_economic_perfect_eur", "perfect economic score (EUR)"),
    _event("event_economic_share", "economic score, share of perfect", primary=True),
)
# scored again over the leaks of each kind in LEAK_KINDS: name_<kind>, "label (<kind>)"
_EVENT_PER_KIND = (
    _event("event_recall", "leaks detected (share)"),
    _event("event_detection_hours_median", "median detection time (h)", lower=True),
    _event("event_detection_hours_p90", "P90 detection time (h)", lower=True),
    _event("event_early_detection", "early detection score (LeakDB)"),
    _event("event_water_saved_share", "water saved, share of all leak water"),
)
EVENT_PER_KIND = tuple(m.name for m in _EVENT_PER_KIND)
EVENT: dict[str, Metric] = {
    metric.name: metric
    for metric in (
        *_EVENT_OVERALL,
        *(
            Metric(
                f"{m.name}_{kind}",
                f"{m.label} ({kind})",
                None,
                higher_is_better=m.higher_is_better,
                kind="event",
            )
            for kind in LEAK_KINDS
            for m in _EVENT_PER_KIND
        ),
    )
}


def _location(name: str, label: str, *, lower: bool = False) -> Metric:
    return Metric(name, label, None, higher_is_better=not lower, kind="location")


# where the detected leaks are (leaklib.leak_location.location_scores computes exactly these
# names); 300 m along the pipes is BattLeDIM's rule, k is localisation.top_k
LOCATION: dict[str, Metric] = {
    metric.name: metric
    for metric in (
        _location("location_leaks", "detected leaks located"),
        _location("location_within_300m_top1", "located within 300 m, top candidate (share)"),
        _location("location_within_300m_topk", "located within 300 m, any of the top k (share)"),
        _location("location_distance_m_median", "median distance to the leak (m)", lower=True),
        _location("location_walk_m_median", "median main walked over the top k (m)", lower=True),
        _location("location_penalty_eur", "distance penalty (EUR 500 per 300 m)", lower=True),
        _location("location_economic_eur", "economic score less the distance penalty (EUR)"),
        _location("location_economic_share", "economic score less the penalty, share of perfect"),
    )
}
CATALOGUE: dict[str, Metric] = {**RANKING, **AT_THRESHOLD, **EVENT, **LOCATION}
# what may be the gate's primary metric or carry a floor: row and event metrics
PRIMARY = tuple(name for name, metric in CATALOGUE.items() if metric.primary)
# the ranking metrics cross-validation reports per fold, in this order (row metrics only:
# a fold of rows has no alarm events)
CV_METRICS = tuple(name for name in PRIMARY if CATALOGUE[name].kind == "row")
# what a reader sees first: the header of a report, the run index, a run's summary
HEADLINE = tuple(f"{HOLDOUT_PREFIX}{name}" for name in CV_METRICS) + (f"{CV_PREFIX}roc_auc",)


def metric(name: str) -> Metric:
    """Return a metric of the catalogue; MetricError naming the known ones otherwise."""
    if name not in CATALOGUE:
        raise MetricError(f"unknown metric {name!r}; known: {', '.join(CATALOGUE)}")
    return CATALOGUE[name]


def score(name: str, y: np.ndarray, proba: np.ndarray) -> float:
    """Return one ranking metric of ``proba`` against ``y``."""
    entry = metric(name)
    if entry.kind == "event":
        raise MetricError(
            f"{name!r} is an event metric: it needs alarm events matched to leak events "
            "(leaklib.leak_events.event_scores), not labels and scores row by row"
        )
    if entry.kind == "location":
        raise MetricError(
            f"{name!r} is a location metric: it needs the detected leaks' ranked candidates "
            "(leaklib.leak_location.location_scores), not labels and scores row by row"
        )
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
