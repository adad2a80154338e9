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

# scikit-learn's own check of a parameter against its declared constraints (what fit calls)
from sklearn.utils._param_validation import InvalidParameterError, validate_parameter_constraints


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


def check_params(name: str, params: dict[str, Any]) -> list[tuple[str, str]]:
    """Return (parameter, problem) for each of ``params`` that ``name``'s estimator refuses.

    Names are checked against the estimator's own parameters, and values against the
    constraints scikit-learn declares for it (``_parameter_constraints``), the same check
    ``fit`` would make, so a bad value is found before any data is read. Constraints between
    parameters that only ``fit`` checks are left to it.
    """
    entry = CATALOGUE[name]
    known = entry.cls(**entry.defaults).get_params()
    constraints = getattr(entry.cls, "_parameter_constraints", {})
    problems = []
    for param, value in params.items():
        if param not in known:
            problems.append(
                (
                    str(param),
                    f"{param!r} is not a parameter of {name} ({entry.cls.__name__}); "
                    f"valid: {', '.join(sorted(known))}",
                )
            )
        elif param in constraints:
            try:
                validate_parameter_constraints(
                    {param: constraints[param]}, {param: value}, caller_name=entry.cls.__name__
                )
            except InvalidParameterError as exc:
                problems.append((str(param), str(exc)))
    return problems
