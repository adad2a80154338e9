"""The parameter contract: one typed model, named YAML sets, and command-line overrides.

Defaults live in ``parameters/default.yaml`` (the embedded default); types, bounds and
descriptions live in :class:`Params`. Every notebook's ``parameters`` cell holds the same
defaults for the keys that step uses (checked by the tests, rewritten by
``leak params --sync-notebooks``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from leaklib import estimators
from leaklib.params.contract import AUTO_STREAM_METRIC, AUTO_TABLE_METRIC, Params, field_names
from leaklib.params.dataset import (
    FIRST_NEEDS_A_GROUP,
    DatasetSpec,
    Derivation,
    DeriveSpec,
    Diff,
    FeatureSpec,
    PeriodSpec,
    Rolling,
    SampleSpec,
    SeasonalDeviation,
    Selector,
    default_model_name,
)
from leaklib.params.fields import ID_PATTERN, ParameterError
from leaklib.params.groups import (
    AlarmSpec,
    BigQuerySpec,
    EventsSpec,
    LocalisationSpec,
    ModelSpec,
    PromotionSpec,
    SearchSpec,
    SensorChecks,
    SplitSpec,
)
from leaklib.paths import project_root

# the groups and the dataset's parts live in their modules; callers import them from here
__all__ = [
    "DATASET_KEYS",
    "FIRST_NEEDS_A_GROUP",
    "ID_PATTERN",
    "AlarmSpec",
    "BigQuerySpec",
    "Check",
    "DatasetSpec",
    "Derivation",
    "DeriveSpec",
    "Diff",
    "EventsSpec",
    "FeatureSpec",
    "LocalisationSpec",
    "ModelSpec",
    "ParameterError",
    "AUTO_STREAM_METRIC",
    "AUTO_TABLE_METRIC",
    "Params",
    "PeriodSpec",
    "PromotionSpec",
    "Rolling",
    "SampleSpec",
    "SearchSpec",
    "SeasonalDeviation",
    "Selector",
    "SensorChecks",
    "SplitSpec",
    "default_file",
    "default_model_name",
    "defaults",
    "estimator_problems",
    "field_names",
    "flatten",
    "load",
    "merge",
    "parse_override",
    "read_yaml",
    "validate",
]


def default_file() -> Path:
    """Return the path of the embedded default parameter set."""
    return project_root() / "parameters" / "default.yaml"


DATASET_KEYS = tuple(DatasetSpec.model_fields)


def _check_key(key: str, where: str) -> None:
    """Refuse a key the contract does not know, saying where a moved dataset key went."""
    top = key.split(".", 1)[0]
    if top in field_names():
        return
    if top in DATASET_KEYS:
        moved = (
            f"parameter {top!r}{where} has moved: it is now dataset.{top} (a dataset is one "
            f"mapping of {', '.join(DATASET_KEYS)}; see parameters/default.yaml)"
        )
        raise ParameterError(moved, by_key=[(key, moved)])
    unknown = f"unknown parameter {key!r}{where}; known: {', '.join(field_names())}"
    raise ParameterError(unknown, by_key=[(key, unknown)])


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read one parameter file and refuse keys the contract does not know.

    A key may be dotted (``dataset.max_groups: 24``) to set one nested value instead of
    replacing the whole mapping.
    """
    path = Path(path)
    if not path.is_file():
        raise ParameterError(f"parameter file {str(path)!r} does not exist")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ParameterError(f"parameter file {str(path)!r} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ParameterError(f"parameter file {str(path)!r} must hold a mapping of keys")
    for key in data:
        _check_key(str(key), f" in {str(path)!r}")
    return data


def parse_override(key: str, text: str) -> tuple[str, Any]:
    """Turn one ``-p KEY VALUE`` pair into a key and a typed value.

    ``KEY`` may be dotted (``model.name``, ``dataset.source``) to set a nested value;
    ``VALUE`` is read as YAML, so ``null``, numbers, booleans and mappings work.
    """
    _check_key(key, "")
    try:
        value = yaml.safe_load(text) if text != "" else ""
    except yaml.YAMLError as exc:
        raise ParameterError(f"value for {key!r} is not valid YAML: {exc}") from exc
    return key, value


def merge(layers: list[dict[str, Any]], overrides: list[tuple[str, Any]]) -> dict[str, Any]:
    """Merge parameter layers: later keys replace earlier ones whole; dotted keys nest.

    Dotted keys, in a file or an override, set one nested value. Overriding ``model.name``
    with another estimator clears ``model.params`` (they belong to the previous estimator);
    give ``-p model.params.X`` after it to tune the new one.
    """
    merged: dict[str, Any] = {}
    pairs = [(str(k), v) for layer in layers for k, v in layer.items()] + list(overrides)
    for key, value in pairs:
        _set(merged, key, value)
    return merged


def _set(merged: dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    current_model = merged.get("model") if isinstance(merged.get("model"), dict) else {}
    if key == "model.name" and value != current_model.get("name"):
        # hyper-parameters belong to one estimator: a new estimator starts from its own defaults
        merged["model"] = {"name": value, "params": {}}
        return
    node = merged
    for part in parts[:-1]:
        child = node.get(part)
        child = dict(child) if isinstance(child, dict) else {}
        node[part] = child
        node = child
    node[parts[-1]] = value


Check = Callable[[dict[str, Any]], list[str]]
"""A further check of a merged parameter mapping: its problems, each ``key: what is wrong``."""


def estimator_problems(values: dict[str, Any]) -> list[str]:
    """Return what the chosen estimator refuses in ``model.params`` and ``model.search.space``.

    Parameter names and values are checked by scikit-learn's own declared constraints
    (:func:`leaklib.estimators.check_params`); a model mapping that is itself malformed is
    left to the contract, which names it.
    """
    model = values.get("model")
    name = model.get("name") if isinstance(model, dict) else None
    if not isinstance(name, str) or name not in estimators.CATALOGUE:
        return []
    problems = []
    given = model.get("params")
    if isinstance(given, dict):
        for param, problem in estimators.check_params(name, given):
            problems.append(f"model.params.{param}: {problem}")
    search = model.get("search")
    space = search.get("space") if isinstance(search, dict) else None
    if isinstance(space, dict):
        for param, tried in space.items():
            for value in tried if isinstance(tried, list) else []:
                found = estimators.check_params(name, {param: value})
                if found:
                    problems.append(f"model.search.space.{param}: {found[0][1]}")
                    break
    return problems


def flatten(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Flatten nested parameters to dotted keys (``dataset.sample.groups``), values kept."""
    flat: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict) and value:
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def validate(values: dict[str, Any], *, checks: Sequence[Check] = ()) -> Params:
    """Validate a merged parameter mapping, raising one error that names every bad key.

    The contract (:class:`Params`), the estimator's own parameter constraints and each of
    ``checks`` (such as whether the source exists) all run, so every problem is listed at once.
    """
    problems = []
    params = None
    try:
        params = Params.model_validate(values)
    except ValidationError as exc:
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"]) or "parameters"
            got = err.get("input")
            shown = "" if isinstance(got, dict | list) else f" (got {got!r})"
            problems.append((where, f"{where}: {err['msg']}{shown}"))
    problems += [(line.split(":", 1)[0], line) for line in estimator_problems(values)]
    for check in checks:
        problems += [(line.split(":", 1)[0], line) for line in check(values)]
    if problems or params is None:
        message = "invalid parameters:\n  " + "\n  ".join(line for _, line in problems)
        raise ParameterError(message, by_key=problems) from None
    return params


def load(
    files: list[str | Path] | None = None,
    overrides: list[tuple[str, str]] | None = None,
    *,
    base: str | Path | None = None,
    checks: Sequence[Check] = (),
) -> Params:
    """Load the embedded default, then each file, then each ``-p`` override, and validate.

    Args:
        files: Parameter files applied in order after the default.
        overrides: ``(key, yaml_text)`` pairs from the command line, applied last.
        base: The base set (``parameters/default.yaml`` when omitted).
        checks: Further checks of the merged mapping (see :func:`validate`).
    """
    layers = [read_yaml(base or default_file())]
    layers += [read_yaml(f) for f in files or []]
    parsed = [parse_override(k, v) for k, v in overrides or []]
    return validate(merge(layers, parsed), checks=checks)


def defaults() -> dict[str, Any]:
    """Return the embedded default parameters as plain values (short feature form)."""
    return read_yaml(default_file())
