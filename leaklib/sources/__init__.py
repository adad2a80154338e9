"""Read the input table a ``source`` parameter names.

The backend is chosen by the parameter's scheme (:mod:`leaklib.backends`): a local Parquet or
CSV file (:mod:`leaklib.sources.files`) or ``bigquery://PROJECT.DATASET.TABLE``
(:mod:`leaklib.sources.bigquery`).
"""

from __future__ import annotations

import pandas as pd

from leaklib.backends import open_backend
from leaklib.params import Params
from leaklib.sources.base import SourceError, SourceReader

__all__ = ["SourceError", "SourceReader", "read_source", "source_identity"]


def read_source(params: Params) -> pd.DataFrame:
    """Read the table named by ``params.dataset.source`` (local Parquet/CSV or ``bigquery://``)."""
    reader: SourceReader = open_backend("sources", params.dataset.source, error=SourceError)
    return reader.read(params)


def source_identity(params: Params) -> str | None:
    """Return what pins the source's content (``sha256:<hex>``), or None (a BigQuery table)."""
    reader: SourceReader = open_backend("sources", params.dataset.source, error=SourceError)
    return reader.identity()
