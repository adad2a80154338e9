"""The MLflow token comes from the environment and goes nowhere else (slow).

A recognisable token is set, the pipeline runs twice against the GitLab-like proxy (which
needs it, so it is really used; the session's runs of conftest.gitlab_runs, which the MLflow
tests read too), and every byte the runs left behind is searched for it: reports, run records,
snapshots, the commands' own output, the MLflow server's store, artifacts and log.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def _files_holding(root: Path, secret: bytes) -> list[str]:
    return sorted(
        str(path.relative_to(root))
        for path in root.rglob("*")
        if path.is_file() and not path.is_symlink() and secret in path.read_bytes()
    )


@pytest.fixture(scope="module")
def canary_run(gitlab_runs):
    """The session's two verbose runs behind the GitLab-like proxy; its token is the canary."""
    return gitlab_runs, gitlab_runs.token.encode(), gitlab_runs.proxy


def test_canary_run_used_the_token(canary_run):
    runs, _, proxy = canary_run
    for finished in (runs.first, runs.weak):
        assert finished.returncode == 0, finished.stdout + finished.stderr
    assert proxy.exchanges and not [e for e in proxy.exchanges if e.status == 401]


@pytest.mark.parametrize("folder", ["reports", "stores"])
def test_token_is_in_no_report_record_or_snapshot(canary_run, folder):
    runs, secret, _ = canary_run
    assert (runs.project / folder).is_dir()
    assert _files_holding(runs.project / folder, secret) == []


def test_token_is_in_no_project_file(canary_run):
    runs, secret, _ = canary_run
    assert _files_holding(runs.project, secret) == []


def test_token_is_not_in_the_command_output_or_its_log(canary_run):
    runs, secret, _ = canary_run
    for finished in (runs.first, runs.weak):
        assert "leaklib" in finished.stderr  # -v: leaklib's log lines are there to be searched
        assert secret.decode() not in finished.stdout + finished.stderr


def test_token_is_not_in_the_mlflow_store_artifacts_or_server_log(canary_run, mlflow_server):
    _, secret, _ = canary_run
    assert _files_holding(mlflow_server.root, secret) == []
