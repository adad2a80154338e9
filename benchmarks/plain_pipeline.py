"""The work of ``leak run`` as one plain Python script: the reference of bench_pipeline.py.

    .venv/bin/python benchmarks/plain_pipeline.py [-f PARAMS.yaml] [-p KEY VALUE] \
        [--champion SHA256] [--work DIR]

It calls the same library functions as the three notebooks, in the same order and on the
same parameters: read and validate the table, profile it, the distributions figure, the
derived features and their figure, write the snapshot (canonical Parquet bytes and their
SHA-256), the grouped holdout and its snapshot, grouped cross-validation with out-of-fold
predictions (``tune``), the alarm threshold, the final fit and the model file, the holdout
metrics, operations and detection delays, the figures the evaluate notebook draws (each
encoded to PNG, as the notebook's inline backend does), permutation importance and, given a
champion model file (``--champion``), its scores and the paired group bootstrap of the gate. No
notebooks, no kernels, no run record, no MLflow, no rendering. It prints one JSON line
(per-step seconds and the figures it computed) so the benchmark can check the metrics equal
those of ``leak run``.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import tempfile
import time

import matplotlib

matplotlib.use("Agg")

from leaklib import (  # noqa: E402
    evaluation,
    features,
    metrics,
    modelling,
    models,
    plots,
    schema,
    snapshots,
    sources,
    splits,
)
from leaklib.bootstrap import paired_bootstrap  # noqa: E402
from leaklib.gate import champion_scores  # noqa: E402
from leaklib.params import load  # noqa: E402


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


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-f", dest="files", action="append", default=[])
    parser.add_argument("-p", dest="overrides", action="append", nargs=2, default=[])
    parser.add_argument("--champion", help="SHA-256 of a model file in --champion-store")
    parser.add_argument("--champion-store", default="stores/snapshots")
    parser.add_argument("--work", help="snapshot folder (default: a temporary one)")
    args = parser.parse_args(argv)
    params = load(args.files, [tuple(o) for o in args.overrides])
    dataset = params.dataset
    seconds: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        store = snapshots.open_snapshot_store(args.work or tmp)
        store.check()

        started = time.perf_counter()  # --- extract (01_extract's cells, in order)
        raw = sources.extract_source(params)
        table, report = schema.validate_table(raw, params=params)
        report.summary()
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
        figures = _png_all()
        snapshot = snapshots.snapshot_table(table, store=store)
        seconds["extract"] = time.perf_counter() - started

        started = time.perf_counter()  # --- train (02_train's cells)
        table = snapshots.load_snapshot(snapshot.sha256, store=store)
        columns = features.model_features(dataset, list(derived))
        split = splits.split_holdout(
            table,
            target=dataset.target,
            group=dataset.group,
            columns=splits.identity_columns(dataset.features, dataset.target),
            test_size=params.test_size,
        )
        train, holdout = table.iloc[split.train], table.iloc[split.holdout]
        holdout_snapshot = snapshots.snapshot_table(holdout, store=store)
        modelling.split_summary(train, holdout, target=dataset.target, group=dataset.group)
        tuned = modelling.tune(
            params.model,
            train,
            features=columns,
            target=dataset.target,
            group=dataset.group,
            folds=params.cv_folds,
            seed=params.seed,
            primary=params.promotion.primary_metric,
        )
        alarm = evaluation.choose_alarm_threshold(
            train[dataset.target],
            tuned.cv.oof,
            tuned.cv.fold,
            max_false_alarm_rate=params.alarm.max_false_alarm_rate,
            override=params.threshold,
        )
        cv_metrics = modelling.summarise_cv(tuned.cv.scores)
        pipeline = modelling.build_pipeline(columns, model=tuned.model, seed=params.seed)
        X_train = modelling.feature_frame(train, columns)
        fitted = pipeline.fit(X_train, train[dataset.target])
        model_file = models.save_model(fitted, store=store)
        seconds["train"] = time.perf_counter() - started

        started = time.perf_counter()  # --- evaluate (03_evaluate's cells)
        holdout = snapshots.load_snapshot(holdout_snapshot.sha256, store=store)
        model = models.load_model_file(model_file.sha256, store=store)
        X = modelling.feature_frame(holdout, columns)
        y = holdout[dataset.target].to_numpy()
        proba = model.predict_proba(X)[:, 1]
        threshold = alarm.threshold
        scores = evaluation.holdout_metrics(y, proba, threshold=threshold)
        evaluation.headline(cv_metrics, scores)
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
        if args.champion:
            other = models.load_model_file(
                args.champion, store=snapshots.open_snapshot_store(args.champion_store)
            )
            champion_proba = champion_scores(other, holdout)
            evaluation.holdout_metrics(y, champion_proba, threshold=threshold)
            spec = params.promotion
            paired_bootstrap(
                y,
                proba,
                champion_proba,
                metric=spec.primary_metric,
                groups=holdout[dataset.group].to_numpy() if dataset.group else None,
                n_bootstrap=spec.n_bootstrap,
                seed=params.seed,
                confidence=spec.confidence,
            )
        metrics.prefixed(scores, operations.to_dict(), evaluation.detection_summary(delays))
        figures += _png_all()
        seconds["evaluate"] = time.perf_counter() - started
    result = {
        "seconds": {k: round(v, 2) for k, v in seconds.items()},
        "figures": figures,
        "snapshot_sha256": snapshot.sha256,
        "model_sha256": model_file.sha256,
        "metrics": {
            **cv_metrics,
            "alarm_threshold": alarm.threshold,
            **metrics.prefixed(scores, operations.to_dict(), evaluation.detection_summary(delays)),
        },
    }
    print(json.dumps(result), flush=True)  # noqa: T201
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
