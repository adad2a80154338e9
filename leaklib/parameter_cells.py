"""Write each notebook's ``parameters`` cell from the step table and the parameter descriptions.

A cell declares the parameters its step reads (``leaklib.steps``), one line each, as papermill
reads them: ``name: type = default  # the first sentence of its description``. A value
(``cv_folds: int = 5``) is the embedded default; a mapping (``model: dict = {}``) is written
empty, meaning "the run's": by hand it sets only the keys it is given
(``model = {"name": "random_forest"}``), and under ``leak run`` papermill injects every
parameter's value in a cell after it. ``leak params --sync-notebooks`` rewrites the cells.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Union, get_args, get_origin

import nbformat

from leaklib.errors import LeakError
from leaklib.params import Params, defaults
from leaklib.params.listing import nested_model
from leaklib.steps import PARAMS, STEPS, notebook_path

HEADER = (
    "# What this step reads (`leak params` explains each); `leak run` injects the run's values.\n"
    "# By hand, a value here replaces the run's and a mapping sets only the keys it gives\n"
    '# (model = {"name": "random_forest"}); {} keeps the run\'s, or parameters/default.yaml.'
)
# a sentence ends at a full stop and a space, except in an abbreviation
_SENTENCE_END = re.compile(r"(?<!e\.g)(?<!i\.e)\.(?=\s)")
MAX_COMMENT = 100  # characters of a cell's comment: the lead sentence of a description


class ParameterCellError(LeakError, ValueError):
    """A notebook has no ``parameters`` cell, or a parameter no lead sentence to show."""


def comment(name: str) -> str:
    """Return the lead sentence of a parameter's description, whole, for its cell comment."""
    description = Params.model_fields[name].description or ""
    lead = _SENTENCE_END.split(description, maxsplit=1)[0].strip().removesuffix(".") + "."
    if len(lead) < 2 or len(lead) > MAX_COMMENT:
        raise ParameterCellError(
            f"parameter {name!r}: its description must open with a sentence of at most "
            f"{MAX_COMMENT} characters (it is the notebook cell's comment)"
        )
    return lead


def is_mapping(name: str) -> bool:
    """True when a parameter is a mapping of keys (``dataset``, ``model``, ...)."""
    return nested_model(Params.model_fields[name].annotation) is not None


def _bare(annotation: Any) -> Any:
    """Return an annotation without its constraints (``Annotated[int, ...]`` is ``int``)."""
    return get_args(annotation)[0] if get_origin(annotation) is Annotated else annotation


def _hint(annotation: Any) -> str:
    """Return the annotation papermill shows: ``int``, or ``"Optional[float]"`` (quoted, so
    the kernel never evaluates it; papermill's reader takes no ``|``)."""
    annotation = _bare(annotation)
    if get_origin(annotation) in (Union, UnionType):
        inner = [_bare(arg) for arg in get_args(annotation) if arg is not type(None)]
        return f'"Optional[{inner[0].__name__}]"' if len(inner) == 1 else "object"
    return getattr(annotation, "__name__", "object")


def _literal(value: Any) -> str:
    return json.dumps(value) if isinstance(value, str) else repr(value)


def declaration(name: str) -> str:
    """Return one line of a ``parameters`` cell: ``name: type = default  # description``."""
    if is_mapping(name):
        return f"{name}: dict = {{}}  # {comment(name)}"
    hint = _hint(Params.model_fields[name].annotation)
    return f"{name}: {hint} = {_literal(defaults().get(name))}  # {comment(name)}"


def parameter_cell(step: str) -> str:
    """Return the source of ``step``'s ``parameters`` cell."""
    return "\n".join([HEADER, *(declaration(name) for name in PARAMS[step])])


def parameters_cell_of(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Return the cell tagged ``parameters``."""
    for cell in nb.cells:
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            return cell
    raise ParameterCellError("notebook has no cell tagged 'parameters'")


def declared_names(nb: nbformat.NotebookNode) -> list[str]:
    """Return the names a notebook's ``parameters`` cell assigns, in order."""
    names = []
    for node in ast.parse(parameters_cell_of(nb).source).body:
        targets = [node.target] if isinstance(node, ast.AnnAssign) else []
        targets += node.targets if isinstance(node, ast.Assign) else []
        names += [t.id for t in targets if isinstance(t, ast.Name)]
    return names


def notebook_paths() -> list[Path]:
    """Return the steps' notebooks, in run order."""
    return [notebook_path(step) for step in STEPS]


def sync_parameter_cells(*, check: bool = False) -> list[Path]:
    """Rewrite each notebook's ``parameters`` cell; return the notebooks whose cell differed.

    Args:
        check: Only report the cells that differ; write nothing.
    """
    changed = []
    for step, path in zip(STEPS, notebook_paths(), strict=True):
        nb = nbformat.read(path, as_version=4)
        cell = parameters_cell_of(nb)
        source = parameter_cell(step)
        if cell.source != source:
            changed.append(path)
            if not check:
                cell.source = source
                nbformat.write(nb, path)
    return changed
