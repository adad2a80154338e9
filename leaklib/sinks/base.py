"""What every scoring destination shares: the writer protocol, its error, the id column."""

from __future__ import annotations

from typing import Protocol

import pandas as pd

from leaklib.errors import LeakError

SCORING_ID = "scoring_id"  # the column that makes a scoring's rows findable, and idempotent


class SinkError(LeakError, RuntimeError):
    """Scored rows cannot be written; the message names the destination."""


class SinkWriter(Protocol):
    """Appends scored rows once per scoring id. Backends: local file, BigQuery."""

    uri: str

    def append(self, rows: pd.DataFrame, *, scoring_id: str) -> int:
        """Add the rows unless this scoring's rows are there already; return rows added."""
