"""The ``leak`` command: run the pipeline, list parameters, simulate data, publish reports."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from leaklib import params as parameters

log = logging.getLogger("leaklib")


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
        help="override one parameter; VALUE is YAML, KEY may be dotted (model.name)",
    )


def _run(args: argparse.Namespace) -> int:
    from leaklib.runner import run_pipeline

    result = run_pipeline(
        files=args.files,
        overrides=[tuple(o) for o in args.overrides],
        show_code=args.show_code,
        progress=lambda line: print(line, flush=True),
    )
    return 0 if result.status == "succeeded" else 1


def _params(args: argparse.Namespace) -> int:
    if args.sync_notebooks:
        from leaklib.notebooks import sync_parameter_cells

        for path in sync_parameter_cells():
            print(f"updated {path}")
        return 0
    if args.files or args.overrides:
        import yaml

        merged = parameters.load(args.files, [tuple(o) for o in args.overrides])
        print(yaml.safe_dump(merged.to_plain(), sort_keys=False), end="")
        return 0
    rows = parameters.describe()
    for row in rows:
        print(f"{row['name']}  ({row['type']})")
        print(f"    {row['description']}")
        default = row["default"]
        print(f"    default: {default if len(default) < 200 else default[:197] + '...'}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """Return the ``leak`` argument parser with every subcommand."""
    parser = argparse.ArgumentParser(prog="leak", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log leaklib's progress")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run extract -> train -> evaluate and render the reports")
    add_param_options(run)
    run.add_argument("--show-code", action="store_true", help="show code cells in the reports")
    run.set_defaults(func=_run)

    listing = sub.add_parser(
        "params", help="list every parameter, or print a merged set with -f/-p"
    )
    add_param_options(listing)
    listing.add_argument(
        "--sync-notebooks",
        action="store_true",
        help="rewrite the notebooks' parameters cells from parameters/default.yaml",
    )
    listing.set_defaults(func=_params)

    from leaklib.simulate import add_simulate_parser

    add_simulate_parser(sub)
    from leaklib.reports import add_pages_parser

    add_pages_parser(sub)
    from leaklib.promotion import add_champion_parsers

    add_champion_parsers(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``leak`` console script."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return args.func(args)
    except (ValueError, RuntimeError, FileNotFoundError) as exc:
        # every leaklib error names what is wrong; a traceback would hide it
        print(f"leak {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
