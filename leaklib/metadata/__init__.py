"""Run records in a store with Firestore's document model: collection / document id -> JSON.

The local backend keeps one JSON file per document under a folder and serialises
read-modify-write with a file lock, so it behaves like the Firestore backend
(:mod:`leaklib.metadata.firestore`) and either can be used behind the same parameter.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

from leaklib.paths import is_local_path, resolve

log = logging.getLogger(__name__)

RUNS = "runs"
CHAMPION = "champion"
_DOC_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


class MetadataError(RuntimeError):
    """A run record cannot be read or written."""


class ConflictError(MetadataError):
    """A document already exists, or changed under a transition that forbade it."""


Transition = Callable[[dict[str, Any] | None], dict[str, Any]]


class MetadataStore(Protocol):
    """Documents by collection and id. Backends: local folder, Firestore."""

    uri: str

    def check(self) -> None:
        """Raise MetadataError unless the store is reachable and writable."""

    def get(self, collection: str, doc_id: str) -> dict[str, Any] | None:
        """Return a document, or None when it does not exist."""

    def create(self, collection: str, doc_id: str, data: dict[str, Any]) -> None:
        """Create a document; ConflictError if it exists already."""

    def transact(self, collection: str, doc_id: str, change: Transition) -> dict[str, Any]:
        """Atomically replace a document with ``change(current)`` and return the new one.

        ``change`` may raise ConflictError to refuse the transition; nothing is written then.
        """

    def list(self, collection: str) -> list[dict[str, Any]]:
        """Return every document of a collection (order unspecified)."""


def check_doc_id(doc_id: str) -> str:
    """Refuse a document id that is not a plain, path-safe name."""
    if not _DOC_ID.match(doc_id):
        raise MetadataError(
            f"document id {doc_id!r} is not allowed: use letters, digits, '.', '_' or '-'"
        )
    return doc_id


def to_json_safe(value: Any) -> Any:
    """Round-trip through JSON so every backend stores the same plain types."""
    return json.loads(json.dumps(value, default=str))


class LocalMetadataStore:
    """Documents as ``<folder>/<collection>/<id>.json`` with atomic, locked updates."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = resolve(folder)
        self.uri = self.folder.as_uri()

    def check(self) -> None:
        """Create the folder if needed and fail clearly if it cannot be written."""
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise MetadataError(
                f"metadata_store {str(self.folder)!r} cannot be created: {exc}"
            ) from exc
        if not os.access(self.folder, os.W_OK):
            raise MetadataError(f"metadata_store {str(self.folder)!r} is not writable")

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
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=".json")
        with os.fdopen(fd, "w") as handle:
            json.dump(data, handle, indent=2, sort_keys=True, default=str)
            handle.write("\n")
        os.replace(tmp, path)

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


def open_metadata_store(uri: str) -> MetadataStore:
    """Open the store a ``metadata_store`` parameter names (local folder or ``firestore://``)."""
    if is_local_path(uri):
        return LocalMetadataStore(uri)
    if uri.startswith("firestore://"):
        from leaklib.metadata.firestore import FirestoreMetadataStore

        return FirestoreMetadataStore.from_uri(uri)
    raise MetadataError(
        f"metadata_store {uri!r} is not supported: use a local folder or "
        "firestore://PROJECT/DATABASE[/COLLECTION]"
    )
