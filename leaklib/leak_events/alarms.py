"""Alarm events: alarm rows joined by the events rules into events that may stay open across calls."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from leaklib.metrics import MetricError


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


def checked_times(times: Any, *, name: str = "times") -> pd.DatetimeIndex:
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
    index = checked_times(times)
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
    index = checked_times(times)
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
