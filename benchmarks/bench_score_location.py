"""`leak score` with its leak events located: the time per call with and without, and the shares.

Run in a project whose champion was trained with ``localisation`` on (the stream default,
after `leak run`; its evaluate step built the signatures)::

    python -m benchmarks.bench_score_location --start 2019-01-01 --days 14 --year 2019 [--no-checks] [--year-only]

1. ``--days`` daily calls (``scoring.score`` as ``leak score --since D --until D+1`` calls it,
   without process start-up) with the run's localisation, then the same calls into another
   destination with the locator switched off (what a run recorded with ``localisation: null``
   does): the time per call of each, and their ratio.
2. With ``--year``, one call over that year, its leak events matched to the leak table, and
   each detected leak's ranking (that of the event that detected it) scored by BattLeDIM's
   300 m rule, beside the run's evaluate figures; ``--no-checks`` scores without the sensor
   checks, so that the alarm events are those evaluate matched (the checks suppress some);
   and the size the evaluate report's small multiples add (their PNG, base64).
"""

from __future__ import annotations

import argparse
import base64
import io
import statistics
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd

from leaklib import leak_events, leak_location, plots, run_record, score_events, scoring
from leaklib.metadata import open_metadata_store
from leaklib.params import load


def _daily(params, store, out: Path, start: datetime, days: int) -> list[float]:
    """Score ``days`` days one call each into ``out``; return each call's seconds."""
    times = []
    for day in range(days):
        since = start + timedelta(days=day)
        began = time.perf_counter()
        scoring.score(
            params, store=store, destination=str(out), since=since, until=since + timedelta(days=1)
        )
        times.append(time.perf_counter() - began)
    return times


def _summary(name: str, times: list[float]) -> float:
    median = statistics.median(times)
    print(f"{name}: {len(times)} calls, median {median:.2f} s, mean {statistics.mean(times):.2f} s")
    return median


def _year(params, store, out: Path, year: int) -> None:
    """Score the year in one call; score the located leak events by the 300 m rule."""
    since, until = datetime(year, 1, 1), datetime(year + 1, 1, 1)
    began = time.perf_counter()
    done = scoring.score(params, store=store, destination=str(out), since=since, until=until)
    print(f"{year} in one call: {time.perf_counter() - began:.1f} s, {done.rows} rows")
    events = done.events[done.events["kind"] == "leak"]
    located = events[events["located_by"] == done.scoring_id]
    print(f"leak events: {len(events)}, ranked: {len(located)}")
    result = scoring._matched(done, params=params)
    table = leak_events.load_leaks(params.dataset).table
    pipes = dict(zip(table["leak_id"].astype(str), table["pipe"].astype(str), strict=True))
    detections = result.alarms[result.alarms["outcome"] == "detection"]
    by_id = events.set_index("event_id")
    rows = []
    for _, alarm in detections.iterrows():
        location = score_events.location_of(by_id.loc[alarm["event_id"]])
        pipe = pipes[str(alarm["leak_id"])]
        row = leak_location.located_leak(done.locator.network, location, pipe)
        rows.append({"leak_id": alarm["leak_id"], "event_id": alarm["event_id"], **row})
    table = pd.DataFrame(rows)
    print(table.round(1).to_string(index=False))
    scores = leak_location.location_scores(table)
    run = run_record.get_run(store, done.run_id)
    figures = pd.DataFrame(
        {
            "leak score": scores,
            "evaluate step": {k: run.metrics.get(f"holdout_{k}") for k in scores},
        }
    )
    print(figures.round(3).to_string())
    _report_growth(done, table, by_id)


def _report_growth(done, table: pd.DataFrame, by_id: pd.DataFrame) -> None:
    """What the evaluate report's small multiples add to its HTML: the PNG, base64, as inline."""
    panels = [
        (f"leak {r.leak_id}: {r.distance_m:.0f} m", score_events.location_of(by_id.loc[r.event_id]),
         r.pipe)
        for r in table.itertuples()
    ]  # fmt: skip
    figure = plots.plot_location_maps(done.locator.network, panels, sensors=done.locator.sensors)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")  # the inline backend's
    size = len(base64.b64encode(buffer.getvalue()))
    print(f"small multiples of {len(panels)} maps: {size:,} bytes of base64 PNG in the report")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-f", dest="files", action="append", default=[])
    parser.add_argument("--start", type=datetime.fromisoformat, required=True)
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--year", type=int)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument(
        "--no-checks",
        action="store_true",
        help="score without sensor checks: the alarm events are then evaluate's",
    )
    parser.add_argument("--year-only", action="store_true", help="skip the daily timing")
    args = parser.parse_args()
    params = load(args.files)
    if args.no_checks:
        params = params.model_copy(update={"sensor_checks": None})
    store = open_metadata_store(params.metadata_store)
    out = args.out or Path(tempfile.mkdtemp())
    if not args.year_only:
        _timing(params, store, out, start=args.start, days=args.days)
    if args.year:
        _year(params, store, out / "year.parquet", args.year)
    print(f"written to {out}")


def _timing(params, store, out: Path, *, start: datetime, days: int) -> None:
    """Daily calls with the run's localisation, then the same with the locator off."""
    with_s = _summary("located", _daily(params, store, out / "on.parquet", start, days))
    switched = score_events.scoring_locator
    score_events.scoring_locator = lambda run, *, store: None  # as localisation: null
    try:
        off = _daily(params, store, out / "off.parquet", start, days)
    finally:
        score_events.scoring_locator = switched
    without_s = _summary("not located", off)
    print(f"ratio located / not: {with_s / without_s:.2f}")


if __name__ == "__main__":
    main()
