"""leaklib.serve through FastAPI's TestClient: every endpoint and its error codes (slow: the
app reads a finished smoke run with a champion). Runs started over HTTP go to a stand-in
command here; the real `leak serve` round trip is in test_serve_http."""

from __future__ import annotations

import json
import sys
import time

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from leaklib import champion, run_record, runs, scoring, serve
from leaklib import params as P
from leaklib.metadata import open_metadata_store
from tests.conftest import copy_smoke_project
from tests.serving import AUTH, SLEEPER, TOKEN, predict_body, smoke_files

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def project(smoke_run, tmp_path_factory):
    """A copy of the session's smoke project: one run, the champion (the API adds scorings)."""
    copy = copy_smoke_project(smoke_run, tmp_path_factory.mktemp("serve") / "project").project
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LEAK_PROJECT_DIR", str(copy))
        yield copy


def make_client(project, worker=None, **kwargs) -> TestClient:
    app = serve.create_app(
        files=smoke_files(project),
        token=TOKEN,
        worker=worker or serve.RunWorker(["true"]),
        **kwargs,
    )
    return TestClient(app, headers=AUTH)


@pytest.fixture(scope="module")
def client(project):
    with make_client(project, max_records=300) as client:
        yield client


@pytest.fixture(scope="module")
def run_id(smoke_run):
    return smoke_run.run_ids()[0]


@pytest.fixture(scope="module")
def body(project):
    return predict_body(project, rows=100)


# --- the token ---------------------------------------------------------------------------------

PROTECTED = [
    ("get", "/runs"),
    ("get", "/runs/RUN"),
    ("get", "/runs/RUN/reports/evaluate"),
    ("get", "/champion"),
    ("post", "/runs"),
    ("post", "/predict"),
]


@pytest.mark.parametrize("method,path", PROTECTED)
@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong-token-0123456789"}, {"Authorization": f"Basic {TOKEN}"}],
    ids=["none", "wrong", "not-bearer"],
)
def test_every_endpoint_but_health_needs_the_token(client, run_id, method, path, headers):
    answer = getattr(client, method)(
        path.replace("RUN", run_id), headers={"Authorization": "", **headers}
    )
    assert answer.status_code == 401
    assert answer.headers["WWW-Authenticate"] == "Bearer"
    assert answer.json() == {"detail": "missing or wrong bearer token"}


def test_health_needs_no_token_and_checks_the_stores_and_mlflow(client):
    answer = client.get("/health", headers={"Authorization": ""})
    assert answer.status_code == 200
    assert answer.json() == {
        "status": "ok",
        "checks": {"metadata_store": True, "snapshot_store": True, "mlflow": True},
    }


def test_health_is_503_naming_the_store_that_does_not_answer(project, tmp_path):
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    app = serve.create_app(
        files=smoke_files(project),
        overrides=[("metadata_store", str(blocked / "metadata"))],
        token=TOKEN,
    )
    answer = TestClient(app).get("/health")
    assert answer.status_code == 503
    assert answer.json()["checks"] == {
        "metadata_store": False,
        "snapshot_store": True,
        "mlflow": True,
    }
    assert str(blocked) not in answer.text  # the why is in the server's log only


@pytest.mark.parametrize("token", [None, "", "short"])
def test_a_server_without_a_usable_token_is_refused(token):
    with pytest.raises(serve.ServeError, match="LEAK_API_TOKEN is (not set|too short)"):
        serve.check_token(token)


def test_an_insecure_local_app_needs_no_token(project):
    app = serve.create_app(files=smoke_files(project), token=None)
    assert TestClient(app).get("/champion").status_code == 200


# --- runs --------------------------------------------------------------------------------------


def test_runs_are_listed_newest_first_with_their_shown_status(client, run_id):
    page = client.get("/runs").json()
    assert page["total"] == len(page["runs"]) >= 1
    assert page["runs"][0]["run_id"] == run_id
    assert page["runs"][0]["status"] == "succeeded"
    assert page["runs"][0]["decision"] == "promoted"
    assert "holdout_roc_auc" in page["runs"][0]["metrics"]


def test_runs_are_paged_and_filtered_by_status(client, run_id):
    assert client.get("/runs", params={"status": "succeeded"}).json()["runs"][0]["run_id"] == run_id
    assert client.get("/runs", params={"status": "failed"}).json()["total"] == 0
    page = client.get("/runs", params={"limit": 1, "offset": 1}).json()
    assert (page["limit"], page["offset"], page["runs"]) == (1, 1, [])


@pytest.mark.parametrize(
    "query,field",
    [({"status": "done"}, "status"), ({"limit": 0}, "limit"), ({"offset": -1}, "offset")],
)
def test_a_bad_page_or_status_is_422_naming_it(client, query, field):
    answer = client.get("/runs", params=query)
    assert answer.status_code == 422
    assert answer.json()["detail"][0]["loc"] == ["query", field]


def _as_json(value):
    """A record's value as JSON shows it: NaN (a metric a stream has no value for) is null."""
    if isinstance(value, dict):
        return {k: _as_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_as_json(v) for v in value]
    return None if isinstance(value, float) and value != value else value


def test_a_run_is_its_record_as_stored(client, project, run_id):
    stored = run_record.get_run(open_metadata_store(str(project / "stores/metadata")), run_id)
    shown = client.get(f"/runs/{run_id}").json()
    assert shown.pop("shown_status") == "succeeded"
    assert shown == _as_json(stored.to_doc())


def test_an_unknown_run_is_404(client):
    answer = client.get("/runs/20000101-000000-0000")
    assert answer.status_code == 404
    assert answer.json() == {"detail": "run '20000101-000000-0000' not found"}


def test_a_malformed_run_id_is_refused(client):
    assert client.get("/runs/..%2F..%2Fetc").status_code in (404, 422)
    assert client.get("/runs/a%20b").status_code == 422


def test_secrets_are_masked_in_what_is_shown():
    record = {
        "mlflow": {"tracking_uri": "https://user:pa55@mlflow.example/api", "token": "abc"},
        "env": [{"MLFLOW_TRACKING_TOKEN": "glpat-x"}, "said the-token-value"],
        "metrics": {"roc_auc": 0.9},
    }
    shown = serve.without_secrets(record, token="the-token-value")
    assert shown == {
        "mlflow": {"tracking_uri": "https://mlflow.example/api", "token": "***"},
        "env": [{"MLFLOW_TRACKING_TOKEN": "***"}, "said ***"],
        "metrics": {"roc_auc": 0.9},
    }


# --- reports -----------------------------------------------------------------------------------


@pytest.mark.parametrize("step", runs.STEPS)
def test_a_report_is_the_archived_html(client, project, run_id, step):
    answer = client.get(f"/runs/{run_id}/reports/{step}")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/html")
    assert run_id in answer.text
    local = project / f"reports/{run_id}/{runs.NOTEBOOKS[step]}.html"
    assert answer.content == local.read_bytes()


def test_a_report_comes_from_the_archive_when_the_local_copy_is_gone(client, project, run_id):
    local = project / f"reports/{run_id}/01_extract.html"
    kept = local.read_bytes()
    local.unlink()
    try:
        assert client.get(f"/runs/{run_id}/reports/extract").content == kept
    finally:
        local.write_bytes(kept)


def test_a_report_of_an_unknown_step_or_run_is_refused(client, run_id):
    assert client.get(f"/runs/{run_id}/reports/deploy").status_code == 422
    assert client.get("/runs/20000101-000000-0000/reports/train").status_code == 404


# --- the champion ------------------------------------------------------------------------------


def test_the_champion_is_the_pointer(client, project, run_id):
    pointer = champion.current_champion(
        open_metadata_store(str(project / "stores/metadata")), model_name="leak-detector-smoke"
    )
    shown = client.get("/champion").json()
    assert shown["run_id"] == run_id == pointer["run_id"]
    assert shown["model_sha256"] == pointer["model_sha256"]
    assert shown["reason"] == pointer["reason"]
    assert shown["threshold"] == pointer["threshold"]
    assert shown["metrics"] == pointer["metrics"]


def test_no_champion_for_another_model_name_is_404(client):
    answer = client.get("/champion", params={"model_name": "nobody"})
    assert answer.status_code == 404
    assert answer.json() == {"detail": "no champion yet for model 'nobody'"}


# --- predict -----------------------------------------------------------------------------------


def test_predict_scores_the_newest_readings_like_leak_score(client, project, run_id, body):
    answer = client.post("/predict", json=body)
    assert answer.status_code == 200, answer.text
    got = answer.json()
    first = pd.Timestamp(body["records"][0]["timestamp"])
    params = P.load(smoke_files(project))
    store = open_metadata_store(str(project / "stores/metadata"))
    done = scoring.score(
        params,
        store=store,
        destination=str(project / "scored" / "predict-check.parquet"),
        since=first.to_pydatetime(),
        until=(first + 100 * pd.Timedelta("15min")).to_pydatetime(),
    )
    expected = done.scored
    assert (got["run_id"], got["model_sha256"]) == (run_id, expected["model_sha256"].iloc[0])
    assert got["rows"] == 100 and len(got["predictions"]) == 100
    assert [p["probability"] for p in got["predictions"]] == expected["probability"].tolist()
    assert [p["alarm"] for p in got["predictions"]] == expected["alarm"].tolist()
    assert got["alarms"] == int(expected["alarm"].sum()) > 0
    assert (got["predictions"][0]["group"], got["predictions"][0]["timestamp"]) == (
        None,
        first.isoformat(),
    )
    (event,) = [e for e in got["events"] if e["kind"] == "leak" and not e["closed"]]
    assert event["first"] == "2019-02-15T07:00:00" and len(event["top_sensors"].split(",")) == 3
    # located as leak score locates it: the same ranked candidates, from the cached signatures
    scored = done.events.set_index("event_id").loc[event["event_id"]]
    assert [c["node"] for c in event["candidates"]] == [
        c["node"] for c in json.loads(scored["candidates"])
    ]
    assert len(event["candidates"]) == 5 and event["walk_m"] == scored["walk_m"] > 0
    assert event["candidates"][0]["pipes"] and event["candidates"][0]["distance_m"] == 0.0
    faults = [e for e in got["events"] if e["kind"] == "sensor_fault"]
    assert all(e["candidates"] == [] and e["walk_m"] is None for e in faults)


def test_predict_without_history_within_reach_is_422_counting_the_missing_rows(client, project):
    start = predict_body(project, rows=4, end="2018-01-02T01:00:00")  # the stream began a day ago
    answer = client.post("/predict", json=start)
    assert answer.status_code == 422
    (problem,) = answer.json()["detail"]
    assert problem["loc"] == ["body", "history"] and problem["type"] == "history_missing"
    need = 719 + 897  # the derivations' lookback and the sensor checks'
    assert f"need {need} earlier rows" in problem["msg"]
    assert f"{need - 96} are missing (0 in the request's history, 96 in the run's" in problem["msg"]


def test_predict_takes_the_history_the_request_carries(client, project, body):
    history = predict_body(project, rows=1616, end=body["records"][0]["timestamp"])["records"]
    sent = client.post("/predict", json={**body, "history": history[-300:]})
    assert sent.status_code == 200, sent.text  # the rest from the run's source
    alone = client.post("/predict", json=body).json()
    assert sent.json()["predictions"] == alone["predictions"]


def test_predict_with_a_run_id_uses_that_runs_model(client, run_id, body):
    assert client.post("/predict", params={"run_id": run_id}, json=body).json()["run_id"] == run_id
    answer = client.post("/predict", params={"run_id": "20000101-000000-0000"}, json=body)
    assert answer.status_code == 404
    assert "not found" in answer.json()["detail"]


@pytest.mark.parametrize(
    "change,field,message",
    [
        ({"p_n1": "high"}, "p_n1", "valid number"),
        ({"hour_sin": 1.5}, "hour_sin", "less than or equal to 1"),
        ({"h_t1": -0.1}, "h_t1", "greater than or equal to 0"),
        ({"timestamp": "yesterday"}, "timestamp", "datetime"),
        ({"leaks": 1}, "leaks", "Extra inputs are not permitted"),
    ],
)
def test_a_bad_record_is_422_naming_the_field(client, body, change, field, message):
    records = [dict(r) for r in body["records"]]
    records[3].update(change)
    answer = client.post("/predict", json={"records": records})
    assert answer.status_code == 422
    (problem,) = answer.json()["detail"]
    assert problem["loc"] == ["body", "records", 3, field]
    assert message in problem["msg"]


def test_a_record_missing_a_feature_is_422_naming_it(client, body):
    records = [dict(r) for r in body["records"]]
    del records[0]["q_pump_1"]
    (problem,) = client.post("/predict", json={"records": records}).json()["detail"]
    assert (problem["loc"], problem["msg"]) == (
        ["body", "records", 0, "q_pump_1"],
        "Field required",
    )


def test_a_batch_over_the_limit_is_413(client, project):
    big = predict_body(project, rows=301)
    answer = client.post("/predict", json=big)
    assert answer.status_code == 413
    assert answer.json() == {"detail": "more than 300 records"}


def test_an_empty_batch_is_422(client):
    assert client.post("/predict", json={"records": []}).status_code == 422


def test_a_body_over_the_size_limit_is_413_before_it_is_read(project, body):
    with make_client(project, max_body_bytes=10_000) as small:
        answer = small.post("/predict", json=body)
        assert answer.status_code == 413
        assert answer.json() == {"detail": "request body over 10000 bytes"}
        answer = small.post(
            "/runs",
            content=b"{" + b" " * 20_000 + b"}",
            headers={"Content-Type": "application/json"},
        )
        assert answer.status_code == 413


# --- starting runs -----------------------------------------------------------------------------


@pytest.fixture
def sleeper(project):
    worker = serve.RunWorker(SLEEPER)
    with make_client(project, worker=worker) as client:
        yield client, worker
        worker.stop(grace_s=5)


def test_a_run_starts_at_once_with_its_id_and_location(sleeper):
    client, worker = sleeper
    answer = client.post("/runs", json={"params": {"cv_folds": 3}})
    assert answer.status_code == 202
    started = answer.json()
    assert answer.headers["Location"] == started["location"] == f"/runs/{started['run_id']}"
    assert worker.running() == started["run_id"]
    shown = client.get(started["location"]).json()
    assert shown == {"run_id": started["run_id"], "status": "starting", "shown_status": "starting"}


def test_a_second_run_while_one_goes_is_409_naming_it(sleeper):
    client, _ = sleeper
    first = client.post("/runs", json={}).json()["run_id"]
    answer = client.post("/runs", json={"params": {"seed": 1}})
    assert answer.status_code == 409
    assert answer.json()["run_id"] == first
    assert first in answer.json()["detail"]


def test_the_run_gets_the_servers_parameters_then_the_requests_and_no_token(project, monkeypatch):
    seen = project / "argv.txt"
    script = (
        "import os, sys; open(sys.argv[1], 'w').write(repr(sys.argv[2:]) + "
        "repr(os.environ.get('LEAK_API_TOKEN')))"
    )
    monkeypatch.setenv("LEAK_API_TOKEN", TOKEN)
    worker = serve.RunWorker([sys.executable, "-c", script, str(seen)])
    with make_client(project, worker=worker) as client:
        answer = client.post("/runs", json={"params": {"model.params.max_iter": 30, "cv_folds": 2}})
        run_id = answer.json()["run_id"]
        for _ in range(100):
            if worker.running() is None and seen.exists():
                break
            time.sleep(0.1)
        shown = client.get(f"/runs/{run_id}").json()
    args = eval(seen.read_text().removesuffix("None"))  # noqa: S307 - our own repr
    assert seen.read_text().endswith("None")  # the run never sees the API token
    assert args == [
        "-f", smoke_files(project)[0],
        "-p", "model.params.max_iter", "30\n...\n",
        "-p", "cv_folds", "2\n...\n",
        "-p", "run_id", run_id,
    ]  # fmt: skip
    assert shown["status"] == "failed"  # the stand-in recorded nothing
    assert "stopped before recording the run (exit code 0)" in shown["error"]


@pytest.mark.parametrize(
    "overrides,key,message",
    [
        ({"no_such_key": 1}, "no_such_key", "unknown parameter 'no_such_key'"),
        ({"cv_folds": 1}, "cv_folds", "cv_folds: Input should be greater than or equal to 2"),
        ({"model.name": "svm"}, "model.name", "model.name: Input should be"),
        ({"run_id": "mine"}, "run_id", "run_id is set by the server"),
        ({"serve_allowed_locations": ["/"]}, "serve_allowed_locations", "set by the server"),
    ],
)
def test_a_bad_override_is_422_naming_the_key(client, overrides, key, message):
    answer = client.post("/runs", json={"params": overrides})
    assert answer.status_code == 422
    (problem,) = answer.json()["detail"]
    assert problem["loc"] == ["body", "params", key]
    assert message in problem["msg"]


@pytest.mark.parametrize(
    "key,value",
    [
        ("dataset.source", "/etc/passwd"),
        ("dataset.source", "data/../../../etc/passwd.csv"),
        ("dataset.source", "file:///etc/passwd.csv"),
        ("dataset.source", "bigquery://someone.else.table"),
        ("dataset.leak_table", "/etc/passwd"),
        ("snapshot_store", "/tmp/elsewhere"),
        ("snapshot_store", "gs://their-bucket/x"),
        ("metadata_store", "firestore://their-project/db"),
        ("metadata_store", "storesX/metadata"),
    ],
)
def test_locations_outside_the_allow_list_are_refused(client, key, value):
    answer = client.post("/runs", json={"params": {key: value}})
    assert answer.status_code == 422
    (problem,) = answer.json()["detail"]
    assert problem["loc"] == ["body", "params", key]
    assert "outside serve_allowed_locations" in problem["msg"]


def test_a_whole_dataset_mapping_is_checked_too(client):
    dataset = {
        "source": "/etc/passwd.csv",
        "target": "y",
        "features": {"x": "numeric"},
        "timestamp": "t",
    }
    (problem,) = client.post("/runs", json={"params": {"dataset": dataset}}).json()["detail"]
    assert problem["loc"] == ["body", "params", "dataset.source"]


def test_locations_inside_the_allow_list_are_accepted(client):
    answer = client.post(
        "/runs",
        json={
            "params": {
                "dataset.source": "data/l-town-leaks.parquet",
                "snapshot_store": "stores/other",
            }
        },
    )
    assert answer.status_code == 202


@pytest.mark.parametrize(
    "value,allowed,inside",
    [
        ("data/x.parquet", ["data"], True),
        ("data", ["data"], True),
        ("data2/x.parquet", ["data"], False),
        ("data/../secrets", ["data"], False),
        ("gs://bucket/prefix/x", ["gs://bucket/prefix"], True),
        ("gs://bucket/prefixed", ["gs://bucket/prefix"], False),
        ("gs://bucket/prefix/../other", ["gs://bucket/prefix/"], False),
        ("bigquery://p.d.t", ["bigquery://p.d."], True),
        ("bigquery://p.dx.t", ["bigquery://p.d"], False),
        ("bigquery://p.d.t", ["bigquery://p.d"], True),
        ("snapshot:" + "a" * 64, ["snapshot:"], True),
        ("snapshot:" + "a" * 64, ["data"], False),
        ("gs://bucket/x", ["gs"], False),
    ],
)
def test_within_locations(project, value, allowed, inside):
    assert serve.within_locations(value, allowed) is inside


# --- the API document --------------------------------------------------------------------------


def test_the_predict_body_is_built_from_the_features(client):
    schema = client.get("/openapi.json").json()
    record = schema["components"]["schemas"]["PredictRecord"]
    assert list(record["properties"])[:3] == ["timestamp", "p_n1", "p_n4"]
    assert len(record["properties"]) == 1 + 40
    assert set(record["required"]) == set(record["properties"])
    assert record["additionalProperties"] is False
    hour = record["properties"]["hour_sin"]["anyOf"][0]
    assert (hour["type"], hour["minimum"], hour["maximum"]) == ("number", -1.0, 1.0)
    assert record["properties"]["h_t1"]["anyOf"][0]["minimum"] == 0.0
    batch = schema["components"]["schemas"]["PredictRequest"]["properties"]["records"]
    assert batch["maxItems"] == 300


def test_every_operation_has_a_summary_and_examples(client):
    schema = client.get("/openapi.json", headers={"Authorization": ""}).json()
    text = client.get("/openapi.json").text
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            assert operation.get("summary"), f"{method} {path}"
            assert "example" in str(operation) or any(
                "examples" in str(schema["components"]["schemas"].get(ref.rsplit("/", 1)[-1], ""))
                for ref in _refs(operation)
            ), f"{method} {path} has no example"
    assert TOKEN not in text
    assert schema["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"


def _refs(node) -> list[str]:
    if isinstance(node, dict):
        return [v for k, v in node.items() if k == "$ref"] + [
            r for v in node.values() for r in _refs(v)
        ]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


def test_predict_one_newest_reading_finds_its_spacing_and_history(client, project, body):
    one = client.post("/predict", json={"records": body["records"][-1:]})
    assert one.status_code == 200, one.text
    assert (
        one.json()["predictions"] == client.post("/predict", json=body).json()["predictions"][-1:]
    )


@pytest.mark.parametrize(
    "times", [["2000-01-01T00:00:00Z", "2263-01-01T00:00:00Z"], ["0001-01-01T00:00:00Z"]]
)
def test_times_no_table_holds_are_422_not_500(client, body, times):
    record = body["records"][0]
    records = [{**record, "timestamp": t} for t in times]
    assert client.post("/predict", json={"records": records}).status_code == 422
    history = {"records": body["records"][-1:], "history": records}
    assert client.post("/predict", json=history).status_code in (200, 422)
