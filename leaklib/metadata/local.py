"""Run records in a local folder: one JSON file per document, updated under a file lock.

Read-modify-write is serialised with a lock per collection, so this store behaves like the
Firestore backend (:mod:`leaklib.metadata.firestore`) and either can be used behind the same
parameter.
"""

from __future__ import annotations

import fcntl
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from leaklib.metadata.base import (
    ConflictError,
    MetadataError,
    Transition,
    check_doc_id,
    to_json_safe,
)
from leaklib.paths import resolve, writable_folder, write_atomic


class LocalMetadataStore:
    """Documents as ``<folder>/<collection>/<id>.json`` with atomic, locked updates."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = resolve(folder)
        self.uri = self.folder.as_uri()

    @classmethod
    def from_uri(cls, uri: str) -> LocalMetadataStore:
        """Open the store a local ``metadata_store`` parameter names (path or ``file://``)."""
        return cls(uri)

    def check(self) -> None:
        """Create the folder if needed and fail clearly if it cannot be written."""
        writable_folder(self.folder, parameter="metadata_store", error=MetadataError)

    def _path(self, collection: str, doc_id: str) -> Path:
        return self.folder / check_doc_id(collection) / f"{check_doc_id(doc_id)}.json"

    @contextmanager
    def _locked(self, collection: str) -> Iterator[None]:
        self.check()
        (self.folder / collection).mkdir(exist_ok=True)
        with open(self.folder / collection / ".lock", "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _write(self, path: Path, data: dict[str, Any]) -> None:
        text = json.dumps(data, indent=2, sort_keys=True, default=str) + "\n"
        try:
            write_atomic(path, text)  # a full disk keeps the previous version whole
        except OSError as exc:
            raise MetadataError(f"cannot write {path} in metadata_store {self.uri}: {exc}") from exc

    def get(self, collection: str, doc_id: str) -> dict[str, Any] | None:
        """Return a document, or None."""
        path = self._path(collection, doc_id)
        if not path.is_file():
            return None
        return json.loads(path.read_text())

    def create(self, collection: str, doc_id: str, data: dict[str, Any]) -> None:
        """Create a document once."""
        path = self._path(collection, doc_id)
        with self._locked(collection):
            if path.exists():
                raise ConflictError(f"{collection}/{doc_id} exists already in {self.uri}")
            self._write(path, to_json_safe(data))

    def transact(self, collection: str, doc_id: str, change: Transition) -> dict[str, Any]:
        """Read, change and write one document under the collection lock."""
        path = self._path(collection, doc_id)
        with self._locked(collection):
            current = json.loads(path.read_text()) if path.is_file() else None
            new = to_json_safe(change(current))
            self._write(path, new)
            return new

    def list(self, collection: str) -> list[dict[str, Any]]:
        """Return every document of a collection."""
        folder = self.folder / check_doc_id(collection)
        if not folder.is_dir():
            return []
        return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]
