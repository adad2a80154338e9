"""What every source backend shares: the reader protocol, its error and the memory check."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Protocol

import pandas as pd
import psutil

from leaklib.errors import LeakError
from leaklib.params import Params
from leaklib.sampling import SampleReport, sample_frame

ENV_MAX_TABLE_BYTES = "LEAK_MAX_TABLE_BYTES"  # overrides the memory limit (bytes)
MEMORY_SHARE = 0.5  # validation and the snapshot copy the table, so use at most half


class SourceError(LeakError, RuntimeError):
    """The input table cannot be read."""


@dataclass(frozen=True)
class SourceTable:
    """The rows a run extracts from its source, and what the source held besides.

    Attributes:
        frame: The declared columns the source has (a file read whole: every column), of the
            rows ``dataset.sample`` keeps (all rows without a sample).
        columns: Every column of the source, declared or not, for the schema check's report.
        sample: What the sample kept, of how much; None without a sample.
    """

    frame: pd.DataFrame
    columns: tuple[str, ...]
    sample: SampleReport | None = None


def sampled(frame: pd.DataFrame, params: Params) -> SourceTable:
    """Apply ``dataset.sample`` to a table already in memory (a CSV file, a snapshot)."""
    spec, group = params.dataset.sample, params.dataset.group
    if spec is None or group is None:
        return SourceTable(frame, tuple(frame.columns))
    kept, report = sample_frame(frame, group=group, spec=spec)
    return SourceTable(kept, tuple(frame.columns), report)


class SourceReader(Protocol):
    """Reads the input table a ``source`` parameter names. Backends: local file, BigQuery."""

    uri: str

    def check(self) -> None:
        """Refuse, before any run exists, a source that cannot be there: SourceError saying why.

        Only what the parameter itself shows, with no request to a service: a local file that
        is missing or not a .parquet/.csv file, a BigQuery identifier that breaks the rules.
        """

    def read(self, params: Params) -> pd.DataFrame:
        """Return the whole table; SourceError when it cannot be read."""

    def extract(self, params: Params) -> SourceTable:
        """Return the rows a run trains on: ``dataset.sample`` applied, at the source if it can."""

    def identity(self) -> str | None:
        """Return what pins the table's content (a hash), or None when nothing does.

        The step cache keys the extract step on it (:mod:`leaklib.pipeline.cache`): the same
        identity must mean the same rows.
        """


def _size(n: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if n < 1024 or unit == "TB":
            return f"{n:,.0f} {unit}" if unit == "bytes" else f"{n:,.1f} {unit}"
        n /= 1024
    return f"{n:,.1f} TB"


def memory_limit() -> tuple[int, str]:
    """Return the most bytes a table may take in memory here, and where the limit comes from."""
    override = os.environ.get(ENV_MAX_TABLE_BYTES)
    if override:
        try:
            return int(float(override)), f"{ENV_MAX_TABLE_BYTES}={override}"
        except ValueError:
            raise SourceError(
                f"{ENV_MAX_TABLE_BYTES} {override!r} is not a number of bytes"
            ) from None
    available = psutil.virtual_memory().available
    limit = int(available * MEMORY_SHARE)
    return limit, f"{MEMORY_SHARE:.0%} of the {_size(available)} of memory available now"


def check_fits(estimate: int, *, source: str, what: str) -> None:
    """Refuse a table whose estimated in-memory size is over :func:`memory_limit`.

    Args:
        estimate: Bytes the table would take once loaded.
        source: The ``source`` parameter, as the user wrote it.
        what: How the estimate was made (``12 M rows x 40 columns, from the Parquet metadata``).
    """
    limit, origin = memory_limit()
    if estimate > limit:
        raise SourceError(
            f"source {source!r} would take about {_size(estimate)} in memory ({what}), more "
            f"than the limit of {_size(limit)} ({origin}); read fewer rows (a BigQuery "
            f"source with bigquery.where or bigquery.limit) or use a machine with more memory"
        )
