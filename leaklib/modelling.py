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
from sklearn.model_selection import ParameterSampler, StratifiedGroupKFold, StratifiedKFold
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from leaklib import estimators, metrics
from leaklib.errors import LeakError
from leaklib.params import FeatureSpec, ModelSpec

log = logging.getLogger(__name__)


class EstimatorError(LeakError, ValueError):
    """The model parameters cannot build an estimator."""


def make_estimator(model: ModelSpec, *, seed: int) -> ClassifierMixin:
    """Return the estimator ``model.name`` with ``model.params`` and the run's seed."""
    entry = estimators.CATALOGUE[model.name]
    cls = entry.cls
    estimator = cls(**entry.defaults)
    known = estimator.get_params()
    unknown = sorted(set(model.params) - set(known))
    if unknown:
        raise EstimatorError(
            f"model.params: {unknown[0]!r} is not a parameter of {model.name} "
            f"({cls.__name__}); valid: {', '.join(sorted(known))}"
        )
    try:
        estimator.set_params(**model.params)
    except (TypeError, ValueError) as exc:
        raise EstimatorError(f"model.params for {model.name}: {exc}") from exc
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


def split_holdout(
    frame: pd.DataFrame, *, target: str, group: str | None, test_size: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Split rows into train and holdout positions, keeping groups whole and classes in both.

    Groups (or rows) are stratified by whether they contain a positive, shuffled with the
    seed, and ``test_size`` of each stratum goes to the holdout.
    """
    rng = np.random.default_rng(seed)
    units = frame[group] if group else pd.Series(np.arange(len(frame)), index=frame.index)
    has_positive = frame[target].groupby(units.to_numpy()).max()
    holdout_units: list[Any] = []
    for cls in (0, 1):
        members = np.sort(has_positive.index[has_positive.to_numpy() == cls].to_numpy())
        if len(members) == 0:
            continue
        take = max(1, round(test_size * len(members)))
        if take >= len(members):
            raise EstimatorError(
                f"test_size {test_size} leaves no training {('groups' if group else 'rows')} with class {cls}"
            )
        holdout_units.extend(rng.permutation(members)[:take].tolist())
    in_holdout = units.isin(holdout_units).to_numpy()
    return np.flatnonzero(~in_holdout), np.flatnonzero(in_holdout)


def feature_frame(frame: pd.DataFrame, features: dict[str, FeatureSpec]) -> pd.DataFrame:
    """Return the declared feature columns, in declared order."""
    return frame[list(features)]


def _folds(
    frame: pd.DataFrame, y: np.ndarray, *, group: str | None, folds: int, seed: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Return the (train, test) positions of the (grouped, stratified) k-fold split."""
    if group:
        splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
        return list(splitter.split(frame, y, groups=frame[group].to_numpy()))
    return list(StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed).split(frame, y))


@dataclass
class CrossValidation:
    """Per-fold scores, and each training row's out-of-fold probability and fold number."""

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
    folds: int,
    seed: int,
) -> CrossValidation:
    """Score the pipeline by (grouped, stratified) k-fold, keeping the out-of-fold predictions.

    Each row's out-of-fold probability comes from the fold model that did not see its group:
    what the alarm threshold is chosen on.
    """
    X = feature_frame(frame, features)
    y = frame[target].to_numpy()
    oof, fold_of = np.full(len(frame), np.nan), np.zeros(len(frame), dtype=int)
    rows = []
    for fold, (train, test) in enumerate(_folds(frame, y, group=group, folds=folds, seed=seed), 1):
        fitted = clone(pipeline).fit(X.iloc[train], y[train])
        oof[test] = fitted.predict_proba(X.iloc[test])[:, 1]
        fold_of[test] = fold
        scores = {name: metrics.score(name, y[test], oof[test]) for name in metrics.CV_METRICS}
        rows.append({"fold": fold, "rows": len(test), **scores})
        log.info("fold %d: ROC-AUC %.3f", fold, rows[-1]["roc_auc"])
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
    folds: int,
    seed: int,
    primary: str,
) -> Tuned:
    """Cross-validate the model, or search ``model.search`` and keep the best by ``primary``.

    Candidates are drawn from the declared values with the run's seed and scored by the same
    grouped folds; no new candidate starts once ``budget_s`` has passed (at least one runs).
    Without a search the given parameters are the one candidate.
    """
    candidates = [dict(model.params)]
    if model.search is not None:
        grid = int(np.prod([len(values) for values in model.search.space.values()]))
        drawn = ParameterSampler(
            model.search.space, n_iter=min(model.search.n_candidates, grid), random_state=seed
        )
        candidates = [{**model.params, **choice} for choice in drawn]
    started, rows, best = time.monotonic(), [], None
    for number, values in enumerate(candidates, start=1):
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
            pipeline, frame, features=features, target=target, group=group, folds=folds, seed=seed
        )
        mean = float(cv.scores[primary].mean())
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
