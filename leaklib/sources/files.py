"""Read the input table from a local Parquet or CSV file (a path or ``file://`` URI)."""

from __future__ import annotations

import hashlib
import logging

import pandas as pd

from leaklib.params import Params
from leaklib.paths import resolve
from leaklib.sources.base import SourceError

log = logging.getLogger(__name__)


class FileReader:
    """Reads a whole ``.parquet`` or ``.csv`` file, resolved against the project folder."""

    def __init__(self, uri: str) -> None:
        self.uri = uri

    @classmethod
    def from_uri(cls, uri: str) -> FileReader:
        """Open the reader a local ``source`` parameter names."""
        return cls(uri)

    def identity(self) -> str:
        """Return ``sha256:<hex>`` of the file's bytes, read in 1 MiB blocks."""
        path = resolve(self.uri)
        if not path.is_file():
            raise SourceError(f"source {self.uri!r} does not exist (looked at {path})")
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            while block := handle.read(1 << 20):
                digest.update(block)
        return f"sha256:{digest.hexdigest()}"

    def read(self, params: Params) -> pd.DataFrame:
        """Read every column of the file (the schema check picks the declared ones)."""
        source = self.uri
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
