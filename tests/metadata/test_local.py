import multiprocessing

import pytest

from leaklib.metadata import (
    ConflictError,
    LocalMetadataStore,
    MetadataError,
)


@pytest.fixture
def store(tmp_path):
    return LocalMetadataStore(tmp_path / "meta")


def test_create_get_list(store):
    store.create("runs", "a", {"x": 1})
    assert store.get("runs", "a") == {"x": 1}
    assert store.get("runs", "b") is None
    assert store.list("runs") == [{"x": 1}]


def test_create_refuses_an_existing_document(store):
    store.create("runs", "a", {"x": 1})
    with pytest.raises(ConflictError, match="runs/a exists already"):
        store.create("runs", "a", {"x": 2})
    assert store.get("runs", "a") == {"x": 1}


def test_refused_transition_writes_nothing(store):
    store.create("runs", "a", {"x": 1})

    def refuse(current):
        raise ConflictError("no")

    with pytest.raises(ConflictError):
        store.transact("runs", "a", refuse)
    assert store.get("runs", "a") == {"x": 1}


def _bump(folder, times):
    store = LocalMetadataStore(folder)
    for _ in range(times):
        store.transact("runs", "counter", lambda doc: {"n": (doc or {"n": 0})["n"] + 1})


def test_concurrent_transitions_never_lose_an_update(store):
    ctx = multiprocessing.get_context("spawn")
    workers = [ctx.Process(target=_bump, args=(store.folder, 40)) for _ in range(3)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert store.get("runs", "counter") == {"n": 120}


def test_path_like_ids_are_refused(store):
    with pytest.raises(MetadataError, match=r"document id '\.\./x' is not allowed"):
        store.get("runs", "../x")
