"""What every metadata backend shares: the store protocol, its errors and document rules.

Run records live in a store with Firestore's document model: collection / document id -> JSON.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any, Protocol

from leaklib.errors import LeakError

RUNS = "runs"
CHAMPION = "champion"
CACHE = "cache"  # step cache: key -> the run whose step produced it (leaklib.pipeline.cache)
_DOC_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


class MetadataError(LeakError, RuntimeError):
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
