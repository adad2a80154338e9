"""Holdout metrics in the operator's terms, and the plots of the evaluation report.

Every plot has a title, labelled axes and a one-line caption saying what to look for.
"""

from __future__ import annotations

import logging

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from sklearn.calibration import calibration_curve
from sklearn.metrics import (
    average_precision_score,
    confusion_matrix,
    f1_score,
    precision_recall_curve,
    precision_score,
    recall_score,
    roc_auc_score,
    roc_curve,
)

log = logging.getLogger(__name__)

FALSE_ALARM_RATES = (0.005, 0.01, 0.05)


class EvaluationError(ValueError):
    """Scores cannot be computed from what was given."""


def _check(y: np.ndarray, proba: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y)
    proba = np.asarray(proba, dtype=float)
    if y.shape != proba.shape:
        raise EvaluationError(f"labels ({y.shape}) and scores ({proba.shape}) differ in length")
    if len(np.unique(y)) < 2:
        raise EvaluationError("the labels hold a single class; ROC and recall need both 0 and 1")
    return y, proba


def rate_key(fpr: float) -> str:
    """Return the metric name for a false-positive rate, e.g. 0.01 -> ``recall_at_1pct_fpr``."""
    pct = f"{fpr * 100:g}".replace(".", "_")
    return f"recall_at_{pct}pct_fpr"


def recall_at_fpr(y: np.ndarray, proba: np.ndarray, *, fpr: float) -> float:
    """Return the best recall reachable with a false-positive rate of at most ``fpr``."""
    if not 0 < fpr < 1:
        raise EvaluationError(f"fpr must be between 0 and 1, got {fpr}")
    y, proba = _check(y, proba)
    fprs, tprs, _ = roc_curve(y, proba)
    return float(tprs[fprs <= fpr].max())


def threshold_at_fpr(y: np.ndarray, proba: np.ndarray, *, fpr: float) -> float:
    """Return the lowest threshold whose false-positive rate stays at or below ``fpr``."""
    y, proba = _check(y, proba)
    fprs, _, thresholds = roc_curve(y, proba)
    return float(thresholds[fprs <= fpr].min())


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
    y, proba = _check(y, oof_proba)
    fprs, _, thresholds = roc_curve(y, proba, drop_intermediate=False)
    chosen = float(thresholds[fprs <= max_false_alarm_rate].min())
    return chosen if np.isfinite(chosen) else float(np.nextafter(proba.max(), np.inf))


def holdout_metrics(y: np.ndarray, proba: np.ndarray, *, threshold: float) -> dict[str, float]:
    """Return ranking metrics, recall at fixed false-alarm rates and counts at ``threshold``."""
    y, proba = _check(y, proba)
    predicted = (proba >= threshold).astype(int)
    tn, fp, fn, tp = confusion_matrix(y, predicted, labels=[0, 1]).ravel()
    metrics = {
        "roc_auc": roc_auc_score(y, proba),
        "pr_auc": average_precision_score(y, proba),
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
    for rate in FALSE_ALARM_RATES:
        metrics[rate_key(rate)] = recall_at_fpr(y, proba, fpr=rate)
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
    """Return the share of leaks detected and the median and 90th-percentile delay in hours."""
    if delays.empty:
        return {
            "leaks": 0,
            "leaks_detected_share": 0.0,
            "median_delay_hours": float("nan"),
            "p90_delay_hours": float("nan"),
        }
    found = delays["delay_hours"].dropna()
    return {
        "leaks": len(delays),
        "leaks_detected_share": round(float(delays["detected"].mean()), 4),
        "median_delay_hours": round(float(found.median()), 2) if len(found) else float("nan"),
        "p90_delay_hours": round(float(found.quantile(0.9)), 2) if len(found) else float("nan"),
    }


# ---------------------------------------------------------------- plots


def _figure(
    title: str, xlabel: str, ylabel: str, caption: str, size=(6.4, 4.4)
) -> tuple[Figure, plt.Axes]:
    fig, ax = plt.subplots(figsize=size, layout="constrained")
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    fig.get_layout_engine().set(h_pad=0.15)
    fig.text(0.01, 0.005, caption, fontsize=8, style="italic", ha="left", va="bottom", wrap=True)
    return fig, ax


def plot_roc(y: np.ndarray, proba: np.ndarray, *, label: str = "model") -> Figure:
    """ROC curve with the fixed false-alarm rates marked."""
    fig, ax = _figure(
        "ROC curve on the holdout",
        "False-positive rate (share of no-leak windows alarmed)",
        "True-positive rate (share of leak windows alarmed)",
        "Look at the far left: operators live at false-alarm rates of 1 % or less.",
    )
    fpr, tpr, _ = roc_curve(y, proba)
    ax.plot(fpr, tpr, label=f"{label} (AUC {roc_auc_score(y, proba):.3f})")
    ax.plot([0, 1], [0, 1], ls=":", color="grey", label="chance")
    for rate in FALSE_ALARM_RATES:
        ax.axvline(rate, color="tab:red", lw=0.6, ls="--")
    ax.legend(loc="lower right")
    return fig


def plot_pr(y: np.ndarray, proba: np.ndarray) -> Figure:
    """Precision-recall curve against the base rate."""
    fig, ax = _figure(
        "Precision-recall curve on the holdout",
        "Recall (share of leak windows found)",
        "Precision (share of alarms that are leaks)",
        "The dashed line is the leak base rate: the curve's height above it is what the model adds.",
    )
    precision, recall, _ = precision_recall_curve(y, proba)
    ax.plot(recall, precision, label=f"AP {average_precision_score(y, proba):.3f}")
    ax.axhline(np.mean(y), ls="--", color="grey", label=f"base rate {np.mean(y):.2f}")
    ax.legend(loc="lower left")
    return fig


def plot_calibration(y: np.ndarray, proba: np.ndarray, *, bins: int = 10) -> Figure:
    """Reliability diagram: predicted probability against observed leak share."""
    fig, ax = _figure(
        "Calibration on the holdout",
        "Mean predicted leak probability",
        "Observed share of leak windows",
        "Points on the diagonal mean a predicted 70 % is a leak 70 % of the time.",
    )
    observed, predicted = calibration_curve(y, proba, n_bins=bins, strategy="quantile")
    ax.plot(predicted, observed, marker="o", label="model")
    ax.plot([0, 1], [0, 1], ls=":", color="grey", label="perfect calibration")
    ax.legend(loc="upper left")
    return fig


def plot_confusion(y: np.ndarray, proba: np.ndarray, *, threshold: float) -> Figure:
    """Confusion matrix at the alarm threshold, with counts."""
    fig, ax = _figure(
        f"Confusion matrix at threshold {threshold:g}",
        "Predicted",
        "Actual",
        "Top right are false alarms, bottom left are missed leak windows.",
        size=(5.2, 4.4),
    )
    matrix = confusion_matrix(y, (np.asarray(proba) >= threshold).astype(int), labels=[0, 1])
    ax.imshow(matrix, cmap="Blues")
    for (i, j), count in np.ndenumerate(matrix):
        ax.text(
            j,
            i,
            f"{count:,}",
            ha="center",
            va="center",
            color="black",
            fontsize=12,
            bbox={"facecolor": "white", "alpha": 0.7, "lw": 0},
        )
    ax.set_xticks([0, 1], ["no leak", "leak"])
    ax.set_yticks([0, 1], ["no leak", "leak"])
    return fig


def plot_threshold_sweep(y: np.ndarray, proba: np.ndarray, *, threshold: float) -> Figure:
    """Precision, recall and F1 against the alarm threshold."""
    fig, ax = _figure(
        "Metrics against the alarm threshold",
        "Alarm threshold on the leak probability",
        "Score",
        "The vertical line is the configured threshold; moving it trades recall for precision.",
    )
    grid = np.linspace(0.01, 0.99, 99)
    y = np.asarray(y)
    rows = []
    for t in grid:
        predicted = (np.asarray(proba) >= t).astype(int)
        rows.append(
            (
                precision_score(y, predicted, zero_division=0),
                recall_score(y, predicted, zero_division=0),
                f1_score(y, predicted, zero_division=0),
            )
        )
    values = np.array(rows)
    for i, name in enumerate(("precision", "recall", "F1")):
        ax.plot(grid, values[:, i], label=name)
    ax.axvline(threshold, color="black", ls="--", lw=0.8)
    ax.legend(loc="best")
    return fig


def plot_importance(importance: pd.DataFrame, *, top: int = 15) -> Figure:
    """Horizontal bars of permutation importance (mean drop in ROC-AUC, with spread)."""
    shown = importance.sort_values("mean", ascending=True).tail(top)
    fig, ax = _figure(
        "Permutation importance on the holdout",
        "Drop in ROC-AUC when the column is shuffled",
        "Feature",
        "Long bars are the sensors the model leans on; near-zero bars add little.",
        size=(6.4, 0.3 * len(shown) + 1.6),
    )
    ax.barh(shown.index, shown["mean"], xerr=shown["std"], color="tab:blue")
    return fig


def plot_delays(delays: pd.DataFrame) -> Figure:
    """Histogram of detection delays per leak scenario."""
    fig, ax = _figure(
        "Detection delay per leak",
        "Hours from leak start to first alarm",
        "Leaks",
        "Left-heavy is good; leaks never alarmed are counted in the title.",
    )
    found = delays["delay_hours"].dropna()
    ax.set_title(f"Detection delay per leak ({len(found)} of {len(delays)} detected)")
    ax.hist(found, bins=min(20, max(5, len(found))), color="tab:green")
    return fig


def plot_distributions(frame: pd.DataFrame, *, columns: list[str], target: str) -> Figure:
    """Per-class histograms of a few numeric columns."""
    import seaborn as sns

    n = len(columns)
    fig, axes = plt.subplots(1, n, figsize=(3.2 * n, 3.4), layout="constrained", squeeze=False)
    for ax, column in zip(axes[0], columns, strict=True):
        sns.histplot(
            data=frame,
            x=column,
            hue=target,
            stat="density",
            common_norm=False,
            bins=40,
            ax=ax,
            element="step",
        )
        ax.set_title(column)
        ax.set_xlabel(column)
        ax.set_ylabel("Density")
    fig.suptitle("Distributions by class")
    fig.text(
        0.01,
        0.005,
        "Columns whose leak and no-leak shapes differ carry the signal.",
        fontsize=8,
        style="italic",
    )
    fig.get_layout_engine().set(h_pad=0.15)
    return fig


def permutation_table(
    model, X: pd.DataFrame, y: np.ndarray, *, repeats: int, seed: int, max_rows: int = 5000
) -> pd.DataFrame:
    """Return the mean and spread of the ROC-AUC drop when each column is shuffled.

    Each repeat scores a seeded sample of at most ``max_rows`` rows, which keeps the cost
    flat on large holdouts while the repeats average the sampling noise.
    """
    from sklearn.inspection import permutation_importance

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
    for metric, label in (
        ("roc_auc", "ROC-AUC"),
        ("pr_auc", "PR-AUC"),
        ("recall_at_1pct_fpr", "recall at 1 % FPR"),
    ):
        mean, std = cv_metrics.get(f"cv_{metric}"), cv_metrics.get(f"cv_{metric}_std")
        rows[label] = {
            "cross-validated": "-" if mean is None else f"{mean:.3f} ± {std:.3f}",
            "holdout": f"{holdout[metric]:.3f}",
        }
    for rate in FALSE_ALARM_RATES:
        if rate != 0.01:
            rows[f"recall at {rate:.1%} FPR"] = {
                "cross-validated": "-",
                "holdout": f"{holdout[rate_key(rate)]:.3f}",
            }
    rows[f"F1 at threshold {holdout['threshold']:g}"] = {
        "cross-validated": "-",
        "holdout": f"{holdout['f1']:.3f}",
    }
    return pd.DataFrame(rows).T


def operations(frame: pd.DataFrame, proba: np.ndarray, *, params) -> pd.Series:
    """Return alarms per day at the threshold (when there is a timestamp) as a small table."""
    facts: dict[str, float] = {"threshold": params.threshold}
    if params.timestamp:
        facts.update(
            alarms_per_day(
                frame,
                proba,
                threshold=params.threshold,
                timestamp=params.timestamp,
                target=params.target,
                group=params.group,
            )
        )
    return pd.Series(facts, name="value")


def delays_if_possible(frame: pd.DataFrame, proba: np.ndarray, *, params) -> pd.DataFrame:
    """Return detection delays when the table has a group and a timestamp, else an empty table."""
    if not (params.group and params.timestamp):
        return pd.DataFrame(columns=["leak_start", "first_alarm", "delay_hours", "detected"])
    return detection_delays(
        frame,
        proba,
        threshold=params.threshold,
        timestamp=params.timestamp,
        target=params.target,
        group=params.group,
    )


def prefixed(*parts: dict[str, float], prefix: str = "holdout_") -> dict[str, float]:
    """Merge metric dictionaries under one prefix, e.g. ``roc_auc`` -> ``holdout_roc_auc``."""
    merged: dict[str, float] = {}
    for part in parts:
        merged.update({f"{prefix}{k}": v for k, v in part.items()})
    return merged


def open_figures() -> dict[str, Figure]:
    """Return the open matplotlib figures by a file-safe version of their title."""
    import re

    figures = {}
    for number in plt.get_fignums():
        fig = plt.figure(number)
        title = fig.axes[0].get_title() if fig.axes else f"figure-{number}"
        title = (fig._suptitle.get_text() if fig._suptitle else None) or title
        figures[re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-") or f"figure-{number}"] = fig
    return figures
