"""Leak events and the field's scores: alarm events, leak events, how they match, what they add up to.

One definition, used by the evaluation and by incremental scoring. On a time-ordered series
with row spacing ``s`` (given, or the median difference of the times), an alarm row at time
``t`` covers the window ``[t, t + s)``.

- **Alarm event.** Alarm rows whose quiet time between them (``next - (previous + s)``) is at
  most ``join_gap`` form one event. Its duration is ``last_alarm + s - first_alarm``; it counts
  once that reaches ``min_duration``. It is *closed* when the data show that no later alarm can
  join it (``last row - last_alarm > join_gap``), *open* otherwise. An open event is handed
  back as :attr:`AlarmEvents.tail` and given to the next call as ``carry``, which extends it
  under the same id (the first alarm's time) instead of raising it twice.
- **Leak event.** From the leak table (one row per leak: ``leak_id``, ``start``, ``end``,
  ``kind``), else from runs of the target column. A leak covers ``[start, end)``; an empty
  ``end`` lasts past the end of the data.
- **Matching.** Alarm events are taken in time order. One that starts inside a leak,
  ``start <= first_alarm < end + grace``, detects it, and its first alarm is the detection
  time. When it starts inside several leaks (they overlap), it detects the earliest-started
  leak not yet detected, so one alarm finds one leak, and a later alarm can find the other.
  When every leak it starts inside is already detected it is a *repeat*: neither a detection
  nor a false alarm; likewise an alarm inside a leak that began before the evaluated period
  (*earlier leak*; such leaks are not scored). Any other alarm event is a *false alarm*.
- **Scores** (names, labels and directions in :data:`leaklib.metrics.EVENT`):

  - recall: leaks detected of all leaks that start in the period; precision: detections of
    detections plus false alarms (0 without any); F1 their harmonic mean;
  - detection time: ``detection - start`` in hours, median and 90th percentile (linear
    interpolation) over the detected leaks;
  - false alarms per 30 days of the period;
  - LeakDB's early detection score (Vrachimis et al., CCWI/WDSA 2018, ``scoring_algorithm.m``
    of KIOS-Research/LeakDB): per leak ``2 / (1 + exp(5 * d / w))`` with ``d`` the detection
    delay and ``w = end - start + grace`` the detection window (the leak's duration plus the
    extra time, LeakDB's ``tw_ex``; a leak lasting past the period ends at its end; at least one
    row), 0 for a missed leak; the score is the mean over leaks (LeakDB's sum over ideal sum,
    here as a share, not a percentage). LeakDB also requires 75 % of the rows after the first
    alarm to alarm; here the alarm event and ``min_duration`` take that role.
  - BattLeDIM-style economic score: the water saved, the leak volume of every window from the
    detection on (``timestamp >= detection``, within the period), times ``water_price_eur_m3``,
    minus ``false_alarm_cost_eur`` per false alarm. The perfect score detects every leak at its
    start with no false alarm (all the leak water of the period, times the price); the share is
    the score over the perfect one. Without a volume table these are NaN.
  - For each kind of :data:`leaklib.metrics.LEAK_KINDS` the recall, detection times, early
    detection score and the share of that kind's leak water saved (no false-alarm cost: a false
    alarm has no kind).
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from leaklib.metrics import EVENT, EVENT_PER_KIND, LEAK_KINDS, MetricError
from leaklib.params import DatasetSpec, EventsSpec, Params
from leaklib.paths import resolve
from leaklib.snapshots import SnapshotStore, load_snapshot, snapshot_table

log = logging.getLogger(__name__)

LEAK_TABLE_COLUMNS = ("leak_id", "start", "end", "kind")
VOLUME_COLUMNS = ("leak_id", "timestamp", "volume_m3")
UNKNOWN_KIND = "unknown"  # a leak read from runs of the target column
OUTCOMES = ("detection", "false alarm", "repeat", "earlier leak")
_HOUR = pd.Timedelta(hours=1)


class EventError(MetricError):
    """Events cannot be formed or scored from what was given; the message names the input."""


Duration = pd.Timedelta | str


def duration(value: Duration, *, name: str) -> pd.Timedelta:
    """Return ``value`` (a Timedelta or a string such as ``"30min"``, ``"2h"``) as a Timedelta.

    Raises:
        EventError: naming ``name`` when the value is not a duration of zero or more.
    """
    try:
        parsed = pd.Timedelta(value)
    except (TypeError, ValueError) as exc:
        raise EventError(f"{name}: {value!r} is not a duration (e.g. '30min', '2h')") from exc
    if pd.isna(parsed) or parsed < pd.Timedelta(0):
        raise EventError(f"{name}: {value!r} must be a duration of zero or more")
    return parsed


def _times(times: Any, *, name: str = "times") -> pd.DatetimeIndex:
    """Return the times as an index, refusing missing, unordered or repeated ones."""
    try:
        index = pd.DatetimeIndex(pd.to_datetime(np.asarray(times))).as_unit("ns")
    except (TypeError, ValueError) as exc:
        raise EventError(f"{name}: not times ({exc})") from exc
    if index.hasnans:
        raise EventError(f"{name}: {int(index.isna().sum())} missing time(s)")
    if len(index) > 1 and not (np.diff(index.asi8) > 0).all():
        raise EventError(f"{name}: times must increase strictly (sort the rows; no repeats)")
    return index


def row_spacing(times: Any, *, spacing: Duration | None = None) -> pd.Timedelta:
    """Return the row spacing: ``spacing`` when given, else the median step between the times."""
    if spacing is not None:
        step = duration(spacing, name="spacing")
        if step <= pd.Timedelta(0):
            raise EventError(f"spacing: {spacing!r} must be longer than zero")
        return step
    index = _times(times)
    if len(index) < 2:
        raise EventError("spacing: give it when the data hold fewer than two times")
    return pd.Timedelta(int(np.median(np.diff(index.asi8))), unit="ns")


# --- alarm events ---------------------------------------------------------------------


@dataclass(frozen=True)
class AlarmEvent:
    """One alarm event: merged alarm rows, from the first alarm to the last."""

    event_id: str  # the first alarm's time, ISO 8601: the same in every call that sees it
    first_alarm: pd.Timestamp
    last_alarm: pd.Timestamp
    rows: int  # alarm rows in it
    closed: bool  # False: a later alarm may still join it (give it as the next call's carry)
    spacing: pd.Timedelta
    peak: float | None = None  # the highest probability of its rows, when given

    @property
    def duration(self) -> pd.Timedelta:
        """From the first alarm's window start to the last alarm's window end."""
        return self.last_alarm + self.spacing - self.first_alarm


@dataclass(frozen=True)
class AlarmEvents:
    """What one call found: the events that count, and the open one to carry into the next."""

    events: list[AlarmEvent]
    tail: AlarmEvent | None  # the open event at the end, whether or not it counts yet


def alarm_events(
    times: Any,
    alarms: Any,
    *,
    min_duration: Duration,
    join_gap: Duration,
    spacing: Duration | None = None,
    proba: Any | None = None,
    carry: AlarmEvent | None = None,
) -> AlarmEvents:
    """Merge per-row alarms of a time-ordered series into alarm events (see the module's rules).

    Two calls over consecutive stretches, the second given the first's ``tail`` as ``carry``,
    find the same events as one call over both (an event is reported again, extended, under
    the same id).

    Args:
        times: The rows' times, strictly increasing.
        alarms: Whether each row alarms (booleans, or 0/1).
        min_duration: The shortest alarm event that counts (``"30min"``).
        join_gap: The longest quiet time that still joins two alarms into one event.
        spacing: The row spacing (default: the median step of ``times``, or ``carry``'s).
        proba: Each row's probability, to report each event's peak.
        carry: The open event the previous call ended with (its ``tail``).
    """
    index, flags, scores = _alarm_inputs(times, alarms, proba)
    shortest = duration(min_duration, name="min_duration")
    gap = duration(join_gap, name="join_gap").value
    step = _carried_spacing(index, carry=carry, spacing=spacing)
    found = _merge_alarms(index, flags, scores, step=step, gap=gap, carry=carry)
    if len(index):
        end = index.asi8[-1]
        found = [replace(e, closed=bool(end - e.last_alarm.value > gap)) for e in found]
    tail = found[-1] if found and not found[-1].closed else None
    counted = [e for e in found if e.duration >= shortest]
    return AlarmEvents(events=counted, tail=tail)


def _alarm_inputs(
    times: Any, alarms: Any, proba: Any | None
) -> tuple[pd.DatetimeIndex, np.ndarray, np.ndarray | None]:
    """The times, the alarms as booleans and the probabilities, checked to match row for row."""
    index = _times(times)
    flags = np.asarray(alarms)
    if flags.shape != (len(index),):
        raise EventError(f"alarms: {flags.shape} values for {len(index)} times")
    if flags.dtype != bool:
        if not np.isin(flags, (0, 1)).all():
            raise EventError("alarms: expected booleans or 0/1")
        flags = flags.astype(bool)
    scores = None
    if proba is not None:
        scores = np.asarray(proba, dtype=float)
        if scores.shape != (len(index),):
            raise EventError(f"proba: {scores.shape} values for {len(index)} times")
    return index, flags, scores


def _carried_spacing(
    index: pd.DatetimeIndex, *, carry: AlarmEvent | None, spacing: Duration | None
) -> pd.Timedelta:
    """The row spacing (given, the carried event's, or measured), once the carry is checked.

    Raises:
        EventError: The carried event is closed, or does not end before the data's first time.
    """
    if carry is not None and carry.closed:
        raise EventError(f"carry: event {carry.event_id} is closed; only an open event continues")
    if spacing is None and carry is not None:
        spacing = carry.spacing
    step = row_spacing(index, spacing=spacing)
    if carry is not None and len(index) and index[0] <= carry.last_alarm:
        raise EventError(
            f"carry: event {carry.event_id} ends at {carry.last_alarm}, not before the data's "
            f"first time {index[0]}"
        )
    return step


def _merge_alarms(
    index: pd.DatetimeIndex,
    flags: np.ndarray,
    scores: np.ndarray | None,
    *,
    step: pd.Timedelta,
    gap: int,
    carry: AlarmEvent | None,
) -> list[AlarmEvent]:
    """Merge the alarm rows into events, all still open; the first extends ``carry`` if it joins.

    A carried event the first alarms do not join comes first, as it was.
    """
    at = index.asi8[flags]
    peaks = scores[flags] if scores is not None else None
    runs = np.flatnonzero(np.r_[True, np.diff(at) - step.value > gap])
    bounds = list(zip(runs, np.r_[runs[1:], len(at)], strict=True)) if len(at) else []
    joins = bool(
        carry is not None and len(at) and at[0] - carry.last_alarm.value - step.value <= gap
    )
    found: list[AlarmEvent] = []
    if carry is not None and not joins:
        found.append(carry)  # not extended by this call: maybe closed by its rows
    for i, (lo, hi) in enumerate(bounds):
        first, rows, peak = at[lo], hi - lo, None
        if peaks is not None:
            peak = float(np.max(peaks[lo:hi]))
        if i == 0 and joins:  # the first alarms continue the carried event
            first, rows = carry.first_alarm.value, carry.rows + rows
            if carry.peak is not None:
                peak = carry.peak if peak is None else max(peak, carry.peak)
        first_time = pd.Timestamp(first, tz=index.tz)
        found.append(
            AlarmEvent(
                event_id=first_time.isoformat(),
                first_alarm=first_time,
                last_alarm=pd.Timestamp(at[hi - 1], tz=index.tz),
                rows=int(rows),
                closed=False,
                spacing=step,
                peak=peak,
            )
        )
    return found


# --- leak events -------------------------------------------------------------------------


@dataclass(frozen=True)
class LeakEvent:
    """One leak: it leaks over ``[start, end)``; ``end`` None lasts past the end of the data."""

    leak_id: str
    start: pd.Timestamp
    end: pd.Timestamp | None
    kind: str  # one of metrics.LEAK_KINDS, or "unknown" for a run of the target
    pipe: str | None = None


def leaks_from_table(table: pd.DataFrame) -> list[LeakEvent]:
    """Return the leaks of a leak table (``leak_id``, ``start``, ``end``, ``kind``; ``pipe`` if any).

    An empty ``end`` is a leak lasting past the end of the data.
    """
    missing = [c for c in LEAK_TABLE_COLUMNS if c not in table.columns]
    if missing:
        raise EventError(
            f"leak table: missing column(s) {', '.join(missing)}; "
            f"expected {', '.join(LEAK_TABLE_COLUMNS)}"
        )
    ids = table["leak_id"].astype(str)
    if ids.duplicated().any():
        raise EventError(f"leak table: leak_id {ids[ids.duplicated()].iloc[0]!r} repeats")
    kinds = table["kind"].astype(str)
    wrong = sorted(set(kinds) - set(LEAK_KINDS))
    if wrong:
        raise EventError(f"leak table: kind {wrong[0]!r} is not one of {', '.join(LEAK_KINDS)}")
    try:
        starts = pd.to_datetime(table["start"])
        ends = pd.to_datetime(table["end"])
    except (TypeError, ValueError) as exc:
        raise EventError(f"leak table: start and end must be times ({exc})") from exc
    if starts.isna().any():
        raise EventError(f"leak table: leak {ids[starts.isna()].iloc[0]!r} has no start")
    early = ends.notna() & (ends <= starts)
    if early.any():
        raise EventError(f"leak table: leak {ids[early].iloc[0]!r} ends before it starts")
    pipes = table["pipe"].astype(str) if "pipe" in table.columns else None
    return [
        LeakEvent(
            leak_id=ids.iloc[i],
            start=pd.Timestamp(starts.iloc[i]),
            end=None if pd.isna(ends.iloc[i]) else pd.Timestamp(ends.iloc[i]),
            kind=kinds.iloc[i],
            pipe=None if pipes is None else pipes.iloc[i],
        )
        for i in np.argsort(starts.to_numpy(), kind="stable")
    ]


def leaks_from_target(
    times: Any, target: Any, *, spacing: Duration | None = None
) -> list[LeakEvent]:
    """Return each run of target rows as a leak of unknown kind, named by its start.

    A run covers its rows' windows; one that reaches the last row lasts past the data.
    """
    index = _times(times)
    flags = np.asarray(target)
    if flags.shape != (len(index),):
        raise EventError(f"target: {flags.shape} values for {len(index)} times")
    if not np.isin(flags, (0, 1)).all():
        raise EventError("target: expected 0/1 or booleans")
    if not len(index):
        return []
    step = row_spacing(index, spacing=spacing)
    leaking = flags.astype(bool)
    edges = np.diff(np.r_[0, leaking.astype(int), 0])
    firsts, lasts = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1) - 1
    return [
        LeakEvent(
            leak_id=f"leak-{index[a].isoformat()}",
            start=index[a],
            end=None if b == len(index) - 1 else index[b] + step,
            kind=UNKNOWN_KIND,
        )
        for a, b in zip(firsts, lasts, strict=True)
    ]


def _volumes(volumes: pd.DataFrame, leaks: Sequence[LeakEvent]) -> pd.DataFrame:
    """Return the volume table checked against the leaks, with times parsed."""
    missing = [c for c in VOLUME_COLUMNS if c not in volumes.columns]
    if missing:
        raise EventError(
            f"leak volumes: missing column(s) {', '.join(missing)}; "
            f"expected {', '.join(VOLUME_COLUMNS)}"
        )
    frame = pd.DataFrame(
        {
            "leak_id": volumes["leak_id"].astype(str).to_numpy(),
            "timestamp": pd.to_datetime(volumes["timestamp"]).to_numpy(),
            "volume_m3": pd.to_numeric(volumes["volume_m3"], errors="coerce").to_numpy(),
        }
    )
    if frame["volume_m3"].isna().any() or (frame["volume_m3"] < 0).any():
        raise EventError("leak volumes: volume_m3 must be numbers of zero or more")
    unknown = sorted(set(frame["leak_id"]) - {leak.leak_id for leak in leaks})
    if unknown:
        raise EventError(f"leak volumes: leak_id {unknown[0]!r} is not in the leak table")
    return frame


# --- matching and scores -------------------------------------------------------------------


LEAK_COLUMNS = (
    "leak_id",
    "kind",
    "pipe",
    "start",
    "end",
    "detected",
    "detection_time",
    "event_id",
    "delay_h",
    "early_score",
    "volume_m3",
    "water_saved_m3",
)
ALARM_COLUMNS = (
    "event_id",
    "first_alarm",
    "last_alarm",
    "duration_h",
    "rows",
    "peak",
    "closed",
    "outcome",
    "leak_id",
)


@dataclass(frozen=True)
class EventResult:
    """Alarm events matched to leak events over one period: a table per leak and per alarm."""

    leaks: pd.DataFrame  # LEAK_COLUMNS: the leaks that start in the period, by start
    alarms: pd.DataFrame  # ALARM_COLUMNS: every counted alarm event, by first alarm
    start: pd.Timestamp  # the period, [start, end): the first row to the last row's window end
    end: pd.Timestamp
    water_price_eur_m3: float
    false_alarm_cost_eur: float
    has_volumes: bool = field(default=False)

    @property
    def days(self) -> float:
        """The period's length in days."""
        return (self.end - self.start) / pd.Timedelta(days=1)


def match_events(
    alarms: Sequence[AlarmEvent],
    leaks: Sequence[LeakEvent],
    *,
    start: pd.Timestamp,
    end: pd.Timestamp,
    grace: Duration,
    spacing: Duration,
    volumes: pd.DataFrame | None = None,
    water_price_eur_m3: float,
    false_alarm_cost_eur: float,
) -> EventResult:
    """Match alarm events to leak events over the period ``[start, end)`` (see the module's rules).

    Args:
        alarms: The alarm events (any order).
        leaks: The leak events; only those starting in the period are scored.
        start: The period's first time (the first row).
        end: The period's end (the last row plus the spacing).
        grace: How long after a leak's end an alarm that starts still detects it.
        spacing: The row spacing (a leak's detection window is at least one row).
        volumes: Leak volume per window (``leak_id``, ``timestamp``, ``volume_m3``), for the
            water saved and the economic score; None leaves them NaN.
        water_price_eur_m3: What a cubic metre of water saved is worth.
        false_alarm_cost_eur: What each false alarm costs.
    """
    start, end = pd.Timestamp(start), pd.Timestamp(end)
    if not end > start:
        raise EventError(f"end: the period must end ({end}) after it starts ({start})")
    extra = duration(grace, name="grace")
    step = row_spacing(None, spacing=spacing)
    for name, value in (
        ("water_price_eur_m3", water_price_eur_m3),
        ("false_alarm_cost_eur", false_alarm_cost_eur),
    ):
        if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
            raise EventError(f"{name}: expected a number of zero or more, got {value!r}")
    water = _volumes(volumes, leaks) if volumes is not None else None
    in_period = [leak for leak in leaks if start <= leak.start < end]
    found, outcomes = _classify(alarms, leaks, start=start, end=end, extra=extra)
    rows = _leak_rows(
        in_period, found, leaks, water=water, start=start, end=end, extra=extra, step=step
    )
    return EventResult(
        leaks=pd.DataFrame(rows, columns=list(LEAK_COLUMNS)),
        alarms=pd.DataFrame(_alarm_rows(outcomes), columns=list(ALARM_COLUMNS)),
        start=start,
        end=end,
        water_price_eur_m3=float(water_price_eur_m3),
        false_alarm_cost_eur=float(false_alarm_cost_eur),
        has_volumes=water is not None,
    )


def _classify(
    alarms: Sequence[AlarmEvent],
    leaks: Sequence[LeakEvent],
    *,
    start: pd.Timestamp,
    end: pd.Timestamp,
    extra: pd.Timedelta,
) -> tuple[dict[str, AlarmEvent], list[tuple[AlarmEvent, str, str | None]]]:
    """Take the alarm events in time order: the detecting alarm of each leak, every outcome."""
    in_period = [leak for leak in leaks if start <= leak.start < end]
    earlier = [leak for leak in leaks if leak.start < start]
    found: dict[str, AlarmEvent] = {}
    outcomes: list[tuple[AlarmEvent, str, str | None]] = []
    for alarm in sorted(alarms, key=lambda a: a.first_alarm):
        t = alarm.first_alarm
        inside = [
            leak
            for leak in in_period
            if leak.start <= t and (leak.end is None or t < leak.end + extra)
        ]
        fresh = [leak for leak in inside if leak.leak_id not in found]
        if fresh:
            found[fresh[0].leak_id] = alarm  # the earliest-started leak not yet detected
            outcomes.append((alarm, "detection", fresh[0].leak_id))
        elif inside:
            outcomes.append((alarm, "repeat", inside[0].leak_id))
        else:
            before = [leak for leak in earlier if leak.end is None or t < leak.end + extra]
            if before:
                outcomes.append((alarm, "earlier leak", before[0].leak_id))
            else:
                outcomes.append((alarm, "false alarm", None))
    return found, outcomes


def _leak_rows(
    in_period: Sequence[LeakEvent],
    found: dict[str, AlarmEvent],
    leaks: Sequence[LeakEvent],
    *,
    water: pd.DataFrame | None,
    start: pd.Timestamp,
    end: pd.Timestamp,
    extra: pd.Timedelta,
    step: pd.Timedelta,
) -> list[dict[str, Any]]:
    """One row per leak of the period: found or not, when, its scores and its water."""
    closes = {leak.leak_id: (leak.end if leak.end is not None else end) for leak in leaks}
    per_leak: dict[str, pd.DataFrame] = {}
    if water is not None:
        within = water[(water["timestamp"] >= start) & (water["timestamp"] < end)]
        per_leak = {str(key): part for key, part in within.groupby("leak_id", sort=False)}
    rows = []
    for leak in in_period:
        alarm = found.get(leak.leak_id)
        delay = (alarm.first_alarm - leak.start) / _HOUR if alarm else math.nan
        window = max((min(closes[leak.leak_id], end) - leak.start) + extra, step) / _HOUR
        volume = saved = math.nan
        if water is not None:
            mine = per_leak.get(leak.leak_id, water.iloc[:0])
            volume = float(mine["volume_m3"].sum())
            saved = (
                float(mine.loc[mine["timestamp"] >= alarm.first_alarm, "volume_m3"].sum())
                if alarm
                else 0.0
            )
        rows.append(
            {
                "leak_id": leak.leak_id,
                "kind": leak.kind,
                "pipe": leak.pipe,
                "start": leak.start,
                "end": leak.end,
                "detected": alarm is not None,
                "detection_time": alarm.first_alarm if alarm else pd.NaT,
                "event_id": alarm.event_id if alarm else None,
                "delay_h": delay,
                "early_score": 2 / (1 + math.exp(5 * delay / window)) if alarm else 0.0,
                "volume_m3": volume,
                "water_saved_m3": saved,
            }
        )
    return rows


def _alarm_rows(outcomes: list[tuple[AlarmEvent, str, str | None]]) -> list[dict[str, Any]]:
    """One row per counted alarm event with its outcome and the leak it concerns."""
    return [
        {
            "event_id": alarm.event_id,
            "first_alarm": alarm.first_alarm,
            "last_alarm": alarm.last_alarm,
            "duration_h": alarm.duration / _HOUR,
            "rows": alarm.rows,
            "peak": math.nan if alarm.peak is None else alarm.peak,
            "closed": alarm.closed,
            "outcome": outcome,
            "leak_id": leak_id,
        }
        for alarm, outcome, leak_id in outcomes
    ]


def _quantile(values: np.ndarray, weights: np.ndarray, q: float) -> float:
    """The ``q`` quantile of the values, each repeated by its (whole) weight; NaN when none."""
    repeated = np.repeat(values, weights.astype(int))
    return float(np.quantile(repeated, q)) if len(repeated) else math.nan


def _ratio(top: float, bottom: float) -> float:
    return top / bottom if bottom else math.nan


def event_scores(
    result: EventResult,
    *,
    leak_weights: np.ndarray | None = None,
    alarm_weights: np.ndarray | None = None,
    days: float | None = None,
) -> dict[str, float]:
    """Return every event metric of :data:`leaklib.metrics.EVENT` for a matched result.

    The weights (how many times each leak row and alarm row counts, with the period's length
    in ``days``) score a bootstrap draw as if the drawn rows were stacked; leave them out for
    the result itself.
    """
    lw, aw = _event_weights(result, leak_weights=leak_weights, alarm_weights=alarm_weights)
    days = result.days if days is None else float(days)
    leaks = _leak_columns(result.leaks)
    outcome = result.alarms["outcome"].to_numpy()
    hits = float(aw[outcome == "detection"].sum())
    false = float(aw[outcome == "false alarm"].sum())
    overall = _leak_part(lw, leaks)
    scores = {**overall, **_alarm_part(result, overall, hits=hits, false=false, days=days)}
    for kind in LEAK_KINDS:
        mine = _leak_part(lw * (leaks["kind"] == kind), leaks)
        mine["event_water_saved_share"] = _ratio(
            mine["event_water_saved_m3"], mine["event_water_m3"]
        )
        scores |= {f"{name}_{kind}": mine[name] for name in EVENT_PER_KIND}
    if not result.has_volumes:
        for name in scores:
            if "water" in name or "economic" in name:
                scores[name] = math.nan
    return {name: round(float(scores[name]), 6) for name in EVENT}


def _event_weights(
    result: EventResult, *, leak_weights: np.ndarray | None, alarm_weights: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """How many times each leak and each alarm event counts (once each when not given).

    Raises:
        EventError: The weights do not match the result's leaks and alarm events one to one.
    """
    leaks, alarms = result.leaks, result.alarms
    lw = np.ones(len(leaks)) if leak_weights is None else np.asarray(leak_weights, dtype=float)
    aw = np.ones(len(alarms)) if alarm_weights is None else np.asarray(alarm_weights, dtype=float)
    if lw.shape != (len(leaks),) or aw.shape != (len(alarms),):
        raise EventError(
            f"weights: {lw.shape} leak and {aw.shape} alarm weights for "
            f"{len(leaks)} leaks and {len(alarms)} alarm events"
        )
    return lw, aw


def _leak_columns(leaks: pd.DataFrame) -> dict[str, np.ndarray]:
    """The per-leak columns the scores read, as arrays, read once for every part."""
    return {
        "detected": leaks["detected"].to_numpy(dtype=bool),
        "delay_h": leaks["delay_h"].to_numpy(dtype=float),
        "early_score": leaks["early_score"].to_numpy(dtype=float),
        "volume_m3": leaks["volume_m3"].to_numpy(dtype=float),
        "water_saved_m3": leaks["water_saved_m3"].to_numpy(dtype=float),
        "kind": leaks["kind"].to_numpy(),
    }


def _leak_part(w: np.ndarray, leaks: dict[str, np.ndarray]) -> dict[str, float]:
    """The leak-side scores, each leak counted ``w`` times (0 leaves it out of this part)."""
    detected = leaks["detected"]
    delays = leaks["delay_h"]
    n = w.sum()
    caught = w * detected
    return {
        "event_recall": _ratio(caught.sum(), n),
        "event_leaks_detected": float(caught.sum()),
        "event_detection_hours_median": _quantile(delays[detected], caught[detected], 0.5),
        "event_detection_hours_p90": _quantile(delays[detected], caught[detected], 0.9),
        "event_early_detection": _ratio(float((w * leaks["early_score"]).sum()), n),
        "event_water_saved_m3": float((w * leaks["water_saved_m3"]).sum()),
        "event_water_m3": float((w * leaks["volume_m3"]).sum()),
    }


def _alarm_part(
    result: EventResult, overall: dict[str, float], *, hits: float, false: float, days: float
) -> dict[str, float]:
    """Precision, F1, false alarms and the economic score, from the alarms and ``overall``."""
    precision = _ratio(hits, hits + false) if hits + false else 0.0
    recall = overall["event_recall"]
    f1 = (
        math.nan
        if math.isnan(recall)
        else (2 * precision * recall / (precision + recall) if precision + recall else 0.0)
    )
    perfect = result.water_price_eur_m3 * overall["event_water_m3"]
    economic = result.water_price_eur_m3 * overall["event_water_saved_m3"] - (
        result.false_alarm_cost_eur * false
    )
    return {
        "event_precision": precision,
        "event_f1": f1,
        "event_false_alarms": false,
        "event_false_alarms_per_30d": _ratio(false, days / 30),
        "event_economic_eur": economic,
        "event_economic_perfect_eur": perfect,
        "event_economic_share": _ratio(economic, perfect),
    }


# --- from a scored table ----------------------------------------------------------------------


def read_table(path: str, *, parameter: str) -> pd.DataFrame:
    """Read a leak table or volume table (.csv or .parquet; relative to the project)."""
    file = resolve(path)
    if file.suffix not in (".csv", ".parquet"):
        raise EventError(f"{parameter}: {path!r} must be a .csv or .parquet file")
    if not file.is_file():
        raise EventError(f"{parameter}: {path!r} does not exist")
    return pd.read_parquet(file) if file.suffix == ".parquet" else pd.read_csv(file)


@dataclass(frozen=True)
class Leaks:
    """The true leaks of a stream: the leak table and its volumes (either may be absent)."""

    table: pd.DataFrame | None = None
    volumes: pd.DataFrame | None = None
    sha256: dict[str, str] = field(default_factory=dict)  # file -> content hash, for the record


SNAPSHOT_PREFIX = "snapshot:"  # a leak file pinned to a snapshot (a reproduction's)


def leak_file_hashes(dataset: DatasetSpec) -> dict[str, str | None]:
    """Return the SHA-256 of the leak table and volume files (None: not set or missing)."""
    hashes = {}
    for key in ("leak_table", "leak_volumes"):
        path = getattr(dataset, key)
        if path and path.startswith(SNAPSHOT_PREFIX):
            hashes[key] = path.removeprefix(SNAPSHOT_PREFIX)
            continue
        file = resolve(path) if path else None
        hashes[key] = (
            hashlib.sha256(file.read_bytes()).hexdigest() if file and file.is_file() else None
        )
    return hashes


def _read_leak_file(path: str, *, key: str, store: SnapshotStore | None) -> pd.DataFrame:
    if not path.startswith(SNAPSHOT_PREFIX):
        return read_table(path, parameter=f"dataset.{key}")
    if store is None:
        raise EventError(f"dataset.{key}: {path!r} is a snapshot; reading it needs the store")
    return load_snapshot(path.removeprefix(SNAPSHOT_PREFIX), store=store)


def load_leaks(dataset: DatasetSpec, *, store: SnapshotStore | None = None) -> Leaks:
    """Read ``dataset.leak_table`` and ``dataset.leak_volumes`` (None where not set).

    Either may be ``snapshot:<sha256>`` (a reproduction pins them so), read from ``store``.
    """
    files = {"leak_table": dataset.leak_table, "leak_volumes": dataset.leak_volumes}
    frames = {
        key: _read_leak_file(path, key=key, store=store) if path else None
        for key, path in files.items()
    }
    hashes = {
        path: digest
        for path, digest in zip(files.values(), leak_file_hashes(dataset).values(), strict=True)
        if path and digest
    }
    return Leaks(table=frames["leak_table"], volumes=frames["leak_volumes"], sha256=hashes)


def snapshot_leaks(dataset: DatasetSpec, *, store: SnapshotStore) -> dict[str, Any]:
    """Write the leak table and volumes as snapshots; return their records (empty: none set).

    A run then reads them by hash, as it reads its table, so a reproduction finds them after
    the files changed.
    """
    leaks = load_leaks(dataset, store=store)
    written = {}
    for key, frame in (("table", leaks.table), ("volumes", leaks.volumes)):
        if frame is not None:
            written[key] = snapshot_table(frame, store=store).to_dict()
    return written


def leaks_from_record(recorded: dict[str, Any], *, store: SnapshotStore) -> Leaks:
    """Read the leak table and volumes a run recorded (:func:`snapshot_leaks`) by hash."""
    frames = {
        key: load_snapshot(entry["sha256"], store=store) if entry else None
        for key, entry in ((k, recorded.get(k)) for k in ("table", "volumes"))
    }
    hashes = {key: entry["sha256"] for key, entry in recorded.items() if entry}
    return Leaks(table=frames["table"], volumes=frames["volumes"], sha256=hashes)


def evaluate_stream(
    frame: pd.DataFrame, proba: np.ndarray, *, params: Params, threshold: float, leaks: Leaks
) -> EventResult | None:
    """Return the leak events of a stream's scored rows, or None when the table is no stream."""
    dataset = params.dataset
    if not dataset.is_stream:
        return None
    return evaluate_events(
        frame,
        proba,
        threshold=threshold,
        timestamp=dataset.timestamp,
        target=dataset.target,
        spec=params.events,
        leak_table=leaks.table,
        volumes=leaks.volumes,
    )


HEADLINE_EVENTS = (
    "event_recall",
    "event_detection_hours_median",
    "event_detection_hours_p90",
    "event_false_alarms_per_30d",
    "event_precision",
    "event_f1",
    "event_early_detection",
    "event_economic_share",
)


def score_table(scores: dict[str, float]) -> pd.DataFrame:
    """Return the headline event scores as a table: all leaks, then abrupt and incipient."""
    rows = {}
    for name in HEADLINE_EVENTS:
        row = {"all leaks": scores.get(name)}
        for kind in LEAK_KINDS:
            row[kind] = scores.get(f"{name}_{kind}")
        rows[EVENT[name].label] = row
    rows["economic score (EUR)"] = {"all leaks": scores.get("event_economic_eur")}
    rows["perfect economic score (EUR)"] = {"all leaks": scores.get("event_economic_perfect_eur")}
    return pd.DataFrame.from_dict(rows, orient="index")


def evaluate_events(
    frame: pd.DataFrame,
    proba: np.ndarray,
    *,
    threshold: float,
    timestamp: str,
    target: str,
    spec: EventsSpec,
    leak_table: pd.DataFrame | None = None,
    volumes: pd.DataFrame | None = None,
) -> EventResult:
    """Turn one series' scored rows into alarm events and match them to its leaks.

    Args:
        frame: The rows of one time-ordered series (any row order; one row per time).
        proba: Each row's leak probability; ``proba >= threshold`` alarms.
        threshold: The alarm threshold.
        timestamp: The time column.
        target: The label column, whose runs are the leaks when no ``leak_table`` is given.
        spec: The ``events`` parameters.
        leak_table: The leaks (see :func:`leaks_from_table`), or None.
        volumes: Leak volume per window (needs ``leak_table``), or None.
    """
    if volumes is not None and leak_table is None:
        raise EventError("volumes: leak volumes need the leak table (leak_table) they refer to")
    times, order, scores = _time_order(frame, proba, timestamp=timestamp, target=target)
    step = row_spacing(times)
    found = alarm_events(
        times,
        scores[order] >= threshold,
        min_duration=spec.min_duration,
        join_gap=spec.join_gap,
        spacing=step,
        proba=scores[order],
    )
    leaks = (
        leaks_from_table(leak_table)
        if leak_table is not None
        else leaks_from_target(times, frame[target].to_numpy()[order], spacing=step)
    )
    log.info("%d alarm events, %d leaks", len(found.events), len(leaks))
    return match_events(
        found.events,
        leaks,
        start=pd.Timestamp(times[0]),
        end=pd.Timestamp(times[-1]) + step,
        grace=spec.grace,
        spacing=step,
        volumes=volumes,
        water_price_eur_m3=spec.water_price_eur_m3,
        false_alarm_cost_eur=spec.false_alarm_cost_eur,
    )


def _time_order(
    frame: pd.DataFrame, proba: np.ndarray, *, timestamp: str, target: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The series' times in order, the order that sorts the rows, and the probabilities.

    Raises:
        EventError: A column is missing, the probabilities do not match the rows, or a time
            repeats (the table is not one series).
    """
    for role, column in (("timestamp", timestamp), ("target", target)):
        if column not in frame.columns:
            raise EventError(f"{role} column {column!r} is not in the table")
    scores = np.asarray(proba, dtype=float)
    if scores.shape != (len(frame),):
        raise EventError(f"proba: {scores.shape} values for {len(frame)} rows")
    stamps = pd.to_datetime(frame[timestamp]).to_numpy()
    order = np.argsort(stamps, kind="stable")
    times = stamps[order]
    if len(times) > 1 and (np.diff(times) == np.timedelta64(0)).any():
        raise EventError(
            f"timestamp column {timestamp!r} repeats a time: events need one series "
            "(one row per time)"
        )
    return times, order, scores
