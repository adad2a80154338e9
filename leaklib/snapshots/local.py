"""Snapshots in a local folder: ``<folder>/<sha256>.parquet``, written atomically, read-only."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from leaklib.paths import resolve, writable_folder
from leaklib.snapshots.base import (
    SUFFIX,
    SnapshotError,
    check_sha256,
    check_subfolder,
    sha256_hex,
)


class LocalSnapshotStore:
    """Snapshots as files ``<folder>/<sha256>.parquet``, written atomically and read-only."""

    def __init__(self, folder: str | Path, *, suffix: str = SUFFIX) -> None:
        self.folder = resolve(folder)
        self.uri = self.folder.as_uri()
        self.suffix = suffix

    def within(self, subfolder: str, *, suffix: str, content_type: str) -> LocalSnapshotStore:
        """Return a store of other content-addressed objects (models, reports) in a subfolder."""
        return LocalSnapshotStore(self.folder / check_subfolder(subfolder), suffix=suffix)

    @classmethod
    def from_uri(cls, uri: str) -> LocalSnapshotStore:
        """Open the store a local ``snapshot_store`` parameter names (path or ``file://``)."""
        return cls(uri)

    def _path(self, sha256: str) -> Path:
        return self.folder / f"{check_sha256(sha256)}{self.suffix}"

    def check(self) -> None:
        """Create the folder if needed and fail clearly if it cannot be written."""
        writable_folder(self.folder, parameter="snapshot_store", error=SnapshotError)

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
        tmp = None
        try:
            fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=".incoming-", suffix=self.suffix)
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
        except OSError as exc:  # a full disk, a lost mount: nothing appears under the hash
            raise SnapshotError(f"cannot write {target.name} to {self.uri}: {exc}") from exc
        finally:
            if tmp is not None:
                with contextlib.suppress(FileNotFoundError):
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
