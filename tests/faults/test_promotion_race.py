"""Two evaluations gating at the same moment against the same champion, for real.

Both challengers read the champion pointer, then wait for each other (a barrier inside the
champion's loading) before either decides, so both compare with the same champion and both
want to promote. The pointer changes in one transaction each (``champion.promote`` with
``expected_champion``): exactly one wins, the other's decision says it lost the race, and the
pointer's history has no gap. On the local store and on the Firestore emulator.
"""

from __future__ import annotations

import threading
import uuid

import numpy as np
import pytest

from leaklib import champion, gate, run_record, runs
from leaklib import params as P
from leaklib.metadata import ConflictError, LocalMetadataStore
from leaklib.metadata.firestore import FirestoreMetadataStore
from tests.conftest import make_table, table_dataset
from tests.faults.loss import Walked, check_pointer

pytestmark = pytest.mark.faults


class WeakModel:
    """A champion that scores at random (so every strong challenger would beat it)."""

    def predict_proba(self, frame):
        p = np.random.default_rng(1).random(len(frame))
        return np.column_stack([1 - p, p])


def _record(store, run_id: str, params: P.Params, sha: str) -> dict:
    runs.start_run(store, run_id=run_id, params=params.to_plain(), param_files=[], origin="test")
    return runs.record_model(store, run_id, {"sha256": sha * 32, "store": "unused"})


def _race(store, *, challengers: int = 2):
    values = P.defaults()
    values.update(
        dataset=table_dataset(source="unused.parquet", model_name=f"race-{uuid.uuid4().hex[:8]}"),
        promotion={
            "primary_metric": "roc_auc",
            "n_bootstrap": 100,
            "confidence": 0.9,
            "min_unseen_rows": 100,
        },
    )
    params = P.validate(values)
    name = params.dataset.model_name
    holdout = make_table(scenarios=16, rows_per=24)
    y = holdout["leaks"].to_numpy()
    strong = np.clip(0.8 * y + 0.2 * np.random.default_rng(0).random(len(y)), 0, 1)

    first = _record(store, "run-champion", params, "aa")
    champion.promote(store, run=first, model_name=name, reason="seed", expected_champion=None)

    both_compared = threading.Barrier(challengers, timeout=60)
    start = threading.Barrier(challengers, timeout=60)
    model = WeakModel()

    def load_champion(pointer):
        both_compared.wait()  # every challenger has read the pointer before any decides
        return model

    decisions: dict[str, gate.Decision] = {}
    errors: list[BaseException] = []

    def evaluate(run_id: str, sha: str) -> None:
        try:
            run = _record(store, run_id, params, sha)
            start.wait()
            decisions[run_id] = gate.gate(
                store=store,
                params=params,
                run=run,
                holdout=holdout,
                challenger_proba=strong,
                load_champion=load_champion,
            )
        except BaseException as exc:  # surfaced below, in the test's thread
            errors.append(exc)

    threads = [
        threading.Thread(target=evaluate, args=(f"run-{i}", f"{i}{i}"))
        for i in range(1, challengers + 1)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    return name, decisions


def _assert_one_winner(store, name, decisions):
    promoted = [r for r, d in decisions.items() if d.promoted]
    lost = [d for d in decisions.values() if not d.promoted]
    assert len(promoted) == 1, {r: d.reason for r, d in decisions.items()}
    for decision in lost:
        assert decision.reason.startswith(f"Not promoted: the champion of {name!r} changed to run")
        assert "was compared with 'run-champion'" in decision.reason
        assert decision.reason.endswith("run the evaluation again.")
    pointer = champion.current_champion(store, model_name=name)
    assert pointer["run_id"] == promoted[0]
    assert [e["run_id"] for e in pointer["history"]] == ["run-champion", promoted[0]]
    found = Walked()
    check_pointer(pointer, {}, found)
    assert not found.problems
    for run_id, decision in decisions.items():  # each run keeps its own decision
        recorded = run_record.get_run(store, run_id).to_doc()["promotion"]
        assert (
            recorded["decision"] == str(decision.decision) and recorded["reason"] == decision.reason
        )


def test_two_evaluations_on_the_local_store_promote_exactly_one(tmp_path):
    store = LocalMetadataStore(tmp_path / "metadata")
    name, decisions = _race(store)
    _assert_one_winner(store, name, decisions)


@pytest.mark.emulators
def test_two_evaluations_on_firestore_promote_exactly_one(firestore_project):
    store = FirestoreMetadataStore(firestore_project, "leak-db")
    name, decisions = _race(store)
    _assert_one_winner(store, name, decisions)


@pytest.mark.parametrize(
    "backend", ["local", pytest.param("firestore", marks=pytest.mark.emulators)]
)
def test_many_promotions_released_at_once_change_the_pointer_once(backend, tmp_path, request):
    if backend == "local":
        store = LocalMetadataStore(tmp_path / "metadata")
    else:
        store = FirestoreMetadataStore(request.getfixturevalue("firestore_project"), "leak-db")
    params = P.validate(P.merge([P.defaults()], [("dataset.model_name", "many")]))
    first = _record(store, "run-0", params, "00")
    champion.promote(store, run=first, model_name="many", reason="seed", expected_champion=None)
    contenders = [_record(store, f"run-{i}", params, f"{i}{i}") for i in range(1, 6)]
    release = threading.Barrier(len(contenders), timeout=60)
    outcome: dict[str, str] = {}

    def promote(run):
        release.wait()
        try:
            champion.promote(
                store, run=run, model_name="many", reason="race", expected_champion="run-0"
            )
            outcome[run.run_id] = "won"
        except ConflictError as exc:
            outcome[run.run_id] = str(exc)

    threads = [threading.Thread(target=promote, args=(run,)) for run in contenders]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    winners = [r for r, o in outcome.items() if o == "won"]
    assert len(outcome) == 5 and len(winners) == 1, outcome
    pointer = champion.current_champion(store, model_name="many")
    assert [e["run_id"] for e in pointer["history"]] == ["run-0", winners[0]]
