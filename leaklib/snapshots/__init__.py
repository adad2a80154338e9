"""Write-once, content-addressed snapshots of validated tables.

A snapshot is the table serialised to canonical Parquet bytes (fixed writer settings, no
pandas index) and stored under the SHA-256 of those bytes. Writing identical content again
reuses the stored object; different content can never overwrite it; reading verifies the hash.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from leaklib.paths import is_local_path, resolve

log = logging.getLogger(__name__)

SUFFIX = ".parquet"


class SnapshotError(RuntimeError):
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


class LocalSnapshotStore:
    """Snapshots as files ``<folder>/<sha256>.parquet``, written atomically and read-only."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = resolve(folder)
        self.uri = self.folder.as_uri()

    def _path(self, sha256: str) -> Path:
        return self.folder / f"{sha256}{SUFFIX}"

    def check(self) -> None:
        """Create the folder if needed and fail clearly if it cannot be written."""
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SnapshotError(
                f"snapshot_store {str(self.folder)!r} cannot be created: {exc}"
            ) from exc
        if not os.access(self.folder, os.W_OK):
            raise SnapshotError(f"snapshot_store {str(self.folder)!r} is not writable")

    def exists(self, sha256: str) -> bool:
        """Return True when the snapshot file is present."""
        return self._path(sha256).is_file()

    def put(self, data: bytes, *, sha256: str) -> tuple[str, bool]:
        """Write the bytes once; an existing file with this hash is verified and reused."""
        self.check()
        target = self._path(sha256)
        if target.exists():
            self.get(sha256)
            return target.as_uri(), False
        fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=".incoming-", suffix=SUFFIX)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(tmp, 0o444)
            try:
                os.link(tmp, target)  # fails if another writer got there first: never replaces
                created = True
            except FileExistsError:
                created = False
        finally:
            os.unlink(tmp)
        if not created:
            self.get(sha256)
        return target.as_uri(), created

    def get(self, sha256: str) -> bytes:
        """Read and verify a snapshot."""
        path = self._path(sha256)
        if not path.is_file():
            raise SnapshotError(f"snapshot {sha256} not found in {self.uri}")
        data = path.read_bytes()
        actual = sha256_hex(data)
        if actual != sha256:
            raise SnapshotError(
                f"snapshot {path} is corrupt: its SHA-256 is {actual}, expected {sha256}"
            )
        return data


def open_snapshot_store(uri: str) -> SnapshotStore:
    """Open the store a ``snapshot_store`` parameter names (local folder or ``gs://``)."""
    if is_local_path(uri):
        return LocalSnapshotStore(uri)
    if uri.startswith("gs://"):
        from leaklib.snapshots.gcs import GCSSnapshotStore

        return GCSSnapshotStore.from_uri(uri)
    raise SnapshotError(
        f"snapshot_store {uri!r} is not supported: use a local folder or gs://BUCKET/PREFIX"
    )


def snapshot_table(frame: pd.DataFrame, *, store: SnapshotStore) -> Snapshot:
    """Write the frame once, content-addressed, and return where it went.

    Args:
        frame: Validated training data.
        store: Where snapshots live (local folder or a Cloud Storage bucket).
    """
    data = canonical_bytes(frame)
    digest = sha256_hex(data)
    uri, created = store.put(data, sha256=digest)
    log.info(
        "snapshot %s %s (%d bytes)", digest[:12], "written" if created else "reused", len(data)
    )
    return Snapshot(
        uri=uri, sha256=digest, rows=len(frame), columns=frame.shape[1], size_bytes=len(data)
    )


def load_snapshot(sha256: str, *, store: SnapshotStore) -> pd.DataFrame:
    """Read a snapshot by hash, verifying its bytes, and return the table."""
    data = store.get(sha256)
    return pq.read_table(io.BytesIO(data)).to_pandas()
