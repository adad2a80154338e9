"""Where scored rows go: a local Parquet/CSV file or ``bigquery://PROJECT.DATASET.TABLE``.

The backend is chosen by the destination's scheme (:mod:`leaklib.backends`). Every sink
appends one scoring's rows at most once: rows carry their ``scoring_id``, and a scoring whose
rows are there already adds none.
"""

from __future__ import annotations

import pandas as pd

from leaklib.backends import open_backend
from leaklib.sinks.base import SCORING_ID, SinkError, SinkWriter

__all__ = ["SCORING_ID", "SinkError", "SinkWriter", "write_scores"]


def write_scores(rows: pd.DataFrame, *, destination: str, scoring_id: str) -> int:
    """Append a scoring's rows to ``destination`` unless they are there; return rows added."""
    sink: SinkWriter = open_backend("sinks", destination, error=SinkError)
    return sink.append(rows, scoring_id=scoring_id)
