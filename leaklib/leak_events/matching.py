"""Matching alarm events to leak events, and the field's scores of the result."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from leaklib.leak_events.alarms import AlarmEvent, Duration, EventError, duration, row_spacing
from leaklib.leak_events.leaks import LeakEvent, volumes_of_leaks
from leaklib.metrics import EVENT, EVENT_PER_KIND, LEAK_KINDS

_HOUR = pd.Timedelta(hours=1)


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
    water = volumes_of_leaks(volumes, leaks) if volumes is not None else None
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
