"""``leak run`` and ``leak reproduce``: run the pipeline, or a past run again."""

from __future__ import annotations

import argparse
import sys

from leaklib import run_record
from leaklib.cli.options import add_param_options, params_of
from leaklib.metadata import open_metadata_store
from leaklib.pipeline import reproduce, runner
from leaklib.run_record import RunStatus


def _run(args: argparse.Namespace) -> int:
    overrides = [tuple(o) for o in args.overrides]
    if args.explain:
        for step, verdict in runner.explain(args.files, overrides):
            print(f"{step:<9} {verdict}")
        return 0
    result = runner.run_pipeline(
        files=args.files,
        overrides=overrides,
        show_code=args.show_code,
        durable=args.durable,
        use_cache=not args.no_cache,
        progress=lambda line: print(line, flush=True),
        kernel=args.kernel,
    )
    if result.exit_code:  # ended by a signal: the shell's code for it (143 for SIGTERM)
        return result.exit_code
    return 0 if result.status == RunStatus.SUCCEEDED else 1


def _reproduce(args: argparse.Namespace) -> int:
    store = open_metadata_store(params_of(args).metadata_store)
    record = run_record.get_run(store, args.run_id)
    params = reproduce.reproduction_params(record)
    for difference in reproduce.drift(record):
        if args.strict:
            raise reproduce.ReproduceError(f"--strict: {difference}; check out the recorded commit")
        print(f"warning: {difference}; the metrics may differ", file=sys.stderr)
    result = runner.run_pipeline(
        params=params,
        files=reproduce.reproduction_files(record),  # the label; params come from the record
        origin=f"leak reproduce {args.run_id}",
        use_cache=False,  # reproducing means running again, not reading the earlier results
        progress=lambda line: print(line, flush=True),
    )
    if result.exit_code:
        return result.exit_code
    again = run_record.get_run(store, result.run_id)
    table = reproduce.compare_metrics(record.metrics, again.metrics)
    print(table.to_string())
    same = result.status == RunStatus.SUCCEEDED and bool(table["identical"].all())
    verdict = "identical" if same else f"NOT identical ({int((~table['identical']).sum())} differ)"
    print(f"run {result.run_id} reproduces {args.run_id}: metrics {verdict}")
    return 0 if same else 1


def configure_run(run: argparse.ArgumentParser) -> None:
    """Add ``leak run``'s options and its handler."""
    add_param_options(run)
    run.add_argument("--show-code", action="store_true", help="show code cells in the reports")
    run.add_argument(
        "--durable",
        action="store_true",
        help="refuse stores that live only on this machine (the CI retrain job sets it)",
    )
    run.add_argument(
        "--no-cache",
        action="store_true",
        help="run every step, even one whose inputs match an earlier run's (the step cache)",
    )
    run.add_argument(
        "--explain",
        action="store_true",
        help="print per step whether it would come from the cache and, if not, what changed; "
        "run nothing",
    )
    run.set_defaults(func=_run)


def configure_reproduce(again: argparse.ArgumentParser) -> None:
    """Add ``leak reproduce``'s options and its handler."""
    again.add_argument("run_id", metavar="RUN_ID", help="the run to reproduce")
    again.add_argument(
        "--strict",
        action="store_true",
        help="refuse when the current git commit or lock differs from the recorded one",
    )
    add_param_options(again)  # -f/-p pick the metadata_store that holds the run
    again.set_defaults(func=_reproduce)
