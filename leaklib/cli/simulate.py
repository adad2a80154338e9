"""``leak simulate``: its options are generated from the simulation and stream recipes' fields."""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import os
import re
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints

from leaklib import simulate
from leaklib.errors import LeakError

_METAVARS = {"holidays": "DATE"}  # tuple fields whose items are not element IDs


def _field_option(field: dataclasses.Field[Any], hint: Any) -> tuple[dict[str, Any], str]:
    """Return argparse keyword arguments for a recipe field and a printable default."""
    default = field.default
    if get_origin(hint) is tuple:
        args = get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis:
            if field.name in _METAVARS:  # a long list of dates: say how many
                return {"nargs": "*", "metavar": _METAVARS[field.name]}, f"{len(default)} dates"
            return {"nargs": "*", "metavar": "ID"}, " ".join(default)
        return {"nargs": len(args), "type": args[0], "metavar": ("MIN", "MAX")}, " ".join(
            map(str, default)
        )
    if hint is bool:
        return {"action": argparse.BooleanOptionalAction}, str(default).lower()
    return {"type": hint, "metavar": hint.__name__.upper()}, str(default)


def _knob_comments(recipe_class: type = simulate.SimulationRecipe) -> dict[str, str]:
    """Return each recipe field's trailing comment (its help), papermill-style."""
    try:
        source = inspect.getsource(recipe_class)
    except (OSError, TypeError):  # no source shipped: the options still work, without help
        return {}
    found = re.findall(r"^    (\w+): [^=]+= .+?  # (.+)$", source, flags=re.MULTILINE)
    return dict(found)


def _add_knobs(
    parser: argparse.ArgumentParser, recipe_class: type, *, title: str, prefix: str
) -> None:
    """Add one option per field of a recipe dataclass, stored as ``<prefix><field>``."""
    group = parser.add_argument_group(title)
    hints = get_type_hints(recipe_class)
    comments = _knob_comments(recipe_class)
    for field in dataclasses.fields(recipe_class):
        kwargs, shown = _field_option(field, hints[field.name])
        about = comments.get(field.name)
        group.add_argument(
            f"--{field.name.replace('_', '-')}",
            dest=f"{prefix}{field.name}",
            default=None,
            help=f"{about} (default: {shown})" if about else f"default: {shown}",
            **kwargs,
        )


def _configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--stream",
        action="store_true",
        help="simulate one continuous stream (two years, scheduled leaks and sensor faults) "
        f"instead of independent scenarios; written to {simulate.DEFAULT_STREAM_OUT} by default",
    )
    parser.add_argument(
        "--scenarios",
        type=int,
        default=None,
        help=f"number of scenarios (default {simulate.DEFAULT_SCENARIOS}; not with --stream)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=simulate.DEFAULT_SEED,
        help=f"seed of the dataset (default {simulate.DEFAULT_SEED})",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="worker processes; the output does not depend on it (default: CPUs)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help=f"Parquet file to write (default {simulate.DEFAULT_OUT}, "
        f"or {simulate.DEFAULT_STREAM_OUT} with --stream)",
    )
    parser.add_argument(
        "--no-progress", dest="progress", action="store_false", help="hide the progress bar"
    )
    _add_knobs(
        parser,
        simulate.SimulationRecipe,
        title="recipe knobs (defaults: the embedded default dataset)",
        prefix="knob_",
    )
    _add_knobs(
        parser,
        simulate.StreamRecipe,
        title="stream knobs, with --stream (defaults: the committed stream)",
        prefix="stream_",
    )
    parser.set_defaults(func=run_simulate)


def configure(parser: argparse.ArgumentParser) -> None:
    """Add ``leak simulate``'s options (generated from the recipes' fields) and its handler."""
    parser.description = (
        (simulate.__doc__ or "").split("\n\n")[0]
        + f" Regenerate the committed file with: leak simulate --scenarios {simulate.DEFAULT_SCENARIOS} "
        f"--seed {simulate.DEFAULT_SEED} --out {simulate.DEFAULT_OUT}; the committed stream with: "
        f"leak simulate --stream --seed {simulate.DEFAULT_SEED} --out {simulate.DEFAULT_STREAM_OUT}"
    )
    _configure_parser(parser)


def _changes(args: argparse.Namespace, recipe_class: type, prefix: str) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    for field in dataclasses.fields(recipe_class):
        value = getattr(args, f"{prefix}{field.name}", None)
        if value is not None:
            changes[field.name] = tuple(value) if isinstance(value, list) else value
    return changes


def recipe_from_args(args: argparse.Namespace) -> simulate.SimulationRecipe:
    """Build a recipe from parsed arguments: the defaults, with the knobs given on the command line."""
    return simulate.SimulationRecipe(**_changes(args, simulate.SimulationRecipe, "knob_"))


def stream_recipe_from_args(args: argparse.Namespace) -> simulate.StreamRecipe:
    """Build a stream recipe from parsed arguments: the defaults, with the stream knobs given.

    Raises:
        ValueError: A stream knob without ``--stream``, or ``--scenarios`` with it.
    """
    changes = _changes(args, simulate.StreamRecipe, "stream_")
    if not getattr(args, "stream", False):
        if changes:
            option = "--" + next(iter(changes)).replace("_", "-")
            raise ValueError(f"{option} is a stream knob: it needs --stream")
        return simulate.StreamRecipe()
    if getattr(args, "scenarios", None) is not None:
        raise ValueError("--scenarios makes independent scenarios: it cannot go with --stream")
    return simulate.StreamRecipe(**changes)


def run_simulate(args: argparse.Namespace) -> int:
    """Run ``leak simulate`` from parsed arguments and return the exit code."""
    try:
        recipe = recipe_from_args(args)
        stream_recipe = stream_recipe_from_args(args)
        if args.stream:
            simulate.simulate_stream(
                recipe=recipe,
                stream=stream_recipe,
                seed=args.seed,
                workers=args.workers,
                out=args.out or simulate.DEFAULT_STREAM_OUT,
                progress=args.progress,
            )
        else:
            simulate.simulate_dataset(
                recipe=recipe,
                scenarios=simulate.DEFAULT_SCENARIOS if args.scenarios is None else args.scenarios,
                seed=args.seed,
                workers=args.workers,
                out=args.out or simulate.DEFAULT_OUT,
                progress=args.progress,
            )
    except (ModuleNotFoundError, ValueError) as exc:
        # the solver missing, or a knob the recipes refuse (leaklib.simulate checks them with
        # ValueError): the user's to fix, reported by leak's entry point with exit 2
        raise LeakError(str(exc)) from exc
    return 0
