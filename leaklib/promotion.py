"""The promotion gate, the champion pointer, and the ``leak champion`` / ``leak promote`` commands.

The rule, exactly (``promotion`` parameters; ``M`` is ``primary_metric``):

1. The current champion is re-scored on the challenger's frozen holdout (same rows, the same
   metric functions as :func:`leaklib.evaluation.holdout_metrics`).
2. ``difference = M(challenger) - M(champion)`` on the whole holdout.
3. Paired bootstrap: ``n_bootstrap`` times, draw as many holdout groups as there are, with
   replacement (``group``; single rows when it is null), seeded by ``seed``, and score both
   models on the same drawn rows. Draws holding a single class are discarded (and counted).
4. The confidence interval is the two-sided percentile interval of the bootstrapped
   differences at ``confidence``: ``[q((1 - c) / 2), q((1 + c) / 2)]``.
5. The challenger is promoted if and only if ``ci_low > min_improvement`` (strictly) and every
   floor holds (``metric(challenger) >= floor``). With no champion yet, the floors alone decide.

The champion pointer is the document ``champion/<model_name>`` of the metadata store, changed
only through :meth:`MetadataStore.transact` and only by :func:`promote`, which the gate and
``leak promote`` share. Registry markers (tag, description, alias) mirror it in MLflow.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from leaklib import runs
from leaklib.metadata import (
    CHAMPION,
    RUNS,
    ConflictError,
    MetadataError,
    MetadataStore,
    to_json_safe,
)
from leaklib.params import Params

if TYPE_CHECKING:
    from matplotlib.figure import Figure

log = logging.getLogger(__name__)

PROMOTED = "promoted"
NOT_PROMOTED = "not promoted"
REPORT_METRICS = (
    "roc_auc",
    "pr_auc",
    "recall_at_0_5pct_fpr",
    "recall_at_1pct_fpr",
    "recall_at_5pct_fpr",
    "precision",
    "recall",
    "f1",
)
_QUANTILES = (0.005, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.975, 0.995)
_HISTOGRAM_BINS = 30
_ANY = object()


class PromotionError(RuntimeError):
    """A promotion cannot be decided or recorded; the message says what is missing."""


# ---------------------------------------------------------------- scoring


def metric_function(name: str) -> Any:
    """Return the function behind one primary metric, as ``holdout_metrics`` computes it."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    from leaklib.evaluation import recall_at_fpr

    functions = {
        "roc_auc": roc_auc_score,
        "pr_auc": average_precision_score,
        "recall_at_1pct_fpr": lambda y, p: recall_at_fpr(y, p, fpr=0.01),
    }
    if name not in functions:
        raise PromotionError(f"primary_metric {name!r} is not one of {', '.join(functions)}")
    return functions[name]


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
    Recall at 1 % FPR is computed by :func:`leaklib.evaluation.recall_at_fpr` draw by draw.
    """
    y = np.asarray(y)
    if metric == "recall_at_1pct_fpr":
        score = metric_function(metric)
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
    raise PromotionError(
        f"primary_metric {metric!r} is not one of roc_auc, pr_auc, recall_at_1pct_fpr"
    )


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
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, n_units, size=(n_bootstrap, n_units))
    per_block = max(1, block // max(1, len(y)))
    differences = []
    for start in range(0, n_bootstrap, per_block):
        weights = group_weights(codes, picks[start : start + per_block])
        positives = weights @ y
        both = (positives > 0) & (positives < weights.sum(axis=1))
        weights = weights[both]  # a single class: the metric is undefined for that draw
        if len(weights):
            differences.append(
                weighted_scores(metric, y, challenger, weights)
                - weighted_scores(metric, y, champion, weights)
            )
    diffs = np.concatenate(differences) if differences else np.array([])
    if len(diffs) < n_bootstrap / 2:
        raise PromotionError(
            f"only {len(diffs)} of {n_bootstrap} bootstrap draws hold both classes: "
            "the holdout has too few groups with and without leaks to compare models"
        )
    alpha = (1 - confidence) / 2
    low, high = np.quantile(diffs, [alpha, 1 - alpha])
    counts, edges = np.histogram(diffs, bins=_HISTOGRAM_BINS)
    return {
        "ci_low": round(float(low), 6),
        "ci_high": round(float(high), 6),
        "n_bootstrap": n_bootstrap,
        "n_valid": len(diffs),
        "unit": "groups" if groups is not None else "rows",
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


# ---------------------------------------------------------------- deciding


def _floor_criteria(floors: dict[str, float], metrics: dict[str, float]) -> list[dict[str, Any]]:
    return [
        {
            "name": f"{name} >= floor",
            "threshold": float(floor),
            "value": metrics[name],
            "passed": bool(metrics[name] >= floor),
        }
        for name, floor in sorted(floors.items())
    ]


def _percent(level: float) -> str:
    return f"{level * 100:.4g}%"  # 0.95 -> 95%, 0.975 -> 97.5%


def decide(
    spec: Any,
    *,
    challenger: dict[str, float],
    champion: dict[str, float] | None,
    bootstrap: dict[str, Any] | None,
) -> tuple[str, str, list[dict[str, Any]]]:
    """Apply the rule to the figures: return (decision, one-sentence reason, criteria).

    Args:
        spec: The ``promotion`` parameters (:class:`leaklib.params.PromotionSpec`).
        challenger: The challenger's holdout metrics.
        champion: The champion's metrics on the same holdout, or None when there is none.
        bootstrap: :func:`paired_bootstrap`'s result (None without a champion).
    """
    metric = spec.primary_metric
    criteria = []
    if champion is not None:
        if bootstrap is None:
            raise PromotionError("a champion comparison needs the bootstrap interval")
        criteria.append(
            {
                "name": f"lower {_percent(spec.confidence)} CI bound of the {metric} difference > min_improvement",
                "threshold": float(spec.min_improvement),
                "value": bootstrap["ci_low"],
                "passed": bool(bootstrap["ci_low"] > spec.min_improvement),
            }
        )
    criteria += _floor_criteria(dict(spec.floors), challenger)
    promoted = all(c["passed"] for c in criteria)
    failed_floors = [c for c in criteria if c["name"].endswith(">= floor") and not c["passed"]]
    floor_text = "; ".join(
        f"floor {c['name'].split(' ')[0]} >= {c['threshold']:g} fails ({c['value']:.4f})"
        for c in failed_floors
    )
    if champion is None:
        held = f"all {len(criteria)} floor(s) hold" if criteria else "no floors are set"
        if promoted:
            reason = f"Promoted: no champion yet and {held} ({metric} {challenger[metric]:.4f})."
        else:
            reason = f"Not promoted: no champion yet, but {floor_text}."
        return (PROMOTED if promoted else NOT_PROMOTED), reason, criteria
    figures = (
        f"{metric} {challenger[metric]:.4f} vs champion {champion[metric]:.4f}, "
        f"difference {challenger[metric] - champion[metric]:+.4f}, "
        f"{_percent(spec.confidence)} CI [{bootstrap['ci_low']:+.4f}, {bootstrap['ci_high']:+.4f}]"
    )
    if promoted:
        reason = (
            f"Promoted: {figures}; the lower bound is above the minimum improvement "
            f"{spec.min_improvement:+.4f}" + (" and every floor holds." if spec.floors else ".")
        )
    elif criteria[0]["passed"]:
        reason = f"Not promoted: {floor_text} ({figures})."
    else:
        reason = (
            f"Not promoted: {figures}; the lower bound is not above the minimum improvement "
            f"{spec.min_improvement:+.4f}" + (f"; {floor_text}." if floor_text else ".")
        )
    return (PROMOTED if promoted else NOT_PROMOTED), reason, criteria


# ---------------------------------------------------------------- the champion pointer


def current_champion(store: MetadataStore, *, model_name: str) -> dict[str, Any] | None:
    """Return the champion pointer of ``model_name`` (with its history), or None."""
    return store.get(CHAMPION, model_name)


def _brief(pointer: dict[str, Any] | None) -> dict[str, Any] | None:
    if not pointer:
        return None
    return {k: pointer.get(k) for k in ("run_id", "version", "model_uri", "promoted_at")}


def _model_of(run: dict[str, Any]) -> dict[str, Any]:
    model = run.get("model") or {}
    if not (model.get("model_uri") or model.get("uri")):
        raise PromotionError(
            f"run {run['run_id']!r} has no logged model: its train step did not succeed"
        )
    return model


def promote(
    store: MetadataStore,
    *,
    run: dict[str, Any],
    model_name: str,
    reason: str,
    decision: dict[str, Any] | None = None,
    expected_champion: Any = _ANY,
) -> dict[str, Any]:
    """Make ``run``'s model the champion of ``model_name``: the pointer, then registry markers.

    The one path the gate and ``leak promote`` share. The pointer changes atomically; its
    ``history`` keeps every promotion, oldest first.

    Args:
        store: The metadata store holding the ``champion`` collection.
        run: The run record whose registered model becomes the champion.
        model_name: The registered model name.
        reason: Why (one sentence; the gate's reason or the operator's).
        decision: The gate's decision, whose figures are kept with the pointer.
        expected_champion: Refuse (ConflictError) unless the champion is still this run id
            (None: no champion); the gate passes the one it compared against.
    """
    model = _model_of(run)
    decided_by = "manual" if decision is None or decision.get("manual") else "gate"
    metrics = ((decision or {}).get("challenger") or {}).get("metrics") or {
        k.removeprefix("holdout_"): v
        for k, v in (run.get("metrics") or {}).items()
        if k.startswith("holdout_")
    }
    entry = {
        "run_id": run["run_id"],
        "model_uri": model.get("model_uri") or model["uri"],
        "source_uri": model.get("uri"),
        "version": model.get("version"),
        "mlflow_run_id": model.get("mlflow_run_id") or (run.get("mlflow") or {}).get("run_id"),
        "promoted_at": runs.now(),
        "reason": reason,
        "decided_by": decided_by,
        "metrics": metrics,
    }
    previous: dict[str, Any] = {}

    def change(current: dict[str, Any] | None) -> dict[str, Any]:
        holder = (current or {}).get("run_id")
        if expected_champion is not _ANY and holder != expected_champion:
            raise ConflictError(
                f"the champion of {model_name!r} changed to run {holder!r} while run "
                f"{run['run_id']!r} was compared with {expected_champion!r}"
            )
        previous.clear()
        previous.update(current or {})
        history = list((current or {}).get("history") or [])
        history.append({**entry, "previous_run_id": holder})
        return {"model_name": model_name, **entry, "previous_run_id": holder, "history": history}

    pointer = store.transact(CHAMPION, model_name, change)
    log.info(
        "run %s is the champion of %s (was %s)", run["run_id"], model_name, previous.get("run_id")
    )
    if entry["version"]:
        try:
            from leaklib import registry

            registry.set_champion_markers(
                model_name,
                str(entry["version"]),
                previous_version=str(previous["version"]) if previous.get("version") else None,
                note=f"leak run {run['run_id']}, {entry['promoted_at']}",
            )
        except Exception as exc:  # the pointer is the reference; a registry hiccup must not undo it
            log.warning("champion markers not set in MLflow: %s", exc)
    return pointer


# ---------------------------------------------------------------- the gate


def load_champion(pointer: dict[str, Any]) -> Any:
    """Load the champion's fitted pipeline: its registry URI, else the run it was logged in.

    The fallback matters on registries that keep a version's files apart from its run
    (GitLab): the files of the run (``runs:/<id>/model``) are always there.
    """
    from leaklib import tracking

    tried = []
    for uri in dict.fromkeys(u for u in (pointer.get("model_uri"), pointer.get("source_uri")) if u):
        try:
            return tracking.load_model(uri)
        except Exception as exc:  # MLflow raises many kinds; say which URIs failed and why
            log.warning("champion model %s cannot be loaded: %s", uri, exc)
            tried.append(f"{uri} ({exc})")
    raise PromotionError(f"the champion model cannot be loaded from {'; '.join(tried) or 'no URI'}")


def _champion_scores(pointer: dict[str, Any], holdout: pd.DataFrame) -> np.ndarray:
    model = load_champion(pointer)
    columns = [str(c) for c in getattr(model, "feature_names_in_", [])]
    missing = [c for c in columns if c not in holdout.columns]
    if missing:
        raise PromotionError(
            f"the champion needs columns this holdout lacks ({', '.join(missing[:5])})"
        )
    return model.predict_proba(holdout[columns] if columns else holdout)[:, 1]


def _mlflow_tags(decision: dict[str, Any]) -> dict[str, str]:
    champion = decision.get("champion") or {}
    previous = decision.get("previous_champion") or {}
    tags = {
        "leak.promotion.decision": decision["decision"],
        "leak.promotion.reason": decision["reason"][:4000],
        "leak.promotion.primary_metric": str(decision.get("primary_metric")),
        "leak.promotion.difference": str(decision.get("difference")),
        "leak.promotion.ci_low": str(decision.get("ci_low")),
        "leak.promotion.ci_high": str(decision.get("ci_high")),
        "leak.promotion.confidence": str(decision.get("confidence")),
        "leak.promotion.decided_at": decision["decided_at"],
        "leak.promotion.decided_by": "manual" if decision.get("manual") else "gate",
        "leak.promotion.champion_run_id": str(champion.get("run_id")),
        "leak.promotion.previous_champion_run_id": str(previous.get("run_id")),
    }
    if decision["decision"] == PROMOTED:
        tags["leak.champion"] = "true"
    return tags


def record_in_mlflow(
    run: dict[str, Any], decision: dict[str, Any], *, model_name: str
) -> dict[str, bool]:
    """Tag the challenger's MLflow run and model version with the decision (best effort).

    Where versions cannot be tagged after creation (GitLab), the decision goes to the
    version's description instead (unless it is promoted: then the champion marker does).
    """
    from leaklib import registry

    done = {"run": False, "version": False}
    try:
        tags = _mlflow_tags(decision)
        mlflow_run_id = (run.get("mlflow") or {}).get("run_id") or (run.get("model") or {}).get(
            "mlflow_run_id"
        )
        if mlflow_run_id:
            done["run"] = registry.tag_run(mlflow_run_id, tags)
        version = (run.get("model") or {}).get("version")
        if version:
            client = registry.client()
            done["version"] = registry.tag_version(
                model_name, str(version), tags, mlflow_client=client
            )
            if not done["version"] and decision["decision"] != PROMOTED:
                done["version"] = registry._try(
                    f"describe {model_name} v{version}",
                    client.update_model_version,
                    model_name,
                    str(version),
                    description=decision["reason"],
                )
    except Exception as exc:  # the metadata store holds the decision; MLflow mirrors it
        log.warning("promotion decision not recorded in MLflow: %s", exc)
    return done


def _challenger_info(run: dict[str, Any], metrics: dict[str, float]) -> dict[str, Any]:
    model = run.get("model") or {}
    return {
        "run_id": run["run_id"],
        "version": model.get("version"),
        "model_uri": model.get("model_uri") or model.get("uri"),
        "metrics": metrics,
    }


def _new_decision(
    run: dict[str, Any],
    metrics: dict[str, float],
    pointer: dict[str, Any] | None,
    *,
    primary_metric: str,
    decision: str = NOT_PROMOTED,
    reason: str = "",
    min_improvement: float | None = None,
    confidence: float | None = None,
    champion: dict[str, Any] | None = None,
    manual: bool = False,
) -> dict[str, Any]:
    """Return a decision document with every field the gate and a manual promotion share."""
    return {
        "decision": decision,
        "reason": reason,
        "primary_metric": primary_metric,
        "min_improvement": min_improvement,
        "confidence": confidence,
        "challenger": _challenger_info(run, metrics),
        "champion": champion,
        "difference": None,
        "ci_low": None,
        "ci_high": None,
        "criteria": [],
        "bootstrap": None,
        "decided_at": runs.now(),
        "previous_champion": _brief(pointer),
        "manual": manual,
    }


def gate(
    *,
    store: MetadataStore,
    params: Params,
    run: dict[str, Any],
    holdout: pd.DataFrame,
    challenger_proba: np.ndarray,
) -> dict[str, Any]:
    """Compare the challenger with the champion on its holdout, decide, and record the decision.

    The decision goes to the run record (``promotion``), to MLflow tags on the challenger's
    run and model version, and, when promoted, to the champion pointer and registry markers.

    Args:
        store: The metadata store.
        params: The run's parameters (``promotion``, ``model_name``, ``target``, ``group``, ``seed``).
        run: The challenger's run record (with its registered ``model``).
        holdout: The frozen holdout: feature columns, ``target`` and ``group``.
        challenger_proba: The challenger's leak probabilities on ``holdout``, row for row.

    Returns:
        The decision, in plain JSON types (see the module docstring for the rule).
    """
    from leaklib.evaluation import holdout_metrics

    run = runs.get_run(store, run["run_id"])
    _model_of(run)
    spec = params.promotion
    if len(challenger_proba) != len(holdout):
        raise PromotionError(f"{len(challenger_proba)} scores for {len(holdout)} holdout rows")
    y = holdout[params.target].to_numpy()
    groups = holdout[params.group].to_numpy() if params.group else None
    challenger_metrics = holdout_metrics(y, challenger_proba, threshold=params.threshold)
    pointer = current_champion(store, model_name=params.model_name)
    decision = _new_decision(
        run,
        challenger_metrics,
        pointer,
        primary_metric=spec.primary_metric,
        min_improvement=spec.min_improvement,
        confidence=spec.confidence,
    )
    champion_metrics = None
    if pointer and pointer["run_id"] == run["run_id"]:
        decision.update(
            decision=PROMOTED,
            reason=f"Already the champion of {params.model_name} (promoted {pointer['promoted_at']}).",
        )
        pointer = None
    elif pointer:
        decision["champion"] = {k: pointer.get(k) for k in ("run_id", "version", "model_uri")}
        try:
            champion_proba = _champion_scores(pointer, holdout)
            champion_metrics = holdout_metrics(y, champion_proba, threshold=params.threshold)
            decision["champion"]["metrics"] = champion_metrics
            boot = paired_bootstrap(
                y,
                challenger_proba,
                champion_proba,
                metric=spec.primary_metric,
                groups=groups,
                n_bootstrap=spec.n_bootstrap,
                seed=params.seed,
                confidence=spec.confidence,
            )
        except PromotionError as exc:
            decision["reason"] = (
                f"Not promoted: {exc}; compare by hand and use `leak promote` to override."
            )
        else:
            score = metric_function(spec.primary_metric)
            difference = score(y, challenger_proba) - score(y, champion_proba)
            decision.update(
                difference=round(float(difference), 6),
                ci_low=boot["ci_low"],
                ci_high=boot["ci_high"],
                bootstrap=boot,
            )
    if not decision["reason"]:
        verdict, reason, criteria = decide(
            spec,
            challenger=challenger_metrics,
            champion=champion_metrics,
            bootstrap=decision["bootstrap"],
        )
        decision.update(decision=verdict, reason=reason, criteria=criteria)
        if verdict == PROMOTED:
            try:
                promote(
                    store,
                    run=run,
                    model_name=params.model_name,
                    reason=reason,
                    decision=decision,
                    expected_champion=pointer["run_id"] if pointer else None,
                )
            except ConflictError as exc:
                decision.update(
                    decision=NOT_PROMOTED, reason=f"Not promoted: {exc}; run the evaluation again."
                )
    decision = to_json_safe(decision)
    decision["mlflow"] = record_in_mlflow(run, decision, model_name=params.model_name)
    runs.update_run(store, run["run_id"], promotion=decision)
    log.info("run %s: %s", run["run_id"], decision["reason"])
    return decision


# ---------------------------------------------------------------- report


def decision_frame(decision: dict[str, Any]) -> pd.DataFrame:
    """Return champion | challenger | difference per metric on the challenger's holdout."""
    challenger = (decision.get("challenger") or {}).get("metrics") or {}
    champion = (decision.get("champion") or {}).get("metrics") or {}
    primary = decision.get("primary_metric")
    rows = {}
    for name in REPORT_METRICS:
        if name not in challenger:
            continue
        mine, theirs = challenger[name], champion.get(name)
        label = f"{name} (primary)" if name == primary else name
        rows[label] = {
            "champion": np.nan if theirs is None else theirs,
            "challenger": mine,
            "difference": np.nan if theirs is None else round(mine - theirs, 6),
        }
    frame = pd.DataFrame.from_dict(
        rows, orient="index", columns=["champion", "challenger", "difference"]
    )
    frame.index.name = "metric"
    return frame


def criteria_frame(decision: dict[str, Any]) -> pd.DataFrame:
    """Return each promotion criterion with its threshold, the value found and whether it held."""
    frame = pd.DataFrame(
        decision.get("criteria") or [], columns=["name", "threshold", "value", "passed"]
    )
    return frame.set_index("name")


def plot_bootstrap(decision: dict[str, Any]) -> Figure:
    """Histogram of the bootstrapped differences with the interval and the minimum improvement."""
    import matplotlib.pyplot as plt  # the caller's backend: inline in notebooks, files in tests

    metric = decision.get("primary_metric")
    fig, ax = plt.subplots(figsize=(6.4, 4.2), layout="constrained")
    fig.get_layout_engine().set(h_pad=0.15)  # room for the caption under the axis label
    ax.set_title(f"Paired bootstrap of the {metric} difference (challenger − champion)")
    ax.set_xlabel(f"Difference in {metric} on resampled holdout groups")
    ax.set_ylabel("Bootstrap draws")
    boot = decision.get("bootstrap")
    if not boot:
        ax.text(
            0.5,
            0.5,
            "No champion to compare with",
            ha="center",
            va="center",
            transform=ax.transAxes,
        )
        return fig
    edges, counts = np.asarray(boot["histogram"]["edges"]), np.asarray(boot["histogram"]["counts"])
    ax.bar(edges[:-1], counts, width=np.diff(edges), align="edge", color="tab:blue", alpha=0.6)
    level = _percent(decision["confidence"])
    ax.axvspan(
        decision["ci_low"],
        decision["ci_high"],
        color="tab:blue",
        alpha=0.12,
        label=f"{level} interval",
    )
    ax.axvline(
        decision["difference"],
        color="tab:blue",
        lw=1.5,
        label=f"difference {decision['difference']:+.4f}",
    )
    ax.axvline(
        decision["min_improvement"],
        color="tab:red",
        ls="--",
        label=f"minimum improvement {decision['min_improvement']:+g}",
    )
    ax.axvline(0, color="grey", ls=":", lw=0.8)
    ax.legend(loc="best", fontsize=8)
    fig.text(
        0.01,
        0.005,
        "Promoted only if the whole shaded interval lies right of the red line.",
        fontsize=8,
        style="italic",
        ha="left",
        va="bottom",
    )
    return fig


# ---------------------------------------------------------------- command line


def _out(text: str = "") -> None:
    sys.stdout.write(text + "\n")


def _load(args: argparse.Namespace) -> tuple[Params, MetadataStore]:
    from leaklib.metadata import open_metadata_store
    from leaklib.params import load

    params = load(args.files, [tuple(o) for o in args.overrides])
    store = open_metadata_store(params.metadata_store)
    return params, store


def _champion_command(args: argparse.Namespace) -> int:
    params, store = _load(args)
    pointer = current_champion(store, model_name=params.model_name)
    if pointer is None:
        _out(f"no champion yet for model {params.model_name!r} in {store.uri}")
        return 0
    _out(
        f"champion of {params.model_name}: run {pointer['run_id']} (version {pointer.get('version')})"
    )
    _out(f"  model uri:   {pointer['model_uri']}")
    _out(f"  promoted at: {pointer['promoted_at']} by {pointer.get('decided_by')}")
    _out(f"  reason:      {pointer['reason']}")
    shown = {k: v for k, v in (pointer.get("metrics") or {}).items() if k in REPORT_METRICS}
    if shown:
        _out("  metrics:     " + ", ".join(f"{k} {v:.4f}" for k, v in shown.items()))
    _out("history (newest first):")
    for entry in reversed(pointer.get("history") or []):
        _out(
            f"  {entry['promoted_at']}  run {entry['run_id']}  version {entry.get('version')}  "
            f"{entry.get('decided_by')}: {entry['reason']}"
        )
    return 0


def manual_promotion(
    store: MetadataStore, *, run_id: str, model_name: str, reason: str, params: Params
) -> dict[str, Any]:
    """Promote a run by hand through :func:`promote`, and record it like a gate decision."""
    if not reason.strip():
        raise PromotionError("a manual promotion needs a --reason")
    run = runs.get_run(store, run_id)
    model = _model_of(run)
    if not model.get("version"):
        raise PromotionError(f"run {run_id!r} has no registered model version to promote")
    pointer = current_champion(store, model_name=model_name)
    metrics = {
        k.removeprefix("holdout_"): v
        for k, v in (run.get("metrics") or {}).items()
        if k.startswith("holdout_")
    }
    decision = _new_decision(
        run,
        metrics,
        pointer,
        primary_metric=params.promotion.primary_metric,
        decision=PROMOTED,
        reason=f"Promoted by hand: {reason.strip()}",
        manual=True,
        champion={k: pointer.get(k) for k in ("run_id", "version", "model_uri")}
        if pointer
        else None,
    )
    promote(store, run=run, model_name=model_name, reason=decision["reason"], decision=decision)
    decision["mlflow"] = record_in_mlflow(run, decision, model_name=model_name)
    earlier = run.get("promotion") or None

    def change(current: dict[str, Any] | None) -> dict[str, Any]:
        if current is None:
            raise MetadataError(f"run {run_id!r} not found")
        kept = (
            {k: earlier.get(k) for k in ("decision", "reason", "decided_at")} if earlier else None
        )
        return {**current, "promotion": {**decision, "superseded": kept}}

    store.transact(RUNS, run_id, change)
    return decision


def _promote_command(args: argparse.Namespace) -> int:
    params, store = _load(args)
    decision = manual_promotion(
        store, run_id=args.run_id, model_name=params.model_name, reason=args.reason, params=params
    )
    previous = decision["previous_champion"] or {}
    _out(
        f"run {args.run_id} (version {decision['challenger']['version']}) is now the champion of "
        f"{params.model_name}; previous: {previous.get('run_id') or 'none'}"
    )
    return 0


def add_champion_parsers(subparsers: Any) -> None:
    """Register ``leak champion`` and ``leak promote RUN_ID --reason TEXT`` on ``subparsers``."""
    from leaklib.cli import add_param_options

    champion = subparsers.add_parser(
        "champion", help="show the current champion model and its history"
    )
    add_param_options(champion)
    champion.set_defaults(func=_champion_command)

    manual = subparsers.add_parser(
        "promote",
        help="make a run's registered model the champion by hand (recorded with a reason)",
    )
    manual.add_argument("run_id", metavar="RUN_ID", help="the run whose model becomes the champion")
    manual.add_argument(
        "--reason", required=True, help="why, in one sentence (kept in the history)"
    )
    add_param_options(manual)
    manual.set_defaults(func=_promote_command)
