"""Read the input table a ``source`` parameter names."""

from __future__ import annotations

import logging

import pandas as pd

from leaklib.params import Params
from leaklib.paths import is_local_path, resolve

log = logging.getLogger(__name__)


class SourceError(RuntimeError):
    """The input table cannot be read."""


def read_source(params: Params) -> pd.DataFrame:
    """Read the table named by ``params.source`` (local Parquet/CSV or ``bigquery://``)."""
    source = params.source
    if source.startswith("bigquery://"):
        from leaklib.sources.bigquery import read_bigquery

        return read_bigquery(params)
    if not is_local_path(source):
        raise SourceError(
            f"source {source!r} is not supported: use a .parquet/.csv path, a file:// URI "
            "or bigquery://PROJECT.DATASET.TABLE"
        )
    path = resolve(source)
    if not path.is_file():
        raise SourceError(f"source {source!r} does not exist (looked at {path})")
    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            frame = pd.read_parquet(path)
        elif suffix == ".csv":
            frame = pd.read_csv(path)
        else:
            raise SourceError(f"source {source!r} must end in .parquet or .csv")
    except SourceError:
        raise
    except Exception as exc:  # pyarrow/pandas raise many types for a broken file
        raise SourceError(f"source {source!r} cannot be read: {exc}") from exc
    log.info("read %d rows x %d columns from %s", len(frame), frame.shape[1], path)
    return frame
