"""The parameter contract: one typed model, named YAML sets, and command-line overrides.

Defaults live in ``parameters/default.yaml`` (the embedded default); types, bounds and
descriptions live in :class:`Params`. Every notebook's ``parameters`` cell holds the same
defaults for the keys that step uses (checked by the tests, rewritten by
``leak params --sync-notebooks``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from leaklib.paths import project_root

FeatureType = Literal["numeric", "categorical", "boolean"]
MODEL_NAMES = ("hist_gradient_boosting", "random_forest", "logistic_regression")
PRIMARY_METRICS = ("roc_auc", "pr_auc", "recall_at_1pct_fpr")


class ParameterError(ValueError):
    """A parameter set is invalid; the message names the key and what was expected."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FeatureSpec(_Strict):
    """How one declared column is typed and, for numbers, bounded."""

    type: FeatureType
    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _bounds(self) -> FeatureSpec:
        if (self.min is not None or self.max is not None) and self.type != "numeric":
            raise ValueError(f"min/max apply to numeric features only, not {self.type}")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) is greater than max ({self.max})")
        return self


class ModelSpec(_Strict):
    """Which scikit-learn estimator to fit and its hyper-parameters."""

    name: Literal["hist_gradient_boosting", "random_forest", "logistic_regression"]
    params: dict[str, Any] = Field(default_factory=dict)


class BigQuerySpec(_Strict):
    """Options for a ``bigquery://`` source."""

    billing_project: str | None = None
    where: str | None = None
    where_params: dict[str, Any] = Field(default_factory=dict)
    limit: Annotated[int, Field(gt=0)] | None = None
    use_storage_api: bool = True


class PromotionSpec(_Strict):
    """When a challenger replaces the champion."""

    primary_metric: Literal["roc_auc", "pr_auc", "recall_at_1pct_fpr"]
    min_improvement: float = 0.0
    confidence: Annotated[float, Field(gt=0.5, lt=1.0)] = 0.95
    n_bootstrap: Annotated[int, Field(ge=100)] = 1000
    floors: dict[Literal["roc_auc", "pr_auc", "recall_at_1pct_fpr"], float] = Field(
        default_factory=dict
    )


_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class Params(_Strict):
    """Every parameter of a run. Field descriptions are what ``leak params`` prints."""

    run_id: str | None = Field(
        description="Run id; a new one is made when empty (set by `leak run`)."
    )
    source: str = Field(
        description="Input table: a .parquet/.csv path, file:// URI or bigquery://PROJECT.DATASET.TABLE."
    )
    target: str = Field(description="Binary label column (0/1 or bool).")
    features: dict[str, FeatureSpec] = Field(
        description="Declared feature columns: name -> numeric | categorical | boolean "
        "(or {type, min, max}). A later mapping replaces an earlier one whole."
    )
    group: str | None = Field(
        description="Column whose rows stay together in splits (null: no grouping)."
    )
    timestamp: str | None = Field(
        description="Time column used for alarms per day and detection delay (null: none)."
    )
    max_groups: Annotated[int, Field(gt=0)] | None = Field(
        description="Keep only the first N groups of the table (quick iterations; null: all)."
    )
    snapshot_store: str = Field(
        description="Where validated snapshots go: a local folder or gs://BUCKET/PREFIX."
    )
    metadata_store: str = Field(
        description="Where run records go: a local folder or firestore://PROJECT/DATABASE[/COLLECTION]."
    )
    bigquery: BigQuerySpec = Field(description="Options for a bigquery:// source.")
    model: ModelSpec = Field(
        description="Estimator: name (hist_gradient_boosting | random_forest | "
        "logistic_regression) and params."
    )
    test_size: Annotated[float, Field(gt=0.0, lt=0.9)] = Field(
        description="Share of groups (or rows) held out as the frozen holdout."
    )
    cv_folds: Annotated[int, Field(ge=2, le=20)] = Field(
        description="Folds of the grouped cross-validation on the training part."
    )
    seed: int = Field(description="Seed for the split, the estimator and the bootstrap.")
    threshold: Annotated[float, Field(gt=0.0, lt=1.0)] = Field(
        description="Alarm threshold on the predicted leak probability."
    )
    permutation_repeats: Annotated[int, Field(ge=1)] = Field(
        description="Repeats of the permutation importance on the holdout."
    )
    mlflow_experiment: str = Field(description="MLflow experiment name.")
    model_name: str = Field(description="Registered model name in the MLflow model registry.")
    promotion: PromotionSpec = Field(
        description="Promotion gate: primary_metric, min_improvement, confidence, "
        "n_bootstrap, floors."
    )

    @field_validator("run_id")
    @classmethod
    def _run_id(cls, value: str | None) -> str | None:
        if value is not None and not _RUN_ID.match(value):
            raise ValueError("must be letters, digits, '.', '_' or '-' (at most 64)")
        return value

    @field_validator("features", mode="before")
    @classmethod
    def _feature_shorthand(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: {"type": v} if isinstance(v, str) else v for k, v in value.items()}
        return value

    @field_validator("features")
    @classmethod
    def _features_not_empty(cls, value: dict[str, FeatureSpec]) -> dict[str, FeatureSpec]:
        if not value:
            raise ValueError("declare at least one feature column")
        return value

    @model_validator(mode="after")
    def _roles_do_not_overlap(self) -> Params:
        for role in ("target", "group", "timestamp"):
            column = getattr(self, role)
            if column is not None and column in self.features:
                raise ValueError(f"column {column!r} is the {role} and cannot also be a feature")
        if self.max_groups is not None and self.group is None:
            raise ValueError("max_groups needs a group column")
        return self

    def to_plain(self) -> dict[str, Any]:
        """Return the parameters as plain YAML/JSON values, features in long form."""
        return self.model_dump(mode="json")

    def columns(self) -> list[str]:
        """Return the columns a run reads: features, target, then group and timestamp if set."""
        columns = [*self.features, self.target]
        columns += [c for c in (self.group, self.timestamp) if c and c not in columns]
        return columns


def field_names() -> list[str]:
    """Return every parameter name, in the order ``leak params`` shows them."""
    return list(Params.model_fields)


def default_file() -> Path:
    """Return the path of the embedded default parameter set."""
    return project_root() / "parameters" / "default.yaml"


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read one parameter file and refuse keys the contract does not know."""
    path = Path(path)
    if not path.is_file():
        raise ParameterError(f"parameter file {str(path)!r} does not exist")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ParameterError(f"parameter file {str(path)!r} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ParameterError(f"parameter file {str(path)!r} must hold a mapping of keys")
    unknown = sorted(set(data) - set(field_names()))
    if unknown:
        raise ParameterError(
            f"unknown parameter {unknown[0]!r} in {str(path)!r}; known: {', '.join(field_names())}"
        )
    return data


def parse_override(key: str, text: str) -> tuple[str, Any]:
    """Turn one ``-p KEY VALUE`` pair into a top-level key and a typed value.

    ``KEY`` may be dotted (``model.name``, ``promotion.min_improvement``) to set a nested
    value; ``VALUE`` is read as YAML, so ``null``, numbers, booleans and mappings work.
    """
    top = key.split(".", 1)[0]
    if top not in field_names():
        raise ParameterError(f"unknown parameter {key!r}; known: {', '.join(field_names())}")
    try:
        value = yaml.safe_load(text) if text != "" else ""
    except yaml.YAMLError as exc:
        raise ParameterError(f"value for {key!r} is not valid YAML: {exc}") from exc
    return key, value


def merge(layers: list[dict[str, Any]], overrides: list[tuple[str, Any]]) -> dict[str, Any]:
    """Merge parameter layers: later keys replace earlier ones whole; dotted overrides nest.

    Overriding ``model.name`` with another estimator clears ``model.params`` (they belong to
    the previous estimator); give ``-p model.params.X`` after it to tune the new one.
    """
    merged: dict[str, Any] = {}
    for layer in layers:
        merged.update(layer)
    for key, value in overrides:
        parts = key.split(".")
        current_model = merged.get("model") if isinstance(merged.get("model"), dict) else {}
        if key == "model.name" and value != current_model.get("name"):
            # hyper-parameters belong to one estimator: a new estimator starts from its own defaults
            merged["model"] = {"name": value, "params": {}}
            continue
        if len(parts) == 1:
            merged[key] = value
            continue
        node = merged.get(parts[0])
        node = dict(node) if isinstance(node, dict) else {}
        merged[parts[0]] = node
        for part in parts[1:-1]:
            child = node.get(part)
            child = dict(child) if isinstance(child, dict) else {}
            node[part] = child
            node = child
        node[parts[-1]] = value
    return merged


def validate(values: dict[str, Any]) -> Params:
    """Validate a merged parameter mapping, raising one error that names every bad key."""
    try:
        return Params.model_validate(values)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"]) or "parameters"
            got = err.get("input")
            shown = "" if isinstance(got, dict | list) else f" (got {got!r})"
            problems.append(f"{where}: {err['msg']}{shown}")
        raise ParameterError("invalid parameters:\n  " + "\n  ".join(problems)) from None


def load(
    files: list[str | Path] | None = None,
    overrides: list[tuple[str, str]] | None = None,
    *,
    base: str | Path | None = None,
) -> Params:
    """Load the embedded default, then each file, then each ``-p`` override, and validate.

    Args:
        files: Parameter files applied in order after the default.
        overrides: ``(key, yaml_text)`` pairs from the command line, applied last.
        base: The base set (``parameters/default.yaml`` when omitted).
    """
    layers = [read_yaml(base or default_file())]
    layers += [read_yaml(f) for f in files or []]
    parsed = [parse_override(k, v) for k, v in overrides or []]
    return validate(merge(layers, parsed))


def defaults() -> dict[str, Any]:
    """Return the embedded default parameters as plain values (short feature form)."""
    return read_yaml(default_file())


def describe() -> list[dict[str, str]]:
    """Return name, type, default and description of every parameter, for ``leak params``."""
    values = defaults()
    rows = []
    for name, info in Params.model_fields.items():
        annotation = info.annotation
        type_name = getattr(annotation, "__name__", None) or str(annotation)
        type_name = type_name.replace("typing.", "").replace("leaklib.params.", "")
        type_name = re.sub(r"Annotated\[(\w+), [^\]]*\]", r"\1", type_name)
        rows.append(
            {
                "name": name,
                "type": type_name,
                "default": yaml.safe_dump(
                    values.get(name), default_flow_style=True, width=10_000, sort_keys=False
                )
                .strip()
                .removesuffix("\n..."),
                "description": info.description or "",
            }
        )
    return rows
