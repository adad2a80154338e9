"""Pytest plugin: session-scoped Google Cloud emulators, and clients pointed at them.

Registered by ``pytest_plugins = ["tests.emulators.plugin"]`` in ``tests/conftest.py``.

Session fixtures (each server starts on first use and stops at the end of the session):
``gcs_emulator``, ``firestore_emulator``, ``bigquery_emulator``. Function fixtures set the
emulator's environment variable for the test (so clients built from the environment, as the
stores and the source do, reach the emulator and never Google) and hand over a plain client:
``storage_client``, ``firestore_project``, ``bigquery_client``.

When an emulator cannot be installed or started, the tests that need it are skipped with the
reason; with ``CI=true`` they fail instead, so a broken install cannot hide behind skips.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from tests.emulators import servers
from tests.emulators.servers import Emulator, EmulatorUnavailable

# ADC must never be found while the tests run: everything goes to the emulators
_NO_CLOUD = {
    "GOOGLE_APPLICATION_CREDENTIALS": "",
    "GOOGLE_CLOUD_PROJECT": "leak-test",
}


def in_ci() -> bool:
    """True in CI, where an emulator that does not start must fail the tests, not skip them."""
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def _unavailable(exc: Exception) -> None:
    message = f"emulator unavailable: {exc}"
    if in_ci():
        pytest.fail(f"{message}\n(CI=true: failing instead of skipping)", pytrace=False)
    pytest.skip(message)


def _session_server(request: pytest.FixtureRequest, starter) -> Iterator[Emulator]:
    try:
        context = starter()
        emulator = context.__enter__()
    except EmulatorUnavailable as exc:
        _unavailable(exc)
    try:
        yield emulator
    finally:
        context.__exit__(None, None, None)


@pytest.fixture(scope="session")
def gcs_emulator(request: pytest.FixtureRequest) -> Iterator[Emulator]:
    """fake-gcs-server on 127.0.0.1."""
    yield from _session_server(request, servers.start_gcs)


@pytest.fixture(scope="session")
def firestore_emulator(request: pytest.FixtureRequest) -> Iterator[Emulator]:
    """Google's Cloud Firestore emulator on 127.0.0.1."""
    yield from _session_server(request, servers.start_firestore)


@pytest.fixture(scope="session")
def bigquery_emulator(request: pytest.FixtureRequest) -> Iterator[Emulator]:
    """bqemulator (REST on one port, Storage gRPC on another) on 127.0.0.1."""
    yield from _session_server(request, servers.start_bigquery)


def _point_at(monkeypatch: pytest.MonkeyPatch, emulator: Emulator) -> None:
    for key, value in {**_NO_CLOUD, **emulator.env}.items():
        if value:
            monkeypatch.setenv(key, value)
        else:
            monkeypatch.delenv(key, raising=False)


@pytest.fixture
def storage_client(gcs_emulator: Emulator, monkeypatch: pytest.MonkeyPatch):
    """A ``google.cloud.storage.Client`` on the emulator (STORAGE_EMULATOR_HOST set for the test)."""
    from google.cloud import storage

    _point_at(monkeypatch, gcs_emulator)
    return storage.Client(project="leak-test")


@pytest.fixture
def gcs_bucket(storage_client) -> str:
    """A new, empty bucket on the emulator; returns its name."""
    name = f"leak-{uuid.uuid4().hex[:12]}"
    storage_client.create_bucket(name)
    return name


@pytest.fixture
def firestore_project(firestore_emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh project id on the Firestore emulator (FIRESTORE_EMULATOR_HOST set for the test)."""
    _point_at(monkeypatch, firestore_emulator)
    return f"leak-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def bigquery_client(bigquery_emulator: Emulator, monkeypatch: pytest.MonkeyPatch):
    """A ``google.cloud.bigquery.Client`` on the emulator (BIGQUERY_EMULATOR_HOST set)."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import bigquery

    _point_at(monkeypatch, bigquery_emulator)
    return bigquery.Client(
        project=bigquery_emulator.extra["project"], credentials=AnonymousCredentials()
    )


def pytest_configure(config: pytest.Config) -> None:
    # pyproject.toml declares the marker too; keep the plugin usable on its own
    config.addinivalue_line(
        "markers", "emulators: needs the Google Cloud emulators (tests/emulators)"
    )
