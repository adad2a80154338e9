"""``leak simulate``: its options are generated from the simulation recipe's fields."""

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


def _field_option(field: dataclasses.Field[Any], hint: Any) -> tuple[dict[str, Any], str]:
    """Return argparse keyword arguments for a recipe field and a printable default."""
    default = field.default
    if get_origin(hint) is tuple:
        args = get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis:
            return {"nargs": "*", "metavar": "ID"}, " ".join(default)
        return {"nargs": len(args), "type": args[0], "metavar": ("MIN", "MAX")}, " ".join(
            map(str, default)
        )
    if hint is bool:
        return {"action": argparse.BooleanOptionalAction}, str(default).lower()
    return {"type": hint, "metavar": hint.__name__.upper()}, str(default)


def _knob_comments() -> dict[str, str]:
    """Return each recipe field's trailing comment (its help), papermill-style."""
    try:
        source = inspect.getsource(simulate.SimulationRecipe)
    except (OSError, TypeError):  # no source shipped: the options still work, without help
        return {}
    found = re.findall(r"^    (\w+): [^=]+= .+?  # (.+)$", source, flags=re.MULTILINE)
    return dict(found)


def configure(parser: argparse.ArgumentParser) -> None:
    """Add ``leak simulate``'s options (generated from the recipe's fields) and its handler."""
    parser.description = (simulate.__doc__ or "").split("\n\n")[0] + (
        f" Regenerate the committed file with: leak simulate --scenarios "
        f"{simulate.DEFAULT_SCENARIOS} --seed {simulate.DEFAULT_SEED} --out {simulate.DEFAULT_OUT}"
    )
    parser.add_argument(
        "--scenarios",
        type=int,
        default=simulate.DEFAULT_SCENARIOS,
        help=f"number of scenarios (default {simulate.DEFAULT_SCENARIOS})",
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
        default=simulate.DEFAULT_OUT,
        help=f"Parquet file to write (default {simulate.DEFAULT_OUT})",
    )
    parser.add_argument(
        "--no-progress", dest="progress", action="store_false", help="hide the progress bar"
    )
    knobs = parser.add_argument_group("recipe knobs (defaults: the embedded default dataset)")
    hints = get_type_hints(simulate.SimulationRecipe)
    comments = _knob_comments()
    for field in dataclasses.fields(simulate.SimulationRecipe):
        kwargs, shown = _field_option(field, hints[field.name])
        about = comments.get(field.name)
        knobs.add_argument(
            f"--{field.name.replace('_', '-')}",
            dest=f"knob_{field.name}",
            default=None,
            help=f"{about} (default: {shown})" if about else f"default: {shown}",
            **kwargs,
        )
    parser.set_defaults(func=run_simulate)


def recipe_from_args(args: argparse.Namespace) -> simulate.SimulationRecipe:
    """Build a recipe from parsed arguments: the defaults, with the knobs given on the command line."""
    changes: dict[str, Any] = {}
    for field in dataclasses.fields(simulate.SimulationRecipe):
        value = getattr(args, f"knob_{field.name}", None)
        if value is not None:
            changes[field.name] = tuple(value) if isinstance(value, list) else value
    return simulate.SimulationRecipe(**changes)


def run_simulate(args: argparse.Namespace) -> int:
    """Run ``leak simulate`` from parsed arguments and return the exit code."""
    try:
        recipe = recipe_from_args(args)
        simulate.simulate_dataset(
            recipe=recipe,
            scenarios=args.scenarios,
            seed=args.seed,
            workers=args.workers,
            out=args.out,
            progress=args.progress,
        )
    except (ModuleNotFoundError, ValueError) as exc:
        # the solver missing, or a knob the recipe refuses (leaklib.simulate checks them with
        # ValueError): the user's to fix, reported by leak's entry point with exit 2
        raise LeakError(str(exc)) from exc
    return 0
