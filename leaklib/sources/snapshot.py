"""Read a recorded snapshot as the input table: ``snapshot:<sha256>`` or a snapshot's URI.

This is how a past run is run again on exactly its own data (``leak reproduce``), even after
the source table changed: the snapshot is read by hash and verified.
"""

from __future__ import annotations

import logging

import pandas as pd

from leaklib.params import Params
from leaklib.snapshots import SnapshotError, check_sha256, load_snapshot, open_snapshot_store
from leaklib.sources.base import SourceError, SourceTable, sampled

log = logging.getLogger(__name__)

SCHEME = "snapshot:"


class SnapshotReader:
    """Reads ``snapshot:<sha256>`` from the run's ``snapshot_store``, or a snapshot object URI
    (``gs://BUCKET/PREFIX/<sha256>.parquet``) from the store that holds it."""

    def __init__(self, uri: str, *, sha256: str, store: str | None) -> None:
        self.uri, self.sha256, self.store = uri, sha256, store

    @classmethod
    def from_uri(cls, uri: str) -> SnapshotReader:
        """Parse the source parameter into a hash and, for an object URI, its store."""
        if uri.startswith(SCHEME):
            location, name = None, uri.removeprefix(SCHEME)
        else:
            location, _, name = uri.rpartition("/")
            name = name.removesuffix(".parquet")
        try:
            return cls(uri, sha256=check_sha256(name), store=location)
        except SnapshotError as exc:
            raise SourceError(
                f"source {uri!r} does not name a snapshot: use snapshot:SHA256 or the URI of a "
                f"snapshot object (.../SHA256.parquet) ({exc})"
            ) from exc

    def check(self) -> None:
        """Nothing more to check: opening the reader checked the hash's form.

        Whether the store holds it is found when it is read (the store may be remote).
        """

    def identity(self) -> str:
        """Return the snapshot's hash: a snapshot never changes."""
        return f"sha256:{self.sha256}"

    def read(self, params: Params) -> pd.DataFrame:
        """Read the snapshot, verified against its hash."""
        location = self.store or params.snapshot_store
        try:
            frame = load_snapshot(self.sha256, store=open_snapshot_store(location))
        except SnapshotError as exc:
            raise SourceError(f"source {self.uri!r}: {exc}") from exc
        log.info("read snapshot %s (%d rows) from %s", self.sha256[:12], len(frame), location)
        return frame

    def extract(self, params: Params) -> SourceTable:
        """Read the snapshot and apply ``dataset.sample`` (a sampled run's own snapshot keeps
        every group it has: the rule chooses the same ones again)."""
        return sampled(self.read(params), params)
