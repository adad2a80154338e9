"""The MLflow token comes from the environment and goes nowhere else (slow).

A recognisable token is set, the pipeline runs against the GitLab-like proxy (which needs
it, so it is really used), and every byte the run left behind is searched for it: reports,
run records, snapshots, the command's own output, the MLflow server's store, artifacts and
log.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from tests.conftest import leak_smoke_named, make_project
from tests.mlflow_servers import start_gitlab_proxy

pytestmark = pytest.mark.slow


def _files_holding(root: Path, secret: bytes) -> list[str]:
    return sorted(
        str(path.relative_to(root))
        for path in root.rglob("*")
        if path.is_file() and not path.is_symlink() and secret in path.read_bytes()
    )


@pytest.fixture(scope="module")
def canary_run(mlflow_server, tmp_path_factory):
    """One verbose `leak run` whose only credential is a canary token."""
    token = f"glpat-CANARY{uuid.uuid4().hex}"
    proxy = start_gitlab_proxy(mlflow_server.uri, token=token)
    try:
        project = make_project(tmp_path_factory.mktemp("secrets") / "project")
        name = f"secrets-{uuid.uuid4().hex[:8]}"
        env = {"MLFLOW_TRACKING_URI": proxy.uri, "MLFLOW_TRACKING_TOKEN": token}
        finished = leak_smoke_named(project, name, env=env, verbose=True)
        yield finished, token.encode(), proxy
    finally:
        proxy.close()


def test_canary_run_used_the_token(canary_run):
    finished, _, proxy = canary_run
    assert finished.returncode == 0, finished.stdout + finished.stderr
    assert proxy.exchanges and not [e for e in proxy.exchanges if e.status == 401]


@pytest.mark.parametrize("folder", ["reports", "stores"])
def test_token_is_in_no_report_record_or_snapshot(canary_run, folder):
    finished, secret, _ = canary_run
    assert (finished.project / folder).is_dir()
    assert _files_holding(finished.project / folder, secret) == []


def test_token_is_in_no_project_file(canary_run):
    finished, secret, _ = canary_run
    assert _files_holding(finished.project, secret) == []


def test_token_is_not_in_the_command_output_or_its_log(canary_run):
    finished, secret, _ = canary_run
    assert "leaklib" in finished.stderr  # -v: leaklib's log lines are there to be searched
    assert secret.decode() not in finished.stdout + finished.stderr


def test_token_is_not_in_the_mlflow_store_artifacts_or_server_log(canary_run, mlflow_server):
    _, secret, _ = canary_run
    assert _files_holding(mlflow_server.root, secret) == []
