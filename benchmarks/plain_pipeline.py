"""The work of ``leak run`` as one plain Python script: the reference of bench_pipeline.py.

    .venv/bin/python benchmarks/plain_pipeline.py [-f PARAMS.yaml] [-p KEY VALUE] \
        [--champion RUN_RECORD.json] [--work DIR]

It calls the same library functions as the three notebooks, in the same order and on the
same parameters (read cell by cell from ``notebooks/0*.ipynb``):

- extract: read and validate the table, profile it, the distributions figure, the derived
  features and their figure, the snapshot (canonical Parquet bytes and their SHA-256) and the
  leak table's and volumes' snapshots;
- train: the holdout as ``split`` says (by time on a stream) and its snapshot, the learning
  rows (``model.leak_onset``), cross-validation with out-of-fold predictions (``tune``, forward
  folds in time on a stream), the alarm threshold (by false alarm events per 30 days on a
  stream), the final fit and the model file;
- evaluate: the holdout metrics, the leak events and their scores and timeline, the
  localisation of the detected leaks (signatures reused from the project's stores, as the run
  reuses them) and its map, the row figures, operations and detection delays, permutation
  importance and, given the champion's run record (``--champion``), what the gate computes:
  the rows the champion never saw, both models' figures on them (events included), the
  bootstrap (over blocks of time for an event metric), the rule and its figure.

Every figure is encoded to PNG, as the notebook's inline backend does. No notebooks, no
kernels, no run record, no MLflow, no rendering. It prints one JSON line (per-step seconds and
the metrics it computed) so the benchmark can check the metrics equal those of ``leak run``.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

from leaklib import (  # noqa: E402
    evaluation,
    features,
    gate,
    leak_events,
    leak_location,
    metrics,
    modelling,
    models,
    plots,
    schema,
    snapshots,
    sources,
    splits,
)
from leaklib.metadata import open_metadata_store  # noqa: E402
from leaklib.params import Params, load  # noqa: E402
from leaklib.run_record import RunRecord  # noqa: E402


def _png_all() -> int:
    """Encode every open figure to PNG (what the inline backend does), close them, count."""
    import matplotlib.pyplot as plt

    count = 0
    for number in plt.get_fignums():
        buffer = io.BytesIO()
        plt.figure(number).savefig(buffer, format="png", bbox_inches="tight")
        count += 1
    plt.close("all")
    return count


def _gate_work(
    params: Params,
    champion_record: RunRecord,
    *,
    holdout: Any,
    proba: Any,
    threshold: float,
    leaks: leak_events.Leaks,
    store: snapshots.SnapshotStore,
) -> None:
    """What ``gate.gate`` computes against a champion (03_evaluate's gate cells), no writes.

    The champion's training period (or groups) comes from its run record, as the gate reads it.
    """
    dataset, spec = params.dataset, params.promotion
    figures, _ = gate.scored_figures(
        holdout, proba, params=params, threshold=threshold, leaks=leaks
    )
    columns = splits.identity_columns(dataset.features, dataset.target)
    seen = splits.trained_on(
        champion_record,
        group=dataset.group,
        columns=columns,
        load_snapshot=lambda sha256: snapshots.load_snapshot(sha256, store=store),
        timestamp=dataset.timestamp,
    )
    mask, comparison = splits.comparison_rows(
        holdout,
        seen,
        group=dataset.group,
        columns=columns,
        min_rows=spec.min_unseen_rows,
        timestamp=dataset.timestamp,
    )
    decision = gate.Decision(
        primary_metric=spec.primary_metric,
        challenger={"metrics": figures},
        min_improvement=spec.min_improvement,
        confidence=spec.confidence,
        comparison=comparison.to_dict(),
    )
    if comparison.enough:
        rows, mine = holdout[mask], proba[mask]
        model = models.load_model_file(champion_record.model.sha256, store=store)
        theirs = gate.champion_scores(model, rows)
        their_figures, their_events = gate.scored_figures(
            rows,
            theirs,
            params=params,
            threshold=champion_record.threshold,
            leaks=leaks,
        )
        compared, my_events = gate.scored_figures(
            rows, mine, params=params, threshold=threshold, leaks=leaks
        )
        boot = gate.bootstrap_difference(params, rows, mine, theirs, (my_events, their_events))
        decision.champion = {"metrics": their_figures}
        metric = spec.primary_metric
        decision.difference = round(float(compared[metric] - their_figures[metric]), 6)
        decision.ci_low, decision.ci_high, decision.bootstrap = (
            boot["ci_low"],
            boot["ci_high"],
            boot,
        )
        decision.comparison["challenger_metrics"] = compared
        decision.decision, decision.reason, decision.criteria = gate.decide(
            spec, challenger=figures, champion=their_figures, bootstrap=boot, compared=compared
        )
    gate.decision_frame(decision)
    gate.comparison_frame(decision)
    plots.plot_bootstrap(decision)
    gate.criteria_frame(decision)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-f", dest="files", action="append", default=[])
    parser.add_argument("-p", dest="overrides", action="append", nargs=2, default=[])
    parser.add_argument(
        "--champion", type=Path, help="the champion's run record (JSON): its model and split"
    )
    parser.add_argument("--work", help="snapshot folder (default: a temporary one)")
    args = parser.parse_args(argv)
    params = load(args.files, [tuple(o) for o in args.overrides])
    dataset = params.dataset
    champion_record = (
        RunRecord.from_doc(json.loads(args.champion.read_text())) if args.champion else None
    )
    # The project's stores: the champion's model file, and the localisation signatures,
    # which the run reuses from them once solved (as the run does, the script reuses them).
    project_snapshots = snapshots.open_snapshot_store(params.snapshot_store)
    project_index = open_metadata_store(params.metadata_store)
    seconds: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        store = snapshots.open_snapshot_store(args.work or tmp)
        store.check()

        started = time.perf_counter()  # --- extract (01_extract's cells, in order)
        raw = sources.extract_source(params)
        table, report = schema.validate_table(raw, params=params)
        report.summary().to_frame()
        schema.profile(table, params=params)
        separating = schema.most_separating(table, params=params, n=3)
        plots.plot_distributions(table, columns=separating, target=dataset.target)
        table, derived = features.derive_dataset(table, dataset)
        shown = features.strongest(table, list(derived), target=dataset.target)
        if shown:
            plots.plot_deviation_during_leak(
                table,
                column=shown[0],
                derived=shown[1],
                target=dataset.target,
                group=dataset.group,
                timestamp=dataset.timestamp,
            )
        snapshot = snapshots.snapshot_table(table, store=store)
        leak_record = leak_events.snapshot_leaks(dataset, store=store)
        report.to_dict()
        figures = _png_all()
        seconds["extract"] = time.perf_counter() - started

        started = time.perf_counter()  # --- train (02_train's cells)
        # Each notebook starts with an empty namespace (the run's kernel resets between
        # notebooks), so what a step no longer uses is let go here too.
        del raw, report
        table = snapshots.load_snapshot(snapshot.sha256, store=store)
        columns = features.model_features(dataset, list(derived))
        split = splits.choose_holdout(
            table, dataset=dataset, split=params.split, test_size=params.test_size
        )
        train, holdout = table.iloc[split.train], table.iloc[split.holdout]
        holdout_snapshot = snapshots.snapshot_table(holdout, store=store)
        split.describe()
        modelling.split_summary(train, holdout, target=dataset.target, group=dataset.group)
        leaks = leak_events.leaks_from_record(leak_record, store=store)
        learn = modelling.learning_rows(train, params=params, leak_table=leaks.table)
        tuned = modelling.tune(
            params.model,
            train,
            features=columns,
            target=dataset.target,
            group=dataset.group,
            folds=modelling.folds_for(params),
            seed=params.seed,
            primary=modelling.cv_primary(params.promotion.primary_metric),
            learn=learn,
        )
        alarm = evaluation.threshold_for_run(
            train, tuned.cv.oof, tuned.cv.fold, params=params, leak_table=leaks.table
        )
        cv_metrics = modelling.summarise_cv(tuned.cv.scores)
        pipeline = modelling.build_pipeline(columns, model=tuned.model, seed=params.seed)
        X_train = modelling.feature_frame(train, columns)
        fitted = pipeline.fit(X_train[learn], train[dataset.target][learn])
        model_file = models.save_model(fitted, store=store)
        seconds["train"] = time.perf_counter() - started

        started = time.perf_counter()  # --- evaluate (03_evaluate's cells)
        del table, train, X_train, tuned, pipeline, fitted
        holdout = snapshots.load_snapshot(holdout_snapshot.sha256, store=store)
        model = models.load_model_file(model_file.sha256, store=store)
        X = modelling.feature_frame(holdout, columns)
        y = holdout[dataset.target].to_numpy()
        proba = model.predict_proba(X)[:, 1]
        threshold = alarm.threshold
        scores = evaluation.holdout_metrics(y, proba, threshold=threshold)
        evaluation.headline(cv_metrics, scores)
        leaks = leak_events.leaks_from_record(leak_record, store=store)
        holdout_events = leak_events.evaluate_stream(
            holdout, proba, params=params, threshold=threshold, leaks=leaks
        )
        event_scores = leak_events.event_scores(holdout_events) if holdout_events else {}
        leak_events.score_table(event_scores)
        located = None
        if holdout_events:
            plots.plot_event_timeline(
                holdout_events,
                times=holdout[dataset.timestamp],
                proba=proba,
                threshold=threshold,
            )
            located = leak_location.locate_evaluation(
                holdout,
                holdout_events.leaks,
                params=params,
                snapshots=project_snapshots,
                store=project_index,
                event_scores=event_scores,
            )
        if located:
            leak_location.score_table(located.scores)
            plots.plot_location_map(
                located.network,
                located.first()[1],
                sensors=located.sensors,
                true_pipe=located.first()[0],
            )
        plots.plot_roc(y, proba)
        plots.plot_pr(y, proba)
        evaluation.alarm_summary(alarm.to_dict(), scores)
        plots.plot_confusion(y, proba, threshold=threshold)
        plots.plot_threshold_sweep(y, proba, threshold=threshold)
        operations = evaluation.operations(holdout, proba, params=params, threshold=threshold)
        delays = evaluation.delays_if_possible(holdout, proba, params=params, threshold=threshold)
        plots.plot_delays(delays)
        plots.plot_calibration(y, proba)
        importance = evaluation.permutation_table(
            model, X, y, repeats=params.permutation_repeats, seed=params.seed
        )
        plots.plot_importance(importance)
        if champion_record:
            _gate_work(
                params,
                champion_record,
                holdout=holdout,
                proba=proba,
                threshold=threshold,
                leaks=leaks,
                store=project_snapshots,
            )
        holdout_metrics = metrics.prefixed(
            scores,
            operations.to_dict(),
            evaluation.detection_summary(delays),
            event_scores,
            located.scores if located else {},
        )
        figures += _png_all()
        seconds["evaluate"] = time.perf_counter() - started
    result = {
        "seconds": {k: round(v, 2) for k, v in seconds.items()},
        "figures": figures,
        "snapshot_sha256": snapshot.sha256,
        "model_sha256": model_file.sha256,
        "metrics": {**cv_metrics, **holdout_metrics},
    }
    print(json.dumps(result, default=float), flush=True)  # noqa: T201
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
