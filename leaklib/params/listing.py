"""Every parameter in words, for ``leak params`` and the notebooks' parameters cells."""

from __future__ import annotations

from collections.abc import Sequence
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, RootModel

from leaklib.params import Params, defaults

_BASIC_TYPES = {
    int: "integer",
    float: "number",
    str: "text",
    bool: "boolean",
    type(None): "null",
    Any: "any value",
}
_BOUNDS = (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<="))


def _bounds(metadata: Sequence[Any]) -> str:
    """Return ``>= 2, <= 20`` from a field's constraints (pydantic's or annotated-types')."""
    shown = []
    for item in metadata:
        for constraint in getattr(item, "metadata", None) or [item]:
            for attribute, sign in _BOUNDS:
                value = getattr(constraint, attribute, None)
                if value is not None and not callable(value):
                    shown.append(f"{sign} {value}")
    return ", ".join(shown)


def type_text(annotation: Any, metadata: Sequence[Any] = ()) -> str:
    """Return a parameter's whole type in words: ``integer > 0 or null``, ``list of text``.

    Args:
        annotation: The field's annotation.
        metadata: Constraints pydantic moved out of a top-level ``Annotated`` (``FieldInfo.metadata``).
    """
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Annotated:
        return type_text(args[0], [*args[1:], *metadata])
    if origin in (Union, UnionType):
        parts = [type_text(arg) for arg in args if arg is not type(None)]
        if type(None) in args:
            parts.append("null")
        text = " or ".join(parts)
    elif origin is Literal:
        text = "one of " + " | ".join(str(arg) for arg in args)
    elif origin is list:
        text = f"list of {type_text(args[0])}"
    elif origin is dict:
        text = f"mapping of {type_text(args[0])} to {type_text(args[1])}"
    elif isinstance(annotation, type) and issubclass(annotation, RootModel):
        text = "list of mappings"
    elif isinstance(annotation, type) and issubclass(annotation, BaseModel):
        text = "mapping"
    else:
        text = _BASIC_TYPES.get(annotation, getattr(annotation, "__name__", str(annotation)))
    bounds = _bounds(metadata)
    return f"{text} ({bounds})" if bounds else text


def nested_model(annotation: Any) -> type[BaseModel] | None:
    """Return the mapping model a field holds (also when it may be null), else None."""
    members = get_args(annotation) if get_origin(annotation) in (Union, UnionType) else ()
    for arg in (annotation, *members):
        if isinstance(arg, type) and issubclass(arg, BaseModel) and not issubclass(arg, RootModel):
            return arg
    return None


def _shown(value: Any) -> str:
    text = yaml.safe_dump(value, default_flow_style=True, width=10_000, sort_keys=False)
    return text.strip().removesuffix("\n...")


def _describe(model: type[BaseModel], prefix: str, values: Any) -> list[dict[str, str]]:
    values = values if isinstance(values, dict) else {}
    rows = []
    for name, info in model.model_fields.items():
        rows.append(
            {
                "name": f"{prefix}{name}",
                "type": type_text(info.annotation, info.metadata),
                "default": _shown(values.get(name)),
                "description": info.description or "",
            }
        )
        nested = nested_model(info.annotation)
        if nested is not None:
            rows += _describe(nested, f"{prefix}{name}.", values.get(name))
    return rows


def describe() -> list[dict[str, str]]:
    """Return name, type, default and description of every parameter, for ``leak params``.

    The keys of each mapping are listed one by one after it (``dataset.source``, ...,
    ``promotion.confidence``), with their whole types (``integer > 0 or null``).
    """
    return _describe(Params, "", defaults())
