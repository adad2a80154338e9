"""FirestoreMetadataStore against Google's Cloud Firestore emulator."""

from __future__ import annotations

import threading

import pytest

from leaklib import run_record, runs
from leaklib.metadata import (
    RUNS,
    ConflictError,
    LocalMetadataStore,
    MetadataError,
    open_metadata_store,
)
from leaklib.metadata.firestore import FirestoreMetadataStore, decode, encode, parse_firestore_uri
from leaklib.run_record import RunStatus

pytestmark = pytest.mark.emulators

DATABASE = "leak-db"
DOC = {
    "run_id": "r1",
    "status": "running",
    "params": {"features": {"p_a": {"type": "numeric", "min": 0.0, "max": None}}, "seed": 42},
    "metrics": {"roc_auc": 0.91, "confusion": [[50, 2], [3, 45]], "curve": [[0.0, [0.1, 0.2]]]},
    "tags": ["a", "b"],
    "empty": {},
    "none": None,
    "flag": True,
    "text": "Zürich – ok",
}


@pytest.fixture
def store(firestore_project: str) -> FirestoreMetadataStore:
    return FirestoreMetadataStore.from_uri(f"firestore://{firestore_project}/{DATABASE}")


def test_create_then_get_returns_the_same_document(store):
    store.create(RUNS, "r1", DOC)

    assert store.get(RUNS, "r1") == DOC
    assert store.get(RUNS, "missing") is None


def test_documents_equal_those_of_the_local_store(store, tmp_path):
    local = LocalMetadataStore(tmp_path / "metadata")
    for target in (store, local):
        target.create(RUNS, "r1", DOC)
        target.transact(RUNS, "r1", lambda cur: {**cur, "status": "succeeded", "n": [[1]]})

    assert store.get(RUNS, "r1") == local.get(RUNS, "r1")
    assert store.list(RUNS) == local.list(RUNS)


def test_plain_client_sees_native_fields_under_the_plain_collection_name(store):
    store.create(RUNS, "r1", DOC)

    raw = store.client.collection("runs").document("r1").get().to_dict()

    assert raw["status"] == "running"
    assert raw["params"]["seed"] == 42
    assert decode(raw) == DOC


def test_create_of_an_existing_document_raises_conflict(store):
    store.create(RUNS, "r1", DOC)

    with pytest.raises(ConflictError, match="runs/r1 exists already in firestore://"):
        store.create(RUNS, "r1", {"other": 1})
    assert store.get(RUNS, "r1") == DOC


def test_transact_creates_updates_and_returns_the_new_document(store):
    first = store.transact("champion", "current", lambda cur: {"history": [], "seen": cur})
    second = store.transact(
        "champion", "current", lambda cur: {**cur, "history": [*cur["history"], "r1"]}
    )

    assert first == {"history": [], "seen": None}
    assert second == {"history": ["r1"], "seen": None}
    assert store.get("champion", "current") == second


def test_transact_that_refuses_writes_nothing(store):
    store.create(RUNS, "r1", DOC)

    def refuse(current):
        raise ConflictError("run 'r1' is finished")

    with pytest.raises(ConflictError, match="is finished"):
        store.transact(RUNS, "r1", refuse)
    assert store.get(RUNS, "r1") == DOC


def test_concurrent_transactions_never_lose_an_update(firestore_project, firestore_emulator):
    if firestore_emulator.extra.get("kind") == "npm":
        pytest.skip(
            "the npm Firestore emulator (fallback without gcloud) does not isolate concurrent "
            "transactions: it loses updates that Firestore and Google's emulator keep"
        )
    uri = f"firestore://{firestore_project}/{DATABASE}"
    FirestoreMetadataStore.from_uri(uri).create(RUNS, "shared", {"count": 0, "writers": []})
    writers, rounds = 2, 3
    barrier = threading.Barrier(writers)
    errors: list[BaseException] = []

    def work(name: str) -> None:
        store = FirestoreMetadataStore.from_uri(uri)  # its own client, like another process
        barrier.wait()
        try:
            for i in range(rounds):
                store.transact(
                    RUNS,
                    "shared",
                    lambda cur, i=i: {
                        "count": cur["count"] + 1,
                        "writers": [*cur["writers"], f"{name}-{i}"],
                    },
                )
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(f"w{n}",)) for n in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)

    assert errors == []
    final = FirestoreMetadataStore.from_uri(uri).get(RUNS, "shared")
    assert final["count"] == writers * rounds
    assert sorted(final["writers"]) == sorted(
        f"w{n}-{i}" for n in range(writers) for i in range(rounds)
    )


def test_list_returns_every_document_of_the_collection_only(store):
    for n in range(3):
        store.create(RUNS, f"r{n}", {"run_id": f"r{n}"})
    store.create("champion", "current", {"run_id": "r0"})

    assert sorted(d["run_id"] for d in store.list(RUNS)) == ["r0", "r1", "r2"]
    assert store.list("nothing-here") == []


def test_collection_prefix_keeps_stores_apart(firestore_project):
    plain = FirestoreMetadataStore.from_uri(f"firestore://{firestore_project}/{DATABASE}")
    prefixed = FirestoreMetadataStore.from_uri(f"firestore://{firestore_project}/{DATABASE}/leak")
    prefixed.create(RUNS, "r1", {"run_id": "r1"})

    assert prefixed.collection_name(RUNS) == "leak_runs"
    assert plain.list(RUNS) == []
    assert plain.client.collection("leak_runs").document("r1").get().exists


def test_run_lifecycle_through_open_metadata_store(firestore_project):
    store = open_metadata_store(f"firestore://{firestore_project}/{DATABASE}")
    runs.start_run(store, run_id="r1", params={"seed": 1}, param_files=[], origin="test")
    for step in runs.STEPS:
        runs.start_step(store, "r1", step)
        runs.finish_step(store, "r1", step)

    record = run_record.get_run(store, "r1")
    assert isinstance(store, FirestoreMetadataStore)
    assert record.status is RunStatus.SUCCEEDED
    assert sorted(record.steps) == sorted(runs.STEPS)
    with pytest.raises(ConflictError, match="is succeeded"):
        runs.record_metrics(store, "r1", {"roc_auc": 1.0})


def test_bad_document_ids_are_refused(store):
    with pytest.raises(MetadataError, match="document id 'a/b' is not allowed"):
        store.get(RUNS, "a/b")


def test_check_passes_on_the_emulator(store):
    store.check()


def test_check_of_an_unreachable_endpoint_fails_clearly(monkeypatch):
    from tests.emulators.servers import free_port

    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", f"127.0.0.1:{free_port()}")
    store = FirestoreMetadataStore.from_uri("firestore://leak-test/leak-db")
    store.check_timeout_s = 2.0

    with pytest.raises(MetadataError, match="firestore://leak-test/leak-db"):
        store.check()


def test_check_of_a_missing_database_names_it():
    # The emulator creates any database on first use, so this feeds check() the error real
    # Firestore answers for a database that does not exist.
    from google.api_core import exceptions as gex

    class MissingDatabase:
        def collection(self, name):
            return self

        def document(self, doc_id):
            return self

        def get(self, **kwargs):
            raise gex.NotFound("The database leak-db does not exist for project my-project")

    store = FirestoreMetadataStore("my-project", "leak-db", client=MissingDatabase())

    with pytest.raises(
        MetadataError,
        match="Firestore database 'leak-db' in project 'my-project' does not exist",
    ):
        store.check()


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("firestore://my-project", "must be firestore://PROJECT/DATABASE"),
        ("firestore://My_Project/db01", "project id 'My_Project' is not valid"),
        ("firestore://my-project/DB", "database id 'DB' is not valid"),
        ("firestore://my-project/db01/a b", "collection prefix 'a b' is not valid"),
        ("firestore://my-project/db01/a/b", "must be firestore://PROJECT/DATABASE"),
    ],
)
def test_bad_uris_are_refused_naming_the_part(uri, message):
    with pytest.raises(MetadataError, match=message):
        parse_firestore_uri(uri)


def test_parse_accepts_default_database_and_prefix():
    assert parse_firestore_uri("firestore://my-project/(default)") == (
        "my-project",
        "(default)",
        None,
    )
    assert parse_firestore_uri("firestore://my-project/leak-db/leak_runs") == (
        "my-project",
        "leak-db",
        "leak_runs",
    )


def test_nested_lists_survive_encoding():
    value = {"m": [[1, [2, []]], [], "x", {"k": [[None]]}]}

    assert decode(encode(value)) == value
