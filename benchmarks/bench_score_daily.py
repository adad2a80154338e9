"""Score a stretch day by day (one `--since` call per day) and in one call; compare and time.

Run in a project whose champion exists (after `leak run`):
``python -m benchmarks.bench_score_daily -f parameters/smoke.yaml --start 2019-02-01 --days 42``.
Prints the rows and events of both ways compared after sorting (the columns that name the call,
scoring_id, scored_at, written_at and located_by, left out), both times, and the sensor-fault counts.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd

from leaklib import leak_events, run_record, scoring
from leaklib.metadata import open_metadata_store
from leaklib.params import load
from leaklib.paths import resolve

CALL_COLUMNS = [
    "scoring_id",
    "scored_at",
    "written_at",
    "located_by",
]  # located_by: the call that ranked
FAULTS = "data/l-town-stream.faults.csv"  # the stream's labelled sensor faults
FIGURES = (
    "event_recall", "event_leaks_detected", "event_false_alarms", "event_false_alarms_per_30d",
    "event_detection_hours_median", "event_detection_hours_p90", "event_precision", "event_f1",
    "event_early_detection", "event_economic_share",
)  # fmt: skip


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
    _detection(params, store, rows[0], events[0], one)
    _faults(events[0], rows[0], start=args.start, end=end)
    print(f"written to {out}")


def _detection(params, store, rows: pd.DataFrame, events: pd.DataFrame, one) -> None:
    """The leak events' figures of the daily rows against the evaluate step's record."""
    dataset = params.dataset
    leaks = leak_events.load_leaks(dataset)
    run = run_record.get_run(store, one.run_id)
    spec = params.events
    raw = leak_events.evaluate_events(
        rows, rows["probability"].to_numpy(), threshold=one.threshold,
        timestamp=dataset.timestamp, target=dataset.target, spec=spec,
        leak_table=leaks.table, volumes=leaks.volumes,
    )  # fmt: skip
    step = pd.Timedelta(dataset.row_spacing)
    written = events[(events["kind"] == "leak") & events["counts"]]
    alarms = [
        leak_events.AlarmEvent(
            event_id=str(e["event_id"]), first_alarm=e["first"], last_alarm=e["last"],
            rows=int(e["rows"]), closed=bool(e["closed"]), spacing=step,
            peak=float(e["peak_probability"]),
        )
        for _, e in written.iterrows()
    ]  # fmt: skip
    times = pd.to_datetime(rows[dataset.timestamp])
    checked = leak_events.match_events(
        alarms, leak_events.leaks_from_table(leaks.table), start=times.min(),
        end=times.max() + step, grace=spec.grace, spacing=step, volumes=leaks.volumes,
        water_price_eur_m3=spec.water_price_eur_m3, false_alarm_cost_eur=spec.false_alarm_cost_eur,
    )  # fmt: skip
    figures = {
        "evaluate step": {k: run.metrics.get(f"holdout_{k}") for k in FIGURES},
        "daily rows, alarms as the model raised them": leak_events.event_scores(raw),
        "daily events, sensor faults suppressed": leak_events.event_scores(checked),
    }
    table = pd.DataFrame({name: {k: f.get(k) for k in FIGURES} for name, f in figures.items()})
    print(table.round(4).to_string())


def _faults(events: pd.DataFrame, rows: pd.DataFrame, *, start, end) -> None:
    """The labelled sensor faults of the stretch: found as fault events, and alarms avoided."""
    labelled = pd.read_csv(resolve(FAULTS), parse_dates=["start", "end"])
    labelled = labelled[(labelled["start"] < end) & (labelled["end"] > start)]
    faults = events[events["kind"] == "sensor_fault"]
    for _, fault in labelled.iterrows():
        hit = faults[
            (faults["sensor"] == fault["column"])
            & (faults["first"] <= fault["end"])
            & (faults["last"] >= fault["start"])
        ]
        first = hit["first"].min() if len(hit) else None
        print(
            f"fault {fault['fault_id']} {fault['kind']} {fault['column']} {fault['start']} - "
            f"{fault['end']}: {len(hit)} fault events ({sorted(set(hit['fault']))}), first {first}"
        )
    print(f"fault events: {len(faults)} ({faults['fault'].value_counts().to_dict()})")
    print(f"leak alarms (rows) suppressed: {int(rows['suppressed'].sum())}")


if __name__ == "__main__":
    main()
