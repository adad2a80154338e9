"""``leak score``: score a table with the champion (or a run's model)."""

from __future__ import annotations

import argparse

from leaklib import scoring
from leaklib.cli.options import add_param_options, params_of
from leaklib.metadata import open_metadata_store


def _score(args: argparse.Namespace) -> int:
    params = params_of(args)
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


def configure(scorer: argparse.ArgumentParser) -> None:
    """Add ``leak score``'s options and its handler."""
    scorer.description = (
        "Score the table -p dataset.source names with the current champion of the "
        "dataset's model_name (or a run's model): each row gets its leak probability and an "
        "alarm at the model's threshold. The same input and model never add rows twice."
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
