"""The estimator catalogue: every model name a run may choose, with its class and defaults.

The parameters (which names ``model.name`` accepts), model building and the reports read
this module. A new estimator is one entry here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sklearn.base import ClassifierMixin
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression


@dataclass(frozen=True)
class Estimator:
    """One choosable estimator: its class, defaults and how its numeric inputs are prepared."""

    name: str
    cls: type[ClassifierMixin]
    defaults: dict[str, Any] = field(default_factory=dict)
    numeric_inputs: str = "impute"  # "passthrough" (handles NaN) | "impute" | "impute_scale"


CATALOGUE: dict[str, Estimator] = {
    entry.name: entry
    for entry in (
        Estimator("hist_gradient_boosting", HistGradientBoostingClassifier, {}, "passthrough"),
        Estimator(
            "random_forest",
            RandomForestClassifier,
            {"n_estimators": 200, "min_samples_leaf": 5, "n_jobs": 1},
        ),
        Estimator("logistic_regression", LogisticRegression, {"max_iter": 2000}, "impute_scale"),
    )
}
NAMES = tuple(CATALOGUE)
