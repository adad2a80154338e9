"""The promotion gate: compare a challenger with the champion on its holdout and decide.

The rule, exactly (``promotion`` parameters; ``M`` is ``primary_metric``):

1. The compared rows are the challenger's holdout rows that the champion was never trained on
   (:mod:`leaklib.splits`: from the champion's record, else from its snapshots). Rows it saw
   are left out, and the decision says how many and why. When fewer than
   ``min_unseen_rows`` remain, the gate does not compare and does not promote.
2. The current champion is re-scored on the compared rows (the same metric functions as
   :func:`leaklib.evaluation.holdout_metrics`), and so is the challenger;
   ``difference = M(challenger) - M(champion)`` on those rows.
3. Paired bootstrap (:mod:`leaklib.bootstrap`): ``n_bootstrap`` times, draw as many holdout
   groups as there are among the compared rows, with replacement (``dataset.group``; single rows when it is null),
   seeded by ``seed``, and score both models on the same drawn rows. Draws holding a single
   class are discarded (and counted).
   For an event metric (:data:`leaklib.metrics.EVENT`, on a stream) both models' alarms
   are turned into alarm events and matched to the leaks of the compared rows
   (:mod:`leaklib.leak_events`), and the bootstrap resamples blocks of ``promotion.block`` of
   time instead (:func:`leaklib.bootstrap.event_bootstrap`).
4. The confidence interval is the two-sided percentile interval of the bootstrapped
   differences at ``confidence``: ``[q((1 - c) / 2), q((1 + c) / 2)]``.
5. The challenger is promoted if and only if ``ci_low > min_improvement`` (strictly) and every
   floor holds (``metric(challenger) >= floor``, on its whole holdout). With no champion yet,
   the floors alone decide.

A decision is a :class:`Decision`; the run record keeps its plain form (``runs``), the
champion pointer changes through :func:`leaklib.champion.promote`, and MLflow mirrors both
(:mod:`leaklib.model_registry`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from leaklib import (
    champion,
    leak_events,
    metrics,
    model_registry,
    run_record,
    runs,
    snapshots,
    splits,
)
from leaklib.bootstrap import BootstrapError, event_bootstrap, paired_bootstrap
from leaklib.errors import LeakError
from leaklib.evaluation import holdout_metrics
from leaklib.metadata import ConflictError, MetadataStore, to_json_safe
from leaklib.params import Params, PromotionSpec
from leaklib.run_record import LEGACY_THRESHOLD, RunRecord, Verdict

log = logging.getLogger(__name__)


PROMOTED, NOT_PROMOTED = Verdict.PROMOTED, Verdict.NOT_PROMOTED


class PromotionError(LeakError, RuntimeError):
    """A promotion cannot be decided or recorded; the message says what is missing."""


@dataclass
class Criterion:
    """One condition of the rule, with its threshold, the value found and whether it held."""

    name: str
    threshold: float
    value: float
    passed: bool


@dataclass
class Decision:
    """A promotion decision with every figure behind it."""

    primary_metric: str
    challenger: dict[str, Any]
    decision: Verdict = NOT_PROMOTED
    reason: str = ""
    min_improvement: float | None = None
    confidence: float | None = None
    champion: dict[str, Any] | None = None
    difference: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    criteria: list[Criterion] = field(default_factory=list)
    bootstrap: dict[str, Any] | None = None
    decided_at: str = field(default_factory=runs.now)
    previous_champion: dict[str, Any] | None = None
    comparison: dict[str, Any] | None = None  # splits.Comparison: rows compared, left out, why
    manual: bool = False
    mlflow: dict[str, bool] = field(default_factory=dict)

    @property
    def promoted(self) -> bool:
        """True when the challenger became (or already was) the champion."""
        return self.decision == PROMOTED

    def to_dict(self) -> dict[str, Any]:
        """Return the decision in plain JSON types, as the run record keeps it."""
        plain = asdict(self)
        plain["decision"] = str(self.decision)
        return to_json_safe(plain)


def scored_figures(
    frame: pd.DataFrame,
    proba: np.ndarray,
    *,
    params: Params,
    threshold: float,
    leaks: leak_events.Leaks | None,
) -> tuple[dict[str, float], leak_events.EventResult | None]:
    """Return a model's metrics on these rows (row metrics; event metrics on a stream)."""
    figures = holdout_metrics(frame[params.dataset.target].to_numpy(), proba, threshold=threshold)
    result = leak_events.evaluate_stream(
        frame, proba, params=params, threshold=threshold, leaks=leaks or leak_events.Leaks()
    )
    return (figures | leak_events.event_scores(result), result) if result else (figures, None)


def _percent(level: float) -> str:
    return f"{level * 100:.4g}%"  # 0.95 -> 95%, 0.975 -> 97.5%


def _criteria(
    spec: PromotionSpec, challenger: dict[str, float], bootstrap: dict[str, Any] | None
) -> list[Criterion]:
    found = []
    if bootstrap is not None:
        found.append(
            Criterion(
                name=f"lower {_percent(spec.confidence)} CI bound of the "
                f"{spec.primary_metric} difference > min_improvement",
                threshold=float(spec.min_improvement),
                value=bootstrap["ci_low"],
                passed=bool(bootstrap["ci_low"] > spec.min_improvement),
            )
        )
    for name, floor in sorted(spec.floors.items()):
        found.append(
            Criterion(
                name=f"{name} >= floor",
                threshold=float(floor),
                value=challenger[name],
                passed=bool(challenger[name] >= floor),
            )
        )
    return found


def _floor_text(criteria: list[Criterion]) -> str:
    return "; ".join(
        f"floor {c.name.split(' ')[0]} >= {c.threshold:g} fails ({c.value:.4f})"
        for c in criteria
        if c.name.endswith(">= floor") and not c.passed
    )


def decide(
    spec: PromotionSpec,
    *,
    challenger: dict[str, float],
    champion: dict[str, float] | None,
    bootstrap: dict[str, Any] | None,
    compared: dict[str, float] | None = None,
    comparison: str = "",
) -> tuple[Verdict, str, list[Criterion]]:
    """Apply the rule to the figures: return (verdict, one-sentence reason, criteria).

    Args:
        spec: The ``promotion`` parameters.
        challenger: The challenger's holdout metrics (the floors apply to them).
        champion: The champion's metrics on the compared rows, or None when there is none.
        bootstrap: :func:`leaklib.bootstrap.paired_bootstrap`'s result (None without a champion).
        compared: The challenger's metrics on the compared rows (default: ``challenger``).
        comparison: What was left out of the comparison, appended to the reason when set.
    """
    metric = spec.primary_metric
    if champion is not None and bootstrap is None:
        raise PromotionError("a champion comparison needs the bootstrap interval")
    criteria = _criteria(spec, challenger, bootstrap if champion is not None else None)
    verdict = PROMOTED if all(c.passed for c in criteria) else NOT_PROMOTED
    floors = _floor_text(criteria)
    if champion is None:
        held = f"all {len(criteria)} floor(s) hold" if criteria else "no floors are set"
        if verdict == PROMOTED:
            return (
                verdict,
                f"Promoted: no champion yet and {held} ({metric} {challenger[metric]:.4f}).",
                criteria,
            )
        return verdict, f"Not promoted: no champion yet, but {floors}.", criteria
    mine = (compared or challenger)[metric]
    figures = (
        f"{metric} {mine:.4f} vs champion {champion[metric]:.4f}, "
        f"difference {mine - champion[metric]:+.4f}, "
        f"{_percent(spec.confidence)} CI [{bootstrap['ci_low']:+.4f}, {bootstrap['ci_high']:+.4f}]"
    )
    bound = f"the lower bound is above the minimum improvement {spec.min_improvement:+.4f}"
    if verdict == PROMOTED:
        reason = f"Promoted: {figures}; {bound}" + (
            " and every floor holds." if spec.floors else "."
        )
    elif criteria[0].passed:
        reason = f"Not promoted: {floors} ({figures})."
    else:
        reason = f"Not promoted: {figures}; {bound.replace('is above', 'is not above')}" + (
            f"; {floors}." if floors else "."
        )
    if comparison:
        reason = f"{reason} Comparison: {comparison}."
    return verdict, reason, criteria


def _challenger(run: RunRecord, figures: dict[str, float]) -> dict[str, Any]:
    model = champion.model_of(run)
    return {
        "run_id": run.run_id,
        "version": model.version,
        "model_uri": champion.model_uri(model),
        "model_sha256": model.sha256,
        "metrics": figures,
    }


def _compared_rows(
    decision: Decision, *, params: Params, holdout: pd.DataFrame, seen: splits.TrainedOn
) -> np.ndarray | None:
    """Record which holdout rows are compared; their mask, or None when too few remain."""
    dataset, spec = params.dataset, params.promotion
    mask, comparison = splits.comparison_rows(
        holdout,
        seen,
        group=dataset.group,
        columns=splits.identity_columns(dataset.features, dataset.target),
        min_rows=spec.min_unseen_rows,
        timestamp=dataset.timestamp,
    )
    decision.comparison = comparison.to_dict()
    if comparison.enough:
        return mask
    decision.reason = (
        f"Not compared: only {comparison.rows:,} of {len(holdout):,} holdout rows were never "
        f"seen by the champion (at least promotion.min_unseen_rows = {spec.min_unseen_rows:,} "
        f"are needed); {comparison.summary()}. Not promoted on the comparison; compare by "
        "hand and use `leak promote` to override."
    )
    return None


def bootstrap_difference(
    params: Params,
    rows: pd.DataFrame,
    mine: np.ndarray,
    theirs: np.ndarray,
    events: tuple[leak_events.EventResult | None, leak_events.EventResult | None],
) -> dict[str, Any]:
    """Bootstrap the challenger's lead in the primary metric on ``rows`` (``mine`` against ``theirs``).

    Blocks of time for an event metric (``events``: both models' event results), the
    paired bootstrap of rows or groups otherwise.
    """
    spec, dataset = params.promotion, params.dataset
    common = {
        "metric": spec.primary_metric,
        "n_bootstrap": spec.n_bootstrap,
        "seed": params.seed,
        "confidence": spec.confidence,
    }
    if metrics.CATALOGUE[spec.primary_metric].kind == "event":
        return event_bootstrap(*events, block=spec.block, **common)
    groups = rows[dataset.group].to_numpy() if dataset.group else None
    return paired_bootstrap(rows[dataset.target].to_numpy(), mine, theirs, groups=groups, **common)


def _compare(
    decision: Decision,
    *,
    params: Params,
    pointer: dict[str, Any],
    holdout: pd.DataFrame,
    challenger_proba: np.ndarray,
    load_champion: Callable[[dict[str, Any]], Any],
    seen: splits.TrainedOn,
    leaks: leak_events.Leaks | None,
) -> dict[str, float] | None:
    """Score both models on the rows the champion never saw and bootstrap the difference.

    Returns the champion's metrics on those rows, or None when there is no comparison (the
    decision's reason then says why).
    """
    decision.champion = {
        k: pointer.get(k) for k in ("run_id", "version", "model_uri", "model_sha256")
    }
    mask = _compared_rows(decision, params=params, holdout=holdout, seen=seen)
    if mask is None:
        return None
    rows, mine = holdout[mask], challenger_proba[mask]
    mine_at = decision.challenger["metrics"]["threshold"]
    try:
        theirs = champion_scores(load_champion(pointer), rows)
        at = pointer["threshold"] if pointer.get("threshold") is not None else LEGACY_THRESHOLD
        figures, their_events = scored_figures(
            rows, theirs, params=params, threshold=at, leaks=leaks
        )
        compared, my_events = scored_figures(
            rows, mine, params=params, threshold=mine_at, leaks=leaks
        )
        boot = bootstrap_difference(params, rows, mine, theirs, (my_events, their_events))
    except (PromotionError, BootstrapError, champion.ChampionError, leak_events.EventError) as exc:
        decision.reason = (
            f"Not promoted: {exc}; compare by hand and use `leak promote` to override."
        )
        return None
    metric = params.promotion.primary_metric
    decision.champion["metrics"] = figures
    decision.comparison["challenger_metrics"] = compared
    decision.difference = round(float(compared[metric] - figures[metric]), 6)
    decision.ci_low, decision.ci_high, decision.bootstrap = boot["ci_low"], boot["ci_high"], boot
    return figures


def champion_scores(model: Any, holdout: pd.DataFrame) -> np.ndarray:
    """Return the champion's leak probabilities on the holdout rows."""
    columns = [str(c) for c in getattr(model, "feature_names_in_", [])]
    missing = [c for c in columns if c not in holdout.columns]
    if missing:
        raise PromotionError(
            f"the champion needs columns this holdout lacks ({', '.join(missing[:5])})"
        )
    return model.predict_proba(holdout[columns] if columns else holdout)[:, 1]


def gate(
    *,
    store: MetadataStore,
    params: Params,
    run: RunRecord,
    holdout: pd.DataFrame,
    challenger_proba: np.ndarray,
    load_champion: Callable[[dict[str, Any]], Any] = champion.load_champion_model,
    load_snapshot: Callable[[str], pd.DataFrame] | None = None,
    leaks: leak_events.Leaks | None = None,
) -> Decision:
    """Compare the challenger with the champion on its holdout, decide, and record the decision.

    Only the holdout rows the champion was never trained on are compared
    (:func:`leaklib.splits.trained_on`); the decision's ``comparison`` says how many were left
    out and why.

    The decision goes to the run record (``promotion``), to MLflow tags on the challenger's
    run and model version, and, when promoted, to the champion pointer and registry markers.

    Args:
        store: The metadata store.
        params: The run's parameters (``promotion``, ``dataset``, ``seed``); each model is
            measured at its own alarm threshold (the run record's ``alarm``).
        run: The challenger's run record (with its ``model``).
        holdout: The frozen holdout: feature columns, target and group.
        challenger_proba: The challenger's leak probabilities on ``holdout``, row for row.
        load_champion: Returns the champion's fitted pipeline from its pointer (tests pass
            their own to compare with a given model).
        load_snapshot: Returns a snapshot frame from its SHA-256, to establish what an old
            champion record trained on (default: from ``params.snapshot_store``).
        leaks: The stream's leak table and volumes, for event metrics (None: the leaks are
            runs of the target, and water figures are NaN).
    """
    run = run_record.get_run(store, run.run_id)
    if len(challenger_proba) != len(holdout):
        raise PromotionError(f"{len(challenger_proba)} scores for {len(holdout)} holdout rows")
    decision = _promotion_decision(
        store=store,
        params=params,
        run=run,
        holdout=holdout,
        challenger_proba=challenger_proba,
        load_champion=load_champion,
        load_snapshot=load_snapshot,
        leaks=leaks,
    )
    return _recorded_decision(decision, store=store, run=run, name=params.dataset.model_name)


def _promotion_decision(
    *,
    store: MetadataStore,
    params: Params,
    run: RunRecord,
    holdout: pd.DataFrame,
    challenger_proba: np.ndarray,
    load_champion: Callable[[dict[str, Any]], Any],
    load_snapshot: Callable[[str], pd.DataFrame] | None,
    leaks: leak_events.Leaks | None,
) -> Decision:
    """Measure the challenger, then decide against the current champion (see :func:`gate`)."""
    figures, _ = scored_figures(
        holdout,
        challenger_proba,
        params=params,
        threshold=run.threshold,
        leaks=leaks,
    )
    name = params.dataset.model_name
    pointer = champion.current_champion(store, model_name=name)
    decision = Decision(
        primary_metric=params.promotion.primary_metric,
        challenger=_challenger(run, figures),
        min_improvement=params.promotion.min_improvement,
        confidence=params.promotion.confidence,
        previous_champion=champion.brief(pointer),
    )
    if not _already_decided(decision, pointer=pointer, run=run, name=name):
        champion_figures = pointer and _compare(
            decision,
            params=params,
            pointer=pointer,
            holdout=holdout,
            challenger_proba=challenger_proba,
            load_champion=load_champion,
            seen=_champion_trained_on(store, params, pointer, load_snapshot),
            leaks=leaks,
        )
        if not decision.reason:  # a failed comparison has said why already
            _decide_against(
                decision,
                champion_figures or None,
                store=store,
                params=params,
                run=run,
                pointer=pointer,
            )
    return decision


def _recorded_decision(
    decision: Decision, *, store: MetadataStore, run: RunRecord, name: str
) -> Decision:
    """Record the decision in the run record and in MLflow's tags, and log it."""
    plain = decision.to_dict()
    decision.mlflow = model_registry.mirror_decision(run, plain, model_name=name)
    runs.record_promotion(store, run.run_id, {**plain, "mlflow": decision.mlflow})
    log.info("run %s: %s", run.run_id, decision.reason)
    return decision


def _already_decided(
    decision: Decision, *, pointer: dict[str, Any] | None, run: RunRecord, name: str
) -> bool:
    """Decide without a comparison when the champion is this run, or this run's own model."""
    if pointer and pointer["run_id"] == run.run_id:
        decision.decision = PROMOTED
        decision.reason = f"Already the champion of {name} (promoted {pointer['promoted_at']})."
        return True
    if pointer and champion.same_model(pointer, run):
        decision.reason = (
            f"Not promoted: the champion pointer of {name} names this run's own model "
            f"(run {pointer['run_id']}); a model is never compared with itself."
        )
        return True
    return False


def _champion_trained_on(
    store: MetadataStore,
    params: Params,
    pointer: dict[str, Any],
    load_snapshot: Callable[[str], pd.DataFrame] | None,
) -> splits.TrainedOn:
    """Return what the champion was trained on, from its run record or its snapshots."""
    record = run_record.get_run_or_none(store, pointer["run_id"])
    if record is None:
        return splits.TrainedOn(
            None, note=splits.UNKNOWN_NOTE.format(why="its run record is not in this store")
        )
    if load_snapshot is None:
        snapshot_store = snapshots.open_snapshot_store(params.snapshot_store)

        def load_snapshot(sha256: str) -> pd.DataFrame:
            return snapshots.load_snapshot(sha256, store=snapshot_store)

    dataset = params.dataset
    return splits.trained_on(
        record,
        group=dataset.group,
        columns=splits.identity_columns(dataset.features, dataset.target),
        load_snapshot=load_snapshot,
        timestamp=dataset.timestamp,
    )


def _decide_against(
    decision: Decision,
    champion_figures: dict[str, float] | None,
    *,
    store: MetadataStore,
    params: Params,
    run: RunRecord,
    pointer: dict[str, Any] | None,
) -> None:
    """Apply the rule to the challenger and the champion's figures; promote when it says so."""
    comparison = decision.comparison or {}
    verdict, reason, criteria = decide(
        params.promotion,
        challenger=decision.challenger["metrics"],
        champion=champion_figures,
        bootstrap=decision.bootstrap,
        compared=comparison.get("challenger_metrics"),
        comparison=_left_out_text(comparison),
    )
    decision.decision, decision.reason, decision.criteria = verdict, reason, criteria
    if verdict != PROMOTED:
        return
    try:
        champion.promote(
            store,
            run=run,
            model_name=params.dataset.model_name,
            reason=reason,
            decided_by="gate",
            figures=decision.challenger["metrics"],
            expected_champion=pointer["run_id"] if pointer else None,
        )
    except ConflictError as exc:
        decision.decision = NOT_PROMOTED
        decision.reason = f"Not promoted: {exc}; run the evaluation again."


def _left_out_text(comparison: dict[str, Any]) -> str:
    """Return what the reason adds about the compared rows ("" when nothing was left out)."""
    if not comparison:
        return ""
    if comparison["source"] == "unknown":
        return comparison["why"]
    if not comparison["left_out_rows"]:
        return ""
    groups = comparison.get("left_out_groups")
    return (
        f"{comparison['rows']:,} rows compared, {comparison['left_out_rows']:,} left out"
        + (f" ({groups} groups)" if groups is not None else "")
        + " because the champion was trained on them"
    )


def manual_promotion(store: MetadataStore, *, run_id: str, params: Params, reason: str) -> Decision:
    """Promote a run by hand through :func:`leaklib.champion.promote`, recorded like a gate decision."""
    if not reason.strip():
        raise PromotionError("a manual promotion needs a --reason")
    run = run_record.get_run(store, run_id)
    model = champion.model_of(run)
    if not (model.version or model.sha256):
        raise PromotionError(f"run {run_id!r} has no registered model version to promote")
    name = params.dataset.model_name
    pointer = champion.current_champion(store, model_name=name)
    decision = Decision(
        primary_metric=params.promotion.primary_metric,
        challenger=_challenger(run, metrics.unprefixed(run.metrics)),
        decision=PROMOTED,
        reason=f"Promoted by hand: {reason.strip()}",
        manual=True,
        champion=champion.brief(pointer),
        previous_champion=champion.brief(pointer),
    )
    champion.promote(
        store,
        run=run,
        model_name=name,
        reason=decision.reason,
        decided_by="manual",
        figures=decision.challenger["metrics"],
    )
    plain = decision.to_dict()
    decision.mlflow = model_registry.mirror_decision(run, plain, model_name=name)
    runs.supersede_promotion(store, run_id, {**plain, "mlflow": decision.mlflow})
    return decision


def decision_frame(decision: Decision) -> pd.DataFrame:
    """Return champion | challenger | difference per metric on the compared holdout rows."""
    compared = (decision.comparison or {}).get("challenger_metrics")
    mine_all = compared or decision.challenger.get("metrics") or {}
    theirs_all = (decision.champion or {}).get("metrics") or {}
    rows = {}
    for name in metrics.CATALOGUE:
        if name not in mine_all or name == "false_positive_rate":
            continue
        mine, theirs = mine_all[name], theirs_all.get(name)
        label = f"{name} (primary)" if name == decision.primary_metric else name
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


def comparison_frame(decision: Decision) -> pd.DataFrame:
    """Return the holdout rows (and groups) compared and left out, and why, for the report."""
    comparison = decision.comparison
    if not comparison:
        return pd.DataFrame(columns=["compared", "left out", "why"])
    rows = {
        "rows": [comparison["rows"], comparison["left_out_rows"], comparison["why"]],
    }
    if comparison.get("groups") is not None:
        rows["groups"] = [comparison["groups"], comparison["left_out_groups"], ""]
    frame = pd.DataFrame.from_dict(rows, orient="index", columns=["compared", "left out", "why"])
    frame.index.name = "holdout"
    return frame


def criteria_frame(decision: Decision) -> pd.DataFrame:
    """Return each promotion criterion with its threshold, the value found and whether it held."""
    frame = pd.DataFrame(
        [asdict(c) for c in decision.criteria], columns=["name", "threshold", "value", "passed"]
    )
    return frame.set_index("name")
