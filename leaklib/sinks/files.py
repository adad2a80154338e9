"""Scored rows, or their events, in a local Parquet or CSV file, rewritten atomically each time."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from leaklib.paths import resolve
from leaklib.sinks.base import EVENT_KEY, MODEL_SHA, SCORING_ID, WRITTEN_AT, SinkError

_TIMES = ("scored_at", "first", "last", WRITTEN_AT)  # columns a CSV gives back as times


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
            header = pd.read_csv(self.path, nrows=0).columns
            times = [c for c in (*_TIMES, "timestamp") if c in header]
            return pd.read_csv(self.path, parse_dates=times, keep_default_na=False, na_values=[""])
        except Exception as exc:  # pyarrow/pandas raise many types for a broken file
            raise SinkError(f"--out {self.uri!r} exists but cannot be read: {exc}") from exc

    def _write(self, frame: pd.DataFrame) -> None:
        """Replace the file with ``frame``: readers see the old file or the new one, never half."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(
            dir=self.path.parent, prefix=".incoming-", suffix=self.path.suffix
        )
        os.close(fd)
        try:
            if self.path.suffix.lower() == ".parquet":
                frame.to_parquet(tmp, index=False)
            else:
                frame.to_csv(tmp, index=False)
            os.replace(tmp, self.path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def scored_until(
        self, *, model_sha256: str, timestamp: str, group: str | None
    ) -> dict[Any, Any]:
        """Return the last time this model scored, per group (key None without a group)."""
        if not self.path.exists():
            return {}
        earlier = self._read()
        mine = earlier[earlier[MODEL_SHA] == model_sha256]
        if mine.empty or timestamp not in mine:
            return {}
        times = pd.to_datetime(mine[timestamp])
        if group is None:
            return {None: times.max()}
        return times.groupby(mine[group].to_numpy()).max().to_dict()

    def events(self) -> FileEvents:
        """The events kept in this file (the sink beside the rows' file)."""
        return FileEvents(self)

    def append(self, rows: pd.DataFrame, *, scoring_id: str) -> int:
        """Add the rows unless the file holds this scoring already; the file is replaced whole."""
        earlier = self._read() if self.path.exists() else None
        if earlier is not None and (earlier[SCORING_ID] == scoring_id).any():
            return 0
        combined = rows if earlier is None else pd.concat([earlier, rows], ignore_index=True)
        self._write(combined)
        return len(rows)


class FileEvents:
    """Events in a ``.parquet``/``.csv`` file: one row per key, replaced when written again."""

    def __init__(self, sink: FileSink) -> None:
        self.sink = sink
        self.uri = sink.uri

    def read(self, *, model_sha256: str) -> pd.DataFrame:
        """Return every event this model raised, as last written (empty: none yet)."""
        if not self.sink.path.exists():
            return pd.DataFrame()
        found = self.sink._read()
        return found[found[MODEL_SHA] == model_sha256].reset_index(drop=True)

    def upsert(self, events: pd.DataFrame) -> int:
        """Write the events; each replaces an earlier row with its key. Return rows written.

        A row that is closed and does not count (an alarm stretch that ended shorter than the
        shortest event) removes its key.
        """
        if events.empty:
            return 0
        written, key = len(events), list(EVENT_KEY)
        if self.sink.path.exists():
            earlier = self.sink._read()
            kept = earlier.merge(events[key].drop_duplicates(), on=key, how="left", indicator=True)
            earlier = earlier[(kept["_merge"] == "left_only").to_numpy()]
            events = pd.concat([earlier, events], ignore_index=True)
        void = events["closed"].astype(bool) & ~events["counts"].astype(bool)
        self.sink._write(events[~void.to_numpy()].reset_index(drop=True))
        return written
