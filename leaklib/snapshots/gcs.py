"""Snapshots in a Cloud Storage bucket: ``gs://BUCKET/PREFIX/<sha256>.parquet``, written once.

Objects are created with ``if_generation_match=0``, so a second writer of the same hash,
concurrent or later, can never replace what is there: identical content is reused, different
content is an error. The SHA-256 is kept in the object's metadata and checked, with the bytes,
on every read; uploads and downloads are checked with CRC32C by the client.

Credentials are Application Default Credentials (``GOOGLE_APPLICATION_CREDENTIALS``, a
workload identity, or ``gcloud auth application-default login``); with
``STORAGE_EMULATOR_HOST`` set, the client talks to that emulator instead.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import re
from typing import TYPE_CHECKING

from leaklib.gcp import build_client
from leaklib.snapshots.base import (
    CONTENT_TYPE,
    SUFFIX,
    SnapshotError,
    check_sha256,
    check_subfolder,
    sha256_hex,
)

if TYPE_CHECKING:
    from google.cloud.storage import Bucket, Client

log = logging.getLogger(__name__)

SHA256_KEY = "sha256"
# Bucket names: 3-63 characters (up to 222 with dots), lowercase letters, digits, -, _ and .,
# starting and ending with a letter or digit.
_BUCKET = re.compile(r"^[a-z0-9](?:[a-z0-9._-]{1,220})[a-z0-9]$")
_PREFIX_PART = re.compile(r"^[A-Za-z0-9._=-]+$")


def parse_gs_uri(uri: str) -> tuple[str, str]:
    """Split ``gs://BUCKET[/PREFIX]`` into a checked bucket name and prefix (no slashes at ends)."""
    if not uri.startswith("gs://"):
        raise SnapshotError(f"snapshot_store {uri!r} is not a gs://BUCKET/PREFIX URI")
    bucket, _, prefix = uri.removeprefix("gs://").partition("/")
    if not _BUCKET.match(bucket) or ".." in bucket or ("." not in bucket and len(bucket) > 63):
        raise SnapshotError(
            f"snapshot_store {uri!r}: bucket name {bucket!r} is not valid (3-63 lowercase "
            "letters, digits, '-', '_' or '.', starting and ending with a letter or digit)"
        )
    prefix = prefix.strip("/")
    for part in prefix.split("/") if prefix else []:
        if not _PREFIX_PART.match(part) or part in {".", ".."}:
            raise SnapshotError(
                f"snapshot_store {uri!r}: prefix part {part!r} is not allowed "
                "(use letters, digits, '.', '_', '=' or '-')"
            )
    return bucket, prefix


def _md5_b64(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data).digest()).decode("ascii")  # noqa: S324 (GCS's own checksum)


class GCSSnapshotStore:
    """Snapshots as objects ``gs://<bucket>/<prefix>/<sha256>.parquet``, created once.

    Args:
        bucket: Bucket name; the bucket must exist.
        prefix: Folder inside the bucket ('' for the top level).
        client: A ``google.cloud.storage.Client``; built from the environment on first use
            when omitted.
    """

    check_timeout_s = 30.0  # how long check() retries an unreachable endpoint
    # how long one read or write keeps retrying 429/5xx answers and dropped connections, with
    # the client's exponential backoff (1 s doubling to 60 s, jittered); then it fails
    retry_deadline_s = 120.0

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        client: Client | None = None,
        suffix: str = SUFFIX,
        content_type: str = CONTENT_TYPE,
    ) -> None:
        self.bucket_name = bucket
        self.prefix = prefix.strip("/")
        self._client = client
        self.suffix, self.content_type = suffix, content_type
        self.uri = f"gs://{bucket}/{self.prefix}" if self.prefix else f"gs://{bucket}"

    def within(self, subfolder: str, *, suffix: str, content_type: str) -> GCSSnapshotStore:
        """Return a store of other content-addressed objects (models, reports) beside these."""
        prefix = f"{self.prefix}/{check_subfolder(subfolder)}".strip("/")
        return GCSSnapshotStore(
            self.bucket_name, prefix, client=self._client, suffix=suffix, content_type=content_type
        )

    @classmethod
    def from_uri(cls, uri: str, *, client: Client | None = None) -> GCSSnapshotStore:
        """Open the store a ``gs://BUCKET/PREFIX`` parameter names."""
        bucket, prefix = parse_gs_uri(uri)
        return cls(bucket, prefix, client=client)

    @property
    def client(self) -> Client:
        """The storage client (built from Application Default Credentials on first use)."""
        if self._client is None:
            # heavy: Google client loaded only when a gs:// store is used
            from google.cloud import storage

            self._client = build_client(
                storage.Client, subject=f"snapshot_store {self.uri!r}", error=SnapshotError
            )
        return self._client

    @property
    def _bucket(self) -> Bucket:
        return self.client.bucket(self.bucket_name)

    @property
    def _retry(self):
        """The client's retry policy (transient errors only), bounded by ``retry_deadline_s``."""
        # heavy: a Google client library, loaded only when this backend is used
        from google.cloud.storage.retry import DEFAULT_RETRY

        return DEFAULT_RETRY.with_timeout(self.retry_deadline_s)

    def _name(self, sha256: str) -> str:
        name = f"{check_sha256(sha256)}{self.suffix}"
        return f"{self.prefix}/{name}" if self.prefix else name

    def _object_uri(self, sha256: str) -> str:
        return f"gs://{self.bucket_name}/{self._name(sha256)}"

    def _explain(self, exc: Exception, action: str) -> SnapshotError:
        """Turn a client error into a SnapshotError that names the bucket and the cause."""
        # heavy: Google client loaded only when a gs:// store is used
        from google.api_core import exceptions as gex

        if isinstance(exc, gex.NotFound):
            return SnapshotError(
                f"bucket {self.bucket_name!r} does not exist (or is not visible to these "
                f"credentials) while trying to {action}; create it or fix snapshot_store "
                f"{self.uri!r}"
            )
        if isinstance(exc, gex.Forbidden | gex.Unauthorized):
            return SnapshotError(
                f"no permission to {action} in bucket {self.bucket_name!r}: the account needs "
                f"roles/storage.objectCreator and roles/storage.objectViewer on it ({exc})"
            )
        if isinstance(exc, gex.RetryError):
            return SnapshotError(
                f"Cloud Storage kept failing while trying to {action} in bucket "
                f"{self.bucket_name!r}, retried with backoff until the time allowed ran out: "
                f"{exc.cause or exc}"
            )
        return SnapshotError(
            f"Cloud Storage: cannot {action} in bucket {self.bucket_name!r}: {exc}"
        )

    def check(self) -> None:
        """Fail clearly unless the bucket exists and its objects can be listed."""
        # heavy: Google client loaded only when a gs:// store is used
        from google.api_core import exceptions as gex

        # heavy: a Google client library, loaded only when this backend is used
        from google.cloud.storage.retry import DEFAULT_RETRY

        try:
            # objects.list is in objectViewer; buckets.get is not, so do not use bucket.exists()
            blobs = self.client.list_blobs(
                self.bucket_name,
                prefix=f"{self.prefix}/" if self.prefix else None,
                max_results=1,
                timeout=self.check_timeout_s,
                retry=DEFAULT_RETRY.with_timeout(self.check_timeout_s),
            )
            list(blobs)
        except SnapshotError:
            raise
        except (gex.GoogleAPIError, OSError) as exc:
            raise self._explain(exc, "list snapshots") from exc
        except Exception as exc:  # requests/transport errors when the endpoint is unreachable
            raise SnapshotError(f"snapshot_store {self.uri!r} is unreachable: {exc}") from exc
        log.debug("snapshot store %s is reachable", self.uri)

    def exists(self, sha256: str) -> bool:
        """Return True when an object with this hash is stored."""
        # heavy: Google client loaded only when a gs:// store is used
        from google.api_core import exceptions as gex

        try:
            return self._bucket.blob(self._name(sha256)).exists(retry=self._retry)
        except (gex.GoogleAPIError, OSError) as exc:
            raise self._explain(exc, f"look up snapshot {sha256}") from exc

    def _same_content(self, sha256: str, data: bytes) -> None:
        """Check that the stored object holds ``data``, without downloading it when possible."""
        # heavy: Google client loaded only when a gs:// store is used
        from google.api_core import exceptions as gex

        uri = self._object_uri(sha256)
        try:
            blob = self._bucket.get_blob(self._name(sha256), retry=self._retry)
        except (gex.GoogleAPIError, OSError) as exc:
            raise self._explain(exc, f"read snapshot {sha256}") from exc
        if blob is None:
            raise SnapshotError(f"snapshot {uri} disappeared while it was being written")
        stored = (blob.metadata or {}).get(SHA256_KEY)
        if stored is not None and stored != sha256:
            raise SnapshotError(
                f"snapshot {uri} is corrupt: its metadata says SHA-256 {stored}, expected {sha256}"
            )
        # the server's MD5 of the stored bytes tells whether they equal ours; composite objects
        # have none, so fall back to reading them back
        if blob.md5_hash is not None:
            if blob.size != len(data) or blob.md5_hash != _md5_b64(data):
                raise SnapshotError(
                    f"snapshot {uri} exists with different content than SHA-256 {sha256}; "
                    "it was not overwritten"
                )
        else:
            self.get(sha256)

    def put(self, data: bytes, *, sha256: str) -> tuple[str, bool]:
        """Create the object once; an existing object with this hash is checked and reused."""
        # heavy: Google client loaded only when a gs:// store is used
        from google.api_core import exceptions as gex

        actual = sha256_hex(data)
        if actual != sha256:
            raise SnapshotError(f"refusing to store bytes with SHA-256 {actual} under {sha256}")
        uri = self._object_uri(sha256)
        if self.exists(sha256):
            self._same_content(sha256, data)
            log.info("snapshot %s already stored, reused", uri)
            return uri, False
        blob = self._bucket.blob(self._name(sha256))
        blob.metadata = {SHA256_KEY: sha256}
        try:
            blob.upload_from_string(
                data,
                content_type=self.content_type,
                if_generation_match=0,  # create only: never replace an existing object
                checksum="crc32c",
                retry=self._retry,  # safe to repeat: the precondition makes it create-once
            )
        except gex.PreconditionFailed:
            # another writer created it between our look-up and our upload
            self._same_content(sha256, data)
            log.info("snapshot %s written concurrently by another run, reused", uri)
            return uri, False
        except (gex.GoogleAPIError, OSError) as exc:
            raise self._explain(exc, f"write snapshot {sha256}") from exc
        log.info("snapshot %s written (%d bytes)", uri, len(data))
        return uri, True

    def get(self, sha256: str) -> bytes:
        """Read an object and verify its bytes and its metadata against the hash."""
        # heavy: Google client loaded only when a gs:// store is used
        from google.api_core import exceptions as gex

        # heavy: a Google client library, loaded only when this backend is used
        from google.resumable_media import DataCorruption

        uri = self._object_uri(sha256)
        try:
            blob = self._bucket.get_blob(self._name(sha256), retry=self._retry)
            if blob is None:
                raise SnapshotError(f"snapshot {sha256} not found in {self.uri}")
            # the same generation as the metadata just read, so both describe the same bytes
            data = blob.download_as_bytes(
                checksum="crc32c", if_generation_match=blob.generation, retry=self._retry
            )
        except SnapshotError:
            raise
        except DataCorruption as exc:
            raise SnapshotError(f"snapshot {uri} failed its CRC32C check on download") from exc
        except gex.NotFound as exc:
            raise SnapshotError(f"snapshot {sha256} not found in {self.uri}") from exc
        except (gex.GoogleAPIError, OSError) as exc:
            raise self._explain(exc, f"read snapshot {sha256}") from exc
        actual = sha256_hex(data)
        if actual != sha256:
            raise SnapshotError(
                f"snapshot {uri} is corrupt: its SHA-256 is {actual}, expected {sha256}"
            )
        stored = (blob.metadata or {}).get(SHA256_KEY)
        if stored != sha256:
            raise SnapshotError(
                f"snapshot {uri} has altered metadata: SHA-256 {stored!r} recorded, "
                f"expected {sha256}"
            )
        return data
