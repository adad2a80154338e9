import os
import stat

import pandas as pd
import pytest

from leaklib.snapshots import (
    LocalSnapshotStore,
    SnapshotError,
    canonical_bytes,
    load_snapshot,
    snapshot_table,
)


@pytest.fixture
def store(tmp_path):
    return LocalSnapshotStore(tmp_path / "snaps")


def test_round_trip_is_exact(table, store):
    snap = snapshot_table(table, store=store)
    back = load_snapshot(snap.sha256, store=store)
    pd.testing.assert_frame_equal(back, table)
    assert snap.rows == len(table) and snap.uri.endswith(f"{snap.sha256}.parquet")


def test_same_content_reuses_the_snapshot(table, store):
    first = snapshot_table(table, store=store)
    second = snapshot_table(table.copy(), store=store)
    assert first == second
    assert len(list(store.folder.glob("*.parquet"))) == 1


def test_snapshot_is_read_only_and_never_replaced(table, store):
    snap = snapshot_table(table, store=store)
    path = store.folder / f"{snap.sha256}.parquet"
    assert not os.stat(path).st_mode & stat.S_IWUSR
    uri, created = store.put(canonical_bytes(table), sha256=snap.sha256)
    assert not created and uri == snap.uri


def test_tampered_snapshot_is_refused(table, store):
    snap = snapshot_table(table, store=store)
    path = store.folder / f"{snap.sha256}.parquet"
    path.chmod(0o644)
    path.write_bytes(canonical_bytes(table.head(5)))
    with pytest.raises(SnapshotError, match=f"{snap.sha256}"):
        load_snapshot(snap.sha256, store=store)


def test_missing_snapshot_is_named(store):
    with pytest.raises(SnapshotError, match=f"snapshot {'0' * 64} not found"):
        store.get("0" * 64)


def test_a_name_that_is_not_a_hash_is_refused(store):
    with pytest.raises(SnapshotError, match="'../abc' is not a SHA-256 hex digest"):
        store.get("../abc")


def test_unwritable_store_is_refused(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(SnapshotError, match="cannot be created"):
        LocalSnapshotStore(blocker / "snaps").check()
