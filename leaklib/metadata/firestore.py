"""Run records in Firestore: ``firestore://PROJECT/DATABASE[/COLLECTION]``.

The same documents as :class:`leaklib.metadata.local.LocalMetadataStore`, one per collection
and id, in a named Firestore database. ``COLLECTION`` is an optional prefix, so several projects
can share a database: ``firestore://p/db/leak`` keeps runs in ``leak_runs`` and the champion in
``leak_champion``; without it the collections are ``runs`` and ``champion``.

``transact`` runs in a Firestore transaction (retried by the client on contention), so two
processes never overwrite each other's changes; ``create`` is create-only.

Credentials are Application Default Credentials; with ``FIRESTORE_EMULATOR_HOST`` set the
client talks to that emulator instead.
"""

from __future__ import annotations

import logging
import random
import re
import time
from typing import TYPE_CHECKING, Any

from leaklib.gcp import PROJECT_ID_RULE, build_client, is_project_id
from leaklib.metadata.base import (
    ConflictError,
    MetadataError,
    Transition,
    check_doc_id,
    to_json_safe,
)

if TYPE_CHECKING:
    from google.cloud.firestore import Client, DocumentReference

log = logging.getLogger(__name__)

# Database ids: "(default)" or 4-63 lowercase letters, digits and hyphens, starting with a
# letter and not ending with a hyphen. Project ids follow leaklib.gcp.
_DATABASE = re.compile(r"^(?:\(default\)|[a-z][a-z0-9-]{2,61}[a-z0-9])$")
_PREFIX = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")
# Firestore cannot hold an array directly inside an array; such lists are wrapped in a map
_LIST = "_leak_list"


def parse_firestore_uri(uri: str) -> tuple[str, str, str | None]:
    """Split ``firestore://PROJECT/DATABASE[/COLLECTION]`` into checked parts."""
    if not uri.startswith("firestore://"):
        raise MetadataError(f"metadata_store {uri!r} is not a firestore:// URI")
    parts = uri.removeprefix("firestore://").strip("/").split("/")
    if len(parts) not in (2, 3) or not all(parts):
        raise MetadataError(
            f"metadata_store {uri!r} must be firestore://PROJECT/DATABASE[/COLLECTION]"
        )
    project, database, *rest = parts
    prefix = rest[0] if rest else None
    if not is_project_id(project):
        raise MetadataError(
            f"metadata_store {uri!r}: project id {project!r} is not valid ({PROJECT_ID_RULE})"
        )
    if not _DATABASE.match(database):
        raise MetadataError(
            f"metadata_store {uri!r}: database id {database!r} is not valid (4-63 lowercase "
            "letters, digits or hyphens, starting with a letter, or '(default)')"
        )
    if prefix is not None and not _PREFIX.match(prefix):
        raise MetadataError(
            f"metadata_store {uri!r}: collection prefix {prefix!r} is not valid "
            "(letters, digits, '_' or '-', starting with a letter)"
        )
    return project, database, prefix


def encode(value: Any) -> Any:
    """Make a JSON value storable in Firestore: wrap lists that sit directly in a list."""
    if isinstance(value, dict):
        return {key: encode(item) for key, item in value.items()}
    if isinstance(value, list):
        return [{_LIST: encode(item)} if isinstance(item, list) else encode(item) for item in value]
    return value


def decode(value: Any) -> Any:
    """Undo :func:`encode`."""
    if isinstance(value, dict):
        if set(value) == {_LIST}:
            return decode(value[_LIST])
        return {key: decode(item) for key, item in value.items()}
    if isinstance(value, list):
        return [decode(item) for item in value]
    return value


class FirestoreMetadataStore:
    """Documents in the collections of one Firestore database.

    Args:
        project: Google Cloud project id.
        database: Firestore database id (a named database, or ``(default)``).
        prefix: Optional prefix of the collection names (``leak`` -> ``leak_runs``).
        client: A ``google.cloud.firestore.Client``; built from the environment on first use
            when omitted.
    """

    check_timeout_s = 30.0  # how long check() waits for an unreachable endpoint
    transact_timeout_s = 120.0  # how long transact() retries when other writers keep winning
    # how long one read or write keeps retrying an unavailable service (503, a dropped
    # connection), backing off from 0.1 s by x1.5 up to 5 s; then it fails naming Firestore
    retry_deadline_s = 60.0

    def __init__(
        self,
        project: str,
        database: str,
        prefix: str | None = None,
        *,
        client: Client | None = None,
    ) -> None:
        self.project = project
        self.database = database
        self.prefix = prefix
        self._client = client
        self.uri = f"firestore://{project}/{database}" + (f"/{prefix}" if prefix else "")

    @classmethod
    def from_uri(cls, uri: str, *, client: Client | None = None) -> FirestoreMetadataStore:
        """Open the store a ``firestore://PROJECT/DATABASE[/COLLECTION]`` parameter names."""
        project, database, prefix = parse_firestore_uri(uri)
        return cls(project, database, prefix, client=client)

    @property
    def client(self) -> Client:
        """The Firestore client (Application Default Credentials, built on first use)."""
        if self._client is None:
            # heavy: Google client loaded only when a firestore:// store is used
            from google.cloud import firestore

            self._client = build_client(
                lambda: firestore.Client(project=self.project, database=self.database),
                subject=f"metadata_store {self.uri!r}",
                error=MetadataError,
            )
        return self._client

    def collection_name(self, collection: str) -> str:
        """Return the Firestore collection that holds a logical collection (``runs`` ...)."""
        check_doc_id(collection)
        return f"{self.prefix}_{collection}" if self.prefix else collection

    def _ref(self, collection: str, doc_id: str) -> DocumentReference:
        return self.client.collection(self.collection_name(collection)).document(
            check_doc_id(doc_id)
        )

    def _retry(self):
        """Retry transient errors with bounded backoff for ``retry_deadline_s``."""
        # heavy: a Google client library, loaded only when this backend is used
        from google.api_core import exceptions as gex

        # heavy: a Google client library, loaded only when this backend is used
        from google.api_core.retry import Retry, if_exception_type

        return Retry(
            predicate=if_exception_type(
                gex.ServiceUnavailable,
                gex.DeadlineExceeded,
                gex.InternalServerError,
                gex.ResourceExhausted,
            ),
            initial=0.1,
            maximum=5.0,
            multiplier=1.5,
            timeout=self.retry_deadline_s,
        )

    def _calls(self) -> dict[str, Any]:
        """The retry and per-attempt timeout every read or write passes to the client."""
        return {"retry": self._retry(), "timeout": min(30.0, self.retry_deadline_s)}

    def _explain(self, exc: Exception, action: str) -> MetadataError:
        """Turn a client error into a MetadataError naming the database and the cause."""
        # heavy: Google client loaded only when a firestore:// store is used
        from google.api_core import exceptions as gex

        where = f"Firestore database {self.database!r} in project {self.project!r}"
        if isinstance(exc, gex.NotFound):
            return MetadataError(
                f"{where} does not exist (while trying to {action}); create it with "
                f"`gcloud firestore databases create --database={self.database} "
                f"--project={self.project} --location=...` or fix metadata_store {self.uri!r}"
            )
        if isinstance(exc, gex.PermissionDenied | gex.Unauthenticated | gex.Forbidden):
            return MetadataError(
                f"no permission to {action} in {where}: the account needs "
                f"roles/datastore.user on the project ({exc})"
            )
        if isinstance(exc, gex.RetryError):
            return MetadataError(
                f"Firestore kept failing while trying to {action} in {where}, retried with "
                f"backoff for {self.retry_deadline_s:g} s: {exc.cause or exc}"
            )
        return MetadataError(f"Firestore: cannot {action} in {where}: {exc}")

    def check(self) -> None:
        """Fail clearly unless the database exists and can be read."""
        # heavy: Google client loaded only when a firestore:// store is used
        from google.api_core import exceptions as gex

        # heavy: a Google client library, loaded only when this backend is used
        from google.api_core.retry import Retry

        retry = Retry(
            predicate=lambda e: isinstance(e, gex.ServiceUnavailable | gex.DeadlineExceeded),
            timeout=self.check_timeout_s,
        )
        try:
            self._ref("runs", "check").get(retry=retry, timeout=self.check_timeout_s)
        except MetadataError:
            raise
        except gex.RetryError as exc:
            raise MetadataError(
                f"metadata_store {self.uri!r} is unreachable: {exc.cause or exc}"
            ) from exc
        except gex.GoogleAPICallError as exc:
            raise self._explain(exc, "read run records") from exc
        log.debug("metadata store %s is reachable", self.uri)

    def get(self, collection: str, doc_id: str) -> dict[str, Any] | None:
        """Return a document, or None."""
        # heavy: Google client loaded only when a firestore:// store is used
        from google.api_core import exceptions as gex

        try:
            snapshot = self._ref(collection, doc_id).get(**self._calls())
        except (gex.GoogleAPICallError, gex.RetryError) as exc:
            raise self._explain(exc, f"read {collection}/{doc_id}") from exc
        return decode(snapshot.to_dict()) if snapshot.exists else None

    def create(self, collection: str, doc_id: str, data: dict[str, Any]) -> None:
        """Create a document once; ConflictError if it exists."""
        # heavy: Google client loaded only when a firestore:// store is used
        from google.api_core import exceptions as gex

        try:
            self._ref(collection, doc_id).create(encode(to_json_safe(data)), **self._calls())
        except gex.AlreadyExists as exc:
            raise ConflictError(f"{collection}/{doc_id} exists already in {self.uri}") from exc
        except (gex.GoogleAPICallError, gex.RetryError) as exc:
            raise self._explain(exc, f"create {collection}/{doc_id}") from exc

    def transact(self, collection: str, doc_id: str, change: Transition) -> dict[str, Any]:
        """Read, change and write one document in a Firestore transaction.

        ``change`` may run more than once when another writer commits first (the transaction
        is retried on the new state), so it must depend only on the document it is given.
        """
        # heavy: Google client loaded only when a firestore:// store is used
        from google.api_core import exceptions as gex

        # heavy: a Google client library, loaded only when this backend is used
        from google.cloud import firestore

        ref = self._ref(collection, doc_id)

        @firestore.transactional
        def run(transaction) -> dict[str, Any]:
            snapshot = ref.get(transaction=transaction, **self._calls())
            current = decode(snapshot.to_dict()) if snapshot.exists else None
            new = to_json_safe(change(current))
            transaction.set(ref, encode(new))
            return new

        deadline = time.monotonic() + self.transact_timeout_s
        delay = 0.05
        while True:
            try:
                return run(self.client.transaction(max_attempts=5))
            except (ConflictError, MetadataError):
                raise
            except ValueError as exc:
                # the client gives up with ValueError after max_attempts aborted commits:
                # other writers keep winning, so back off (with jitter) and start again
                if not isinstance(exc.__cause__, gex.Aborted):
                    raise
                if time.monotonic() + delay > deadline:
                    raise ConflictError(
                        f"{collection}/{doc_id} in {self.uri} kept changing under the update "
                        f"for {self.transact_timeout_s:.0f} s: {exc}"
                    ) from exc
                log.debug("transaction on %s/%s aborted, retrying", collection, doc_id)
                time.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 2.0)
            except (gex.GoogleAPICallError, gex.RetryError) as exc:
                raise self._explain(exc, f"update {collection}/{doc_id}") from exc

    def list(self, collection: str) -> list[dict[str, Any]]:
        """Return every document of a collection."""
        # heavy: Google client loaded only when a firestore:// store is used
        from google.api_core import exceptions as gex

        try:
            collection_ref = self.client.collection(self.collection_name(collection))
            return [decode(d.to_dict()) for d in collection_ref.stream(**self._calls())]
        except (gex.GoogleAPICallError, gex.RetryError) as exc:
            raise self._explain(exc, f"list {collection}") from exc
