"""Every parameter's wrong type and out-of-range value, generated from the pydantic model.

The cases come from walking ``Params.model_fields`` (nested models, the feature mapping, and
the ``Annotated`` bounds of each field) starting from the embedded default, so a new key or a
new bound is tried without editing this file. Each must be a ParameterError naming the key;
``leak run`` turns it into exit 2 before any run is recorded (tests/test_pipeline.py::
test_bad_parameter_stops_before_any_run). Injection-shaped identifiers for BigQuery and
Firestore, and paths, follow.
"""

from __future__ import annotations

import types
import typing
from typing import Annotated, Any, Literal, get_args, get_origin

import annotated_types as at
import pytest
from pydantic import BaseModel, RootModel
from sklearn.utils._param_validation import InvalidParameterError, validate_parameter_constraints

from leaklib import estimators
from leaklib import params as P
from leaklib.metadata import MetadataError, check_doc_id
from leaklib.metadata.firestore import parse_firestore_uri
from leaklib.paths import resolve
from leaklib.snapshots import LocalSnapshotStore, SnapshotError
from leaklib.snapshots.base import check_subfolder
from leaklib.sources import SourceError
from leaklib.sources import bigquery as bq

pytestmark = pytest.mark.faults

# a value of a type nothing in the contract accepts where a scalar or a mapping is expected
_NOT_A_SCALAR = ["a", "list"]


def _options(annotation: Any) -> tuple[list[Any], list[Any]]:
    """Split an annotation into (the types of a union, the bounds) with None taken out."""
    if get_origin(annotation) in (typing.Union, types.UnionType):
        parts = [a for a in get_args(annotation) if a is not type(None)]
    else:
        parts = [annotation]
    bounds: list[Any] = []
    plain = []
    for part in parts:
        if get_origin(part) is Annotated:
            base, *meta = get_args(part)
            plain.append(base)
            for item in meta:
                bounds.extend(getattr(item, "metadata", [item]))
        else:
            plain.append(part)
    return plain, bounds


def _wrong_type(kind: Any) -> Any:
    """A value of the wrong type for ``kind`` that lax validation cannot coerce."""
    if kind is bool:
        return "perhaps"
    if kind in (int, float):
        return "many"
    if kind is str:
        return 3.5
    if get_origin(kind) is list:
        return 3.5  # a number is not a list of anything
    return _NOT_A_SCALAR  # mappings, nested models, Literal choices


def _out_of_range(kind: Any, bounds: list[Any]) -> list[Any]:
    values = []
    step = 1 if kind is int else 0.001
    for bound in bounds:
        if isinstance(bound, at.Gt):
            values.append(bound.gt)
        elif isinstance(bound, at.Ge):
            values.append(bound.ge - step)
        elif isinstance(bound, at.Lt):
            values.append(bound.lt)
        elif isinstance(bound, at.Le):
            values.append(bound.le + step)
    if get_origin(kind) is Literal:
        values.append("no-such-" + "-".join(str(a) for a in get_args(kind))[:20])
    return values


def _walk(model: type[BaseModel], prefix: str, defaults: dict[str, Any]):
    """Yield (dotted key, case, value) for every field of ``model`` and those nested in it."""
    for name, info in model.model_fields.items():
        key = f"{prefix}{name}"
        plain, bounds = _options(info.annotation)
        bounds += info.metadata  # pydantic moves a top-level Annotated's bounds here
        kind = plain[0]
        if isinstance(kind, type) and issubclass(kind, RootModel):  # a list (the derive block)
            yield key, "wrong-type", "not a list"
            yield key, "wrong-type", [{"kind": "no-such-derivation", "columns": "*"}]
            continue
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            yield key, "wrong-type", "not a mapping"
            yield from _walk(kind, f"{key}.", defaults.get(name) or {})
            continue
        if get_origin(kind) is dict:
            key_type, value_type = get_args(kind)
            yield key, "wrong-type", "not a mapping"
            if isinstance(value_type, type) and issubclass(value_type, BaseModel):
                first = next(iter(defaults.get(name) or {}), "any_column")
                yield from _walk(value_type, f"{key}.{first}.", {})
            if get_origin(key_type) is Literal:
                yield key, "out-of-range", {"no_such_metric": 0.5}
            if value_type in (int, float):
                first = get_args(key_type)[0] if get_origin(key_type) is Literal else "k"
                yield key, "wrong-type", {first: "high"}
            continue
        if kind is Any:
            continue
        yield key, "wrong-type", _wrong_type(kind)
        for value in _out_of_range(kind, bounds):
            yield key, "out-of-range", value


CASES = list(_walk(P.Params, "", P.defaults()))

# --- the estimator's own parameters, generated from what scikit-learn declares -----------------

# values tried in turn until one breaks a parameter's declared constraints: a word no option
# is spelled as, numbers below any lower bound and above any upper bound, the wrong kinds
_BAD_VALUES = ["no-such-option", -1, -0.5, 1e12, 2.5, True, [1, 2], {"a": 1}]


def _refused(estimator: Any, param: str, value: Any) -> bool:
    """Whether scikit-learn itself refuses ``value`` for ``param`` (the oracle of the cases)."""
    try:
        validate_parameter_constraints(
            {param: estimator._parameter_constraints[param]}, {param: value}, caller_name="x"
        )
    except InvalidParameterError:
        return True
    return False


def _estimator_cases():
    """Yield (estimator, dotted key, value) for an unknown name and each declared parameter."""
    for name, entry in estimators.CATALOGUE.items():
        yield name, "model.params.no_such_parameter", 1
        for param in sorted(entry.cls._parameter_constraints):
            value = next((v for v in _BAD_VALUES if _refused(entry.cls, param, v)), None)
            if value is not None:  # e.g. random_state or verbose take almost anything
                yield name, f"model.params.{param}", value


ESTIMATOR_CASES = list(_estimator_cases())


def test_every_key_of_the_contract_is_tried():
    tried = {key for key, _, _ in CASES}
    assert set(P.Params.model_fields) <= {k.split(".")[0] for k in tried}
    assert {f"dataset.{k}" for k in P.DatasetSpec.model_fields} <= tried
    bounded = {key for key, case, _ in CASES if case == "out-of-range"}
    assert {"test_size", "cv_folds", "threshold", "promotion.confidence", "model.name"} <= bounded
    assert len(CASES) >= 55
    assert ("seed", "out-of-range", -1) in CASES and ("seed", "out-of-range", 2**32) in CASES


@pytest.mark.parametrize(("key", "case", "value"), CASES, ids=[f"{k}-{c}" for k, c, _ in CASES])
def test_a_bad_value_is_refused_naming_its_key(key, case, value):
    with pytest.raises(P.ParameterError) as caught:
        P.validate(P.merge([P.defaults()], [(key, value)]))
    lines = str(caught.value).splitlines()[1:]
    assert any(line.strip().startswith(key) for line in lines), (key, value, str(caught.value))


def test_every_declared_estimator_parameter_is_tried():
    tried = {(name, key) for name, key, _ in ESTIMATOR_CASES}
    for name in estimators.NAMES:
        assert (name, "model.params.no_such_parameter") in tried
        assert sum(1 for n, _ in tried if n == name) >= 8, name
    assert ("hist_gradient_boosting", "model.params.max_iter") in tried


@pytest.mark.parametrize(
    ("name", "key", "value"),
    ESTIMATOR_CASES,
    ids=[f"{name}-{key.removeprefix('model.params.')}" for name, key, _ in ESTIMATOR_CASES],
)
def test_a_bad_estimator_parameter_is_refused_naming_its_key(name, key, value):
    # model.name first: a new estimator starts from its own defaults (params.merge)
    values = P.merge([P.defaults()], [("model.name", name), (key, value)])
    with pytest.raises(P.ParameterError) as caught:
        P.validate(values)
    lines = [line.strip() for line in str(caught.value).splitlines()[1:]]
    assert any(line.startswith(f"{key}: ") for line in lines), (name, key, value, lines)


def test_every_estimator_problem_is_listed_at_once():
    values = P.merge(
        [P.defaults()],
        [("seed", -1), ("model.params.max_iter", 0), ("model.params.loss", "nope")],
    )
    with pytest.raises(P.ParameterError) as caught:
        P.validate(values)
    keys = [line.strip().split(":")[0] for line in str(caught.value).splitlines()[1:]]
    assert keys == ["seed", "model.params.max_iter", "model.params.loss"]


def test_a_search_space_value_the_estimator_refuses_is_named():
    values = P.merge([P.defaults()], [("model.search", {"space": {"learning_rate": [0.1, -2.0]}})])
    with pytest.raises(P.ParameterError, match=r"model\.search\.space\.learning_rate: The"):
        P.validate(values)


# --- identifiers that would reach a query or a path ------------------------------------------


@pytest.mark.parametrize(
    "uri",
    [
        "bigquery://leak-test.readings.pressure`; DROP TABLE x; --",
        "bigquery://leak-test.readings.pressure; DELETE FROM t",
        "bigquery://leak-test.read`ings.pressure",
        "bigquery://leak-test.readings.press\nure",
        "bigquery://leak-test.readings.pre ssure",
        "bigquery://leak-test.readings.ｐressure",  # full-width letter
        "bigquery://leak-test.readings.pressure/*x*/",
        "bigquery://leak-test' OR '1'='1.readings.pressure",
        "bigquery://leak-test.readings.pressure\\",
    ],
)
def test_injection_shaped_bigquery_tables_are_refused_before_any_request(uri):
    with pytest.raises(SourceError, match="is not valid"):
        bq.parse_table(uri)


@pytest.mark.parametrize(
    "column",
    ["a` FROM t; DROP TABLE t; --", "a b", "a\nb", "a)", "zoné", "1a", "a--", "", "a'b"],
)
def test_injection_shaped_bigquery_columns_are_refused(column):
    with pytest.raises(SourceError, match="name .* is not valid"):
        bq.check_column(column)


@pytest.mark.parametrize(
    "where",
    ["zone = 'a'; DROP TABLE t", "zone = 'a' -- and the rest", "zone = 'a' /* x */", "1=1 # x"],
)
def test_injection_shaped_bigquery_filters_are_refused(where):
    with pytest.raises(SourceError, match="bigquery.where may not contain"):
        bq.check_where(where, set())


@pytest.mark.parametrize(
    ("uri", "part"),
    [
        ("firestore://leak-test/../etc", "database id '..'"),
        ("firestore://leak-test/leak-db/../x", "must be firestore://"),
        ("firestore://leak-test/leak-db/runs;drop", "collection prefix 'runs;drop'"),
        ("firestore://leak-test/leak-db/a b", "collection prefix 'a b'"),
        ("firestore://leak-test/Leak_DB", "database id 'Leak_DB'"),
        ("firestore://leak-test/leak-db/ünïcode", "collection prefix"),
        ("firestore://leak-test/leak-db/__reserved__", "collection prefix '__reserved__'"),
        ("firestore://Leak Test/leak-db", "project id 'Leak Test'"),
    ],
)
def test_injection_shaped_firestore_names_are_refused_naming_the_part(uri, part):
    with pytest.raises(MetadataError, match="metadata_store") as caught:
        parse_firestore_uri(uri)
    assert part in str(caught.value)


@pytest.mark.parametrize("doc_id", ["../x", "a/b", "__name__", ".hidden", "a b", "x" * 200, ""])
def test_document_ids_that_could_escape_a_collection_are_refused(doc_id):
    with pytest.raises(MetadataError, match="is not allowed"):
        check_doc_id(doc_id)


@pytest.mark.parametrize("run_id", ["../../etc", "a/b", ".x", "run id", "x" * 65])
def test_run_ids_that_could_escape_a_store_folder_are_refused(run_id):
    with pytest.raises(P.ParameterError, match="run_id"):
        P.validate(P.merge([P.defaults()], [("run_id", run_id)]))


@pytest.mark.parametrize("name", ["../x", "a/b", "x" * 65])
def test_model_names_that_could_escape_a_store_folder_are_refused(name):
    with pytest.raises(P.ParameterError, match="dataset.model_name"):
        P.validate(P.merge([P.defaults()], [("dataset.model_name", name)]))


@pytest.mark.parametrize("folder", ["../x", "reports/../../x", "/etc", "a//b"])
def test_folders_inside_a_store_cannot_climb_out(folder):
    with pytest.raises(SnapshotError, match="is not a safe folder name"):
        check_subfolder(folder)


def test_a_local_store_outside_the_project_is_the_users_choice(tmp_path, monkeypatch):
    """Policy (docs/reliability.md): a local store path may point anywhere the user can write.

    It is their machine and their account; refusing ``../shared/snapshots`` or ``/mnt/data``
    would stop legitimate set-ups and protect nothing. What a run names inside a store (hashes,
    run ids, model names, ``models/``, ``reports/<run_id>``) cannot climb out of it.
    """
    project = tmp_path / "project"
    (project / "parameters").mkdir(parents=True)
    monkeypatch.setenv("LEAK_PROJECT_DIR", str(project))
    store = LocalSnapshotStore("../outside/snapshots")
    assert resolve("../outside/snapshots") == project / "../outside/snapshots"
    uri, created = store.put(
        b"x", sha256="2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881"
    )
    assert created and (tmp_path / "outside/snapshots").is_dir()
    with pytest.raises(SnapshotError):
        store.get("../../etc/passwd")
