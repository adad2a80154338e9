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
- Where a leak event is (when the scoring run has ``localisation`` on and the table is a
  stream): a new or extended leak event is ranked as evaluate ranks a detected leak
  (:meth:`leaklib.leak_location.Locator.locate_event`: the deviations from its first alarm over
  ``localisation.window``, the run's cached signatures). Flat columns (:data:`LOCATION_COLUMNS`):
  ``top_node`` (the best candidate junction), ``top_pipes`` (its pipes, comma-separated),
  ``walk_m`` (the main a crew walks to cover the top-k nodes), ``candidates`` (JSON text: a list
  of ``{rank, node, score, pipes, distance_m}``, ``distance_m`` from the top node) and
  ``located_by`` (the scoring id that ranked it). An event that did not change (same last
  alarm) keeps its stored ranking and is not ranked again; so does an extended one whose
  window starts before the rows read. Other events have them empty (``walk_m`` NaN); events
  written before these columns existed read as unranked.
- ``kind`` ``sensor_fault``: a run of consecutive faulty readings of one sensor and one fault
  kind (:meth:`leaklib.sensor_faults.SensorFaults.events`); a run reaching the last row of a call
  is open, and continues in the next call when that call's first row is faulty too.

Two calls over consecutive stretches, or overlapping ones (the second writes only the rows after
the first's), give the same events as one call over both.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from leaklib.leak_events import AlarmEvent, alarm_events
from leaklib.leak_location import (
    LocalisationError,
    Location,
    Locator,
    event_locator,
    recorded_localisation,
)
from leaklib.metadata import MetadataStore
from leaklib.params import DatasetSpec, EventsSpec
from leaklib.run_record import RunRecord
from leaklib.sensor_faults import SensorFaults
from leaklib.sinks import SCORING_ID, WRITTEN_AT, open_events
from leaklib.snapshots import open_snapshot_store

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
    "top_node",
    "top_pipes",
    "walk_m",
    "candidates",
    "located_by",
)
FIELDS = EVENT_COLUMNS[:12]  # what an event is, before the model's ids and its location
LOCATION_COLUMNS = EVENT_COLUMNS[14:]  # where a leak event is (see the module docstring)
UNLOCATED = {"top_node": "", "top_pipes": "", "walk_m": np.nan, "candidates": "", "located_by": ""}


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
        out.append(_leak_row(event, _top(values, kept), rules=rules, prefix=prefix))
    if carry is not None and carry.event_id not in events:  # a short stretch that closed
        out.append({**{c: stored[c] for c in FIELDS}, "closed": True, "counts": False})
    return pd.DataFrame(out, columns=list(FIELDS))


def _leak_row(
    event: AlarmEvent, top: tuple[str, str], *, rules: EventsSpec, prefix: str
) -> dict[str, Any]:
    """One leak event as a row of :data:`FIELDS` (``top``: its top sensors and deviations)."""
    return {
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
        "top_sensors": top[0],
        "top_deviations": top[1],
    }


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
            out.append({**{c: row[c] for c in FIELDS}, "closed": True})
    return pd.DataFrame(out, columns=list(FIELDS))


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
    derived: pd.DataFrame | None = None,
    locator: Locator | None = None,
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
        derived: The table read with its derived columns, history rows included (to locate).
        locator: Ranks new and extended leak events (None: localisation is off).
    """
    sink = open_events(destination)
    earlier = sink.read(model_sha256=run.model.sha256)
    parts = []
    for mask, prefix, mine in _series(rows, earlier=earlier, group=dataset.group):
        parts += _series_events(
            rows[mask].reset_index(drop=True),
            deviation=deviation[mask].reset_index(drop=True),
            faults=None if faults is None else kept_faults(faults, mask),
            timestamp=dataset.timestamp,
            spacing=spacing,
            rules=rules,
            earlier=mine,
            prefix=prefix,
        )
    events = (
        pd.concat([p for p in parts if len(p)], ignore_index=True)
        if any(len(p) for p in parts)
        else pd.DataFrame(columns=list(FIELDS))
    )
    events["model_sha256"] = run.model.sha256
    events["run_id"] = run.run_id
    events = locate_events(
        events, earlier=earlier, derived=derived, locator=locator, scoring_id=scoring_id
    )
    events[SCORING_ID] = scoring_id
    events[WRITTEN_AT] = pd.Timestamp(written_at)
    sink.upsert(events)
    return events


def _series(
    rows: pd.DataFrame, *, earlier: pd.DataFrame, group: str | None
) -> list[tuple[np.ndarray, str, pd.DataFrame]]:
    """Each series of the rows: its rows' mask, its event ids' prefix, its earlier events."""
    if group is None:
        return [(np.ones(len(rows), dtype=bool), "", earlier)]
    out = []
    for value in rows[group].unique():
        prefix = f"{value}:"
        mine = earlier
        if len(earlier):
            mine = earlier[earlier["event_id"].astype(str).str.startswith(prefix)]
        out.append(((rows[group] == value).to_numpy(), prefix, mine))
    return out


def _series_events(
    part: pd.DataFrame,
    *,
    deviation: pd.DataFrame,
    faults: SensorFaults | None,
    timestamp: str,
    spacing: pd.Timedelta,
    rules: EventsSpec,
    earlier: pd.DataFrame,
    prefix: str,
) -> list[pd.DataFrame]:
    """One series' leak events, and its sensor-fault events when checked."""
    parts = [
        leak_events(
            part,
            timestamp=timestamp,
            spacing=spacing,
            rules=rules,
            earlier=earlier,
            deviation=deviation,
            prefix=prefix,
        )
    ]
    if faults is not None:
        parts.append(
            fault_events(
                faults,
                spacing=spacing,
                earlier=earlier,
                last_row=pd.Timestamp(part[timestamp].iloc[-1]),
                prefix=prefix,
            )
        )
    return parts


def location_fields(location: Location, *, scoring_id: str) -> dict[str, Any]:
    """Return one ranking as the events' flat location columns (:data:`LOCATION_COLUMNS`)."""
    ranked = location.to_dict()["candidates"]
    return {
        "top_node": location.best,
        "top_pipes": ",".join(ranked[0]["pipes"]),
        "walk_m": round(float(location.walk_m), 1),
        "candidates": json.dumps(ranked),
        "located_by": scoring_id,
    }


def location_of(row: pd.Series | dict[str, Any]) -> Location | None:
    """Return the ranking an event row holds (None: not ranked), as :func:`location_fields` wrote it."""
    text = stored_location(row)["candidates"]
    if not text:
        return None
    ranked = json.loads(text)
    table = pd.DataFrame(
        {
            "rank": [c["rank"] for c in ranked],
            "node": [c["node"] for c in ranked],
            "score": [c["score"] for c in ranked],
            "pipes": [", ".join(c["pipes"]) for c in ranked],
            "distance_m": [c["distance_m"] for c in ranked],
        }
    )
    return Location(candidates=table, walk_m=float(stored_location(row)["walk_m"]))


def stored_location(row: pd.Series | dict[str, Any]) -> dict[str, Any]:
    """Return the location columns an event row holds (unranked when it has none, or NaN)."""
    out = {}
    for column, empty in UNLOCATED.items():
        value = row.get(column, empty)
        out[column] = (
            empty if value is None or (isinstance(value, float) and np.isnan(value)) else value
        )
    return out


def locate_events(
    events: pd.DataFrame,
    *,
    earlier: pd.DataFrame,
    derived: pd.DataFrame | None,
    locator: Locator | None,
    scoring_id: str,
) -> pd.DataFrame:
    """Return the events with their location columns: new and extended leak events ranked.

    An event whose last alarm is the one stored (closed, say, or rewritten unchanged) keeps
    its stored ranking; so does one whose window starts before ``derived``'s first row.

    Args:
        events: The events of this call (:data:`FIELDS` and the model's ids).
        earlier: The events written before (their stored rankings).
        derived: The rows read with their derived columns (None: nothing is ranked).
        locator: The scoring run's locator (None: localisation is off).
        scoring_id: The scoring's id, written as ``located_by`` of what it ranks.
    """
    before: dict[str, Any] = {}
    if len(earlier):
        leaks = earlier[earlier["kind"] == LEAK]
        before = {str(row["event_id"]): row for _, row in leaks.iterrows()}
    first_read = None
    if derived is not None and len(derived) and locator is not None:
        first_read = pd.to_datetime(derived[locator.timestamp]).min()
    fields = []
    for _, event in events.iterrows():
        stored = before.get(str(event["event_id"]))
        kept = UNLOCATED if stored is None else stored_location(stored)
        unchanged = stored is not None and pd.Timestamp(stored["last"]) == pd.Timestamp(
            event["last"]
        )
        rankable = event["kind"] == LEAK and first_read is not None and not unchanged
        rankable = rankable and not (bool(event["closed"]) and not bool(event["counts"]))
        if rankable and pd.Timestamp(event["first"]) >= first_read:
            kept = location_fields(
                locator.locate_event(derived, start=pd.Timestamp(event["first"])),
                scoring_id=scoring_id,
            )
        fields.append(kept)
    located = pd.DataFrame(fields, index=events.index, columns=list(LOCATION_COLUMNS))
    return pd.concat(
        [events.drop(columns=list(LOCATION_COLUMNS), errors="ignore"), located], axis=1
    )


def located_count(events: pd.DataFrame, *, scoring_id: str) -> int:
    """Return how many of a call's events it ranked (``located_by`` is its scoring id)."""
    if "located_by" not in events:
        return 0
    return int((events["located_by"].astype(str) == scoring_id).sum())


def scoring_locator(run: RunRecord, *, store: MetadataStore) -> Locator | None:
    """Return the locator of a scoring with ``run``'s model (None: its localisation is off).

    The run's recorded ``localisation``; the signatures from its snapshot store (where its
    model is), indexed in ``store``: built by its evaluation, reused here, never solved per
    call when they are there.

    Raises:
        ParameterError: The network model file is missing, or a sensor is not in it.
        LocalisationError: The run's table does not derive the deviation localisation reads.
    """
    values = run.recorded_params()
    spec = recorded_localisation(values)
    dataset = DatasetSpec.model_validate(values["dataset"])
    if spec is None or not dataset.is_stream:
        return None
    locator = event_locator(
        spec,
        dataset=dataset,
        snapshots=open_snapshot_store(run.model.store),
        store=store,
    )
    derived = set(run.derived_features or [])
    missing = [f"{c}__{spec.deviation}" for c in locator.sigs.sensors]
    missing = [c for c in missing if c not in derived]
    if missing:
        raise LocalisationError(
            f"localisation.deviation: run {run.run_id!r} derives no {missing[0]!r}; it must "
            "be one of the dataset's derive block"
        )
    return locator
