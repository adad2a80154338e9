"""The events of a scoring: leak alarm events continued across calls, and sensor-fault events.

A call scores the rows after those its model scored before; its events are written beside the
rows (:func:`leaklib.sinks.events_destination`), one row per event (:data:`EVENT_COLUMNS`):

- ``kind`` ``leak``: an alarm event as :func:`leaklib.leak_events.alarm_events` forms it (the one
  definition, with ``events.min_duration`` and ``events.join_gap``). The event still open at the
  end of a call is read back by the next call and given as ``carry``: it is extended under the
  same id, not raised twice. ``counts`` is false while it is shorter than ``min_duration``
  (kept so that the next call can extend it); such a stretch that closes without reaching it is
  removed. ``top_sensors`` names the three sensors whose deviation from their own recent normal
  (the first derived column of each sensor, relative to its baseline: ``|dev| / max(|x - dev|,
  1)``) was the largest at the event's alarm rows, ``top_deviations`` those deviations.
- ``kind`` ``sensor_fault``: a run of consecutive faulty readings of one sensor and one fault
  kind (:meth:`leaklib.sensor_faults.SensorFaults.events`); a run reaching the last row of a call
  is open, and continues in the next call when that call's first row is faulty too.

Two calls over consecutive stretches, or overlapping ones (the second writes only the rows after
the first's), give the same events as one call over both.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from leaklib.leak_events import AlarmEvent, alarm_events
from leaklib.params import DatasetSpec, EventsSpec
from leaklib.run_record import RunRecord
from leaklib.sensor_faults import SensorFaults
from leaklib.sinks import SCORING_ID, WRITTEN_AT, open_events

LEAK = "leak"
FAULT = "sensor_fault"
TOP = 3  # sensors named per leak event
EVENT_COLUMNS = (
    "event_id",
    "kind",
    "sensor",
    "fault",
    "first",
    "last",
    "closed",
    "counts",
    "rows",
    "peak_probability",
    "top_sensors",
    "top_deviations",
    "model_sha256",
    "run_id",
)


def deviations(
    table: pd.DataFrame, *, sensors: Sequence[str], derived: Sequence[str]
) -> pd.DataFrame:
    """Return each sensor's relative deviation per row, from its first derived column.

    Sensors without a derived column are left out (the event then names the others).
    """
    out = {}
    for sensor in sensors:
        column = next((d for d in derived if d.startswith(f"{sensor}__")), None)
        if column is None or sensor not in table:
            continue
        dev = table[column].to_numpy(dtype=float)
        base = np.maximum(np.abs(table[sensor].to_numpy(dtype=float) - dev), 1.0)
        out[sensor] = np.abs(dev) / base
    return pd.DataFrame(out, index=table.index)


def _top(values: dict[str, float], earlier: tuple[str, str] | None) -> tuple[str, str]:
    """Merge this call's largest deviations with an extended event's stored top ones."""
    merged = dict(values)
    if earlier is not None and earlier[0]:
        for name, value in zip(earlier[0].split(","), earlier[1].split(","), strict=True):
            merged[name] = max(merged.get(name, -np.inf), float(value))
    best = sorted(merged.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP]
    return ",".join(n for n, _ in best), ",".join(f"{v:.6g}" for _, v in best)


def _carry(earlier: pd.DataFrame, *, spacing: pd.Timedelta) -> tuple[AlarmEvent | None, Any]:
    """Return the open leak event of ``earlier`` (one series' events) and its stored row."""
    if earlier.empty:
        return None, None
    open_ = earlier[(earlier["kind"] == LEAK) & ~earlier["closed"].astype(bool)]
    if open_.empty:
        return None, None
    row = open_.sort_values("last").iloc[-1]
    event = AlarmEvent(
        event_id=str(row["event_id"]),
        first_alarm=pd.Timestamp(row["first"]),
        last_alarm=pd.Timestamp(row["last"]),
        rows=int(row["rows"]),
        closed=False,
        spacing=spacing,
        peak=float(row["peak_probability"]),
    )
    return event, row


def leak_events(
    rows: pd.DataFrame,
    *,
    timestamp: str,
    spacing: pd.Timedelta,
    rules: EventsSpec,
    earlier: pd.DataFrame,
    deviation: pd.DataFrame,
    prefix: str = "",
) -> pd.DataFrame:
    """Return one series' leak events this call opens, extends or closes.

    A carried stretch that closes shorter than ``min_duration`` comes back closed and not
    counting: the sinks remove it.

    Args:
        rows: The series' newly scored rows in time order (``probability``, ``alarm``).
        timestamp: The time column.
        spacing: The row spacing.
        rules: ``events`` (min_duration, join_gap).
        earlier: The events written before for this series (any kind).
        deviation: :func:`deviations` of these rows.
        prefix: Put before each event id (the group, when the table has groups).
    """
    carry, stored = _carry(earlier, spacing=spacing)
    if carry is not None:
        carry = AlarmEvent(**{**carry.__dict__, "event_id": carry.event_id.removeprefix(prefix)})
    found = alarm_events(
        rows[timestamp],
        rows["alarm"].to_numpy(dtype=bool),
        min_duration=rules.min_duration,
        join_gap=rules.join_gap,
        spacing=spacing,
        proba=rows["probability"].to_numpy(dtype=float),
        carry=carry,
    )
    events = {e.event_id: e for e in found.events}
    if found.tail is not None:
        events.setdefault(found.tail.event_id, found.tail)
    times = pd.to_datetime(rows[timestamp]).to_numpy()
    alarms = rows["alarm"].to_numpy(dtype=bool)
    out = []
    for event in events.values():
        inside = (
            alarms
            & (times >= event.first_alarm.to_datetime64())
            & (times <= event.last_alarm.to_datetime64())
        )
        values = deviation[inside].max().dropna().to_dict() if inside.any() else {}
        kept = None
        if stored is not None and carry is not None and event.event_id == carry.event_id:
            kept = (str(stored["top_sensors"]), str(stored["top_deviations"]))
        names, sizes = _top(values, kept)
        out.append(
            {
                "event_id": prefix + event.event_id,
                "kind": LEAK,
                "sensor": "",
                "fault": "",
                "first": event.first_alarm,
                "last": event.last_alarm,
                "closed": event.closed,
                "counts": bool(event.duration >= pd.Timedelta(rules.min_duration)),
                "rows": event.rows,
                "peak_probability": event.peak,
                "top_sensors": names,
                "top_deviations": sizes,
            }
        )
    if carry is not None and carry.event_id not in events:  # a short stretch that closed
        out.append({**{c: stored[c] for c in EVENT_COLUMNS[:12]}, "closed": True, "counts": False})
    return pd.DataFrame(out, columns=list(EVENT_COLUMNS[:12]))


def fault_events(
    faults: SensorFaults,
    *,
    spacing: pd.Timedelta,
    earlier: pd.DataFrame,
    last_row: pd.Timestamp,
    prefix: str = "",
) -> pd.DataFrame:
    """Return one series' sensor-fault events of this call, open ones from before continued.

    Args:
        faults: The faults found at this call's rows (as found, not spread).
        spacing: The row spacing: a run continues one that ended one spacing before it.
        earlier: The events written before for this series (any kind).
        last_row: The time of the call's last row: a run reaching it stays open.
        prefix: Put before each event id (the group, when the table has groups).
    """
    runs = faults.events()
    openings = pd.DataFrame()
    if not earlier.empty:
        openings = earlier[(earlier["kind"] == FAULT) & ~earlier["closed"].astype(bool)]
    out = []
    for _, run in runs.iterrows():
        first, rows = pd.Timestamp(run["first"]), int(run["rows"])
        if not openings.empty:
            before = openings[
                (openings["sensor"] == run["sensor"])
                & (openings["fault"] == run["kind"])
                & (pd.to_datetime(openings["last"]) == first - spacing)
            ]
            if len(before):
                first, rows = (
                    pd.Timestamp(before["first"].iloc[0]),
                    rows + int(before["rows"].iloc[0]),
                )
        out.append(
            {
                "event_id": f"{prefix}{run['sensor']}:{run['kind']}:{first.isoformat()}",
                "kind": FAULT,
                "sensor": run["sensor"],
                "fault": run["kind"],
                "first": first,
                "last": pd.Timestamp(run["last"]),
                "closed": bool(pd.Timestamp(run["last"]) < last_row),
                "counts": True,
                "rows": rows,
                "peak_probability": np.nan,
                "top_sensors": "",
                "top_deviations": "",
            }
        )
    continued = {row["event_id"] for row in out}
    for _, row in openings.iterrows():
        if row["event_id"] not in continued and pd.Timestamp(row["last"]) < last_row:
            out.append({**{c: row[c] for c in EVENT_COLUMNS[:12]}, "closed": True})
    return pd.DataFrame(out, columns=list(EVENT_COLUMNS[:12]))


def kept_faults(found: SensorFaults, keep: np.ndarray) -> SensorFaults:
    """The faults at the kept rows only (the table was sorted, so time order is row order)."""
    starts = found.group_starts[keep].copy()
    if starts.size:
        starts[0] = True
        if found.groups is not None:
            groups = found.groups[keep]
            starts[1:] |= groups[1:] != groups[:-1]
    return replace(
        found,
        flags={kind: flags[keep] for kind, flags in found.flags.items()},
        times=found.times[keep],
        group_starts=starts,
        order=np.arange(int(keep.sum())),
        index=pd.RangeIndex(int(keep.sum())),
        groups=None if found.groups is None else found.groups[keep],
    )


def write_events(
    rows: pd.DataFrame,
    *,
    deviation: pd.DataFrame,
    faults: SensorFaults | None,
    run: RunRecord,
    dataset: DatasetSpec,
    spacing: pd.Timedelta,
    rules: EventsSpec,
    destination: str,
    scoring_id: str,
    written_at: str,
) -> pd.DataFrame:
    """Form the events of the rows just written, continuing the open ones, and write them.

    Args:
        rows: The rows just written, sorted by group and time.
        deviation: :func:`deviations` at those rows.
        faults: The faults found at those rows (None: no checks).
        run: The run record whose model scored.
        dataset: The model's dataset (group, timestamp).
        spacing: The row spacing.
        rules: ``events``.
        destination: Where the rows went; the events go beside them.
        scoring_id: The scoring's id, written with each event.
        written_at: When, as an ISO-8601 string.
    """
    sink = open_events(destination)
    earlier = sink.read(model_sha256=run.model.sha256)
    group, stamp = dataset.group, dataset.timestamp
    series = [(None, np.ones(len(rows), dtype=bool))]
    if group is not None:
        series = [(g, (rows[group] == g).to_numpy()) for g in rows[group].unique()]
    parts = []
    for value, mask in series:
        prefix = "" if value is None else f"{value}:"
        mine = earlier
        if len(earlier) and prefix:
            mine = earlier[earlier["event_id"].astype(str).str.startswith(prefix)]
        part = rows[mask].reset_index(drop=True)
        parts.append(
            leak_events(
                part,
                timestamp=stamp,
                spacing=spacing,
                rules=rules,
                earlier=mine,
                deviation=deviation[mask].reset_index(drop=True),
                prefix=prefix,
            )
        )
        if faults is not None:
            parts.append(
                fault_events(
                    kept_faults(faults, mask),
                    spacing=spacing,
                    earlier=mine,
                    last_row=pd.Timestamp(part[stamp].iloc[-1]),
                    prefix=prefix,
                )
            )
    events = (
        pd.concat([p for p in parts if len(p)], ignore_index=True)
        if any(len(p) for p in parts)
        else pd.DataFrame(columns=list(EVENT_COLUMNS[:12]))
    )
    events["model_sha256"] = run.model.sha256
    events["run_id"] = run.run_id
    events[SCORING_ID] = scoring_id
    events[WRITTEN_AT] = pd.Timestamp(written_at)
    sink.upsert(events)
    return events
