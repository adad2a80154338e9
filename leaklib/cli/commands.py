"""The ``leak`` command: run the pipeline, list parameters, simulate data, publish reports.

The parsers and handlers behind :mod:`leaklib.cli`'s entry point. Every parser, handler and
``print`` of the project lives in this package; the library returns values or raises. One error convention: a leaklib error is printed as
``leak COMMAND: error: MESSAGE`` on stderr with exit code 2; a run that ends ``failed``
exits 1.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

import uvicorn
import yaml

from leaklib import champion, parameter_cells, reports, runs, scoring, serve
from leaklib import gate as gatekeeping
from leaklib import params as parameters
from leaklib.cli import simulate as simulate_cli
from leaklib.metadata import open_metadata_store
from leaklib.metrics import CATALOGUE
from leaklib.params import Params
from leaklib.paths import resolve
from leaklib.pipeline import reproduce, runner
from leaklib.pipeline.kernel import RunKernel

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
        help="override one parameter; VALUE is YAML, KEY may be dotted (dataset.source)",
    )


def _params_of(args: argparse.Namespace) -> Params:
    return parameters.load(args.files, [tuple(o) for o in args.overrides])


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
    return 0 if result.status == "succeeded" else 1


def _params(args: argparse.Namespace) -> int:
    if args.sync_notebooks:
        for path in parameter_cells.sync_parameter_cells():
            print(f"updated {path}")
        return 0
    if args.files or args.overrides:
        print(yaml.safe_dump(_params_of(args).to_plain(), sort_keys=False), end="")
        return 0
    for row in parameters.describe():
        print(f"{row['name']}  ({row['type']})")
        print(f"    {row['description']}")
        default = row["default"]
        print(f"    default: {default if len(default) < 200 else default[:197] + '...'}")
    return 0


def _pages(args: argparse.Namespace) -> int:
    params = _params_of(args)
    store = open_metadata_store(params.metadata_store)
    index = reports.build_site(
        store,
        out=resolve(args.out),
        reports_root=resolve(args.reports),
        keep=params.pages_keep_reports,
    )
    print(f"report site written: open {index}")
    return 0


def _champion(args: argparse.Namespace) -> int:
    params = _params_of(args)
    name = params.dataset.model_name
    store = open_metadata_store(params.metadata_store)
    pointer = champion.current_champion(store, model_name=name)
    if pointer is None:
        print(f"no champion yet for model {name!r} in {store.uri}")
        return 0
    print(f"champion of {name}: run {pointer['run_id']} (version {pointer.get('version')})")
    print(f"  model uri:   {pointer['model_uri']}")
    if pointer.get("model_sha256"):
        print(f"  model hash:  {pointer['model_sha256']}")
    print(f"  promoted at: {pointer['promoted_at']} by {pointer.get('decided_by')}")
    print(f"  reason:      {pointer['reason']}")
    shown = {k: v for k, v in (pointer.get("metrics") or {}).items() if k in CATALOGUE}
    if shown:
        print("  metrics:     " + ", ".join(f"{k} {v:.4f}" for k, v in shown.items()))
    print("history (newest first):")
    for entry in reversed(pointer.get("history") or []):
        print(
            f"  {entry['promoted_at']}  run {entry['run_id']}  version {entry.get('version')}  "
            f"{entry.get('decided_by')}: {entry['reason']}"
        )
    return 0


def _promote(args: argparse.Namespace) -> int:
    params = _params_of(args)
    store = open_metadata_store(params.metadata_store)
    decision = gatekeeping.manual_promotion(
        store, run_id=args.run_id, params=params, reason=args.reason
    )
    previous = decision.previous_champion or {}
    print(
        f"run {args.run_id} (version {decision.challenger['version']}) is now the champion of "
        f"{params.dataset.model_name}; previous: {previous.get('run_id') or 'none'}"
    )
    return 0


def _reproduce(args: argparse.Namespace) -> int:
    store = open_metadata_store(_params_of(args).metadata_store)
    record = runs.get_run(store, args.run_id)
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
    again = runs.get_run(store, result.run_id)
    table = reproduce.compare_metrics(record.get("metrics") or {}, again.get("metrics") or {})
    print(table.to_string())
    same = result.status == "succeeded" and bool(table["identical"].all())
    verdict = "identical" if same else f"NOT identical ({int((~table['identical']).sum())} differ)"
    print(f"run {result.run_id} reproduces {args.run_id}: metrics {verdict}")
    return 0 if same else 1


def _score(args: argparse.Namespace) -> int:
    params = _params_of(args)
    store = open_metadata_store(params.metadata_store)
    done = scoring.score(params, store=store, destination=args.out, run_id=args.run)
    if args.plot:
        figure = scoring.operator_view(done)
        figure.savefig(args.plot, dpi=110)
        print(f"operator's view written to {args.plot}")
    where = f"added {done.added} rows" if done.added else "already there, nothing added"
    print(
        f"scored {done.rows} rows of {params.dataset.source} with run {done.run_id} "
        f"(model {done.model_sha256[:12]}): {done.alarms} alarms at threshold "
        f"{done.threshold:.4f} -> {args.out} ({where}); scoring {done.scoring_id}"
    )
    return 0


def _serve(args: argparse.Namespace) -> int:
    host, token = args.host, os.environ.get(serve.ENV_TOKEN)
    if args.insecure_local:
        if host not in (None, "127.0.0.1", "localhost"):
            raise serve.ServeError(f"--insecure-local binds to 127.0.0.1 only, not --host {host}")
        host, token = "127.0.0.1", None
        print(
            f"leak serve: warning: --insecure-local: no token checked ({serve.ENV_TOKEN} is "
            "ignored); anyone on this machine can start runs",
            file=sys.stderr,
        )
    else:
        token = serve.check_token(token)
    port = args.port if args.port is not None else int(os.environ.get("PORT") or 8000)
    app = serve.create_app(
        files=args.files, overrides=[tuple(o) for o in args.overrides], token=token
    )
    print(f"leak serve: http://{host or '127.0.0.1'}:{port} (API docs at /docs)", flush=True)
    uvicorn.run(
        app,
        host=host or "127.0.0.1",
        port=port,
        log_level="info" if args.verbose else "warning",
        server_header=False,
        proxy_headers=True,
    )
    return 0


def _add_serve(sub: Any) -> None:
    server = sub.add_parser(
        "serve",
        help="serve the HTTP API: start and follow runs, read reports, score with the champion",
        description="Serve the HTTP API (FastAPI, docs at /docs) over the parameter set -f/-p "
        f"names: runs start from it, and it names the stores and the dataset. Every endpoint "
        f"but /health needs 'Authorization: Bearer ${serve.ENV_TOKEN}'; without that variable "
        "the server does not start, unless --insecure-local.",
    )
    add_param_options(server)
    server.add_argument(
        "--host", help="address to bind (default 127.0.0.1; 0.0.0.0 in a container)"
    )
    server.add_argument(
        "--port", type=int, help="port (default: $PORT, as Cloud Run sets it, else 8000)"
    )
    server.add_argument(
        "--insecure-local",
        action="store_true",
        help=f"serve without {serve.ENV_TOKEN}, on 127.0.0.1 only (a laptop)",
    )
    server.set_defaults(func=_serve)


def _add_run(sub: Any) -> None:
    run = sub.add_parser("run", help="run extract -> train -> evaluate and render the reports")
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


def _add_reproduce(sub: Any) -> None:
    again = sub.add_parser(
        "reproduce",
        help="run a past run again on its recorded snapshot and parameters; compare metrics",
    )
    again.add_argument("run_id", metavar="RUN_ID", help="the run to reproduce")
    again.add_argument(
        "--strict",
        action="store_true",
        help="refuse when the current git commit or lock differs from the recorded one",
    )
    add_param_options(again)  # -f/-p pick the metadata_store that holds the run
    again.set_defaults(func=_reproduce)


def _add_score(sub: Any) -> None:
    scorer = sub.add_parser(
        "score",
        help="score a table with the champion (or --run) and write its alarms to --out",
        description="Score the table -p dataset.source names with the current champion of the "
        "dataset's model_name (or a run's model): each row gets its leak probability and an "
        "alarm at the model's threshold. The same input and model never add rows twice.",
    )
    add_param_options(scorer)
    scorer.add_argument(
        "--out",
        required=True,
        metavar="DEST",
        help="a .parquet/.csv file or bigquery://PROJECT.DATASET.TABLE (rows are appended)",
    )
    scorer.add_argument("--run", metavar="RUN_ID", help="score with this run's model instead")
    scorer.add_argument(
        "--plot",
        metavar="FILE.png",
        help="also draw the operator's view: probability and alarms over time per group",
    )
    scorer.set_defaults(func=_score)


def _add_params(sub: Any) -> None:
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


def _add_pages(sub: Any) -> None:
    parser = sub.add_parser(
        "pages",
        help="build the static report site (index, trend chart, every run's reports)",
        description="Build a static site from the metadata store: an index of all runs with a "
        "trend chart of the primary metric, and each run's rendered reports. Links are "
        "relative, so it works from a local folder or under any GitLab Pages path.",
    )
    add_param_options(parser)  # -f/-p pick the metadata_store, as for `leak run`
    parser.add_argument("--out", default="public", help="site folder (default: public)")
    parser.add_argument(
        "--reports", default="reports", help="where `leak run` rendered reports (default: reports)"
    )
    parser.set_defaults(func=_pages)


def _add_champion(sub: Any) -> None:
    shown = sub.add_parser("champion", help="show the current champion model and its history")
    add_param_options(shown)
    shown.set_defaults(func=_champion)
    manual = sub.add_parser(
        "promote",
        help="make a run's registered model the champion by hand (recorded with a reason)",
    )
    manual.add_argument("run_id", metavar="RUN_ID", help="the run whose model becomes the champion")
    manual.add_argument(
        "--reason", required=True, help="why, in one sentence (kept in the history)"
    )
    add_param_options(manual)
    manual.set_defaults(func=_promote)


def build_parser() -> argparse.ArgumentParser:
    """Return the ``leak`` argument parser with every subcommand."""
    parser = argparse.ArgumentParser(prog="leak", description=__doc__.split("\n\n")[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log leaklib's progress")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_run(sub)
    _add_reproduce(sub)
    _add_score(sub)
    _add_params(sub)
    simulate_cli.add_simulate_parser(sub)
    _add_pages(sub)
    _add_champion(sub)
    _add_serve(sub)
    return parser


def main(argv: Sequence[str] | None = None, *, kernel: RunKernel | None = None) -> int:
    """Parse the command line and run the command; its exit code.

    Args:
        kernel: ``leak run``'s kernel, started before this module loaded (:mod:`leaklib.cli`);
            closed here unless the run takes it over.
    """
    try:
        args = build_parser().parse_args(argv)
        logging.basicConfig(
            level=logging.INFO if args.verbose else logging.WARNING,
            format="%(levelname)s %(name)s: %(message)s",
        )
        args.kernel = kernel
        try:
            return args.func(args)
        except (ValueError, RuntimeError, FileNotFoundError) as exc:
            # every leaklib error names what is wrong; a traceback would hide it
            print(f"leak {args.command}: error: {exc}", file=sys.stderr)
            return 2
    finally:
        if kernel is not None:
            kernel.close()  # a run closes it itself; a refused one leaves it to us
