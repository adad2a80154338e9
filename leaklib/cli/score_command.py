"""``leak score``: score a table with the champion (or a run's model), as the readings arrive."""

from __future__ import annotations

import argparse
import re
from datetime import datetime
from pathlib import Path

from leaklib import scoring
from leaklib.cli.options import add_param_options, params_of
from leaklib.metadata import open_metadata_store


def _time(option: str):
    def parse(value: str) -> datetime:
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{option} {value!r} is not an ISO date or date-time (2019-03-01 or "
                "2019-03-01T06:00)"
            ) from None

    return parse


def _map_file(plot: str, event_id: str) -> Path:
    """Where an event's map goes: beside ``--plot``, named by the event (``a.png`` ->
    ``a.event-2019-02-14T10-15-00.png``)."""
    path = Path(plot)
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", event_id).strip("-")
    return path.with_name(f"{path.stem}.event-{name}{path.suffix or '.png'}")


def _score(args: argparse.Namespace) -> int:
    params = params_of(args)
    store = open_metadata_store(params.metadata_store)
    done = scoring.score(
        params,
        store=store,
        destination=args.out,
        run_id=args.run,
        since=args.since,
        until=args.until,
    )
    if args.plot:
        if not done.rows:
            raise scoring.ScoringError(f"--plot {args.plot}: no new rows scored, nothing to draw")
        figure = scoring.operator_view(done, params=params)
        figure.savefig(args.plot, dpi=110)
        print(f"operator's view written to {args.plot}")
        for event_id, figure in scoring.event_maps(done, params=params).items():
            where = _map_file(args.plot, event_id)
            figure.savefig(where, dpi=110)
            print(f"map of leak event {event_id} written to {where}")
    where = f"added {done.added} rows" if done.added else "already there, nothing added"
    print(
        f"scored {done.rows} rows of {params.dataset.source} with run {done.run_id} "
        f"(model {done.model_sha256[:12]}): {done.alarms} alarms at threshold "
        f"{done.threshold:.4f} -> {args.out} ({where})"
    )
    if done.skipped:
        print(f"skipped the first {done.skipped} rows: read for their history (lookback) only")
    print(
        f"events: {done.leak_events} leak, {done.fault_events} sensor-fault -> "
        f"{done.events_destination}; sensor faults suppressed {done.suppressed_alarms} "
        "leak alarms"
    )
    if done.locator is not None:
        print(
            f"located {done.located_events} new or extended leak events (top "
            f"{done.locator.spec.top_k} candidate nodes each, in the events' candidates column)"
        )
    print(f"scoring {done.scoring_id}")
    return 0


def configure(scorer: argparse.ArgumentParser) -> None:
    """Add ``leak score``'s options and its handler."""
    scorer.description = (
        "Score the table -p dataset.source names with the current champion of the "
        "dataset's model_name (or a run's model): each row gets its leak probability and an "
        "alarm at the model's threshold, unless a sensor fault marks it; alarms merge into "
        "events written beside the rows (OUT.events.parquet/.csv, bigquery TABLE_events). "
        "Rows the model scored before are never added twice; an open event is extended."
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
        "--since",
        type=_time("--since"),
        metavar="T",
        help="score the rows from T on; the source is read from T less the lookback the "
        "derived features and sensor checks need (dataset.row_spacing per row)",
    )
    scorer.add_argument(
        "--until",
        type=_time("--until"),
        metavar="U",
        help="score the rows before U (default: to the end of the source or dataset.period)",
    )
    scorer.add_argument(
        "--plot",
        metavar="FILE.png",
        help="also draw the operator's timeline: probability, threshold, alarm events, "
        "sensor-fault events, and true leaks when dataset.leak_table names them; and, when the "
        "model's run has localisation on, a map per new or extended leak event beside it "
        "(FILE.event-ID.png: the network, sensors, ranked candidates, the true leak if known)",
    )
    scorer.set_defaults(func=_score)
