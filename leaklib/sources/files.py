"""Read the input table from a local Parquet or CSV file (a path or ``file://`` URI).

Before a byte of data is loaded the file's size in memory is estimated (the Parquet metadata,
or the CSV's size on disk) and a table larger than this machine can hold is refused. A CSV
must be UTF-8 (a byte-order mark is fine) and comma-separated; a file that is not says so.
"""

from __future__ import annotations

import collections
import csv
import hashlib
import logging
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from leaklib.params import Params
from leaklib.paths import resolve
from leaklib.sources.base import SourceError, check_fits

log = logging.getLogger(__name__)

ENCODING = "utf-8-sig"  # UTF-8, with or without a byte-order mark
_OTHER_DELIMITERS = (";", "\t", "|")
_OBJECT_BYTES = 8  # a pointer per value at least; Parquet's own sizes cover the values


def _repeated(names: list[str], source: str) -> None:
    counts = collections.Counter(names)
    repeated = [f"{name!r} ({n} times)" for name, n in counts.items() if n > 1]
    if repeated:
        raise SourceError(
            f"source {source!r}: column {', '.join(repeated)} appears more than once; "
            "expected unique column names"
        )


def _check_parquet(path: Path, source: str) -> None:
    """Refuse repeated column names and a table too large for memory, from the metadata."""
    try:
        metadata = pq.ParquetFile(path).metadata
    except Exception as exc:  # pyarrow raises several types for a file that is not Parquet
        raise SourceError(f"source {source!r} cannot be read: {exc}") from exc
    _repeated(metadata.schema.to_arrow_schema().names, source)
    stored = sum(
        metadata.row_group(g).column(c).total_uncompressed_size
        for g in range(metadata.num_row_groups)
        for c in range(metadata.num_columns)
    )
    estimate = max(stored, metadata.num_rows * metadata.num_columns * _OBJECT_BYTES)
    check_fits(
        estimate,
        source=source,
        what=f"{metadata.num_rows:,} rows x {metadata.num_columns} columns, from its Parquet metadata",
    )


def _check_csv(path: Path, source: str) -> list[str]:
    """Refuse a CSV too large for memory, not UTF-8, or with repeated names; return its header."""
    check_fits(path.stat().st_size, source=source, what="its size on disk")
    try:
        with open(path, encoding=ENCODING, newline="") as handle:
            header = next(csv.reader(handle), [])
            for _ in handle:  # decode it all now, so a bad byte is found before pandas runs
                pass
    except UnicodeDecodeError as exc:
        raise SourceError(
            f"source {source!r} is not UTF-8 text: byte {exc.object[exc.start : exc.start + 1]!r} "
            f"at offset {exc.start} (a Windows or Latin-1 export?); save it as UTF-8 "
            '("CSV UTF-8" in Excel)'
        ) from None
    _repeated(header, source)
    return header


def _check_delimiter(header: list[str], source: str) -> None:
    if len(header) != 1:
        return
    for delimiter in _OTHER_DELIMITERS:
        if delimiter in header[0]:
            shown = "tab" if delimiter == "\t" else repr(delimiter)
            raise SourceError(
                f"source {source!r}: column {header[0]!r} looks like a {shown}-separated "
                "header; expected comma-separated values (save the file with commas)"
            )


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
        if suffix not in (".parquet", ".csv"):
            raise SourceError(f"source {source!r} must end in .parquet or .csv")
        try:
            if suffix == ".parquet":
                _check_parquet(path, source)
                frame = pd.read_parquet(path)
            else:
                _check_delimiter(_check_csv(path, source), source)
                frame = pd.read_csv(path, encoding=ENCODING)
        except SourceError:
            raise
        except Exception as exc:  # pyarrow/pandas raise many types for a broken file
            raise SourceError(f"source {source!r} cannot be read: {exc}") from exc
        log.info("read %d rows x %d columns from %s", len(frame), frame.shape[1], path)
        return frame
