"""Which backend serves a store or source parameter, chosen by the URI's scheme.

One table maps (kind, scheme) to the class that serves it, the way papermill's I/O registry
and MLflow's store registry do. A plain path or ``file://`` URI has the scheme ``file``. Each
backend imports only its kind's ``base``; only this table knows the backends, so a new backend
is one new module and one line here. Every backend class opens itself with ``from_uri(uri)``.
"""

from __future__ import annotations

import importlib
from typing import Any, NamedTuple

from leaklib.paths import is_local_path

LOCAL = "file"
SNAPSHOT = "snapshot"  # snapshot:<sha256>, a recorded snapshot read by hash


class Backend(NamedTuple):
    """Where a backend's class lives and how a parameter names it (for error messages)."""

    target: str  # "package.module:Class"
    form: str


BACKENDS: dict[tuple[str, str], Backend] = {
    ("snapshots", LOCAL): Backend("leaklib.snapshots.local:LocalSnapshotStore", "a local folder"),
    ("snapshots", "gs"): Backend("leaklib.snapshots.gcs:GCSSnapshotStore", "gs://BUCKET/PREFIX"),
    ("metadata", LOCAL): Backend("leaklib.metadata.local:LocalMetadataStore", "a local folder"),
    ("metadata", "firestore"): Backend(
        "leaklib.metadata.firestore:FirestoreMetadataStore",
        "firestore://PROJECT/DATABASE[/COLLECTION]",
    ),
    ("sources", LOCAL): Backend(
        "leaklib.sources.files:FileReader", "a .parquet/.csv path, a file:// URI"
    ),
    ("sources", "bigquery"): Backend(
        "leaklib.sources.bigquery:BigQueryReader", "bigquery://PROJECT.DATASET.TABLE"
    ),
    ("sources", SNAPSHOT): Backend("leaklib.sources.snapshot:SnapshotReader", "snapshot:SHA256"),
    ("sources", "gs"): Backend(
        "leaklib.sources.snapshot:SnapshotReader", "gs://BUCKET/PREFIX/SHA256.parquet (a snapshot)"
    ),
    ("sinks", LOCAL): Backend("leaklib.sinks.files:FileSink", "a .parquet/.csv path"),
    ("sinks", "bigquery"): Backend(
        "leaklib.sinks.bigquery:BigQuerySink", "bigquery://PROJECT.DATASET.TABLE"
    ),
}

# the parameter that names a backend of each kind
PARAMETERS = {
    "snapshots": "snapshot_store",
    "metadata": "metadata_store",
    "sources": "source",
    "sinks": "--out",
}


def scheme_of(uri: str) -> str:
    """Return a URI's scheme, ``file`` for a plain path, ``snapshot`` for ``snapshot:<sha256>``."""
    if uri.startswith(f"{SNAPSHOT}:"):
        return SNAPSHOT
    return LOCAL if is_local_path(uri) else uri.partition("://")[0]


def supported_forms(kind: str) -> str:
    """Return how a parameter of this kind may name its backends: ``a, b or c``."""
    forms = [backend.form for (k, _), backend in BACKENDS.items() if k == kind]
    return " or ".join([", ".join(forms[:-1]), forms[-1]]) if len(forms) > 1 else forms[0]


def backend_class(kind: str, uri: str, *, error: type[Exception]) -> type:
    """Return the class that serves ``uri`` for ``kind``, importing its module now.

    Args:
        kind: ``snapshots``, ``metadata`` or ``sources``.
        uri: The parameter's value.
        error: The kind's error, raised for a scheme no backend serves.
    """
    backend = BACKENDS.get((kind, scheme_of(uri)))
    if backend is None:
        raise error(f"{PARAMETERS[kind]} {uri!r} is not supported: use {supported_forms(kind)}")
    module, _, name = backend.target.partition(":")
    # lazy: a cloud backend pulls in its heavy Google client, so import only the one asked for
    return getattr(importlib.import_module(module), name)


def open_backend(kind: str, uri: str, *, error: type[Exception]) -> Any:
    """Open the store or source reader that ``uri`` names for ``kind``."""
    return backend_class(kind, uri, error=error).from_uri(uri)
