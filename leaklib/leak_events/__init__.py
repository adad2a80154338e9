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

import logging

import numpy as np
import pandas as pd

from leaklib.leak_events.alarms import (
    AlarmEvent,
    AlarmEvents,
    Duration,
    EventError,
    alarm_events,
    duration,
    row_spacing,
)
from leaklib.leak_events.leaks import (
    LEAK_TABLE_COLUMNS,
    SNAPSHOT_PREFIX,
    UNKNOWN_KIND,
    VOLUME_COLUMNS,
    LeakEvent,
    Leaks,
    leak_file_hashes,
    leaks_from_record,
    leaks_from_table,
    leaks_from_target,
    load_leaks,
    read_table,
    snapshot_leaks,
)
from leaklib.leak_events.matching import (
    ALARM_COLUMNS,
    LEAK_COLUMNS,
    EventResult,
    event_scores,
    match_events,
)
from leaklib.metrics import EVENT, LEAK_KINDS
from leaklib.params import EventsSpec, Params

# alarm events, leak events and the matching live in their modules; callers import from here
__all__ = [
    "ALARM_COLUMNS",
    "HEADLINE_EVENTS",
    "LEAK_COLUMNS",
    "LEAK_TABLE_COLUMNS",
    "SNAPSHOT_PREFIX",
    "UNKNOWN_KIND",
    "VOLUME_COLUMNS",
    "AlarmEvent",
    "AlarmEvents",
    "Duration",
    "EventError",
    "EventResult",
    "LeakEvent",
    "Leaks",
    "alarm_events",
    "duration",
    "evaluate_events",
    "evaluate_stream",
    "event_scores",
    "leak_file_hashes",
    "leaks_from_record",
    "leaks_from_table",
    "leaks_from_target",
    "load_leaks",
    "match_events",
    "read_table",
    "row_spacing",
    "score_table",
    "snapshot_leaks",
]

log = logging.getLogger(__name__)


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
