"""A real `leak serve` on 127.0.0.1 (slow): it refuses to start without a token; the round
trip start a run -> poll it to succeeded -> read its report -> predict with the new champion;
200 batches under load; and a canary token that must appear nowhere it was not sent.

The round trip is printed (`-s`) and, when LEAK_SERVE_LOG names a file, written there.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest

from benchmarks.bench_serve import run_load
from tests.conftest import leak, make_project
from tests.serving import predict_body

pytestmark = pytest.mark.slow

RUN_TIMEOUT_S = 900


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Server:
    """`leak -v serve -f parameters/smoke.yaml` in a fresh project, its output in a file."""

    def __init__(self, project: Path, token: str) -> None:
        self.project, self.token = project, token
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = project.parent / "serve.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_TRACKING")}
        env.update(
            LEAK_PROJECT_DIR=str(project), LEAK_API_TOKEN=token, MLFLOW_DISABLE_TELEMETRY="true"
        )
        with self.log.open("w") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "leaklib.cli", "-v", "serve"]
                + ["-f", "parameters/smoke.yaml", "--port", str(self.port)],
                cwd=project,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.exchanges: list[httpx.Response] = []
        self.client = httpx.Client(
            base_url=self.url,
            timeout=120,
            headers={"Authorization": f"Bearer {token}"},
            event_hooks={"response": [lambda r: self.exchanges.append(r)]},
        )

    def wait_until_up(self, timeout_s: float = 240) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log.read_text()
            try:
                if httpx.get(f"{self.url}/health", timeout=5).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(1)
        raise AssertionError(f"leak serve did not answer in {timeout_s} s:\n{self.log.read_text()}")

    def close(self) -> None:
        self.client.close()
        self.process.terminate()  # uvicorn shuts down cleanly on SIGTERM
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    project = make_project(tmp_path_factory.mktemp("serve") / "project")
    running = Server(project, token=f"leak-CANARY-{uuid.uuid4().hex}")
    try:
        running.wait_until_up()
        yield running
    finally:
        running.close()


def say(line: str) -> None:
    print(line, flush=True)
    if os.environ.get("LEAK_SERVE_LOG"):
        with open(os.environ["LEAK_SERVE_LOG"], "a") as out:
            out.write(line + "\n")


# --- starting ----------------------------------------------------------------------------------


def test_the_server_does_not_start_without_a_token(tmp_path):
    project = make_project(tmp_path / "project")
    done = leak(
        project, "serve", "--port", str(free_port()), env={"LEAK_API_TOKEN": ""}, timeout=120
    )
    assert done.returncode == 2
    assert "leak serve: error: LEAK_API_TOKEN is not set" in done.stderr
    assert "--insecure-local" in done.stderr


def test_insecure_local_binds_to_loopback_only(tmp_path):
    project = make_project(tmp_path / "project")
    done = leak(project, "serve", "--insecure-local", "--host", "0.0.0.0", timeout=120)
    assert done.returncode == 2
    assert "--insecure-local binds to 127.0.0.1 only" in done.stderr


# --- the round trip ----------------------------------------------------------------------------


def test_round_trip_start_poll_report_predict(server):
    anonymous = httpx.post(f"{server.url}/runs", json={})
    assert anonymous.status_code == 401
    say(f"POST /runs without a token -> {anonymous.status_code} {anonymous.json()}")

    started = server.client.post("/runs", json={"params": {}})
    assert started.status_code == 202, started.text
    location = started.headers["Location"]
    say(f"POST /runs -> {started.status_code} Location: {location} {started.json()}")

    again = server.client.post("/runs", json={})
    say(f"POST /runs while it runs -> {again.status_code} {again.json()}")
    assert again.status_code == 409

    deadline, seen = time.monotonic() + RUN_TIMEOUT_S, []
    while time.monotonic() < deadline:
        record = server.client.get(location).json()
        steps = {name: s.get("status") for name, s in (record.get("steps") or {}).items()}
        state = f"{record['shown_status']} {steps}"
        if not seen or seen[-1] != state:
            seen.append(state)
            say(f"GET {location} -> {state}")
        if record["shown_status"] not in ("starting", "running") and "reports_archive" in record:
            break  # finished, and its reports rendered and archived
        time.sleep(2)
    assert record["shown_status"] == "succeeded", f"{record.get('error')}\n{server.log.read_text()}"
    run_id = record["run_id"]
    say(f"  metrics: holdout_roc_auc {record['metrics'].get('holdout_roc_auc'):.4f}")

    report = server.client.get(f"/runs/{run_id}/reports/evaluate")
    assert report.status_code == 200 and run_id in report.text
    say(
        f"GET /runs/{run_id}/reports/evaluate -> {report.status_code} "
        f"{report.headers['content-type']}, {len(report.content):,} bytes"
    )

    pointer = server.client.get("/champion").json()
    assert pointer["run_id"] == run_id
    say(f"GET /champion -> run {pointer['run_id']}, model {pointer['model_sha256'][:12]}, "
        f"threshold {pointer['threshold']:.4f}: {pointer['reason']}")  # fmt: skip

    body = predict_body(server.project, rows=100)
    scored = server.client.post("/predict", json=body)
    assert scored.status_code == 200, scored.text
    answer = scored.json()
    assert answer["run_id"] == run_id and answer["rows"] == 100
    top = max(answer["predictions"], key=lambda p: p["probability"])
    say(
        f"POST /predict (the 100 readings from {body['records'][0]['timestamp']}) -> "
        f"{scored.status_code}: run {answer['run_id']}, {answer['alarms']} alarms at threshold "
        f"{answer['threshold']:.4f}; highest probability {top['probability']:.4f} at {top['timestamp']}"
    )


def test_predict_under_load_answers_every_batch_alike(server):
    body = predict_body(server.project, rows=100)
    load = run_load(server.url, token=server.token, body=body, requests=200, concurrency=8)
    assert [a["status"] for a in load.answers] == [200] * 200
    assert all(a["rows"] == 100 for a in load.answers)
    assert len({str(a["predictions"]) for a in load.answers}) == 1  # same batch, same answer
    shown = load.figures()
    say(
        f"load: 200 POST /predict x 100 records, 8 at a time: p50 {shown['p50_ms']:.0f} ms, "
        f"p95 {shown['p95_ms']:.0f} ms, {shown['requests_per_s']:.1f} requests/s"
    )  # reported, never judged: the machine is shared


# --- the canary --------------------------------------------------------------------------------


def _files_holding(root: Path, secret: bytes) -> list[str]:
    return sorted(
        str(path.relative_to(root))
        for path in root.rglob("*")
        if path.is_file() and not path.is_symlink() and secret in path.read_bytes()
    )


def test_the_token_appears_in_no_answer_log_or_file(server):
    wrong = [server.token + "x", server.token[:-1], server.token.upper()]
    for token in wrong:
        refused = httpx.get(f"{server.url}/runs", headers={"Authorization": f"Bearer {token}"})
        assert refused.status_code == 401
        server.exchanges.append(refused)
    server.client.get("/openapi.json")
    server.client.get("/docs")
    server.client.get("/health")
    core = server.token.removeprefix("leak-").encode()  # also catches the wrong tokens sent
    for exchange in server.exchanges:
        assert core not in exchange.content, exchange.request.url
        assert core.decode() not in str(exchange.headers), exchange.request.url
    assert core.decode().lower() not in server.log.read_text().lower()
    assert "leaklib" in server.log.read_text()  # -v: there are log lines to search
    assert _files_holding(server.project, core) == []
    assert _files_holding(server.project, core.lower()) == []
