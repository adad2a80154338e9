"""What every snapshot backend shares: the store protocol, its error and the canonical bytes.

A snapshot is the table serialised to canonical Parquet bytes (fixed writer settings, no
pandas index) and stored under the SHA-256 of those bytes. Writing identical content again
reuses the stored object; different content can never overwrite it; reading verifies the hash.
"""

from __future__ import annotations

import hashlib
import io
import re
from dataclasses import asdict, dataclass
from typing import Protocol

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from leaklib.errors import LeakError

SUFFIX = ".parquet"
CONTENT_TYPE = "application/vnd.apache.parquet"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_SUBFOLDER = re.compile(r"^[A-Za-z0-9._=-]+(?:/[A-Za-z0-9._=-]+)*$")


class SnapshotError(LeakError, RuntimeError):
    """A snapshot is missing, unreachable or does not match its hash."""


@dataclass(frozen=True)
class Snapshot:
    """Where a snapshot is and what it holds."""

    uri: str
    sha256: str
    rows: int
    columns: int
    size_bytes: int

    def to_dict(self) -> dict:
        """Return the snapshot as a plain mapping for run records."""
        return asdict(self)


class SnapshotStore(Protocol):
    """A place that keeps snapshot bytes by hash. Backends: local folder, Cloud Storage."""

    uri: str

    def check(self) -> None:
        """Raise SnapshotError unless the store is reachable and writable."""

    def put(self, data: bytes, *, sha256: str) -> tuple[str, bool]:
        """Store bytes once under their hash; return (object URI, True if newly written)."""

    def get(self, sha256: str) -> bytes:
        """Return the bytes stored under a hash, verified; SnapshotError if absent or altered."""

    def exists(self, sha256: str) -> bool:
        """Return True when a snapshot with this hash is stored."""

    def within(self, subfolder: str, *, suffix: str, content_type: str) -> SnapshotStore:
        """Return a store of other content-addressed objects (models, reports) beside these."""


def check_sha256(sha256: str) -> str:
    """Return a hex SHA-256 digest unchanged; SnapshotError for anything else (a path, say)."""
    if not _SHA256.match(str(sha256)):
        raise SnapshotError(f"{sha256!r} is not a SHA-256 hex digest")
    return sha256


def check_subfolder(subfolder: str) -> str:
    """Return a relative folder of safe parts (``models``, ``reports/<run_id>``)."""
    if not _SUBFOLDER.match(subfolder) or any(p in (".", "..") for p in subfolder.split("/")):
        raise SnapshotError(f"{subfolder!r} is not a safe folder name inside a store")
    return subfolder


def sha256_hex(data: bytes) -> str:
    """Return the hex SHA-256 of some bytes."""
    return hashlib.sha256(data).hexdigest()


def canonical_bytes(frame: pd.DataFrame) -> bytes:
    """Serialise a table to Parquet bytes that depend only on its content."""
    table = pa.Table.from_pandas(frame.reset_index(drop=True), preserve_index=False)
    # pandas metadata holds library versions; keep only the schema-relevant parts
    table = table.replace_schema_metadata(None)
    sink = io.BytesIO()
    pq.write_table(
        table,
        sink,
        compression="zstd",
        compression_level=3,
        row_group_size=1_000_000,
        use_dictionary=True,
        write_statistics=True,
        store_schema=True,
    )
    return sink.getvalue()
