"""Where scored rows and their events go: a local Parquet/CSV file or ``bigquery://PROJECT.DATASET.TABLE``.

The backend is chosen by the destination's scheme (:mod:`leaklib.backends`). Every sink
appends one scoring's rows at most once: rows carry their ``scoring_id``, and a scoring whose
rows are there already adds none.

Events go beside the rows (:func:`events_destination`): ``alarms.parquet`` keeps its events in
``alarms.events.parquet`` (``.csv``: ``alarms.events.csv``), ``bigquery://P.D.T`` in
``bigquery://P.D.T_events``. One row per event and model (:data:`EVENT_KEY`): an event that a
later call extends is written again under the same key and replaces the earlier row (a file is
rewritten; a BigQuery table is appended to, and its readers take each key's latest
``written_at``).
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from leaklib.backends import open_backend, scheme_of
from leaklib.sinks.base import (
    EVENT_KEY,
    MODEL_SHA,
    SCORING_ID,
    WRITTEN_AT,
    EventsWriter,
    SinkError,
    SinkWriter,
)

__all__ = [
    "EVENT_KEY",
    "MODEL_SHA",
    "SCORING_ID",
    "WRITTEN_AT",
    "EventsWriter",
    "SinkError",
    "SinkWriter",
    "events_destination",
    "open_events",
    "scored_until",
    "write_scores",
]

EVENTS_SUFFIX = "events"  # alarms.parquet -> alarms.events.parquet; bigquery T -> T_events


def write_scores(rows: pd.DataFrame, *, destination: str, scoring_id: str) -> int:
    """Append a scoring's rows to ``destination`` unless they are there; return rows added."""
    sink: SinkWriter = open_backend("sinks", destination, error=SinkError)
    return sink.append(rows, scoring_id=scoring_id)


def scored_until(
    destination: str, *, model_sha256: str, timestamp: str, group: str | None
) -> dict[Any, Any]:
    """Return the last time ``destination`` holds a row of this model for, per group."""
    sink: SinkWriter = open_backend("sinks", destination, error=SinkError)
    return sink.scored_until(model_sha256=model_sha256, timestamp=timestamp, group=group)


def events_destination(destination: str) -> str:
    """Return where the events of the rows written to ``destination`` go (the module's rule)."""
    if scheme_of(destination) == "bigquery":
        return f"{destination}_{EVENTS_SUFFIX}"
    stem, dot, suffix = destination.rpartition(".")
    if not dot:
        raise SinkError(f"--out {destination!r} must end in .parquet or .csv")
    return f"{stem}.{EVENTS_SUFFIX}.{suffix}"


def open_events(destination: str) -> EventsWriter:
    """Open the events sink beside the rows sink ``destination``."""
    sink = open_backend("sinks", events_destination(destination), error=SinkError)
    return sink.events()
