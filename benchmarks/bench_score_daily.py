"""Score a stretch day by day (one `--since` call per day) and in one call; compare and time.

Run in a project whose champion exists (after `leak run`):
``python -m benchmarks.bench_score_daily -f parameters/smoke.yaml --start 2019-02-01 --days 42``.
Prints the rows and events of both ways compared after sorting (the columns that name the call,
scoring_id, scored_at and written_at, left out), both times, and the sensor-fault counts.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd

from leaklib import scoring
from leaklib.metadata import open_metadata_store
from leaklib.params import load

CALL_COLUMNS = ["scoring_id", "scored_at", "written_at"]


def _sorted(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    kept = frame.drop(columns=[c for c in CALL_COLUMNS if c in frame])
    return kept.sort_values(keys).reset_index(drop=True)


def _events(rows: str) -> pd.DataFrame:
    path = Path(rows.replace(".parquet", ".events.parquet"))
    if not path.exists():
        return pd.DataFrame(columns=["kind", "event_id"])
    return _sorted(pd.read_parquet(path), ["kind", "event_id"])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-f", dest="files", action="append", default=[])
    parser.add_argument("--start", type=datetime.fromisoformat, required=True)
    parser.add_argument("--days", type=int, required=True)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    params = load(args.files)
    store = open_metadata_store(params.metadata_store)
    out = args.out or Path(tempfile.mkdtemp())
    daily, whole = str(out / "daily.parquet"), str(out / "whole.parquet")
    end = args.start + timedelta(days=args.days)
    began = time.perf_counter()
    suppressed = 0
    for day in range(args.days):
        since = args.start + timedelta(days=day)
        done = scoring.score(
            params, store=store, destination=daily, since=since, until=since + timedelta(days=1)
        )
        suppressed += done.suppressed_alarms
    daily_s = time.perf_counter() - began
    began = time.perf_counter()
    one = scoring.score(params, store=store, destination=whole, since=args.start, until=end)
    whole_s = time.perf_counter() - began
    stamp = params.dataset.timestamp
    rows = [_sorted(pd.read_parquet(p), [stamp]) for p in (daily, whole)]
    events = [_events(p) for p in (daily, whole)]
    print(f"{args.days} daily calls: {daily_s:.1f} s; one call: {whole_s:.1f} s")
    print(f"rows: {len(rows[0])} vs {len(rows[1])}, equal: {rows[0].equals(rows[1])}")
    print(f"events: {len(events[0])} vs {len(events[1])}, equal: {events[0].equals(events[1])}")
    print(f"suppressed alarms: daily {suppressed}, one call {one.suppressed_alarms}")
    print(events[1].drop(columns=["model_sha256", "run_id"]).to_string())
    print(f"written to {out}")


if __name__ == "__main__":
    main()
