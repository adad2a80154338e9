"""The promotion gate: bootstrap, rule, champion pointer, MLflow records and the commands."""

from __future__ import annotations

import shutil
import uuid
from types import SimpleNamespace

import mlflow
import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from leaklib import cli, evaluation, modelling, promotion, registry, runs, tracking
from leaklib.metadata import ConflictError, LocalMetadataStore
from leaklib.params import PromotionSpec
from tests.conftest import make_table


def _spec(**changes) -> PromotionSpec:
    return PromotionSpec(primary_metric="roc_auc", **changes)


def _scores(seed: int = 0, n: int = 400, groups: int = 20):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.4).astype(int)
    good = np.clip(0.35 * y + rng.random(n) * 0.65, 0, 1)
    noisy = rng.random(n)
    return y, good, noisy, np.repeat(np.arange(groups), n // groups)


# ---------------------------------------------------------------- bootstrap


def test_group_weights_keep_each_group_whole():
    codes = np.array([0, 0, 1, 1, 1, 2])
    weights = promotion.group_weights(codes, np.array([[2, 2, 0], [1, 0, 1]]))
    assert weights.tolist() == [[1, 1, 0, 0, 0, 2], [1, 1, 2, 2, 2, 0]]


@pytest.mark.parametrize(
    ("metric", "reference"),
    [
        ("roc_auc", roc_auc_score),
        ("pr_auc", average_precision_score),
        ("recall_at_1pct_fpr", lambda y, p: evaluation.recall_at_fpr(y, p, fpr=0.01)),
    ],
)
def test_weighted_scores_equal_the_metric_on_the_drawn_rows(metric, reference):
    y, good, _, codes = _scores()
    proba = np.round(good, 2)  # ties, as real scores have
    picks = np.random.default_rng(1).integers(0, 20, (5, 20))
    weights = promotion.group_weights(codes, picks)
    drawn = [np.repeat(np.arange(len(y)), w.astype(int)) for w in weights]
    expected = [reference(y[rows], proba[rows]) for rows in drawn]
    assert np.allclose(promotion.weighted_scores(metric, y, proba, weights), expected, atol=1e-12)


def test_paired_bootstrap_is_reproducible_with_the_seed():
    y, good, noisy, codes = _scores()
    kwargs = dict(metric="roc_auc", groups=codes, n_bootstrap=200, seed=7, confidence=0.9)
    assert promotion.paired_bootstrap(y, good, noisy, **kwargs) == promotion.paired_bootstrap(
        y, good, noisy, **kwargs
    )


def test_paired_bootstrap_of_a_model_against_itself_is_zero():
    y, good, _, codes = _scores()
    boot = promotion.paired_bootstrap(
        y, good, good, metric="pr_auc", groups=codes, n_bootstrap=200, seed=0, confidence=0.95
    )
    assert (boot["ci_low"], boot["ci_high"]) == (0.0, 0.0)


def test_paired_bootstrap_interval_excludes_zero_for_a_clearly_better_model():
    y, good, noisy, codes = _scores()
    boot = promotion.paired_bootstrap(
        y, good, noisy, metric="roc_auc", groups=codes, n_bootstrap=300, seed=0, confidence=0.95
    )
    assert 0 < boot["ci_low"] < boot["ci_high"]


def test_paired_bootstrap_refuses_a_holdout_whose_groups_hold_one_class():
    y = np.array([0, 0, 0, 0, 1, 1])
    codes = np.array([0, 0, 0, 0, 1, 1])  # two groups: most draws hold a single class
    with pytest.raises(promotion.PromotionError, match="draws hold both classes"):
        promotion.paired_bootstrap(
            y,
            y * 0.9,
            y * 0.8,
            metric="roc_auc",
            groups=codes,
            n_bootstrap=200,
            seed=0,
            confidence=0.95,
        )


# ---------------------------------------------------------------- the rule


_BETTER = {"roc_auc": 0.90, "pr_auc": 0.8, "recall_at_1pct_fpr": 0.30}
_WORSE = {"roc_auc": 0.85, "pr_auc": 0.7, "recall_at_1pct_fpr": 0.20}


def test_decide_promotes_when_the_lower_bound_exceeds_the_minimum_improvement():
    verdict, reason, _ = promotion.decide(
        _spec(min_improvement=0.01),
        challenger=_BETTER,
        champion=_WORSE,
        bootstrap={"ci_low": 0.02, "ci_high": 0.08},
    )
    assert verdict == "promoted" and "CI [+0.0200, +0.0800]" in reason


def test_decide_refuses_when_the_lower_bound_only_equals_the_minimum_improvement():
    verdict, reason, _ = promotion.decide(
        _spec(min_improvement=0.02),
        challenger=_BETTER,
        champion=_WORSE,
        bootstrap={"ci_low": 0.02, "ci_high": 0.08},
    )
    assert verdict == "not promoted" and "not above the minimum improvement +0.0200" in reason


def test_decide_refuses_an_improvement_that_breaks_a_floor():
    verdict, reason, criteria = promotion.decide(
        _spec(floors={"recall_at_1pct_fpr": 0.5}),
        challenger=_BETTER,
        champion=_WORSE,
        bootstrap={"ci_low": 0.02, "ci_high": 0.08},
    )
    assert verdict == "not promoted" and "floor recall_at_1pct_fpr >= 0.5 fails (0.3000)" in reason
    assert [c["passed"] for c in criteria] == [True, False]


def test_decide_promotes_the_first_model_that_passes_the_floors():
    verdict, reason, _ = promotion.decide(
        _spec(floors={"roc_auc": 0.8}), challenger=_BETTER, champion=None, bootstrap=None
    )
    assert verdict == "promoted" and reason.startswith("Promoted: no champion yet")


def test_decide_refuses_a_first_model_below_a_floor():
    verdict, reason, _ = promotion.decide(
        _spec(floors={"roc_auc": 0.95}), challenger=_BETTER, champion=None, bootstrap=None
    )
    assert verdict == "not promoted" and "floor roc_auc >= 0.95 fails (0.9000)" in reason


@pytest.mark.parametrize("metric", ["roc_auc", "pr_auc", "recall_at_1pct_fpr"])
def test_metric_function_is_the_code_of_holdout_metrics(metric):
    y, good, _, _ = _scores()
    expected = evaluation.holdout_metrics(y, good, threshold=0.5)[metric]
    assert round(promotion.metric_function(metric)(y, good), 6) == expected


def test_metric_function_refuses_an_unknown_metric():
    with pytest.raises(promotion.PromotionError, match="primary_metric 'f1' is not one of"):
        promotion.metric_function("f1")


# ---------------------------------------------------------------- report


def _decision(with_champion: bool = True) -> dict:
    return {
        "primary_metric": "roc_auc",
        "challenger": {"metrics": _BETTER},
        "champion": {"metrics": _WORSE} if with_champion else None,
        "difference": 0.05,
        "ci_low": 0.02,
        "ci_high": 0.08,
        "confidence": 0.95,
        "min_improvement": 0.0,
        "criteria": [],
        "bootstrap": {"histogram": {"edges": [0.0, 0.05, 0.1], "counts": [40, 60]}},
    }


def test_decision_frame_puts_champion_and_challenger_side_by_side():
    frame = promotion.decision_frame(_decision())
    assert list(frame.columns) == ["champion", "challenger", "difference"]
    assert frame.loc["roc_auc (primary)", "difference"] == pytest.approx(0.05)


def test_decision_frame_without_a_champion_leaves_its_column_empty():
    frame = promotion.decision_frame(_decision(with_champion=False))
    assert frame["champion"].isna().all() and frame.loc["pr_auc", "challenger"] == 0.8


def test_plot_bootstrap_has_a_title_and_labelled_axes():
    axes = promotion.plot_bootstrap(_decision()).axes[0]
    assert axes.get_title() and axes.get_xlabel() and axes.get_ylabel()


# ---------------------------------------------------------------- pointer, gate, commands


def _fit_and_register(store, params, table, holdout, *, run_id: str, experiment_id: str):
    """What 02_train does, in small: fit, log to MLflow, register, record in the run."""
    params = params.model_copy(update={"run_id": run_id})
    runs.start_run(store, run_id=run_id, params=params.to_plain(), param_files=[], origin="test")
    runs.update_run(store, run_id, snapshot={"sha256": "cd" * 32, "uri": "memory"})
    train = table[~table.index.isin(holdout.index)]
    X = modelling.feature_frame(train, params.features)
    fitted = modelling.build_pipeline(params.features, model=params.model, seed=params.seed)
    fitted.fit(X, train[params.target])
    with mlflow.start_run(experiment_id=experiment_id) as active:
        uri = tracking.log_model(fitted, example=X.head(3))
    run = runs.update_run(store, run_id, mlflow={"run_id": active.info.run_id})
    version = registry.register_model(model_uri=uri, name=params.model_name, run=run)
    run = runs.update_run(
        store, run_id, model={"uri": uri, "mlflow_run_id": active.info.run_id, **version}
    )
    proba = fitted.predict_proba(modelling.feature_frame(holdout, params.features))[:, 1]
    return run, proba


@pytest.fixture(scope="module")
def history(local_mlflow_store, tmp_path_factory):
    """Three runs through the gate: a first model, a weaker and then a stronger challenger."""
    from leaklib import params as P

    root = tmp_path_factory.mktemp("promotion")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", local_mlflow_store.uri)
        tracking.configure()
        values = P.defaults()
        values.update(
            source="unused.parquet",
            metadata_store=str(root / "metadata"),
            features={"p_a": "numeric", "p_b": "numeric", "zone": "categorical"},
            model={"name": "logistic_regression", "params": {}},
            model_name=f"gate-{uuid.uuid4().hex[:8]}",
            promotion={"primary_metric": "roc_auc", "n_bootstrap": 300, "confidence": 0.9},
        )
        params = P.validate(values)
        store = LocalMetadataStore(root / "metadata")
        table = make_table(scenarios=40, rows_per=48)
        _, rows = modelling.split_holdout(
            table, target="leaks", group="scenario_id", test_size=0.3, seed=params.seed
        )
        holdout = table.iloc[rows]
        y = holdout["leaks"].to_numpy()
        decisions, records = {}, {}
        for name in ("first", "weaker", "stronger"):
            run, proba = _fit_and_register(
                store,
                params,
                table,
                holdout,
                run_id=f"run-{name}",
                experiment_id=local_mlflow_store.experiment_id,
            )
            if name == "weaker":
                proba = np.random.default_rng(0).random(len(holdout))
            if name == "stronger":
                proba = np.clip(0.5 * y + 0.5 * proba, 0, 1)
            decisions[name] = promotion.gate(
                store=store, params=params, run=run, holdout=holdout, challenger_proba=proba
            )
            records[name] = runs.get_run(store, run["run_id"])
        yield SimpleNamespace(
            params=params,
            store=store,
            decisions=decisions,
            records=records,
            holdout=holdout,
            pointer=promotion.current_champion(store, model_name=params.model_name),
        )


def test_gate_promotes_the_first_valid_model(history):
    assert history.decisions["first"]["decision"] == "promoted"


def test_gate_keeps_the_champion_against_a_weaker_challenger(history):
    decision = history.decisions["weaker"]
    assert decision["decision"] == "not promoted" and decision["champion"]["run_id"] == "run-first"
    assert decision["ci_high"] < 0


def test_gate_promotes_a_stronger_challenger_over_the_champion(history):
    decision = history.decisions["stronger"]
    assert decision["decision"] == "promoted" and decision["ci_low"] > 0
    assert decision["previous_champion"]["run_id"] == "run-first"


def test_gate_rescores_the_champion_with_holdout_metrics(history):
    champion = history.decisions["stronger"]["champion"]["metrics"]
    assert champion == history.decisions["first"]["challenger"]["metrics"]


def test_gate_records_each_decision_in_its_run(history):
    recorded = {name: r["promotion"]["decision"] for name, r in history.records.items()}
    assert recorded == {"first": "promoted", "weaker": "not promoted", "stronger": "promoted"}


def test_champion_pointer_keeps_the_history_of_promotions(history):
    assert history.pointer["run_id"] == "run-stronger"
    assert [e["run_id"] for e in history.pointer["history"]] == ["run-first", "run-stronger"]


def test_gate_tags_the_challenger_run_and_version_in_mlflow(history, local_mlflow):
    record = history.records["weaker"]
    client = mlflow.MlflowClient()
    run_tags = client.get_run(record["mlflow"]["run_id"]).data.tags
    version_tags = client.get_model_version(
        history.params.model_name, record["model"]["version"]
    ).tags
    assert run_tags["leak.promotion.decision"] == "not promoted"
    assert version_tags["leak.promotion.reason"] == history.decisions["weaker"]["reason"]


def test_gate_moves_the_champion_alias_to_the_promoted_version(history, local_mlflow):
    version = mlflow.MlflowClient().get_model_version_by_alias(
        history.params.model_name, "champion"
    )
    assert str(version.version) == history.records["stronger"]["model"]["version"]


def test_gate_refuses_scores_that_do_not_match_the_holdout(history):
    run = history.records["stronger"]
    with pytest.raises(promotion.PromotionError, match="3 scores for"):
        promotion.gate(
            store=history.store,
            params=history.params,
            run=run,
            holdout=history.holdout,
            challenger_proba=np.zeros(3),
        )


def test_load_champion_falls_back_to_the_run_it_was_logged_in(history, local_mlflow):
    pointer = {**history.pointer, "model_uri": "models:/no-such-model/1"}
    assert hasattr(promotion.load_champion(pointer), "predict_proba")


def test_load_champion_names_the_uris_it_tried(local_mlflow):
    with pytest.raises(promotion.PromotionError, match="cannot be loaded from models:/none/1"):
        promotion.load_champion({"model_uri": "models:/none/1"})


def test_current_champion_is_none_before_any_promotion(tmp_path):
    assert promotion.current_champion(LocalMetadataStore(tmp_path), model_name="m") is None


def _bare_run(store, run_id: str, *, with_model: bool = True) -> dict:
    run = runs.start_run(store, run_id=run_id, params={"seed": 1}, param_files=[], origin="test")
    if with_model:
        run = runs.update_run(store, run_id, model={"uri": f"runs:/{run_id}/model"})
    return run


def test_promote_refuses_when_the_champion_changed_since_the_comparison(tmp_path):
    store = LocalMetadataStore(tmp_path)
    promotion.promote(store, run=_bare_run(store, "a"), model_name="m", reason="first")
    with pytest.raises(ConflictError, match="changed to run 'a'"):
        promotion.promote(
            store,
            run=_bare_run(store, "b"),
            model_name="m",
            reason="late",
            expected_champion=None,
        )


def test_promote_refuses_a_run_without_a_model(tmp_path):
    store = LocalMetadataStore(tmp_path)
    with pytest.raises(promotion.PromotionError, match="has no logged model"):
        promotion.promote(
            store, run=_bare_run(store, "a", with_model=False), model_name="m", reason="x"
        )


def _cli(*args: str, store: str, model_name: str) -> int:
    return cli.main([*args, "-p", "metadata_store", store, "-p", "model_name", model_name])


def test_champion_command_says_when_there_is_no_champion(tmp_path, capsys):
    assert _cli("champion", store=str(tmp_path), model_name="nobody") == 0
    assert "no champion yet for model 'nobody'" in capsys.readouterr().out


def test_champion_command_prints_the_champion_and_its_history(history, capsys):
    _cli("champion", store=str(history.store.folder), model_name=history.params.model_name)
    out = capsys.readouterr().out
    assert "run run-stronger" in out and out.index("run run-stronger") < out.rindex("run run-first")


def test_promote_command_records_a_manual_promotion(history, local_mlflow, tmp_path):
    store = LocalMetadataStore(shutil.copytree(history.store.folder, tmp_path / "metadata"))
    code = _cli(
        "promote",
        "run-first",
        "--reason",
        "rollback after a field incident",
        store=str(store.folder),
        model_name=history.params.model_name,
    )
    pointer = promotion.current_champion(store, model_name=history.params.model_name)
    record = runs.get_run(store, "run-first")
    assert code == 0 and pointer["run_id"] == "run-first" and pointer["decided_by"] == "manual"
    assert record["promotion"]["reason"] == "Promoted by hand: rollback after a field incident"


def test_promote_command_names_an_unknown_run(tmp_path, capsys):
    code = _cli("promote", "no-such-run", "--reason", "x", store=str(tmp_path), model_name="m")
    assert code == 2 and "run 'no-such-run' not found" in capsys.readouterr().err
