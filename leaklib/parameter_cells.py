"""Keep each notebook's ``parameters`` cell equal to the embedded default and its descriptions."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import nbformat

from leaklib.errors import LeakError
from leaklib.params import Params, defaults, field_names
from leaklib.paths import project_root

# papermill reads annotations by regex (no "|"); quoted, they are never evaluated
_TYPES = {
    "run_id": '"Optional[str]"',
    "test_size": "float",
    "cv_folds": "int",
    "seed": "int",
    "threshold": '"Optional[float]"',
    "permutation_repeats": "int",
}


def _literal(value: Any, indent: str = "") -> str:
    if isinstance(value, dict) and value:
        inner = indent + "    "
        body = "".join(f"{inner}{json.dumps(k)}: {_literal(v, inner)},\n" for k, v in value.items())
        return "{\n" + body + indent + "}"
    if isinstance(value, dict):
        return "{}"
    if isinstance(value, date):  # YAML reads 2019-01-01 as a date; a cell holds its ISO text
        value = value.isoformat()
    return json.dumps(value) if isinstance(value, str) else repr(value)


def parameter_cell(names: list[str]) -> str:
    """Return the source of a ``parameters`` cell declaring ``names`` with default values."""
    values = defaults()
    lines = []
    for name in names:
        info = Params.model_fields[name]
        hint = _TYPES.get(name, "dict" if isinstance(values.get(name), dict) else "str")
        description = (info.description or "").split(". ")[0].rstrip(".")
        lines.append(f"{name}: {hint} = {_literal(values.get(name))}  # {description}")
    return "\n".join(lines)


class ParameterCellError(LeakError, ValueError):
    """A notebook has no ``parameters`` cell to sync."""


def parameters_cell_of(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Return the cell tagged ``parameters``."""
    for cell in nb.cells:
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            return cell
    raise ParameterCellError("notebook has no cell tagged 'parameters'")


def declared_names(nb: nbformat.NotebookNode) -> list[str]:
    """Return the parameter names a notebook's ``parameters`` cell assigns, in order."""
    names = []
    for line in parameters_cell_of(nb).source.splitlines():
        head = line.split(":", 1)[0].split("=", 1)[0].strip()
        if head in field_names() and not line.startswith((" ", "}")):
            names.append(head)
    return names


def notebook_paths() -> list[Path]:
    """Return the pipeline notebooks in run order."""
    return sorted((project_root() / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def sync_parameter_cells() -> list[Path]:
    """Rewrite each notebook's ``parameters`` cell from the defaults; return the changed files."""
    changed = []
    for path in notebook_paths():
        nb = nbformat.read(path, as_version=4)
        cell = parameters_cell_of(nb)
        source = parameter_cell(declared_names(nb))
        if cell.source != source:
            cell.source = source
            nbformat.write(nb, path)
            changed.append(path)
    return changed
