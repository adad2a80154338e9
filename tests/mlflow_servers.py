"""Pytest plugin: a real local ``mlflow server`` and a GitLab-like proxy in front of it.

List it in ``tests/conftest.py`` (``pytest_plugins = ["mlflow_servers"]``) to get:

- ``mlflow_server`` (session): ``mlflow server`` on 127.0.0.1 with a sqlite backend and
  proxied artifacts in a temporary folder; started once (it takes tens of seconds), stopped
  after the session.
- ``local_mlflow`` (function): ``MLFLOW_TRACKING_URI`` pointing at a sqlite store made once
  per session in a temporary folder, with an experiment whose artifacts stay there too.
- ``gitlab_mlflow`` (function): a small threaded reverse proxy in front of that server that
  behaves like GitLab's MLflow layer where it matters to us: the tracking URI has GitLab's
  shape (``/api/v4/projects/<id>/ml/mlflow``), every request needs ``Authorization: Bearer
  <token>``, and every REST endpoint GitLab does not implement (aliases, stages, model-version
  tags, dataset inputs, logged models, ...) answers 404 like an unknown GitLab route.

The list of implemented endpoints follows GitLab's ``lib/api/ml/mlflow/*.rb``
(experiments, runs, metrics, registered-models, model-versions); artifacts, which GitLab keeps
in its package registry, are forwarded to the server's artifact proxy.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

GITLAB_PROJECT_PATH = "/api/v4/projects/4242/ml/mlflow"

# (method, endpoint under /api/2.0/mlflow/) that GitLab's MLflow layer implements.
GITLAB_ENDPOINTS = frozenset(
    {
        ("GET", "experiments/get"),
        ("GET", "experiments/get-by-name"),
        ("GET", "experiments/list"),
        ("POST", "experiments/search"),
        ("POST", "experiments/create"),
        ("POST", "experiments/set-experiment-tag"),
        ("POST", "experiments/delete"),
        ("POST", "runs/create"),
        ("GET", "runs/get"),
        ("POST", "runs/search"),
        ("POST", "runs/update"),
        ("POST", "runs/log-metric"),
        ("POST", "runs/log-parameter"),
        ("POST", "runs/set-tag"),
        ("POST", "runs/log-batch"),
        ("POST", "runs/delete"),
        ("GET", "metrics/get-history"),
        ("POST", "registered-models/create"),
        ("GET", "registered-models/get"),
        ("PATCH", "registered-models/update"),
        ("POST", "registered-models/get-latest-versions"),
        ("DELETE", "registered-models/delete"),
        ("GET", "registered-models/search"),
        ("GET", "registered-models/alias"),
        ("POST", "model-versions/create"),
        ("GET", "model-versions/get-download-uri"),
        ("GET", "model-versions/get"),
        ("PATCH", "model-versions/update"),
    }
)
_REST = "/api/2.0/mlflow/"
_ARTIFACTS = "/api/2.0/mlflow-artifacts/"
_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailers",
    "transfer-encoding",
    "upgrade",
    "content-length",
    "host",
    "authorization",
}


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class MlflowServer:
    """A running ``mlflow server``: its URI and where it keeps runs and artifacts."""

    uri: str
    root: Path
    process: subprocess.Popen[bytes]
    log: Path


def _wait_healthy(server: MlflowServer, *, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(
                f"mlflow server exited with {server.process.returncode}:\n"
                + server.log.read_text()[-3000:]
            )
        try:
            if requests.get(f"{server.uri}/health", timeout=2).ok:
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    raise RuntimeError(
        f"mlflow server not healthy after {timeout_s}s:\n" + server.log.read_text()[-3000:]
    )


def start_mlflow_server(root: Path, *, timeout_s: float = 300) -> MlflowServer:
    """Start ``mlflow server`` on a free port with a sqlite backend under ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    mlflow_bin = Path(sys.executable).parent / "mlflow"
    command = [
        str(mlflow_bin),
        "server",
        "--backend-store-uri",
        f"sqlite:///{root / 'mlflow.db'}",
        "--artifacts-destination",
        str(root / "artifacts"),
        "--serve-artifacts",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--allowed-hosts",
        f"127.0.0.1:{port},localhost:{port}",
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"  # no background job workers
    log = root / "server.log"
    with open(log, "wb") as handle:
        process = subprocess.Popen(
            command, stdout=handle, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    server = MlflowServer(uri=f"http://127.0.0.1:{port}", root=root, process=process, log=log)
    try:
        _wait_healthy(server, timeout_s=timeout_s)
    except BaseException:
        stop_mlflow_server(server)
        raise
    return server


def stop_mlflow_server(server: MlflowServer) -> None:
    """Stop the server and the worker it started (its own process group)."""
    if server.process.poll() is not None:
        return
    try:
        os.killpg(server.process.pid, signal.SIGTERM)
        server.process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(server.process.pid, signal.SIGKILL)
        server.process.wait(timeout=20)
    except ProcessLookupError:
        pass


@dataclass
class Exchange:
    """One request the proxy saw (never its headers, so never the token)."""

    method: str
    path: str
    status: int


@dataclass
class GitLabProxy:
    """A GitLab-like MLflow endpoint: bearer token required, unimplemented endpoints 404."""

    uri: str
    token: str
    upstream: str
    exchanges: list[Exchange] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, method: str, path: str, status: int) -> None:
        with self._lock:
            self.exchanges.append(Exchange(method, path, status))

    def refused(self) -> list[Exchange]:
        """Return the requests answered 404 because GitLab does not implement them."""
        with self._lock:
            return [
                e for e in self.exchanges if e.status == 404 and _unimplemented(e.method, e.path)
            ]

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


def _unimplemented(method: str, rest: str) -> bool:
    if rest.startswith(_ARTIFACTS):
        return False
    if rest.startswith(_REST):
        return (
            method,
            rest.removeprefix(_REST).split("?", 1)[0].rstrip("/"),
        ) not in GITLAB_ENDPOINTS
    return True


def _handler(proxy: GitLabProxy, prefix: str) -> type[BaseHTTPRequestHandler]:
    upstream = urlsplit(proxy.upstream)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            """Stay quiet: request lines are recorded in ``proxy.exchanges`` instead."""

        def _reply(
            self, status: int, body: bytes, headers: list[tuple[str, str]] | None = None
        ) -> None:
            self.send_response(status)
            sent_type = False
            for key, value in headers or []:
                if key.lower() in _HOP_BY_HOP:
                    continue
                sent_type |= key.lower() == "content-type"
                self.send_header(key, value)
            if not sent_type:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                chunks = []
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                    if size == 0:
                        self.rfile.readline()
                        break
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
                return b"".join(chunks)
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def _handle(self) -> None:
            body = self._body()
            path = self.path
            if self.headers.get("Authorization") != f"Bearer {proxy.token}":
                proxy.record(self.command, path, 401)
                self._reply(401, json.dumps({"message": "401 Unauthorized"}).encode())
                return
            if not path.startswith(prefix + "/"):
                proxy.record(self.command, path, 404)
                self._reply(404, json.dumps({"error": "404 Not Found"}).encode())
                return
            rest = path[len(prefix) :]
            if _unimplemented(self.command, rest):
                proxy.record(self.command, rest, 404)
                self._reply(404, json.dumps({"error": "404 Not Found"}).encode())
                return
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
            headers["Host"] = upstream.netloc
            headers["Content-Length"] = str(len(body))
            conn = http.client.HTTPConnection(upstream.hostname, upstream.port, timeout=300)
            try:
                conn.request(self.command, rest, body=body, headers=headers)
                response = conn.getresponse()
                data = response.read()
                proxy.record(self.command, rest, response.status)
                self._reply(response.status, data, response.getheaders())
            finally:
                conn.close()

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _handle

    return Handler


def start_gitlab_proxy(upstream: str, *, token: str) -> GitLabProxy:
    """Serve a GitLab-shaped MLflow endpoint on a free port that forwards to ``upstream``."""
    port = free_port()
    proxy = GitLabProxy(
        uri=f"http://127.0.0.1:{port}{GITLAB_PROJECT_PATH}", token=token, upstream=upstream
    )
    server = ThreadingHTTPServer(("127.0.0.1", port), _handler(proxy, GITLAB_PROJECT_PATH))
    server.daemon_threads = True
    proxy._server = server
    threading.Thread(target=server.serve_forever, name="gitlab-mlflow-proxy", daemon=True).start()
    return proxy


@dataclass
class LocalMlflow:
    """A sqlite tracking store in a temporary folder and an experiment in it."""

    uri: str
    experiment_id: str
    root: Path


@pytest.fixture(scope="session")
def local_mlflow_store(tmp_path_factory: pytest.TempPathFactory) -> LocalMlflow:
    """Create the session's sqlite tracking store once (its schema takes seconds to build)."""
    root = tmp_path_factory.mktemp("mlflow-local")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        patch.delenv("MLFLOW_TRACKING_TOKEN", raising=False)
        from leaklib import tracking

        tracking.configure()
        import mlflow

        experiment = mlflow.create_experiment(
            "leak-tests", artifact_location=(root / "artifacts").as_uri()
        )
    return LocalMlflow(uri=uri, experiment_id=experiment, root=root)


@pytest.fixture
def local_mlflow(local_mlflow_store: LocalMlflow, monkeypatch: pytest.MonkeyPatch) -> LocalMlflow:
    """Point MLflow (through ``MLFLOW_TRACKING_URI``) at the session's sqlite store."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", local_mlflow_store.uri)
    monkeypatch.delenv("MLFLOW_TRACKING_TOKEN", raising=False)
    from leaklib import tracking

    tracking.configure()
    return local_mlflow_store


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    """A real ``mlflow server`` (sqlite backend, proxied artifacts) for the whole session."""
    server = start_mlflow_server(tmp_path_factory.mktemp("mlflow-server"))
    try:
        yield server
    finally:
        stop_mlflow_server(server)


@pytest.fixture
def gitlab_mlflow(mlflow_server: MlflowServer) -> Iterator[GitLabProxy]:
    """A GitLab-like MLflow endpoint in front of ``mlflow_server``; token ``glpat-test-...``."""
    proxy = start_gitlab_proxy(mlflow_server.uri, token="glpat-test-" + os.urandom(8).hex())
    try:
        yield proxy
    finally:
        proxy.close()
