"""Signals, the heartbeat and stopping kernels: what keeps a run's record honest."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from leaklib import run_record, runs
from leaklib.metadata import LocalMetadataStore
from leaklib.pipeline.guard import Heartbeat, Interrupted, interruptible, stop_kernels


def _running(tmp_path) -> tuple[LocalMetadataStore, str]:
    store = LocalMetadataStore(tmp_path / "meta")
    runs.start_run(store, run_id="r1", params={"seed": 1}, param_files=[], origin="test")
    return store, "r1"


def test_sigterm_inside_interruptible_raises_interrupted_with_the_shell_exit_code():
    with pytest.raises(Interrupted) as caught, interruptible():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler interrupts this sleep
    assert caught.value.signal == "SIGTERM" and caught.value.exit_code == 143


def test_interruptible_restores_the_previous_handlers():
    before = signal.getsignal(signal.SIGTERM)
    with interruptible():
        assert signal.getsignal(signal.SIGTERM) is not before
    assert signal.getsignal(signal.SIGTERM) is before


def test_a_second_signal_during_cleanup_is_ignored():
    with pytest.raises(Interrupted), interruptible():
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)
        except Interrupted:
            os.kill(os.getpid(), signal.SIGTERM)  # cleanup goes on: no second Interrupted
            time.sleep(0.2)
            raise


def test_heartbeat_stamps_the_running_record_until_it_stops(tmp_path):
    store, run_id = _running(tmp_path)
    with Heartbeat(store, run_id, every_s=0.05):
        first = run_record.get_run(store, run_id).heartbeat_at
        time.sleep(1.2)
        later = run_record.get_run(store, run_id).heartbeat_at
    assert first and later > first  # ISO seconds: at least one more beat a second later
    stopped = run_record.get_run(store, run_id).heartbeat_at
    time.sleep(1.1)
    assert run_record.get_run(store, run_id).heartbeat_at == stopped


def test_heartbeat_leaves_a_finished_run_alone(tmp_path):
    store, run_id = _running(tmp_path)
    runs.close_run(store, run_id)
    assert runs.heartbeat(store, run_id).heartbeat_at is None


def test_stop_kernels_ends_kernel_processes_and_spares_other_children():
    sleeper = "import time; time.sleep(60)"
    kernel = subprocess.Popen([sys.executable, "-c", sleeper, "ipykernel_launcher"])
    other = subprocess.Popen([sys.executable, "-c", sleeper])
    try:
        assert stop_kernels(grace_s=5) == 1
        assert kernel.wait(timeout=10) is not None
        assert other.poll() is None
    finally:
        for process in (kernel, other):
            process.kill()
            process.wait()
