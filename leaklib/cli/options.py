"""What several commands share: the ``-f FILE`` / ``-p KEY VALUE`` options and the parameter
set they name."""

from __future__ import annotations

import argparse

from leaklib import params
from leaklib.params import Params


def add_param_options(parser: argparse.ArgumentParser) -> None:
    """Add ``-f FILE`` and ``-p KEY VALUE`` (both repeatable, applied in order)."""
    parser.add_argument(
        "-f",
        "--file",
        dest="files",
        action="append",
        default=[],
        metavar="PARAMS.yaml",
        help="parameter file applied after parameters/default.yaml (repeatable; later wins)",
    )
    parser.add_argument(
        "-p",
        "--param",
        dest="overrides",
        action="append",
        nargs=2,
        default=[],
        metavar=("KEY", "VALUE"),
        help="override one parameter; VALUE is YAML, KEY may be dotted (dataset.source)",
    )


def params_of(args: argparse.Namespace) -> Params:
    """The validated parameter set of the command line's ``-f`` and ``-p``."""
    return params.load(args.files, [tuple(o) for o in args.overrides])
