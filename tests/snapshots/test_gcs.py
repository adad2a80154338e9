"""GCSSnapshotStore against a real local Cloud Storage server (fake-gcs-server)."""

from __future__ import annotations

import threading

import pandas as pd
import pytest

from leaklib.snapshots import (
    SnapshotError,
    load_snapshot,
    open_snapshot_store,
    sha256_hex,
    snapshot_table,
)
from leaklib.snapshots.gcs import GCSSnapshotStore, parse_gs_uri

pytestmark = pytest.mark.emulators

DATA = b"PAR1 some snapshot bytes"
SHA = sha256_hex(DATA)


@pytest.fixture
def store(gcs_bucket: str) -> GCSSnapshotStore:
    return GCSSnapshotStore.from_uri(f"gs://{gcs_bucket}/snapshots/v1")


def _object(storage_client, store: GCSSnapshotStore, sha: str = SHA):
    return storage_client.bucket(store.bucket_name).get_blob(f"{store.prefix}/{sha}.parquet")


def test_put_then_get_round_trips_with_hash_in_metadata(store, storage_client):
    uri, created = store.put(DATA, sha256=SHA)

    assert created is True
    assert uri == f"gs://{store.bucket_name}/snapshots/v1/{SHA}.parquet"
    assert store.exists(SHA)
    assert store.get(SHA) == DATA
    blob = _object(storage_client, store)
    assert blob.metadata == {"sha256": SHA}
    assert blob.content_type == "application/vnd.apache.parquet"


def test_repeated_put_reuses_the_object_without_rewriting(store, storage_client):
    store.put(DATA, sha256=SHA)
    generation = _object(storage_client, store).generation

    uri, created = store.put(DATA, sha256=SHA)

    assert created is False
    assert uri.endswith(f"{SHA}.parquet")
    assert _object(storage_client, store).generation == generation


def test_snapshot_table_and_load_snapshot_through_open_snapshot_store(gcs_bucket, storage_client):
    frame = pd.DataFrame({"p_a": [1.5, 2.5, 3.5], "zone": ["n", "s", "n"], "leaks": [0, 1, 0]})
    store = open_snapshot_store(f"gs://{gcs_bucket}/snaps")

    snapshot = snapshot_table(frame, store=store)

    assert isinstance(store, GCSSnapshotStore)
    assert snapshot.uri == f"gs://{gcs_bucket}/snaps/{snapshot.sha256}.parquet"
    pd.testing.assert_frame_equal(load_snapshot(snapshot.sha256, store=store), frame)


def test_two_concurrent_writers_of_the_same_content_both_succeed_once(gcs_bucket, storage_client):
    # two stores with their own clients, as two runs on two machines would have
    stores = [GCSSnapshotStore.from_uri(f"gs://{gcs_bucket}/race") for _ in range(2)]
    barrier = threading.Barrier(2)
    results: list[tuple[str, bool]] = []
    errors: list[BaseException] = []

    def write(s: GCSSnapshotStore) -> None:
        barrier.wait()
        try:
            results.append(s.put(DATA, sha256=SHA))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)

    assert errors == []
    assert sorted(created for _, created in results) == [False, True]
    assert stores[0].get(SHA) == DATA


def test_writer_that_loses_the_race_to_different_content_fails_and_overwrites_nothing(
    gcs_bucket, storage_client
):
    store = GCSSnapshotStore.from_uri(f"gs://{gcs_bucket}/race")
    name = f"race/{SHA}.parquet"
    barrier = threading.Barrier(2)
    outcome: dict[str, object] = {}

    def ours() -> None:
        barrier.wait()
        try:
            outcome["ours"] = store.put(DATA, sha256=SHA)
        except SnapshotError as exc:
            outcome["ours"] = exc

    def theirs() -> None:
        # a second writer with other bytes under the same name, also create-only
        blob = storage_client.bucket(gcs_bucket).blob(name)
        barrier.wait()
        try:
            blob.upload_from_string(b"other bytes", if_generation_match=0)
            outcome["theirs"] = blob.generation
        except Exception as exc:  # PreconditionFailed when ours won
            outcome["theirs"] = exc

    threads = [threading.Thread(target=ours), threading.Thread(target=theirs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)

    stored = storage_client.bucket(gcs_bucket).get_blob(name)
    ours_won = isinstance(outcome["ours"], tuple)
    theirs_won = isinstance(outcome["theirs"], int)
    assert ours_won != theirs_won, outcome  # exactly one writer created the object
    if ours_won:
        assert stored.download_as_bytes() == DATA
    else:
        assert "different content" in str(outcome["ours"])
        assert stored.generation == outcome["theirs"]  # never replaced
        assert stored.download_as_bytes() == b"other bytes"


def test_put_after_a_create_between_lookup_and_upload_checks_the_content(
    store, storage_client, monkeypatch
):
    # the other writer creates the object after our exists() said no: our create-only upload
    # gets 412 and must compare, not overwrite
    storage_client.bucket(store.bucket_name).blob(
        f"{store.prefix}/{SHA}.parquet"
    ).upload_from_string(b"tampered", if_generation_match=0)
    monkeypatch.setattr(store, "exists", lambda sha256: False)

    with pytest.raises(SnapshotError, match=f"{SHA}.parquet exists with different content"):
        store.put(DATA, sha256=SHA)

    assert _object(storage_client, store).download_as_bytes() == b"tampered"


def test_get_of_an_object_overwritten_by_hand_names_the_hash(store, storage_client):
    store.put(DATA, sha256=SHA)
    blob = storage_client.bucket(store.bucket_name).blob(f"{store.prefix}/{SHA}.parquet")
    blob.metadata = {"sha256": SHA}  # even with the right metadata kept
    blob.upload_from_string(b"PAR1 altered bytes")

    with pytest.raises(SnapshotError, match=f"corrupt: its SHA-256 is .*, expected {SHA}"):
        store.get(SHA)


def test_get_of_an_object_whose_metadata_was_changed_fails(store, storage_client):
    store.put(DATA, sha256=SHA)
    blob = _object(storage_client, store)
    blob.metadata = {"sha256": "0" * 64}
    blob.patch()

    with pytest.raises(SnapshotError, match=f"{SHA}.parquet has altered metadata"):
        store.get(SHA)


def test_get_of_a_missing_hash_says_not_found(store):
    with pytest.raises(SnapshotError, match=f"snapshot {SHA} not found in gs://"):
        store.get(SHA)
    assert store.exists(SHA) is False


def test_put_refuses_bytes_that_do_not_match_the_hash(store):
    with pytest.raises(SnapshotError, match="refusing to store bytes with SHA-256"):
        store.put(b"something else", sha256=SHA)


def test_check_passes_on_an_existing_bucket(store):
    store.check()


def test_check_of_a_missing_bucket_names_it(storage_client):
    store = GCSSnapshotStore.from_uri("gs://no-such-bucket-here/snapshots")

    with pytest.raises(SnapshotError, match="bucket 'no-such-bucket-here' does not exist"):
        store.check()
    with pytest.raises(SnapshotError, match="bucket 'no-such-bucket-here' does not exist"):
        store.put(DATA, sha256=SHA)


def test_check_of_an_unreachable_endpoint_fails_clearly(monkeypatch):
    from tests.emulators.servers import free_port

    monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"http://127.0.0.1:{free_port()}")
    store = GCSSnapshotStore.from_uri("gs://some-bucket/x")
    store.check_timeout_s = 1.0

    with pytest.raises(SnapshotError, match="some-bucket"):
        store.check()


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("gs://Bad_Bucket/x", "bucket name 'Bad_Bucket' is not valid"),
        ("gs://ab/x", "bucket name 'ab' is not valid"),
        ("gs://ok-bucket/../x", r"prefix part '\.\.' is not allowed"),
        ("gs://ok-bucket/a b", "prefix part 'a b' is not allowed"),
        ("s3://ok-bucket/x", "is not a gs://BUCKET/PREFIX URI"),
    ],
)
def test_bad_uris_are_refused_with_the_offending_part(uri, message):
    with pytest.raises(SnapshotError, match=message):
        parse_gs_uri(uri)


def test_uri_without_prefix_stores_at_the_top_of_the_bucket(gcs_bucket, storage_client):
    store = GCSSnapshotStore.from_uri(f"gs://{gcs_bucket}/")

    uri, _ = store.put(DATA, sha256=SHA)

    assert store.uri == f"gs://{gcs_bucket}"
    assert uri == f"gs://{gcs_bucket}/{SHA}.parquet"
