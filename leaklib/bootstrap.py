"""The paired bootstraps behind the promotion gate: statistics only, no decisions.

Both models are scored on the same resampled holdout groups (row metrics,
:func:`paired_bootstrap`) or the same resampled blocks of time (event metrics,
:func:`event_bootstrap`); the percentile interval of the differences says how sure the
comparison is.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from leaklib import metrics
from leaklib.errors import LeakError
from leaklib.leak_events import EventResult, event_scores

_QUANTILES = (0.005, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.975, 0.995)
_HISTOGRAM_BINS = 30
_CURVE_METRICS = ("roc_auc", "pr_auc")  # computed for all draws at once from weighted curves


class BootstrapError(LeakError, RuntimeError):
    """The bootstrap cannot compare the models on this holdout; the message says why."""


def group_weights(codes: np.ndarray, picks: np.ndarray) -> np.ndarray:
    """Return row weights for bootstrap draws of whole groups.

    Args:
        codes: The group number (0..G-1) of each holdout row.
        picks: One row per draw, the G group numbers drawn with replacement.

    Returns:
        ``(draws, rows)``: how many times each row is in each draw (its group's multiplicity),
        which scores a draw exactly as scoring the drawn rows stacked together.
    """
    draws, n_groups = picks.shape
    flat = (picks + n_groups * np.arange(draws)[:, None]).ravel()
    multiplicity = np.bincount(flat, minlength=draws * n_groups).reshape(draws, n_groups)
    return multiplicity[:, codes].astype(float)


def _weighted_curves(
    y: np.ndarray, proba: np.ndarray, weights: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Weighted true and false positives at each distinct score, highest score first."""
    order = np.argsort(-proba, kind="mergesort")
    ranked = proba[order]
    ends = np.concatenate([np.flatnonzero(np.diff(ranked)), [len(ranked) - 1]])
    positive = y[order].astype(float)
    w = weights[:, order]
    tp = np.cumsum(w * positive, axis=1)[:, ends]
    fp = np.cumsum(w * (1 - positive), axis=1)[:, ends]
    return tp, fp


def weighted_scores(
    metric: str, y: np.ndarray, proba: np.ndarray, weights: np.ndarray
) -> np.ndarray:
    """Return ``metric`` for each row of ``weights`` (draws x rows), all draws at once.

    ROC-AUC (trapezoids under the ROC curve) and average precision (sum of recall steps
    times precision) follow scikit-learn's definitions with sample weights, so a draw scores
    the same as ``roc_auc_score`` / ``average_precision_score`` on the drawn rows.
    Other ranking metrics (recall at a false-alarm rate) are computed draw by draw.
    """
    y = np.asarray(y)
    if metrics.metric(metric).kind == "event":
        raise BootstrapError(
            f"{metric!r} is an event metric: bootstrap it over blocks of time (event_bootstrap)"
        )
    if metric not in _CURVE_METRICS:
        score = metrics.metric(metric).score
        rows = np.arange(len(y))
        return np.array(
            [
                score(y[np.repeat(rows, w.astype(int))], proba[np.repeat(rows, w.astype(int))])
                for w in weights
            ]
        )
    tp, fp = _weighted_curves(y, np.asarray(proba, dtype=float), weights)
    zeros = np.zeros((len(weights), 1))
    positives, negatives = tp[:, -1], fp[:, -1]
    if metric == "roc_auc":
        tp0, fp0 = np.hstack([zeros, tp]), np.hstack([zeros, fp])
        area = np.sum(np.diff(fp0, axis=1) * (tp0[:, 1:] + tp0[:, :-1]) / 2, axis=1)
        return area / (positives * negatives)
    if metric == "pr_auc":
        called = tp + fp
        precision = np.divide(tp, called, out=np.zeros_like(tp), where=called > 0)
        recall_steps = np.diff(np.hstack([zeros, tp]), axis=1) / positives[:, None]
        return np.sum(recall_steps * precision, axis=1)
    raise BootstrapError(f"metric {metric!r} has no weighted form")


def _differences(
    metric: str,
    y: np.ndarray,
    challenger: np.ndarray,
    champion: np.ndarray,
    codes: np.ndarray,
    picks: np.ndarray,
    *,
    block: int,
) -> np.ndarray:
    """Return challenger minus champion for every draw that holds both classes."""
    per_block = max(1, block // max(1, len(y)))
    differences = []
    for start in range(0, len(picks), per_block):
        weights = group_weights(codes, picks[start : start + per_block])
        positives = weights @ y
        weights = weights[(positives > 0) & (positives < weights.sum(axis=1))]
        if len(weights):  # a single class: the metric is undefined for that draw
            differences.append(
                weighted_scores(metric, y, challenger, weights)
                - weighted_scores(metric, y, champion, weights)
            )
    return np.concatenate(differences) if differences else np.array([])


def paired_bootstrap(
    y: np.ndarray,
    challenger: np.ndarray,
    champion: np.ndarray,
    *,
    metric: str,
    groups: np.ndarray | None,
    n_bootstrap: int,
    seed: int,
    confidence: float,
    block: int = 2_000_000,
) -> dict[str, Any]:
    """Bootstrap the difference in ``metric`` (challenger minus champion) over groups.

    Each draw takes as many groups as the holdout has (rows when ``groups`` is None), with
    replacement; both models are scored on the same draw. Draws with a single class are
    discarded and counted. ``block`` bounds the draws x rows held in memory at once.

    Returns:
        The interval (``ci_low``, ``ci_high``), the draws used, summary quantiles and a
        histogram of the differences (not the draws themselves).
    """
    y = np.asarray(y).astype(int)
    challenger, champion = np.asarray(challenger, dtype=float), np.asarray(champion, dtype=float)
    codes = pd.factorize(pd.Series(groups))[0] if groups is not None else np.arange(len(y))
    n_units = int(codes.max()) + 1 if len(codes) else 0
    picks = np.random.default_rng(seed).integers(0, n_units, size=(n_bootstrap, n_units))
    diffs = _differences(metric, y, challenger, champion, codes, picks, block=block)
    if len(diffs) < n_bootstrap / 2:
        raise BootstrapError(
            f"only {len(diffs)} of {n_bootstrap} bootstrap draws hold both classes: "
            "the holdout has too few groups with and without leaks to compare models"
        )
    return _summary(
        diffs,
        n_bootstrap=n_bootstrap,
        unit="groups" if groups is not None else "rows",
        n_units=n_units,
        seed=seed,
        confidence=confidence,
    )


def _summary(
    diffs: np.ndarray,
    *,
    n_bootstrap: int,
    unit: str,
    n_units: int,
    seed: int,
    confidence: float,
) -> dict[str, Any]:
    """The interval, summary quantiles and histogram of bootstrapped differences."""
    alpha = (1 - confidence) / 2
    low, high = np.quantile(diffs, [alpha, 1 - alpha])
    counts, edges = np.histogram(diffs, bins=_HISTOGRAM_BINS)
    return {
        "ci_low": round(float(low), 6),
        "ci_high": round(float(high), 6),
        "n_bootstrap": n_bootstrap,
        "n_valid": len(diffs),
        "unit": unit,
        "n_units": n_units,
        "seed": seed,
        "mean": round(float(diffs.mean()), 6),
        "std": round(float(diffs.std(ddof=1)), 6) if len(diffs) > 1 else 0.0,
        "quantiles": {
            f"{q:g}": round(float(v), 6)
            for q, v in zip(_QUANTILES, np.quantile(diffs, _QUANTILES), strict=True)
        },
        "histogram": {
            "edges": [round(float(e), 6) for e in edges],
            "counts": [int(c) for c in counts],
        },
    }


def _blocks(times: pd.Series, start: pd.Timestamp, length: pd.Timedelta, n: int) -> np.ndarray:
    """The block number of each time: whole ``length``s since ``start``."""
    offsets = (pd.to_datetime(times) - start) // length
    return np.clip(offsets.to_numpy(dtype=int), 0, n - 1)


def event_bootstrap(
    challenger: EventResult,
    champion: EventResult,
    *,
    metric: str,
    block: str | pd.Timedelta = "7D",
    n_bootstrap: int,
    seed: int,
    confidence: float,
) -> dict[str, Any]:
    """Bootstrap the difference in an event metric (challenger minus champion) over blocks of time.

    The period is cut into blocks of ``block`` (the last one may be shorter). Each leak
    belongs to the block it starts in, each alarm event to the block of its first alarm. A
    draw takes as many blocks as there are, with replacement; both models are scored on the
    same draw, every leak and alarm event counted as often as its block was drawn, and the
    period as long as the drawn blocks (:func:`leaklib.leak_events.event_scores` with weights).
    Draws where the metric is undefined (no leak drawn, no detection for a detection time) are
    discarded and counted.

    Returns:
        The same figures as :func:`paired_bootstrap`, with ``unit`` naming the block.
    """
    length = _block_length(challenger, champion, metric=metric, block=block)
    n_blocks = int(-(-(challenger.end - challenger.start) // length))
    diffs = _block_differences(
        challenger,
        champion,
        metric=metric,
        length=length,
        n_blocks=n_blocks,
        n_bootstrap=n_bootstrap,
        seed=seed,
    )
    if len(diffs) < n_bootstrap / 2:
        raise BootstrapError(
            f"only {len(diffs)} of {n_bootstrap} bootstrap draws define {metric}: the holdout "
            f"has too few blocks of {block} with leaks to compare models"
        )
    return _summary(
        np.array(diffs),
        n_bootstrap=n_bootstrap,
        unit=f"blocks of {block}",
        n_units=n_blocks,
        seed=seed,
        confidence=confidence,
    )


def _block_length(
    challenger: EventResult, champion: EventResult, *, metric: str, block: str | pd.Timedelta
) -> pd.Timedelta:
    """The block's length, once both results are found comparable by an event metric.

    Raises:
        BootstrapError: A row metric, results over different periods or leaks, or a block
            that is no positive duration.
    """
    if metrics.metric(metric).kind != "event":
        raise BootstrapError(f"{metric!r} is a row metric: bootstrap it with paired_bootstrap")
    if (challenger.start, challenger.end) != (champion.start, champion.end):
        raise BootstrapError(
            f"the models' events cover different periods ({challenger.start} to "
            f"{challenger.end}, {champion.start} to {champion.end}); match both on the same rows"
        )
    if list(challenger.leaks["leak_id"]) != list(champion.leaks["leak_id"]):
        raise BootstrapError("the models' events were matched to different leaks")
    try:
        length = pd.Timedelta(block)
    except (TypeError, ValueError):
        raise BootstrapError(f"block: {block!r} is not a duration (e.g. '7D')") from None
    if pd.isna(length) or length <= pd.Timedelta(0):
        raise BootstrapError(f"block: {block!r} must be longer than zero")
    return length


def _block_differences(
    challenger: EventResult,
    champion: EventResult,
    *,
    metric: str,
    length: pd.Timedelta,
    n_blocks: int,
    n_bootstrap: int,
    seed: int,
) -> list[float]:
    """The metric's difference (challenger minus champion) in each draw of blocks defining it."""
    start, end = challenger.start, challenger.end
    edges = [k * length for k in range(n_blocks)] + [end - start]
    days = np.diff([edge / pd.Timedelta(days=1) for edge in edges])  # the last may be shorter
    leak_block = _blocks(challenger.leaks["start"], start, length, n_blocks)
    alarm_blocks = [
        _blocks(result.alarms["first_alarm"], start, length, n_blocks)
        for result in (challenger, champion)
    ]
    picks = np.random.default_rng(seed).integers(0, n_blocks, size=(n_bootstrap, n_blocks))
    drawn = group_weights(np.arange(n_blocks), picks)  # draws x blocks: how often each block
    diffs = []
    for weights in drawn:
        pair = [
            event_scores(
                result,
                leak_weights=weights[leak_block],
                alarm_weights=weights[blocks],
                days=float(weights @ days),
            )[metric]
            for result, blocks in zip((challenger, champion), alarm_blocks, strict=True)
        ]
        if not np.isnan(pair).any():
            diffs.append(pair[0] - pair[1])
    return diffs
