"""leaklib.errors: one family for every error a user can cause; the CLI and the API catch it
only, so a bug shows its traceback."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from leaklib import cli
from leaklib import params as parameters
from leaklib.errors import LeakError, NotFoundError
from leaklib.params import ParameterError, listing
from leaklib.runs import RunNotFound
from leaklib.serve.errors import ANSWERS, LocationNotAllowed, answer_for

PACKAGE = Path(__file__).resolve().parents[1] / "leaklib"
BUILTIN = {"Exception", "ValueError", "RuntimeError", "FileNotFoundError", "KeyError", "TypeError"}


def error_classes_without_the_base() -> list[str]:
    """Classes of leaklib that subclass a built-in exception but not LeakError (by ``ast``)."""
    missing = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.ClassDef) or node.name == "LeakError":
                continue
            bases = {ast.unparse(b).rsplit(".", 1)[-1] for b in node.bases}
            if bases & BUILTIN and "LeakError" not in bases:
                missing.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno} {node.name}")
    return missing


def test_every_error_class_is_a_leak_error():
    assert error_classes_without_the_base() == []


def test_an_error_keeps_its_builtin_base_and_its_details():
    error = ParameterError("invalid", by_key=[("seed", "seed: must be >= 0")])
    assert isinstance(error, LeakError) and isinstance(error, ValueError)
    assert error.by_key == [("seed", "seed: must be >= 0")]
    assert error.problems == ["seed: must be >= 0"]
    assert LeakError("one thing").problems == ["one thing"]


def test_a_validation_error_lists_every_bad_key():
    with pytest.raises(ParameterError) as caught:
        parameters.load([], [("cv_folds", "1"), ("test_size", "2")])
    assert sorted(key for key, _ in caught.value.by_key) == ["cv_folds", "test_size"]


def test_a_missing_run_is_not_found_and_names_it():
    error = RunNotFound("20260101-000000-abcd", store_uri="stores/metadata")
    assert isinstance(error, NotFoundError) and error.run_id == "20260101-000000-abcd"
    assert str(error) == "run '20260101-000000-abcd' not found in stores/metadata"


def test_the_cli_prints_a_users_error_in_one_line(capsys):
    assert cli.main(["params", "-p", "no_such_key", "1"]) == 2
    assert capsys.readouterr().err.startswith("leak params: error: unknown parameter")


def test_the_cli_lets_a_bug_show_its_traceback(monkeypatch):
    def broken() -> list:
        raise RuntimeError("a bug, not the user's")

    monkeypatch.setattr(listing, "describe", broken)
    with pytest.raises(RuntimeError, match="a bug, not the user's"):
        cli.main(["params"])


def test_the_api_answers_each_kind_once_and_leaves_the_rest_to_a_500():
    assert answer_for(RunNotFound("x")).status == 404
    assert answer_for(ParameterError("x")).status == 422
    assert answer_for(LocationNotAllowed([("snapshot_store", "outside")])).kind == (
        "location_not_allowed"
    )
    assert answer_for(LeakError("a kind the API does not expect")) is None
    assert all(issubclass(kind, LeakError) for kind in ANSWERS)
