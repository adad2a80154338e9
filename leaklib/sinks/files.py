"""Scored rows in a local Parquet or CSV file, rewritten atomically with each new scoring."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pandas as pd

from leaklib.paths import resolve
from leaklib.sinks.base import SCORING_ID, SinkError


class FileSink:
    """A ``.parquet`` or ``.csv`` file holding every scoring written to it."""

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self.path: Path = resolve(uri)
        if self.path.suffix.lower() not in (".parquet", ".csv"):
            raise SinkError(f"--out {uri!r} must end in .parquet or .csv")

    @classmethod
    def from_uri(cls, uri: str) -> FileSink:
        """Open the sink a local ``--out`` names (a path or ``file://`` URI)."""
        return cls(uri)

    def _read(self) -> pd.DataFrame:
        try:
            if self.path.suffix.lower() == ".parquet":
                return pd.read_parquet(self.path)
            return pd.read_csv(self.path, parse_dates=["scored_at"])
        except Exception as exc:  # pyarrow/pandas raise many types for a broken file
            raise SinkError(f"--out {self.uri!r} exists but cannot be read: {exc}") from exc

    def append(self, rows: pd.DataFrame, *, scoring_id: str) -> int:
        """Add the rows unless the file holds this scoring already; the file is replaced whole."""
        earlier = self._read() if self.path.exists() else None
        if earlier is not None and (earlier[SCORING_ID] == scoring_id).any():
            return 0
        combined = rows if earlier is None else pd.concat([earlier, rows], ignore_index=True)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(
            dir=self.path.parent, prefix=".incoming-", suffix=self.path.suffix
        )
        os.close(fd)
        try:
            if self.path.suffix.lower() == ".parquet":
                combined.to_parquet(tmp, index=False)
            else:
                combined.to_csv(tmp, index=False)
            os.replace(tmp, self.path)  # readers see the old file or the new one, never half
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return len(rows)
