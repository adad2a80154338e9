"""Build, split and cross-validate the scikit-learn pipeline the parameters describe."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import ClassifierMixin, clone
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.model_selection import (
    ParameterSampler,
    StratifiedGroupKFold,
    StratifiedKFold,
    TimeSeriesSplit,
)
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from leaklib import estimators, metrics
from leaklib.errors import LeakError
from leaklib.params import FeatureSpec, ModelSpec, Params

log = logging.getLogger(__name__)


class EstimatorError(LeakError, ValueError):
    """The model parameters cannot build an estimator."""


def make_estimator(model: ModelSpec, *, seed: int) -> ClassifierMixin:
    """Return the estimator ``model.name`` with ``model.params`` and the run's seed."""
    entry = estimators.CATALOGUE[model.name]
    cls = entry.cls
    estimator = cls(**entry.defaults)
    problems = estimators.check_params(model.name, model.params)
    if problems:
        raise EstimatorError(f"model.params: {problems[0][1]}")
    try:
        estimator.set_params(**model.params)
    except (TypeError, ValueError) as exc:
        raise EstimatorError(f"model.params for {model.name}: {exc}") from exc
    known = estimator.get_params()
    if "random_state" in known:
        estimator.set_params(random_state=seed)
    return estimator


def build_pipeline(features: dict[str, FeatureSpec], *, model: ModelSpec, seed: int) -> Pipeline:
    """Return preprocessing (by declared type) followed by the chosen estimator."""
    numeric = [n for n, s in features.items() if s.type in ("numeric", "boolean")]
    categorical = [n for n, s in features.items() if s.type == "categorical"]
    inputs = estimators.CATALOGUE[model.name].numeric_inputs
    if inputs == "passthrough":
        numeric_steps = "passthrough"  # handles missing values natively
    elif inputs == "impute_scale":
        numeric_steps = make_pipeline(
            SimpleImputer(strategy="median", keep_empty_features=True), StandardScaler()
        )
    else:
        numeric_steps = SimpleImputer(strategy="median", keep_empty_features=True)
    transformers: list[tuple[str, Any, list[str]]] = []
    if numeric:
        transformers.append(("numeric", numeric_steps, numeric))
    if categorical:
        transformers.append(
            (
                "categorical",
                make_pipeline(
                    SimpleImputer(strategy="constant", fill_value="(missing)"),
                    OneHotEncoder(handle_unknown="ignore", sparse_output=False, min_frequency=5),
                ),
                categorical,
            )
        )
    pre = ColumnTransformer(transformers, remainder="drop", verbose_feature_names_out=False)
    return Pipeline([("preprocess", pre), ("model", make_estimator(model, seed=seed))])


def onset_rows(
    frame: pd.DataFrame,
    *,
    target: str,
    timestamp: str,
    onset: str,
    leak_table: pd.DataFrame | None = None,
) -> np.ndarray:
    """Return which rows to train on: every quiet row, and leak rows in a leak's first ``onset``.

    A detector's job is to find new leaks: once a leak is older than the features' trailing
    baseline it looks normal, and labelling those rows 1 teaches the model noise. A leak row
    is kept while any leak active at that time started at most ``onset`` before it. The leaks
    are the leak table's (``start``, ``end``; an empty end lasts on), else runs of the target.
    """
    times = pd.to_datetime(frame[timestamp]).to_numpy()
    leaking = frame[target].to_numpy() == 1
    limit = pd.Timedelta(onset).to_timedelta64()
    if leak_table is not None:
        starts = pd.to_datetime(leak_table["start"]).to_numpy()
        ends = pd.to_datetime(leak_table["end"]).fillna(pd.Timestamp.max).to_numpy()
    else:
        order = np.argsort(times, kind="stable")
        flags = leaking[order].astype(int)
        edges = np.diff(np.r_[0, flags, 0])
        starts = times[order][np.flatnonzero(edges[:-1] == 1)]
        ends = np.r_[times[order], times[order][-1:] + np.timedelta64(1, "ns")][
            np.flatnonzero(edges == -1)
        ]
    young = np.zeros(len(frame), dtype=bool)
    for start, end in zip(starts, ends, strict=True):
        young |= (times >= start) & (times < end) & (times - start <= limit)
    return ~leaking | young


def learning_rows(
    frame: pd.DataFrame, *, params: Params, leak_table: pd.DataFrame | None = None
) -> np.ndarray:
    """Return the mask of training rows a model learns from (all, or :func:`onset_rows`).

    ``model.leak_onset`` applies to a stream (a timestamp and no group); a table of groups,
    whose groups each start leak-free, learns from every row.
    """
    onset, dataset = params.model.leak_onset, params.dataset
    if onset is None or not dataset.is_stream:
        return np.ones(len(frame), dtype=bool)
    keep = onset_rows(
        frame,
        target=dataset.target,
        timestamp=dataset.timestamp,
        onset=onset,
        leak_table=leak_table,
    )
    log.info(
        "model.leak_onset %s: learning from %d of %d training rows", onset, keep.sum(), len(keep)
    )
    return keep


def cv_primary(metric: str) -> str:
    """Return the metric cross-validation ranks candidates by: an event metric's is ROC-AUC.

    Event metrics need alarm events over a stretch of time and a threshold, which a fold's
    scores do not have; folds are ranked by ROC-AUC then.
    """
    return metric if metrics.CATALOGUE[metric].kind == "row" else "roc_auc"


def feature_frame(frame: pd.DataFrame, features: dict[str, FeatureSpec]) -> pd.DataFrame:
    """Return the declared feature columns, in declared order."""
    return frame[list(features)]


@dataclass(frozen=True)
class Folds:
    """How cross-validation splits the training part.

    ``forward`` is the timestamp column when folds go forward in time (``split.by: time``):
    each fold trains on the rows before its test block, ``gap`` rows short of it (the
    derivations' lookback), so no fold trains on the future or on rows whose features saw
    its test block. The first block is never a test block and has no out-of-fold prediction.
    Otherwise folds are grouped (by ``group``) and stratified, shuffled with the seed.
    """

    count: int
    group: str | None = None
    forward: str | None = None
    gap: int = 0


def folds_for(params: Params) -> Folds:
    """Return the cross-validation the parameters ask for: grouped, or forward in time.

    Forward folds keep a gap of the derivations' lookback between training and test rows.
    """
    dataset = params.dataset
    if params.split.by == "time":
        gap = dataset.derive.lookback or 0
        return Folds(count=params.cv_folds, forward=dataset.timestamp, gap=gap)
    return Folds(count=params.cv_folds, group=dataset.group)


def _folds(
    frame: pd.DataFrame, y: np.ndarray, *, group: str | None, folds: int | Folds, seed: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Return the (train, test) positions of the k-fold split (grouped or forward in time)."""
    spec = folds if isinstance(folds, Folds) else Folds(count=folds, group=group)
    folds, group = spec.count, spec.group
    if spec.forward:
        order = np.argsort(frame[spec.forward].to_numpy(), kind="stable")
        splitter = TimeSeriesSplit(n_splits=folds, gap=spec.gap)
        return [(order[train], order[test]) for train, test in splitter.split(order)]
    if group:
        splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
        return list(splitter.split(frame, y, groups=frame[group].to_numpy()))
    return list(StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed).split(frame, y))


@dataclass
class CrossValidation:
    """Per-fold scores, and each training row's out-of-fold probability and fold number.

    A row in no test fold (the first block of forward folds) has NaN and fold 0.
    """

    scores: pd.DataFrame
    oof: np.ndarray
    fold: np.ndarray


def cross_validate(
    pipeline: Pipeline,
    frame: pd.DataFrame,
    *,
    features: dict[str, FeatureSpec],
    target: str,
    group: str | None,
    folds: int | Folds,
    seed: int,
    learn: np.ndarray | None = None,
) -> CrossValidation:
    """Score the pipeline by (grouped, stratified) k-fold, keeping the out-of-fold predictions.

    Each row's out-of-fold probability comes from the fold model that did not see its group:
    what the alarm threshold is chosen on. ``learn`` (a row mask, see :func:`onset_rows`)
    limits the rows each fold model is fitted on; every row of a test fold is still scored.
    """
    X = feature_frame(frame, features)
    y = frame[target].to_numpy()
    oof, fold_of = np.full(len(frame), np.nan), np.zeros(len(frame), dtype=int)
    rows = []
    for fold, (train, test) in enumerate(_folds(frame, y, group=group, folds=folds, seed=seed), 1):
        if learn is not None:  # fit on the rows it may learn from, score every row of the fold
            train = train[learn[train]]
        fitted = clone(pipeline).fit(X.iloc[train], y[train])
        oof[test] = fitted.predict_proba(X.iloc[test])[:, 1]
        fold_of[test] = fold
        if len(np.unique(y[test])) < 2:  # a block of time with no leak, or only leaks
            log.warning("fold %d holds a single class; its scores are left empty", fold)
            scores = dict.fromkeys(metrics.CV_METRICS, np.nan)
        else:
            scores = {n: metrics.score(n, y[test], oof[test]) for n in metrics.CV_METRICS}
        rows.append({"fold": fold, "rows": len(test), **scores})
        log.info("fold %d: ROC-AUC %.3f", fold, rows[-1].get("roc_auc", np.nan))
    return CrossValidation(scores=pd.DataFrame(rows).set_index("fold"), oof=oof, fold=fold_of)


@dataclass
class Tuned:
    """The model a training step fits: its spec, its cross-validation, every candidate tried."""

    model: ModelSpec
    cv: CrossValidation
    candidates: pd.DataFrame


def tune(
    model: ModelSpec,
    frame: pd.DataFrame,
    *,
    features: dict[str, FeatureSpec],
    target: str,
    group: str | None,
    folds: int | Folds,
    seed: int,
    primary: str,
    learn: np.ndarray | None = None,
) -> Tuned:
    """Cross-validate the model, or search ``model.search`` and keep the best by ``primary``.

    Candidates are drawn from the declared values with the run's seed and scored by the same
    grouped folds; no new candidate starts once ``budget_s`` has passed (at least one runs).
    Without a search the given parameters are the one candidate.
    """
    started, rows, best = time.monotonic(), [], None
    for number, values in enumerate(_candidates(model, seed=seed), start=1):
        if rows and model.search and time.monotonic() - started > model.search.budget_s:
            log.info(
                "search budget of %.0f s spent after %d candidates",
                model.search.budget_s,
                len(rows),
            )
            break
        spec = ModelSpec(name=model.name, params=values)
        pipeline = build_pipeline(features, model=spec, seed=seed)
        began = time.monotonic()
        cv = cross_validate(
            pipeline,
            frame,
            features=features,
            target=target,
            group=group,
            folds=folds,
            seed=seed,
            learn=learn,
        )
        mean = float(cv.scores[primary].mean())  # NaN folds (a single class) are skipped
        rows.append(
            {
                "candidate": number,
                **values,
                f"cv_{primary}": mean,
                f"cv_{primary}_std": float(cv.scores[primary].std(ddof=1)),
                "seconds": round(time.monotonic() - began, 1),
            }
        )
        if best is None or mean > best[0]:
            best = (mean, spec, cv)
    table = pd.DataFrame(rows).set_index("candidate")
    table["chosen"] = table.index == int(table[f"cv_{primary}"].idxmax())
    return Tuned(model=best[1], cv=best[2], candidates=table)


def _candidates(model: ModelSpec, *, seed: int) -> list[dict[str, Any]]:
    """The parameter sets to try: drawn from ``model.search`` with the seed, else the given one."""
    if model.search is None:
        return [dict(model.params)]
    grid = int(np.prod([len(values) for values in model.search.space.values()]))
    drawn = ParameterSampler(
        model.search.space, n_iter=min(model.search.n_candidates, grid), random_state=seed
    )
    return [{**model.params, **choice} for choice in drawn]


def summarise_cv(scores: pd.DataFrame) -> dict[str, float]:
    """Return mean and standard deviation of each fold metric, keyed ``cv_<metric>[_std]``."""
    summary: dict[str, float] = {}
    for name in metrics.CV_METRICS:
        key = f"{metrics.CV_PREFIX}{name}"
        summary[key] = round(float(scores[name].mean()), 6)
        summary[f"{key}_std"] = round(float(scores[name].std(ddof=1)), 6)
    return summary


def split_summary(
    train: pd.DataFrame, holdout: pd.DataFrame, *, target: str, group: str | None
) -> pd.DataFrame:
    """Return rows, groups and leak share of the training part and the holdout."""
    rows = {}
    for name, part in (("train", train), ("holdout", holdout)):
        rows[name] = {
            "rows": len(part),
            "groups": part[group].nunique() if group else None,
            "leak share": round(float(part[target].mean()), 4),
        }
    return pd.DataFrame(rows).T
