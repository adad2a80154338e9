"""Cloud Storage and Firestore answering 503 or dropping connections, then recovering.

A fault-injecting proxy (tests/faultproxy.py) sits between the stores and the emulators. The
stores lean on the Google clients' own retries (Cloud Storage's ``DEFAULT_RETRY``: 429/5xx
and connection errors, exponential backoff from 1 s; Firestore: a ``Retry`` on UNAVAILABLE
and friends from 0.1 s), bounded by each store's ``retry_deadline_s``: within it the store
succeeds; past it the store fails with a message naming the service.
"""

from __future__ import annotations

import time
from urllib.parse import urlparse

import pytest

from leaklib import run_record, runs
from leaklib.metadata import MetadataError
from leaklib.metadata.firestore import FirestoreMetadataStore
from leaklib.run_record import StepStatus
from leaklib.snapshots import SnapshotError, sha256_hex
from leaklib.snapshots.gcs import GCSSnapshotStore
from tests.faultproxy import FaultProxy

pytestmark = [pytest.mark.faults, pytest.mark.emulators]

DATA = b"readings" * 1000
DIGEST = sha256_hex(DATA)


@pytest.fixture
def gcs_proxy(gcs_emulator, gcs_bucket, monkeypatch):
    """A proxy in front of fake-gcs-server; clients built after this go through it."""
    upstream = urlparse(gcs_emulator.env["STORAGE_EMULATOR_HOST"])
    with FaultProxy((upstream.hostname, upstream.port)) as proxy:
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"http://{proxy.address}")
        yield proxy


@pytest.fixture
def gcs_store(gcs_proxy, gcs_bucket):
    from google.cloud import storage

    return GCSSnapshotStore(gcs_bucket, "snapshots", client=storage.Client(project="leak-test"))


@pytest.mark.parametrize("mode", ["503", "drop"])
def test_cloud_storage_retries_failed_connections_then_writes_and_reads(gcs_store, gcs_proxy, mode):
    gcs_proxy.fail(mode=mode, connections=3)
    uri, created = gcs_store.put(DATA, sha256=DIGEST)
    assert created and uri.endswith(f"{DIGEST}.parquet")
    gcs_proxy.fail(mode=mode, connections=2)
    assert gcs_store.get(DIGEST) == DATA
    assert gcs_proxy.failed == 5


def test_cloud_storage_rides_out_an_outage_of_a_few_seconds(gcs_store, gcs_proxy):
    gcs_store.put(DATA, sha256=DIGEST)
    gcs_proxy.fail(mode="drop", seconds=2.5)
    started = time.monotonic()
    assert gcs_store.get(DIGEST) == DATA
    assert 2.0 < time.monotonic() - started < 30 and gcs_proxy.failed >= 2


def test_cloud_storage_fails_naming_the_service_when_the_outage_outlasts_the_budget(
    gcs_store, gcs_proxy
):
    gcs_store.retry_deadline_s = 3.0
    gcs_proxy.fail(mode="503", seconds=60)
    started = time.monotonic()
    with pytest.raises(SnapshotError) as caught:
        gcs_store.put(DATA, sha256=DIGEST)
    assert time.monotonic() - started < 15
    message = str(caught.value)
    assert f"Cloud Storage kept failing while trying to look up snapshot {DIGEST}" in message
    assert f"in bucket {gcs_store.bucket_name!r}, retried with backoff" in message
    gcs_proxy.heal()
    assert not gcs_store.exists(DIGEST)  # nothing was half-written meanwhile


@pytest.fixture
def firestore_proxy(firestore_emulator, firestore_project, monkeypatch):
    host, port = firestore_emulator.env["FIRESTORE_EMULATOR_HOST"].rsplit(":", 1)
    with FaultProxy((host, int(port))) as proxy:
        monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", proxy.address)
        yield proxy


@pytest.fixture
def firestore_store(firestore_proxy, firestore_project):
    return FirestoreMetadataStore(firestore_project, "leak-db")


def test_firestore_rides_out_dropped_connections_for_every_operation(
    firestore_store, firestore_proxy
):
    firestore_proxy.fail(mode="drop", seconds=1.0)
    runs.start_run(firestore_store, run_id="r1", params={"seed": 1}, param_files=[], origin="t")
    firestore_proxy.fail(mode="drop", seconds=1.0)
    runs.start_step(firestore_store, "r1", "extract")
    firestore_proxy.fail(mode="drop", seconds=1.0)
    assert [r.run_id for r in run_record.list_runs(firestore_store)] == ["r1"]
    firestore_proxy.fail(mode="drop", seconds=1.0)
    record = run_record.get_run(firestore_store, "r1")
    assert record.steps["extract"].status is StepStatus.RUNNING
    assert firestore_proxy.failed >= 4


def test_firestore_fails_naming_the_service_when_the_outage_outlasts_the_budget(
    firestore_store, firestore_proxy
):
    firestore_store.retry_deadline_s = 3.0
    firestore_proxy.fail(mode="drop", seconds=60)
    started = time.monotonic()
    with pytest.raises(MetadataError) as caught:
        runs.start_run(firestore_store, run_id="r2", params={}, param_files=[], origin="t")
    assert time.monotonic() - started < 15
    message = str(caught.value)
    assert "Firestore kept failing while trying to create runs/r2" in message
    assert f"in project {firestore_store.project!r}, retried with backoff for 3 s" in message
    firestore_proxy.heal()
    firestore_store.retry_deadline_s = 60.0
    assert firestore_store.get("runs", "r2") is None  # nothing was recorded meanwhile
