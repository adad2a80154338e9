"""`leak run` ends honestly: interrupted, timed-out, killed and unreachable-MLflow runs.

Each test runs the real CLI in a throw-away project on the smoke parameter set, the way a CI
job or a user at a terminal does, and reads the run record the stores hold afterwards.
"""

from __future__ import annotations

import http.server
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import nbformat
import psutil
import pytest

from leaklib import reports
from leaklib.run_record import ABANDONED_AFTER_S, RunRecord, RunStatus
from tests.conftest import leak, make_project

pytestmark = pytest.mark.slow


def _env(project: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_TRACKING")}
    env.update(LEAK_PROJECT_DIR=str(project), MLFLOW_DISABLE_TELEMETRY="true")
    return env


def _start(project: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "leaklib.cli", "run", "-f", "parameters/smoke.yaml", *args],
        cwd=project,
        env=_env(project),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _records(project: Path) -> list[dict]:
    folder = project / "stores/metadata/runs"
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]


def _wait_for_step(project: Path, step: str, process: subprocess.Popen, limit_s: float = 300):
    """Wait until the run record says ``step`` is running (bounded), and return the record."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stdout.read() if process.stdout else ""
        found = _records(project)
        if found and (found[-1].get("steps", {}).get(step) or {}).get("status") == "running":
            return found[-1]
        time.sleep(0.2)
    raise AssertionError(f"step {step} did not start within {limit_s} s")


@pytest.fixture
def project(tmp_path) -> Path:
    return make_project(tmp_path / "project")


def test_sigterm_during_train_fails_step_and_run_and_stops_the_kernel(project):
    process = _start(project)
    _wait_for_step(project, "train", process)
    kernels = [c for c in psutil.Process(process.pid).children(recursive=True)]
    sent = time.monotonic()
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=120)
    print(f"SIGTERM to exit: {time.monotonic() - sent:.1f} s")  # reported, never asserted

    assert process.returncode == 143, output
    record = _records(project)[-1]
    assert record["status"] == "failed"
    assert record["error"] == "interrupted during train (SIGTERM)"
    assert record["steps"]["train"] == {
        **record["steps"]["train"],
        "status": "failed",
        "error": "interrupted by SIGTERM",
    }
    assert record["steps"]["extract"]["status"] == "succeeded"
    assert "interrupted by SIGTERM during train" in output
    assert not [k for k in kernels if k.is_running() and k.status() != psutil.STATUS_ZOMBIE]
    rendered = project / "reports" / record["run_id"]
    assert (rendered / "01_extract.html").is_file() and (rendered / "02_train.html").is_file()


def test_a_cell_over_step_timeout_s_fails_its_step_naming_the_limit(project):
    path = project / "notebooks" / "01_extract.ipynb"  # the first step: fails soonest
    notebook = nbformat.read(path, as_version=4)
    opened = next(i for i, c in enumerate(notebook.cells) if "steps.open_step(" in c.source)
    notebook.cells.insert(opened + 1, nbformat.v4.new_code_cell("import time\ntime.sleep(120)"))
    nbformat.write(notebook, path)

    done = leak(project, "run", "-f", "parameters/smoke.yaml", "-p", "step_timeout_s", "10")

    assert done.returncode == 1, done.stdout + done.stderr
    record = _records(project)[-1]
    assert record["status"] == "failed" and record["steps"]["extract"]["status"] == "failed"
    assert "step extract: a cell ran longer than step_timeout_s = 10 s" in record["error"]
    assert "step_timeout_s = 10 s" in done.stdout


def test_a_killed_run_shows_as_abandoned_once_its_heartbeat_is_old(project):
    process = _start(project)
    _wait_for_step(project, "train", process)
    children = psutil.Process(process.pid).children(recursive=True)
    process.kill()  # a machine going away: no handler runs
    process.wait()
    for child in children:
        child.kill()

    record = _records(project)[-1]
    assert record["status"] == "running" and record["heartbeat_at"]
    assert RunRecord.from_doc(record).shown() is RunStatus.RUNNING
    later = datetime.now(UTC) + timedelta(seconds=ABANDONED_AFTER_S + 1)
    assert RunRecord.from_doc(record).shown(at=later) is RunStatus.ABANDONED

    old = {**record, "heartbeat_at": (later - timedelta(days=1)).isoformat(timespec="seconds")}
    index = reports.write_index(
        [RunRecord.from_doc(old)], out_dir=project / "site", reports_root=project / "reports"
    )
    assert 'leak-status-abandoned">abandoned<' in index.read_text()


@pytest.fixture
def failing_server() -> Iterator[str]:
    """A local HTTP server that answers every request with 503, like an overloaded proxy."""

    class Unavailable(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - the name http.server calls
            self.send_response(503)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Unavailable)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize("kind", ["refused", "503"])
def test_an_unreachable_mlflow_fails_before_any_step_naming_the_variable(
    project, failing_server, kind
):
    uri = f"http://127.0.0.1:{_closed_port()}" if kind == "refused" else failing_server
    started = time.monotonic()

    done = leak(project, "run", "-f", "parameters/smoke.yaml", env={"MLFLOW_TRACKING_URI": uri})

    print(f"MLflow {kind}: failed after {time.monotonic() - started:.1f} s")
    assert done.returncode == 2
    assert f"MLFLOW_TRACKING_URI {uri} is unreachable after 3 tries" in done.stderr
    assert not (project / "stores/metadata/runs").exists() or not _records(project)
    assert not (project / "reports").exists() or not any((project / "reports").iterdir())


@pytest.fixture
def run_kernel() -> Iterator:
    from leaklib.pipeline.kernel import RunKernel

    kernel = RunKernel()
    yield kernel
    if kernel.started:
        kernel.km.stop()


def _evaluate(kernel, code: str) -> tuple[str, int]:
    """Run ``code`` in the kernel; return what it printed and the cell's execution count."""
    from jupyter_client.blocking import BlockingKernelClient

    client = BlockingKernelClient()
    client.load_connection_info(kernel.km.get_connection_info())
    client.start_channels()
    printed: list[str] = []
    try:
        client.wait_for_ready(timeout=60)
        reply = client.execute_interactive(
            code,
            timeout=60,
            output_hook=lambda msg: printed.append(msg["content"].get("text", "")),
        )
    finally:
        client.stop_channels()
    return "".join(printed), reply["content"]["execution_count"]


def test_the_run_kernel_forgets_a_notebooks_names_and_figures_but_keeps_its_imports(run_kernel):
    run_kernel.ready()  # the first notebook: started, warmed with every notebook's imports
    _evaluate(run_kernel, "table = list(range(3))\nimport matplotlib.pyplot as plt\nplt.figure()")

    run_kernel.ready()  # the next notebook
    seen, number = _evaluate(
        run_kernel,
        "import sys, matplotlib.pyplot as plt\n"
        "print('table' in globals(), len(plt.get_fignums()),"
        " 'mlflow' in sys.modules, 'leaklib.modelling' in sys.modules)",
    )

    assert seen.split() == ["False", "0", "True", "True"]
    assert number == 1  # the notebook's cells are numbered from 1, as in a fresh kernel


@pytest.mark.skipif(sys.platform != "linux", reason="malloc_trim is glibc's")
def test_the_run_kernel_gives_a_notebooks_freed_memory_back_before_the_next(run_kernel):
    # A freed 16 MiB array raises glibc's mmap threshold, so the 8 MiB arrays after it come
    # from the heap; small arrays kept across the reset (as a library's caches would be) pin
    # the heap above them, so freeing them returns nothing to the system unless it is trimmed.
    run_kernel.ready()
    printed, _ = _evaluate(
        run_kernel,
        "import os, sys, numpy as np\n"
        "big = np.ones(2 * 2**20)\n"
        "del big\n"
        "chunks, sys.pins = [], []\n"
        "for _ in range(40):\n"
        "    chunks.append(np.ones(2**20))\n"
        "    sys.pins.append(np.ones(2**15))\n"
        "print(os.getpid())",
    )
    kernel = psutil.Process(int(printed.split()[-1]))
    held = kernel.memory_info().rss

    run_kernel.ready()  # the next notebook: `chunks` is gone, and its pages with it

    freed = held - kernel.memory_info().rss
    assert freed > 0.5 * 40 * 8 * 2**20  # at least half of the 320 MiB the notebook held


def test_code_for_a_killed_run_kernel_fails_at_once_naming_it(run_kernel):
    from leaklib.pipeline.kernel import KernelError

    run_kernel.ready()
    printed, _ = _evaluate(run_kernel, "import os\nprint(os.getpid())")
    psutil.Process(int(printed.split()[-1])).kill()
    psutil.Process(int(printed.split()[-1])).wait(10)

    with pytest.raises(KernelError, match="the run's kernel is not running"):
        run_kernel.execute("1 + 1")
