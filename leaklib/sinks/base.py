"""What every scoring destination shares: the writer protocol, its error, the id column."""

from __future__ import annotations

from typing import Any, Protocol

import pandas as pd

from leaklib.errors import LeakError

SCORING_ID = "scoring_id"  # the column that makes a scoring's rows findable, and idempotent
MODEL_SHA = "model_sha256"  # the column naming the model that scored a row or raised an event
EVENT_KEY = ("model_sha256", "kind", "event_id")  # one event row per key (its latest version)
WRITTEN_AT = "written_at"  # when an event row was written; the latest version of a key wins


class SinkError(LeakError, RuntimeError):
    """Scored rows cannot be written; the message names the destination."""


class SinkWriter(Protocol):
    """Appends scored rows once per scoring id. Backends: local file, BigQuery."""

    uri: str

    def append(self, rows: pd.DataFrame, *, scoring_id: str) -> int:
        """Add the rows unless this scoring's rows are there already; return rows added."""

    def scored_until(
        self, *, model_sha256: str, timestamp: str, group: str | None
    ) -> dict[Any, Any]:
        """Return the last time scored by this model, per group (key None without a group)."""


class EventsWriter(Protocol):
    """One row per event (leak alarm or sensor fault), kept at its latest version."""

    uri: str

    def read(self, *, model_sha256: str) -> pd.DataFrame:
        """Return the latest version of every event this model raised (empty: none yet)."""

    def upsert(self, events: pd.DataFrame) -> int:
        """Write the events; a row with the key of an earlier one replaces it. Return rows.

        A row that is closed and does not count removes its key (a short alarm stretch).
        """
