"""leaklib.serve.deps: what routes get from app.state, swapped in a test through
app.dependency_overrides (fast: no run, no champion)."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from leaklib import serve
from leaklib.metadata import LocalMetadataStore
from leaklib.serve import deps
from tests.serving import AUTH, TOKEN

SMOKE = Path(__file__).resolve().parents[1] / "parameters" / "smoke.yaml"


@pytest.fixture
def app():
    return serve.create_app(files=[str(SMOKE)], token=TOKEN, worker=serve.RunWorker(["true"]))


def test_a_test_swaps_the_metadata_store(app, tmp_path):
    empty = LocalMetadataStore(tmp_path / "metadata")
    app.dependency_overrides[deps.metadata] = lambda: empty
    client = TestClient(app, headers=AUTH)
    assert client.get("/runs").json() == {"runs": [], "total": 0, "limit": 20, "offset": 0}
    answer = client.get("/runs/20260101-000000-abcd")
    assert answer.status_code == 404
    assert answer.json() == {"detail": "run '20260101-000000-abcd' not found"}


def test_a_test_swaps_the_worker(app, tmp_path):
    class Busy(serve.RunWorker):
        def running(self) -> str | None:
            return "20260101-000000-beef"

    app.dependency_overrides[deps.worker] = lambda: Busy(["true"])
    answer = TestClient(app, headers=AUTH).post("/runs", json={})
    assert answer.status_code == 409
    assert answer.json()["run_id"] == "20260101-000000-beef"


def test_the_model_cache_loads_once_and_keeps_nothing_that_failed():
    cache = deps.ModelCache(size=2)
    loads = []
    assert cache.get("a", lambda: loads.append("a") or "model a") == "model a"
    assert cache.get("a", lambda: loads.append("again") or "other") == "model a"
    assert loads == ["a"]

    def broken() -> str:
        raise RuntimeError("the model file is gone")

    with pytest.raises(RuntimeError, match="the model file is gone"):
        cache.get("b", broken)
    assert cache.get("b", lambda: "model b") == "model b"
