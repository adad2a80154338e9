"""README.md against the code: every parameter it names is one `leak params` lists.

The names are read the way a user reads them: dotted keys in inline code (`dataset.source`),
the first column of a table headed "parameter", `-p KEY` anywhere, the keys of JSON override
bodies and of YAML code blocks, and `KEY: value` fragments in inline code. A key inside a
free mapping (a feature column, a filter's parameter, a search space) is the user's own; a key
under `model.params` must be a parameter of one of the estimators.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from leaklib import cli, estimators
from leaklib import params as P
from tests.conftest import REPO

README = REPO / "README.md"
# mappings whose keys the user chooses: a column, a query parameter, an estimator's parameter
FREE = ("dataset.features", "bigquery.where_params", "model.search.space", "promotion.floors")
ESTIMATOR_PARAMS = "model.params"
# the first word of anything that names a parameter: a top-level key, or a dataset key
# written without its `dataset.` (the stale form this test exists to catch)
FIRST_WORDS = {*P.field_names(), *P.DATASET_KEYS}
_DOTTED = re.compile(r"[a-z_][a-z0-9_]*(?:\.[a-z_][a-z0-9_]*)+")
_OVERRIDE = re.compile(r"(?:^|(?<=\s))-p\s+([a-z_][\w.]*)")  # not `-p KEY` (a placeholder)
_JSON_KEY = re.compile(r'"([a-z_][a-z0-9_]*(?:\.[a-z_][a-z0-9_]*)+)"\s*:')
_KEY_VALUE = re.compile(r"([a-z_][a-z0-9_.]*): \S.*")
_CODE_BLOCK = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)


def _yaml_keys(value: Any, prefix: str = "") -> set[str]:
    """Return the dotted keys of a YAML mapping, not descending into free mappings."""
    if not isinstance(value, dict):
        return set()
    keys = set()
    for key, inner in value.items():
        dotted = f"{prefix}{key}"
        keys.add(dotted)
        if not dotted.startswith(FREE):
            keys |= _yaml_keys(inner, f"{dotted}.")
    return keys


def _table_parameters(text: str) -> set[str]:
    """Return the first-column names of every table whose header starts with "parameter"."""
    names = set()
    for table in re.findall(r"(?:^\|.*\|\n)+", text, re.M):
        header, *rows = table.splitlines()
        if header.strip("| ").split("|")[0].strip().lower() != "parameter":
            continue
        for row in rows:
            first = row.strip("|").split("|")[0]
            names |= set(re.findall(r"`([^`]+)`", first))
    return names


def named_parameters(text: str) -> set[str]:
    """Return every parameter name a Markdown text gives, as a user would type it."""
    names = set()
    for language, body in _CODE_BLOCK.findall(text):
        names |= set(_OVERRIDE.findall(body)) | set(_JSON_KEY.findall(body))
        if language == "yaml":
            names |= _yaml_keys(yaml.safe_load(body))
    prose = _CODE_BLOCK.sub("", text)
    names |= _table_parameters(prose)
    for span in re.findall(r"`([^`\n]+)`", prose):
        names |= set(_OVERRIDE.findall(span))
        key_value = _KEY_VALUE.fullmatch(span)
        candidate = span if _DOTTED.fullmatch(span) else key_value.group(1) if key_value else None
        if candidate and candidate.split(".")[0] in FIRST_WORDS:
            names.add(candidate)
    return names


def listed_by_leak_params(capsys: pytest.CaptureFixture[str]) -> set[str]:
    """Return the names `leak params` prints (``name  (type)`` lines)."""
    assert cli.main(["params"]) == 0
    return set(re.findall(r"^(\S+)  \(", capsys.readouterr().out, re.M))


def unknown(names: set[str], listed: set[str]) -> list[str]:
    """Return the names `leak params` does not know, sorted."""
    estimator_params = {
        name for entry in estimators.CATALOGUE.values() for name in entry.cls().get_params()
    }
    missing = []
    for name in sorted(names):
        if name in listed or name.startswith(tuple(f"{free}." for free in FREE)):
            continue
        if name.startswith(f"{ESTIMATOR_PARAMS}.") and name.split(".")[2] in estimator_params:
            continue
        missing.append(name)
    return missing


def test_every_parameter_the_readme_names_is_one_leak_params_lists(capsys):
    names = named_parameters(README.read_text(encoding="utf-8"))
    assert {"dataset.source", "dataset.max_groups", "model.params.max_iter", "model.name"} <= names
    assert {"bigquery.where_params", "snapshot_store", "metadata_store"} <= names
    assert unknown(names, listed_by_leak_params(capsys)) == []


@pytest.mark.parametrize(
    ("stale", "name"),
    [
        ("| parameter | default |\n| --- | --- |\n| `source` | data/x.parquet |\n", "source"),
        ("use `source: snapshot:<sha256>`", "source"),
        ("```bash\nleak run -p dataset.max_group 24\n```\n", "dataset.max_group"),
        ("set `alarm.max_false_rate`", "alarm.max_false_rate"),
        ("```yaml\nbigquery:\n  billing: p\n```\n", "bigquery.billing"),
        (
            '```bash\ncurl -d \'{"params": {"model.params.max_iterz": 4}}\'\n```\n',
            "model.params.max_iterz",
        ),
    ],
)
def test_a_stale_parameter_name_is_found(capsys, stale, name):
    assert unknown(named_parameters(stale), listed_by_leak_params(capsys)) == [name]
