"""Read the input table a ``source`` parameter names.

The backend is chosen by the parameter's scheme (:mod:`leaklib.backends`): a local Parquet or
CSV file (:mod:`leaklib.sources.files`), ``bigquery://PROJECT.DATASET.TABLE``
(:mod:`leaklib.sources.bigquery`) or a recorded snapshot (:mod:`leaklib.sources.snapshot`).

:func:`extract_source` is what the extract step reads: the sample of ``dataset.sample``
applied where the source can do it (in the query for BigQuery, batch by batch for a Parquet
file). :func:`read_source` reads the whole table (scoring new readings, say).
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from leaklib.backends import open_backend
from leaklib.params import Params
from leaklib.sources.base import SourceError, SourceReader, SourceTable

__all__ = [
    "SourceError",
    "SourceReader",
    "SourceTable",
    "extract_source",
    "read_source",
    "source_identity",
    "source_problems",
]


def source_problems(values: dict[str, Any]) -> list[str]:
    """Return what is wrong with a merged parameter mapping's ``dataset.source``, if anything.

    A check for :func:`leaklib.params.validate`, so that a source that cannot be there (a
    missing local file, a folder, a bad BigQuery identifier, an unknown scheme) is refused
    with the other parameter problems, before a run exists. Only the table's contents are
    left to the extract step.
    """
    dataset = values.get("dataset")
    source = dataset.get("source") if isinstance(dataset, dict) else None
    if not isinstance(source, str):
        return []  # missing or of the wrong type: the contract names it
    try:
        open_backend("sources", source, error=SourceError).check()
    except SourceError as exc:
        return [f"dataset.source: {exc}"]
    return []


def read_source(params: Params) -> pd.DataFrame:
    """Read the table named by ``params.dataset.source`` (local Parquet/CSV or ``bigquery://``)."""
    reader: SourceReader = open_backend("sources", params.dataset.source, error=SourceError)
    return reader.read(params)


def extract_source(params: Params) -> SourceTable:
    """Read the rows a run trains on from ``params.dataset.source``, sampled if it says so."""
    reader: SourceReader = open_backend("sources", params.dataset.source, error=SourceError)
    return reader.extract(params)


def source_identity(params: Params) -> str | None:
    """Return what pins the source's content (``sha256:<hex>``), or None (a BigQuery table)."""
    reader: SourceReader = open_backend("sources", params.dataset.source, error=SourceError)
    return reader.identity()
