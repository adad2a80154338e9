"""Holdout metrics in the operator's terms: alarms, false-alarm rates, detection delays.

The figures of the evaluation report live in :mod:`leaklib.plots`; metric definitions in
:mod:`leaklib.metrics`.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.inspection import permutation_importance
from sklearn.metrics import (
    confusion_matrix,
    f1_score,
    precision_score,
    recall_score,
    roc_curve,
)

from leaklib.leak_events import evaluate_events, event_scores
from leaklib.metrics import CV_PREFIX, RANKING, MetricError, checked
from leaklib.params import EventsSpec, Params

log = logging.getLogger(__name__)


EvaluationError = MetricError  # scores that cannot be computed, as the metrics module says


def threshold_for_false_alarm_rate(
    y: np.ndarray, oof_proba: np.ndarray, *, max_false_alarm_rate: float
) -> float:
    """Return the lowest alarm threshold whose false-alarm rate stays at or below the maximum.

    Choose it on out-of-fold predictions of the training part, never on the holdout; alarms
    are ``proba >= threshold``. When even the highest score would alarm too often, the result
    lies just above every score (no alarm at all).
    """
    if not 0 < max_false_alarm_rate < 1:
        raise EvaluationError(
            f"max_false_alarm_rate must be between 0 and 1, got {max_false_alarm_rate}"
        )
    y, proba = checked(y, oof_proba)
    fprs, _, thresholds = roc_curve(y, proba, drop_intermediate=False)
    chosen = float(thresholds[fprs <= max_false_alarm_rate].min())
    return chosen if np.isfinite(chosen) else float(np.nextafter(proba.max(), np.inf))


@dataclass(frozen=True)
class AlarmThreshold:
    """The alarm threshold of a model: its value, how it was chosen, what it reached."""

    threshold: float
    chosen_by: str  # "cv" (out-of-fold rate), "cv-events" (out-of-fold events) or "parameter"
    max_false_alarm_rate: float | None
    cv_false_alarm_rate: float
    cv_recall: float
    max_false_alarms_per_30d: float | None = None
    cv_false_alarms_per_30d: float | None = None  # "cv-events": what the threshold reached
    cv_event_recall: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the threshold as plain values for the run record and MLflow."""
        return asdict(self)


def choose_alarm_threshold(
    y: np.ndarray,
    oof_proba: np.ndarray,
    folds: np.ndarray,
    *,
    max_false_alarm_rate: float,
    override: float | None = None,
) -> AlarmThreshold:
    """Choose the alarm threshold on out-of-fold predictions of the training part.

    Each fold's model scores on its own scale, so the threshold meeting the rate is found fold
    by fold and the median is taken; the pooled out-of-fold rate and recall it reaches are
    reported. ``override`` (the ``threshold`` parameter) is used as it is when given. Rows in
    no test fold (fold 0: the first block of forward folds) are left out.
    """
    scored = np.asarray(folds) > 0
    y, proba, folds = (
        np.asarray(y)[scored],
        np.asarray(oof_proba)[scored],
        np.asarray(folds)[scored],
    )
    y, proba = checked(y, proba)
    if override is not None:
        chosen, how = float(override), "parameter"
    else:
        per_fold = [
            threshold_for_false_alarm_rate(
                y[folds == k], proba[folds == k], max_false_alarm_rate=max_false_alarm_rate
            )
            for k in np.unique(folds)
            if len(np.unique(y[folds == k])) == 2
        ]
        chosen, how = float(np.median(per_fold)), "cv"
    alarms = proba >= chosen
    return AlarmThreshold(
        threshold=round(chosen, 6),
        chosen_by=how,
        max_false_alarm_rate=None if override is not None else max_false_alarm_rate,
        cv_false_alarm_rate=round(float(alarms[y == 0].mean()), 6),
        cv_recall=round(float(alarms[y == 1].mean()), 6),
    )


def threshold_for_run(
    train: pd.DataFrame,
    oof_proba: np.ndarray,
    folds: np.ndarray,
    *,
    params: Params,
    leak_table: pd.DataFrame | None = None,
) -> AlarmThreshold:
    """Choose the run's alarm threshold as its ``threshold`` and ``alarm`` parameters say.

    On a stream with ``alarm.max_false_alarms_per_30d``: by out-of-fold false alarm events
    (:func:`threshold_for_false_alarm_events`); otherwise by the out-of-fold false-alarm rate
    of rows (:func:`choose_alarm_threshold`); an explicit ``threshold`` wins over both.
    """
    dataset, alarm = params.dataset, params.alarm
    if (
        params.threshold is None
        and alarm.max_false_alarms_per_30d is not None
        and dataset.is_stream
    ):
        return threshold_for_false_alarm_events(
            train,
            oof_proba,
            folds,
            max_per_30d=alarm.max_false_alarms_per_30d,
            timestamp=dataset.timestamp,
            target=dataset.target,
            spec=params.events,
            leak_table=leak_table,
        )
    return choose_alarm_threshold(
        train[dataset.target],
        oof_proba,
        folds,
        max_false_alarm_rate=alarm.max_false_alarm_rate,
        override=params.threshold,
    )


def _lowest_passing(candidates: np.ndarray, passes: Callable[[float], bool]) -> float:
    """Bisect sorted candidates for the lowest that passes (passing is monotone; the last is kept)."""
    low, high = 0, len(candidates) - 1
    while low < high:
        middle = (low + high) // 2
        if passes(float(candidates[middle])):
            high = middle
        else:
            low = middle + 1
    return float(candidates[low])


def threshold_for_false_alarm_events(
    frame: pd.DataFrame,
    oof_proba: np.ndarray,
    folds: np.ndarray,
    *,
    max_per_30d: float,
    timestamp: str,
    target: str,
    spec: EventsSpec,
    leak_table: pd.DataFrame | None = None,
) -> AlarmThreshold:
    """Choose the lowest threshold whose out-of-fold false alarm events stay within the limit.

    Each forward fold's test block is a stretch of time; at a candidate threshold its alarms
    become alarm events and are matched to the leaks with the events rules
    (:mod:`leaklib.leak_events`), and the false alarms are counted per 30 days. The count falls
    as the threshold rises, so the candidates (the block's score quantiles) are bisected. Each
    fold's model scores on its own scale (an early fold learned from little history), so the
    threshold is found fold by fold and the median is taken, as for the rate of rows.

    Args:
        frame: The training part, row for row with ``oof_proba`` and ``folds``.
        oof_proba: The out-of-fold probabilities (NaN in no fold).
        folds: Each row's fold number (0: in no test fold).
        max_per_30d: The most false alarm events per 30 days allowed.
        timestamp: The time column.
        target: The label column (its runs are the leaks without a leak table).
        spec: The ``events`` parameters.
        leak_table: The leaks, or None.
    """
    scored = np.asarray(folds) > 0
    rows, proba = frame[scored], np.asarray(oof_proba, dtype=float)[scored]
    fold_of = np.asarray(folds)[scored]
    if rows.empty:
        raise EvaluationError("no out-of-fold predictions to choose the threshold on")
    outcome = functools.partial(
        _event_outcome,
        rows,
        proba,
        timestamp=timestamp,
        target=target,
        spec=spec,
        leak_table=leak_table,
    )
    per_fold = [  # each fold's model scores on its own scale
        _lowest_passing(
            np.unique(np.quantile(proba[fold_of == fold], np.linspace(0.5, 1.0, 400))),
            lambda t, part=fold_of == fold: (
                outcome(part, t)["event_false_alarms_per_30d"] <= max_per_30d
            ),
        )
        for fold in np.unique(fold_of)
    ]
    chosen = float(np.median(per_fold))
    reached = outcome(np.ones(len(rows), dtype=bool), chosen)
    return _events_threshold(
        chosen, reached, rows=rows, proba=proba, target=target, max_per_30d=max_per_30d
    )


def _event_outcome(
    rows: pd.DataFrame,
    proba: np.ndarray,
    part: np.ndarray,
    threshold: float,
    *,
    timestamp: str,
    target: str,
    spec: EventsSpec,
    leak_table: pd.DataFrame | None,
) -> dict[str, float]:
    """The event scores of the rows in ``part`` when those at or above ``threshold`` alarm."""
    result = evaluate_events(
        rows[part],
        proba[part],
        threshold=threshold,
        timestamp=timestamp,
        target=target,
        spec=spec,
        leak_table=leak_table,
    )
    return event_scores(result)


def _events_threshold(
    chosen: float,
    reached: dict[str, float],
    *,
    rows: pd.DataFrame,
    proba: np.ndarray,
    target: str,
    max_per_30d: float,
) -> AlarmThreshold:
    """The chosen threshold, with what it reaches out of fold: row rates and event scores."""
    y = rows[target].to_numpy()
    alarms = proba >= chosen
    return AlarmThreshold(
        threshold=round(chosen, 6),
        chosen_by="cv-events",
        max_false_alarm_rate=None,
        cv_false_alarm_rate=round(float(alarms[y == 0].mean()), 6) if (y == 0).any() else 0.0,
        cv_recall=round(float(alarms[y == 1].mean()), 6) if (y == 1).any() else 0.0,
        max_false_alarms_per_30d=max_per_30d,
        cv_false_alarms_per_30d=round(reached["event_false_alarms_per_30d"], 6),
        cv_event_recall=round(reached["event_recall"], 6),
    )


def alarm_summary(alarm: dict[str, Any], holdout: dict[str, float]) -> pd.DataFrame:
    """Return the false-alarm rate aimed at, reached out-of-fold and reached on the holdout."""
    target = alarm.get("max_false_alarm_rate")
    rows = {
        "false-alarm rate": {
            "target": "-" if target is None else f"{target:.2%}",
            "out-of-fold (training part)": f"{alarm['cv_false_alarm_rate']:.2%}",
            "holdout": f"{holdout['false_positive_rate']:.2%}",
        },
        "recall (share of leak rows alarmed)": {
            "target": "-",
            "out-of-fold (training part)": f"{alarm['cv_recall']:.2%}",
            "holdout": f"{holdout['recall']:.2%}",
        },
    }
    frame = pd.DataFrame(rows).T
    frame.index.name = f"at threshold {alarm['threshold']:.4f} ({alarm['chosen_by']})"
    return frame


def holdout_metrics(y: np.ndarray, proba: np.ndarray, *, threshold: float) -> dict[str, float]:
    """Return ranking metrics, recall at fixed false-alarm rates and counts at ``threshold``."""
    y, proba = checked(y, proba)
    predicted = (proba >= threshold).astype(int)
    tn, fp, fn, tp = confusion_matrix(y, predicted, labels=[0, 1]).ravel()
    metrics = {name: entry.score(y, proba) for name, entry in RANKING.items()}
    metrics |= {
        "f1": f1_score(y, predicted, zero_division=0),
        "precision": precision_score(y, predicted, zero_division=0),
        "recall": recall_score(y, predicted, zero_division=0),
        "false_positive_rate": fp / (fp + tn) if fp + tn else 0.0,
        "threshold": threshold,
        "tp": tp,
        "fp": fp,
        "tn": tn,
        "fn": fn,
    }
    return {
        k: (int(v) if k in ("tp", "fp", "tn", "fn") else round(float(v), 6))
        for k, v in metrics.items()
    }


def alarms_per_day(
    frame: pd.DataFrame,
    proba: np.ndarray,
    *,
    threshold: float,
    timestamp: str,
    target: str,
    group: str | None,
) -> dict[str, float]:
    """Return alarms a threshold raises per network-day, in all and during no-leak time only."""
    stamps = pd.to_datetime(frame[timestamp])
    alarms = np.asarray(proba) >= threshold
    units = frame[group] if group else pd.Series(0, index=frame.index)
    step = stamps.groupby(units.to_numpy()).apply(lambda s: s.sort_values().diff().median())
    step = step.dropna()
    if step.empty or pd.isna(step.median()):
        raise EvaluationError(
            f"column {timestamp!r}: need at least two times per group to measure days"
        )
    days = len(frame) * step.median() / pd.Timedelta(days=1)
    no_leak = frame[target].to_numpy() == 0
    no_leak_days = no_leak.sum() * step.median() / pd.Timedelta(days=1)
    return {
        "alarms_per_day": round(float(alarms.sum() / days), 4),
        "false_alarms_per_day": round(float((alarms & no_leak).sum() / no_leak_days), 4)
        if no_leak_days
        else 0.0,
        "observed_days": round(float(days), 2),
    }


def detection_delays(
    frame: pd.DataFrame,
    proba: np.ndarray,
    *,
    threshold: float,
    timestamp: str,
    target: str,
    group: str,
) -> pd.DataFrame:
    """Return, per group with a leak: leak start, first alarm during the leak, delay in hours."""
    data = pd.DataFrame(
        {
            "group": frame[group].to_numpy(),
            "time": pd.to_datetime(frame[timestamp]).to_numpy(),
            "leak": frame[target].to_numpy(),
            "alarm": np.asarray(proba) >= threshold,
        }
    ).sort_values(["group", "time"])
    rows = []
    for key, part in data.groupby("group", sort=True):
        leaking = part[part["leak"] == 1]
        if leaking.empty:
            continue
        start = leaking["time"].iloc[0]
        hits = leaking[leaking["alarm"]]
        first = hits["time"].iloc[0] if len(hits) else pd.NaT
        rows.append(
            {
                group: key,
                "leak_start": start,
                "first_alarm": first,
                "delay_hours": (first - start) / pd.Timedelta(hours=1) if len(hits) else np.nan,
                "detected": bool(len(hits)),
            }
        )
    return pd.DataFrame(
        rows, columns=[group, "leak_start", "first_alarm", "delay_hours", "detected"]
    )


def detection_summary(delays: pd.DataFrame) -> dict[str, float]:
    """Return the share of leaks detected and the median and 90th-percentile delay in hours.

    Empty without delays (a stream: its leaks are scored as events, by leaklib.leak_events).
    """
    if delays.empty:
        return {}
    found = delays["delay_hours"].dropna()
    return {
        "leaks": len(delays),
        "leaks_detected_share": round(float(delays["detected"].mean()), 4),
        "median_delay_hours": round(float(found.median()), 2) if len(found) else float("nan"),
        "p90_delay_hours": round(float(found.quantile(0.9)), 2) if len(found) else float("nan"),
    }


def permutation_table(
    model, X: pd.DataFrame, y: np.ndarray, *, repeats: int, seed: int, max_rows: int = 5000
) -> pd.DataFrame:
    """Return the mean and spread of the ROC-AUC drop when each column is shuffled.

    Each repeat scores a seeded sample of at most ``max_rows`` rows, which keeps the cost
    flat on large holdouts while the repeats average the sampling noise.
    """
    share = min(1.0, max_rows / len(X))
    result = permutation_importance(
        model,
        X,
        y,
        scoring="roc_auc",
        n_repeats=repeats,
        random_state=seed,
        n_jobs=1,
        max_samples=share,
    )
    return pd.DataFrame(
        {"mean": result.importances_mean, "std": result.importances_std}, index=X.columns
    ).sort_values("mean", ascending=False)


def headline(cv_metrics: dict[str, float], holdout: dict[str, float]) -> pd.DataFrame:
    """Return cross-validated (mean ± std) and holdout figures side by side."""
    rows = {}
    for name, entry in RANKING.items():
        mean = cv_metrics.get(f"{CV_PREFIX}{name}")
        std = cv_metrics.get(f"{CV_PREFIX}{name}_std")
        rows[entry.label] = {
            "cross-validated": "-" if mean is None else f"{mean:.3f} ± {std:.3f}",
            "holdout": f"{holdout[name]:.3f}",
        }
    rows[f"F1 at threshold {holdout['threshold']:g}"] = {
        "cross-validated": "-",
        "holdout": f"{holdout['f1']:.3f}",
    }
    return pd.DataFrame(rows).T


def operations(frame: pd.DataFrame, proba: np.ndarray, *, params, threshold: float) -> pd.Series:
    """Return alarms per day at the threshold (when there is a timestamp) as a small table."""
    facts: dict[str, float] = {"threshold": threshold}
    if params.dataset.timestamp:
        facts.update(
            alarms_per_day(
                frame,
                proba,
                threshold=threshold,
                timestamp=params.dataset.timestamp,
                target=params.dataset.target,
                group=params.dataset.group,
            )
        )
    return pd.Series(facts, name="value")


def delays_if_possible(
    frame: pd.DataFrame, proba: np.ndarray, *, params, threshold: float
) -> pd.DataFrame:
    """Return detection delays when the table has a group and a timestamp, else an empty table."""
    if not (params.dataset.group and params.dataset.timestamp):
        return pd.DataFrame(columns=["leak_start", "first_alarm", "delay_hours", "detected"])
    return detection_delays(
        frame,
        proba,
        threshold=threshold,
        timestamp=params.dataset.timestamp,
        target=params.dataset.target,
        group=params.dataset.group,
    )
