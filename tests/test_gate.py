"""leaklib.gate: the promotion rule, the gate against the champion, manual promotion."""

from __future__ import annotations

import shutil
import uuid
from types import SimpleNamespace

import mlflow
import numpy as np
import pandas as pd
import pytest

from leaklib import gate, leak_events, run_record, runs, splits
from leaklib import params as P
from leaklib.champion import ChampionError
from leaklib.gate import Criterion, Decision
from leaklib.metadata import LocalMetadataStore
from leaklib.params import PromotionSpec
from leaklib.run_record import RunRecord
from tests.conftest import fit_and_register


def _spec(**changes) -> PromotionSpec:
    return PromotionSpec(primary_metric="roc_auc", **changes)


def _scores(seed: int = 0, n: int = 400):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.4).astype(int)
    return y, np.clip(0.35 * y + rng.random(n) * 0.65, 0, 1)


# ---------------------------------------------------------------- the rule


_BETTER = {"roc_auc": 0.90, "pr_auc": 0.8, "recall_at_1pct_fpr": 0.30}
_WORSE = {"roc_auc": 0.85, "pr_auc": 0.7, "recall_at_1pct_fpr": 0.20}


def test_decide_promotes_when_the_lower_bound_exceeds_the_minimum_improvement():
    verdict, reason, _ = gate.decide(
        _spec(min_improvement=0.01),
        challenger=_BETTER,
        champion=_WORSE,
        bootstrap={"ci_low": 0.02, "ci_high": 0.08},
    )
    assert verdict == gate.PROMOTED and "CI [+0.0200, +0.0800]" in reason


def test_decide_refuses_when_the_lower_bound_only_equals_the_minimum_improvement():
    verdict, reason, _ = gate.decide(
        _spec(min_improvement=0.02),
        challenger=_BETTER,
        champion=_WORSE,
        bootstrap={"ci_low": 0.02, "ci_high": 0.08},
    )
    assert verdict == gate.NOT_PROMOTED
    assert "not above the minimum improvement +0.0200" in reason


def test_decide_refuses_an_improvement_that_breaks_a_floor():
    verdict, reason, criteria = gate.decide(
        _spec(floors={"recall_at_1pct_fpr": 0.5}),
        challenger=_BETTER,
        champion=_WORSE,
        bootstrap={"ci_low": 0.02, "ci_high": 0.08},
    )
    assert verdict == gate.NOT_PROMOTED
    assert "floor recall_at_1pct_fpr >= 0.5 fails (0.3000)" in reason
    assert [c.passed for c in criteria] == [True, False]
    assert criteria[1] == Criterion("recall_at_1pct_fpr >= floor", 0.5, 0.3, False)


def test_decide_promotes_the_first_model_that_passes_the_floors():
    verdict, reason, _ = gate.decide(
        _spec(floors={"roc_auc": 0.8}), challenger=_BETTER, champion=None, bootstrap=None
    )
    assert verdict == gate.PROMOTED and reason.startswith("Promoted: no champion yet")


def test_decide_refuses_a_first_model_below_a_floor():
    verdict, reason, _ = gate.decide(
        _spec(floors={"roc_auc": 0.95}), challenger=_BETTER, champion=None, bootstrap=None
    )
    assert verdict == gate.NOT_PROMOTED and "floor roc_auc >= 0.95 fails (0.9000)" in reason


def test_decide_refuses_a_champion_comparison_without_an_interval():
    with pytest.raises(gate.PromotionError, match="needs the bootstrap interval"):
        gate.decide(_spec(), challenger=_BETTER, champion=_WORSE, bootstrap=None)


# ---------------------------------------------------------------- the decision as a type


def _decision(with_champion: bool = True) -> Decision:
    return Decision(
        primary_metric="roc_auc",
        challenger={"metrics": _BETTER},
        champion={"metrics": _WORSE} if with_champion else None,
        difference=0.05,
        ci_low=0.02,
        ci_high=0.08,
        confidence=0.95,
        min_improvement=0.0,
        criteria=[Criterion("lower CI bound > min_improvement", 0.0, 0.02, True)],
    )


def test_decision_to_dict_is_plain_json():
    plain = _decision().to_dict()
    assert plain["decision"] == "not promoted" and type(plain["decision"]) is str
    assert plain["criteria"] == [
        {
            "name": "lower CI bound > min_improvement",
            "threshold": 0.0,
            "value": 0.02,
            "passed": True,
        }
    ]


def test_decision_frame_puts_champion_and_challenger_side_by_side():
    frame = gate.decision_frame(_decision())
    assert list(frame.columns) == ["champion", "challenger", "difference"]
    assert frame.loc["roc_auc (primary)", "difference"] == pytest.approx(0.05)


def test_decision_frame_without_a_champion_leaves_its_column_empty():
    frame = gate.decision_frame(_decision(with_champion=False))
    assert frame["champion"].isna().all() and frame.loc["pr_auc", "challenger"] == 0.8


def test_criteria_frame_has_one_row_per_criterion():
    frame = gate.criteria_frame(_decision())
    assert list(frame.columns) == ["threshold", "value", "passed"]
    assert frame.loc["lower CI bound > min_improvement", "passed"]


def test_champion_scores_refuses_a_holdout_without_the_champions_columns():
    model = SimpleNamespace(feature_names_in_=np.array(["p_a", "flow"]))
    with pytest.raises(
        gate.PromotionError, match=r"champion needs columns this holdout lacks \(flow\)"
    ):
        gate.champion_scores(model, pd.DataFrame({"p_a": [1.0]}))


# ---------------------------------------------------------------- the gate, three runs


def test_gate_promotes_the_first_valid_model(promotion_history):
    assert promotion_history.decisions["first"].promoted


def test_gate_keeps_the_champion_against_a_weaker_challenger(promotion_history):
    decision = promotion_history.decisions["weaker"]
    assert decision.decision == gate.NOT_PROMOTED and decision.champion["run_id"] == "run-first"
    assert decision.ci_high < 0


def test_gate_promotes_a_stronger_challenger_over_the_champion(promotion_history):
    decision = promotion_history.decisions["stronger"]
    assert decision.promoted and decision.ci_low > 0
    assert decision.previous_champion["run_id"] == "run-first"


def test_gate_rescores_the_champion_with_holdout_metrics(promotion_history):
    champion = promotion_history.decisions["stronger"].champion["metrics"]
    assert champion == promotion_history.decisions["first"].challenger["metrics"]


def test_gate_records_each_decision_in_its_run(promotion_history):
    recorded = {n: r.promotion.decision for n, r in promotion_history.records.items()}
    assert recorded == {"first": "promoted", "weaker": "not promoted", "stronger": "promoted"}


def test_gate_tags_the_challenger_run_and_version_in_mlflow(promotion_history, local_mlflow):
    record = promotion_history.records["weaker"]
    client = mlflow.MlflowClient()
    run_tags = client.get_run(record.mlflow_run_id).data.tags
    version_tags = client.get_model_version(
        promotion_history.params.dataset.model_name, record.model.version
    ).tags
    assert run_tags["leak.promotion.decision"] == "not promoted"
    assert version_tags["leak.promotion.reason"] == promotion_history.decisions["weaker"].reason


def test_gate_moves_the_champion_alias_to_the_promoted_version(promotion_history, local_mlflow):
    version = mlflow.MlflowClient().get_model_version_by_alias(
        promotion_history.params.dataset.model_name, "champion"
    )
    assert str(version.version) == promotion_history.records["stronger"].model.version


def test_gate_refuses_scores_that_do_not_match_the_holdout(promotion_history):
    with pytest.raises(gate.PromotionError, match="3 scores for"):
        gate.gate(
            store=promotion_history.store,
            params=promotion_history.params,
            run=promotion_history.records["stronger"],
            holdout=promotion_history.holdout,
            challenger_proba=np.zeros(3),
        )


def _copy(promotion_history, tmp_path) -> LocalMetadataStore:
    folder = shutil.copytree(promotion_history.store.folder, tmp_path / "metadata")
    return LocalMetadataStore(folder)


def _reopened(store, run_id: str) -> RunRecord:
    """A finished run made running again, so the gate may record on it (a copy only)."""
    record = {**run_record.get_run(store, run_id).to_doc(), "status": "running", "promotion": None}
    store.transact("runs", run_id, lambda _: record)
    return RunRecord.from_doc(record)


def test_gate_says_when_the_challenger_already_is_the_champion(
    promotion_history, local_mlflow, tmp_path
):
    store = _copy(promotion_history, tmp_path)
    decision = gate.gate(
        store=store,
        params=promotion_history.params,
        run=_reopened(store, "run-stronger"),
        holdout=promotion_history.holdout,
        challenger_proba=promotion_history.scores["stronger"],
    )
    assert decision.promoted and decision.reason.startswith("Already the champion of gate-")


def test_gate_does_not_promote_when_the_champion_cannot_be_loaded(
    promotion_history, local_mlflow, tmp_path
):
    def unloadable(pointer):
        raise ChampionError("the champion model cannot be loaded from models:/x/1")

    store = _copy(promotion_history, tmp_path)
    decision = gate.gate(
        store=store,
        params=promotion_history.params,
        run=_reopened(store, "run-first"),
        holdout=promotion_history.holdout,
        challenger_proba=promotion_history.scores["first"],
        load_champion=unloadable,
    )
    assert decision.decision == gate.NOT_PROMOTED
    assert "cannot be loaded from models:/x/1; compare by hand" in decision.reason


# ---------------------------------------------------------------- manual promotion


def test_manual_promotion_makes_the_run_champion_and_keeps_the_gates_verdict(
    promotion_history, local_mlflow, tmp_path
):
    store = _copy(promotion_history, tmp_path)
    decision = gate.manual_promotion(
        store, run_id="run-weaker", params=promotion_history.params, reason="field check"
    )
    record = run_record.get_run(store, "run-weaker")
    assert decision.manual and decision.reason == "Promoted by hand: field check"
    assert record.promotion.superseded["decision"] == "not promoted"
    assert decision.previous_champion["run_id"] == "run-stronger"


def test_manual_promotion_needs_a_reason(promotion_history, tmp_path):
    with pytest.raises(gate.PromotionError, match="a manual promotion needs a --reason"):
        gate.manual_promotion(
            _copy(promotion_history, tmp_path),
            run_id="run-first",
            params=promotion_history.params,
            reason="  ",
        )


def test_manual_promotion_refuses_a_run_without_a_registered_version(promotion_history, tmp_path):
    store = _copy(promotion_history, tmp_path)
    runs.start_run(store, run_id="bare", params={}, param_files=[], origin="test")
    runs.record_model(store, "bare", {"run_uri": "runs:/abc/model"})
    with pytest.raises(gate.PromotionError, match="run 'bare' has no registered model version"):
        gate.manual_promotion(store, run_id="bare", params=promotion_history.params, reason="x")


# ---------------------------------------------------------------- only rows the champion never saw


def _champion_saw(store, groups) -> None:
    """Make the champion's record say it trained on these groups (a copy of the store only)."""
    pointer_run = run_record.get_run(store, "run-stronger").to_doc()
    split = {"units": "group", "train_groups": sorted(groups)}
    store.transact("runs", "run-stronger", lambda _: {**pointer_run, "split": split})


def _gate_weaker(promotion_history, store, **kwargs):
    return gate.gate(
        store=store,
        params=promotion_history.params,
        run=_reopened(store, "run-weaker"),
        holdout=promotion_history.holdout,
        challenger_proba=promotion_history.scores["weaker"],
        **kwargs,
    )


def test_gate_leaves_out_the_holdout_rows_the_champion_trained_on(
    promotion_history, local_mlflow, tmp_path
):
    store = _copy(promotion_history, tmp_path)
    holdout = promotion_history.holdout
    seen = sorted(holdout["scenario_id"].unique())[:3]
    _champion_saw(store, seen)
    decision = _gate_weaker(promotion_history, store)
    comparison = decision.comparison
    assert (comparison["left_out_groups"], comparison["source"]) == (3, "record")
    assert comparison["left_out_rows"] == int(holdout["scenario_id"].isin(seen).sum())
    assert comparison["rows"] == len(holdout) - comparison["left_out_rows"]
    assert f"{comparison['left_out_rows']:,} left out (3 groups)" in decision.reason
    recorded = run_record.get_run(store, "run-weaker").promotion.get("comparison")
    assert recorded["left_out_groups"] == 3
    assert gate.comparison_frame(decision).loc["groups", "left out"] == 3


def test_gate_compares_on_every_row_when_the_champion_saw_none(promotion_history):
    comparison = promotion_history.decisions["weaker"].comparison
    assert comparison["left_out_rows"] == 0 and comparison["rows"] == len(promotion_history.holdout)


def test_gate_refuses_to_compare_on_too_few_unseen_rows(promotion_history, local_mlflow, tmp_path):
    store = _copy(promotion_history, tmp_path)
    groups = sorted(promotion_history.holdout["scenario_id"].unique())
    _champion_saw(store, groups[:-1])  # one holdout group of 48 rows left: below 100
    decision = _gate_weaker(promotion_history, store)
    assert decision.decision == gate.NOT_PROMOTED and decision.bootstrap is None
    assert decision.reason.startswith("Not compared: only 48 of ")
    assert "promotion.min_unseen_rows = 100" in decision.reason


def test_gate_says_an_unknown_training_set_may_favour_the_champion(
    promotion_history, local_mlflow, tmp_path
):
    store = _copy(promotion_history, tmp_path)
    old = {
        k: v for k, v in run_record.get_run(store, "run-stronger").to_doc().items() if k != "split"
    }
    old["holdout"] = {"sha256": "ef" * 32}
    store.transact("runs", "run-stronger", lambda _: old)
    decision = _gate_weaker(promotion_history, store, load_snapshot=_no_snapshot)
    assert decision.comparison["source"] == "unknown"
    assert "may favour it" in decision.reason and "no snapshot cdcdcdcd" in decision.reason


def _no_snapshot(sha256: str) -> pd.DataFrame:
    raise FileNotFoundError(f"no snapshot {sha256[:8]}")


# ---------------------------------------------------------------- a stream that grew, an event metric


def _stream(days: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A 15-minute stream with a leak starting every four days, and its leak table."""
    rng = np.random.default_rng(4)
    stamps = pd.date_range("2018-01-01", periods=days * 96, freq="15min")
    starts = [pd.Timestamp("2018-01-02") + pd.Timedelta(days=4 * k) for k in range(days // 4)]
    table = pd.DataFrame(
        {
            "leak_id": range(1, len(starts) + 1),
            "start": starts,
            "end": [s + pd.Timedelta(hours=30) for s in starts],
            "kind": ["abrupt", "incipient"] * (len(starts) // 2) + ["abrupt"] * (len(starts) % 2),
        }
    )
    leak = np.zeros(len(stamps), dtype=int)
    for _, row in table.iterrows():
        leak[(stamps >= row["start"]) & (stamps < row["end"])] = 1
    frame = pd.DataFrame(
        {"timestamp": stamps, "p_a": rng.normal(40, 1, len(stamps)) - 2.5 * leak, "leaks": leak}
    )
    return frame, table


def test_a_gate_on_a_grown_stream_leaves_out_the_champions_training_period(local_mlflow, tmp_path):
    values = P.defaults()
    values.update(
        dataset={
            "source": "unused.parquet",
            "target": "leaks",
            "features": {"p_a": "numeric"},
            "timestamp": "timestamp",
            "model_name": f"stream-{uuid.uuid4().hex[:8]}",
        },
        metadata_store=str(tmp_path / "metadata"),
        model={"name": "logistic_regression", "params": {}},
        split={"by": "time"},
        promotion={
            "primary_metric": "event_recall",
            "n_bootstrap": 200,
            "confidence": 0.9,
            "min_unseen_rows": 100,
            "block": "2D",
        },
    )
    params = P.validate(values)
    store = LocalMetadataStore(tmp_path / "metadata")
    decisions = {}
    for name, days, test_size in (("first", 40, 0.25), ("grown", 60, 0.6)):
        frame, leak_table = _stream(days)
        split = splits.split_by_time(
            frame, target="leaks", timestamp="timestamp", test_size=test_size
        )
        holdout = frame.iloc[split.holdout]
        run, proba = fit_and_register(
            store,
            params,
            frame,
            holdout,
            run_id=f"run-{name}",
            experiment_id=local_mlflow.experiment_id,
        )
        runs.record_split(store, run.run_id, split.to_dict())
        runs.record_training(store, run.run_id, alarm={"threshold": 0.5})
        decisions[name] = gate.gate(
            store=store,
            params=params,
            run=run,
            holdout=holdout,
            challenger_proba=proba,
            leaks=leak_events.Leaks(table=leak_table),
        )
    first, grown = decisions["first"], decisions["grown"]
    assert first.promoted and "event_recall" in first.challenger["metrics"]
    trained_until = pd.Timestamp(run_record.get_run(store, "run-first").split["train_period"][1])
    holdout = _stream(60)[0].iloc[-int(0.6 * 60 * 96) :]
    inside = int((holdout["timestamp"] <= trained_until).sum())
    comparison = grown.comparison
    assert comparison["source"] == "record" and comparison["left_out_rows"] == inside > 0
    assert "its training period" in comparison["why"]
    assert grown.bootstrap["unit"].startswith("block") and grown.difference is not None
    assert "event_recall" in grown.champion["metrics"]
