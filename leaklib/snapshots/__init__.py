"""Write-once, content-addressed snapshots of validated tables.

The backend is chosen by the ``snapshot_store`` parameter's scheme (:mod:`leaklib.backends`):
a local folder (:mod:`leaklib.snapshots.local`) or ``gs://BUCKET/PREFIX``
(:mod:`leaklib.snapshots.gcs`). The local store is re-exported: it is light and tests and
benchmarks build it directly.
"""

from __future__ import annotations

import io
import logging

import pandas as pd
import pyarrow.parquet as pq

from leaklib.backends import open_backend
from leaklib.snapshots.base import (
    SUFFIX,
    Snapshot,
    SnapshotError,
    SnapshotStore,
    canonical_bytes,
    check_sha256,
    sha256_hex,
)
from leaklib.snapshots.local import LocalSnapshotStore

__all__ = [
    "SUFFIX",
    "LocalSnapshotStore",
    "Snapshot",
    "SnapshotError",
    "SnapshotStore",
    "canonical_bytes",
    "check_sha256",
    "load_snapshot",
    "open_snapshot_store",
    "sha256_hex",
    "snapshot_table",
]

log = logging.getLogger(__name__)


def open_snapshot_store(uri: str) -> SnapshotStore:
    """Open the store a ``snapshot_store`` parameter names (local folder or ``gs://``)."""
    return open_backend("snapshots", uri, error=SnapshotError)


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
