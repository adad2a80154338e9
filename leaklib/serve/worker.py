"""The run worker: ``leak run`` in a child process, one at a time."""

import collections
import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence
from typing import Any

from leaklib.errors import LeakError
from leaklib.paths import ENV_PROJECT_DIR, project_root
from leaklib.run_record import RunStatus
from leaklib.serve.security import ENV_TOKEN

log = logging.getLogger(__name__)

STOP_GRACE_S = 30.0  # a run still going at shutdown gets SIGTERM, then this long to record it


class RunBusy(LeakError, RuntimeError):
    """A run this server started is still going."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        super().__init__(f"run {run_id} is still going; one run at a time")


class RunWorker:
    """Runs ``leak run`` in a child process, one at a time, and remembers how each start went.

    The child gets the server's environment without the API token, and its output goes to
    this module's log line by line.
    """

    def __init__(self, command: Sequence[str] | None = None) -> None:
        self.command = list(command or [sys.executable, "-m", "leaklib.cli", "run"])
        self._lock = threading.Lock()
        self._process: subprocess.Popen[str] | None = None
        self._run_id: str | None = None
        self._ended: dict[str, tuple[int, str]] = {}  # run id -> (exit code, last line)

    def running(self) -> str | None:
        """Return the id of the run still going, or None."""
        with self._lock:
            return self._running()

    def _running(self) -> str | None:
        alive = self._process is not None and self._process.poll() is None
        return self._run_id if alive else None

    def start(self, run_id: str, args: Sequence[str]) -> None:
        """Start ``leak run ARGS`` for ``run_id``; RunBusy while another run goes."""
        with self._lock:
            busy = self._running()
            if busy:
                raise RunBusy(busy)
            env = {k: v for k, v in os.environ.items() if k != ENV_TOKEN}
            env[ENV_PROJECT_DIR] = str(project_root())
            self._process = subprocess.Popen(
                [*self.command, *args],
                cwd=project_root(),
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                start_new_session=True,  # a ^C to the server is not a ^C to the run
            )
            self._run_id = run_id
            log.info("run %s started (pid %d)", run_id, self._process.pid)
            threading.Thread(target=self._follow, args=(run_id, self._process), daemon=True).start()

    def _follow(self, run_id: str, process: subprocess.Popen[str]) -> None:
        last = collections.deque(maxlen=1)
        assert process.stdout is not None
        for line in process.stdout:
            line = line.rstrip()
            if line:
                last.append(line)
                log.info("run %s: %s", run_id, line)
        code = process.wait()
        with self._lock:
            self._ended[run_id] = (code, last[0] if last else "")
        log.info("run %s: leak run exited with %d", run_id, code)

    def started_here(self, run_id: str) -> dict[str, Any] | None:
        """Return what is known of a run this server started but that has no record (yet)."""
        with self._lock:
            if run_id == self._running():
                return {"run_id": run_id, "status": "starting"}
            if run_id not in self._ended:
                return None
            code, line = self._ended[run_id]
        return {
            "run_id": run_id,
            "status": RunStatus.FAILED.value,
            "error": f"leak run stopped before recording the run (exit code {code}): {line}",
        }

    def stop(self, *, grace_s: float = STOP_GRACE_S) -> None:
        """Stop a run still going: SIGTERM (recorded as interrupted), then SIGKILL."""
        with self._lock:
            process = self._process if self._running() else None
        if process is None:
            return
        log.warning("stopping run %s (server shutting down)", self._run_id)
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
