"""What keeps a run's record honest while a step runs: signals, a heartbeat, fail-fast checks.

- :func:`interruptible` turns SIGTERM (a CI job's timeout or cancel) and SIGINT (Ctrl-C) into
  :class:`Interrupted`, raised in the main thread, so the runner can mark the step and the
  run failed, shut the kernel down and render what exists before it exits.
- :class:`Heartbeat` stamps the run record every few seconds from a background thread; a
  record left ``running`` by a machine that died (SIGKILL) stops beating and shows as
  ``abandoned`` once its heartbeat is older than :data:`leaklib.runs.ABANDONED_AFTER_S`.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

import psutil

from leaklib import runs
from leaklib.metadata import MetadataError, MetadataStore

log = logging.getLogger(__name__)

_SIGNALS = {signal.SIGTERM: "SIGTERM", signal.SIGINT: "SIGINT"}


class Interrupted(BaseException):  # noqa: N818 - like KeyboardInterrupt, not an error of ours
    """The run was asked to stop by a signal; ``exit_code`` is what a shell reports for it."""

    def __init__(self, signum: int) -> None:
        self.signal = _SIGNALS.get(signum, str(signum))
        self.exit_code = 128 + int(signum)
        super().__init__(f"interrupted by {self.signal}")


@contextmanager
def interruptible() -> Iterator[None]:
    """Raise :class:`Interrupted` on the first SIGTERM or SIGINT; ignore repeats while cleaning up.

    Only the main thread can receive Python signal handlers; elsewhere this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.getsignal(signum) for signum in _SIGNALS}

    def handler(signum: int, frame: FrameType | None) -> None:
        for other in _SIGNALS:  # the cleanup must finish: a second signal does not cut it short
            signal.signal(other, signal.SIG_IGN)
        raise Interrupted(signum)

    for signum in _SIGNALS:
        signal.signal(signum, handler)
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


class Heartbeat:
    """Stamp ``heartbeat_at`` on a running run every ``every_s`` seconds, in a daemon thread."""

    def __init__(self, store: MetadataStore, run_id: str, *, every_s: float = runs.HEARTBEAT_S):
        self._store, self._run_id, self._every = store, run_id, every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"heartbeat-{run_id}", daemon=True)

    def _beat(self) -> None:
        while not self._stop.wait(self._every):
            try:
                runs.heartbeat(self._store, self._run_id)
            except MetadataError as exc:  # a store hiccup: the next beat tries again
                log.warning("heartbeat of run %s not recorded: %s", self._run_id, exc)

    def __enter__(self) -> Heartbeat:
        runs.heartbeat(self._store, self._run_id)
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def stop_kernels(*, grace_s: float = 3.0) -> int:
    """Terminate this process's notebook kernels (then kill those that linger); return how many.

    A signal that interrupts papermill leaves its kernel running; only kernel processes are
    stopped, never other children (a test's emulators, for instance).
    """
    kernels = [child for child in psutil.Process().children(recursive=True) if _is_kernel(child)]
    for kernel in kernels:
        kernel.terminate()
    _, alive = psutil.wait_procs(kernels, timeout=grace_s)
    for kernel in alive:
        kernel.kill()
    return len(kernels)


def _is_kernel(process: psutil.Process) -> bool:
    try:
        return "ipykernel_launcher" in " ".join(process.cmdline())
    except psutil.Error:  # it ended while we looked
        return False
