"""Run records by collection and document id, in a local folder or in Firestore.

The backend is chosen by the ``metadata_store`` parameter's scheme (:mod:`leaklib.backends`):
a local folder (:mod:`leaklib.metadata.local`) or ``firestore://PROJECT/DATABASE[/COLLECTION]``
(:mod:`leaklib.metadata.firestore`). The local store is re-exported: it is light and tests
build it directly.
"""

from __future__ import annotations

from leaklib.backends import open_backend
from leaklib.metadata.base import (
    CACHE,
    CHAMPION,
    RUNS,
    ConflictError,
    MetadataError,
    MetadataStore,
    Transition,
    check_doc_id,
    to_json_safe,
)
from leaklib.metadata.local import LocalMetadataStore

__all__ = [
    "CACHE",
    "CHAMPION",
    "RUNS",
    "ConflictError",
    "LocalMetadataStore",
    "MetadataError",
    "MetadataStore",
    "Transition",
    "check_doc_id",
    "open_metadata_store",
    "to_json_safe",
]


def open_metadata_store(uri: str) -> MetadataStore:
    """Open the store a ``metadata_store`` parameter names (local folder or ``firestore://``)."""
    return open_backend("metadata", uri, error=MetadataError)
