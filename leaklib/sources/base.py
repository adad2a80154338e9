"""What every source backend shares: the reader protocol and its error."""

from __future__ import annotations

from typing import Protocol

import pandas as pd

from leaklib.params import Params


class SourceError(RuntimeError):
    """The input table cannot be read."""


class SourceReader(Protocol):
    """Reads the input table a ``source`` parameter names. Backends: local file, BigQuery."""

    uri: str

    def read(self, params: Params) -> pd.DataFrame:
        """Return the table; SourceError when it cannot be read."""

    def identity(self) -> str | None:
        """Return what pins the table's content (a hash), or None when nothing does.

        The step cache keys the extract step on it (:mod:`leaklib.pipeline.cache`): the same
        identity must mean the same rows.
        """
