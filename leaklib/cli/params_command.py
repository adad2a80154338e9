"""``leak params``: list every parameter, print a merged set, or sync the notebooks' cells.

Light on purpose: it loads the parameter model, not the pipeline, the web stack or plotting.
"""

from __future__ import annotations

import argparse

import yaml

from leaklib import parameter_cells
from leaklib.cli.options import add_param_options, params_of
from leaklib.errors import LeakError
from leaklib.params import listing


def _params(args: argparse.Namespace) -> int:
    if args.check and not args.sync_notebooks:
        raise LeakError("--check goes with --sync-notebooks")
    if args.sync_notebooks:
        changed = parameter_cells.sync_parameter_cells(check=args.check)
        for path in changed:
            print(f"{'out of date' if args.check else 'updated'}: {path}")
        if args.check and changed:
            print("run `leak params --sync-notebooks` to rewrite them")
            return 1
        return 0
    if args.files or args.overrides:
        print(yaml.safe_dump(params_of(args).to_plain(), sort_keys=False), end="")
        return 0
    for row in listing.describe():
        print(f"{row['name']}  ({row['type']})")
        print(f"    {row['description']}")
        default = row["default"]
        print(f"    default: {default if len(default) < 200 else default[:197] + '...'}")
    return 0


def configure(listing: argparse.ArgumentParser) -> None:
    """Add ``leak params``'s options and its handler."""
    add_param_options(listing)
    listing.add_argument(
        "--sync-notebooks",
        action="store_true",
        help="rewrite the notebooks' parameters cells: the parameters each step reads, "
        "with the defaults of parameters/default.yaml and their descriptions",
    )
    listing.add_argument(
        "--check",
        action="store_true",
        help="with --sync-notebooks: list the cells that differ and exit 1, writing nothing",
    )
    listing.set_defaults(func=_params)
