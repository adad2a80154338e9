""".gitlab-ci.yml and .pre-commit-config.yaml: GitLab's schema, the pipeline's shape, the hooks,
and the retrain and pages jobs run for real with gitlab-ci-local."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import leak, make_project

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
CI_FILE = ROOT / ".gitlab-ci.yml"
PRE_COMMIT = ROOT / ".pre-commit-config.yaml"
DOCUMENTED = ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_TOKEN", "GOOGLE_APPLICATION_CREDENTIALS")


class _GitLabLoader(yaml.SafeLoader):
    """YAML loader that reads GitLab's ``!reference [job, key]`` tag as a plain list."""


_GitLabLoader.add_constructor(
    "!reference", lambda loader, node: loader.construct_sequence(node, deep=True)
)


@pytest.fixture(scope="module")
def pipeline() -> dict[str, Any]:
    return yaml.load(CI_FILE.read_text(), Loader=_GitLabLoader)


def check_jsonschema(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.gitlab-ci"]
        + ["--data-transform", "gitlab-ci", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def need(available: bool, reason: str) -> None:
    """Skip when a tool is missing, but fail under CI=true so a broken install cannot hide."""
    if available:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: .ci/install-tools.sh must provide it)")
    pytest.skip(f"{reason}; run .ci/install-tools.sh")


# --- the pipeline file ------------------------------------------------------------------------


def test_gitlab_schema_accepts_the_pipeline() -> None:
    result = check_jsonschema(CI_FILE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_gitlab_schema_rejects_a_broken_pipeline(tmp_path: Path) -> None:
    broken = tmp_path / ".gitlab-ci.yml"
    broken.write_text(CI_FILE.read_text().replace("resource_group: retrain", "when: sometimes"))
    result = check_jsonschema(broken)
    assert result.returncode == 1
    assert "$.retrain.when: 'sometimes' is not one of" in result.stdout


def test_pipeline_has_test_retrain_and_pages_stages(pipeline: dict[str, Any]) -> None:
    assert pipeline["stages"] == ["test", "retrain", "pages"]
    assert {pipeline[j]["stage"] for j in ("test", "retrain", "pages")} == {
        "test",
        "retrain",
        "pages",
    }


def test_pipeline_runs_on_python_311(pipeline: dict[str, Any]) -> None:
    assert pipeline["image"] == "python:3.11"


def test_pipeline_caches_pip_inside_the_project(pipeline: dict[str, Any]) -> None:
    assert pipeline["variables"]["PIP_CACHE_DIR"] == "$CI_PROJECT_DIR/.cache/pip"
    assert ".cache/pip" in pipeline["cache"]["paths"]


def test_test_job_runs_make_test(pipeline: dict[str, Any]) -> None:
    assert pipeline["test"]["script"] == ["make test"]


def test_retrain_runs_on_schedules_and_by_hand_only(pipeline: dict[str, Any]) -> None:
    rules = pipeline[".retrain-rules"]["rules"]
    assert [r["if"] for r in rules] == [
        '$CI_PIPELINE_SOURCE == "schedule"',
        '$CI_PIPELINE_SOURCE == "web"',
    ]
    assert pipeline["retrain"]["rules"] == [[".retrain-rules", "rules"]]


def test_retrain_never_runs_twice_at_once(pipeline: dict[str, Any]) -> None:
    assert pipeline["retrain"]["resource_group"] == "retrain"


def test_retrain_runs_durable_on_the_parameters_of_a_variable(pipeline: dict[str, Any]) -> None:
    assert pipeline["retrain"]["script"] == ['leak run --durable -f "$LEAK_PARAMS_FILE"']
    assert pipeline["variables"]["LEAK_PARAMS_FILE"]["value"] == "parameters/gcp.example.yaml"


def test_pages_job_publishes_the_site(pipeline: dict[str, Any]) -> None:
    job = pipeline["pages"]
    assert job["script"] == ['leak pages -f "$LEAK_PARAMS_FILE" --out public']
    assert job["artifacts"]["paths"] == ["public"]


def test_pages_job_lists_a_failed_retrain_too(pipeline: dict[str, Any]) -> None:
    assert {r.get("when") for r in pipeline["pages"]["rules"]} == {"always"}
    assert pipeline["retrain"]["artifacts"]["when"] == "always"


@pytest.mark.parametrize("variable", DOCUMENTED)
def test_ci_variables_are_documented(variable: str) -> None:
    comments = "\n".join(line for line in CI_FILE.read_text().splitlines() if line.startswith("#"))
    assert variable in comments
    assert variable in (ROOT / "docs" / "ci.md").read_text()


# --- pre-commit -------------------------------------------------------------------------------


def test_pre_commit_hooks_are_local_so_they_run_offline() -> None:
    config = yaml.safe_load(PRE_COMMIT.read_text())
    assert [repo["repo"] for repo in config["repos"]] == ["local"]
    hooks = {h["id"]: h for h in config["repos"][0]["hooks"]}
    assert set(hooks) == {
        "ruff",
        "ruff-format",
        "nbstripout",
        "check-gitlab-ci",
        "detect-private-key",
    }
    assert {h["language"] for h in hooks.values()} <= {"system", "pygrep"}


@pytest.fixture
def hook_repo(tmp_path: Path) -> Path:
    """A scratch git repository with this project's hook configuration and .venv."""
    repo = tmp_path / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    shutil.copy(PRE_COMMIT, repo / ".pre-commit-config.yaml")
    shutil.copy(ROOT / "pyproject.toml", repo / "pyproject.toml")
    (repo / ".venv").symlink_to(sys.prefix)
    return repo


def pre_commit(repo: Path, hook: str, *files: str) -> subprocess.CompletedProcess[str]:
    subprocess.run(["git", "-C", str(repo), "add", *files], check=True)
    env = {**os.environ, "PRE_COMMIT_HOME": str(repo.parent / "pre-commit-home")}
    return subprocess.run(
        [str(BIN / "pre-commit"), "run", hook, "--files", *files],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_pre_commit_checks_the_pipeline_against_gitlabs_schema(hook_repo: Path) -> None:
    shutil.copy(CI_FILE, hook_repo / ".gitlab-ci.yml")
    result = pre_commit(hook_repo, "check-gitlab-ci", ".gitlab-ci.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_pre_commit_refuses_a_private_key(hook_repo: Path) -> None:
    header = "-----BEGIN " + "RSA PRIVATE KEY-----"
    (hook_repo / "key.txt").write_text(f"{header}\nMIIEowIBAAKCAQEA\n")
    result = pre_commit(hook_repo, "detect-private-key", "key.txt")
    assert result.returncode == 1
    assert "key.txt:1" in result.stdout


def test_pre_commit_strips_notebook_outputs(hook_repo: Path) -> None:
    import nbformat

    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("1 + 1", execution_count=3)
    cell.outputs = [
        nbformat.v4.new_output("execute_result", data={"text/plain": "2"}, execution_count=3)
    ]
    nb.cells = [cell]
    nbformat.write(nb, hook_repo / "step.ipynb")
    pre_commit(hook_repo, "nbstripout", "step.ipynb")
    stripped = nbformat.read(hook_repo / "step.ipynb", as_version=4).cells[0]
    assert (stripped.outputs, stripped.execution_count, stripped.id) == ([], None, cell.id)


# --- the pipeline, run locally ------------------------------------------------------------------


def gitlab_ci_local() -> list[str] | None:
    """Return the command that runs gitlab-ci-local on Node >= 22, or None."""
    wrapper = ROOT / ".cache" / "bin" / "gitlab-ci-local"
    if wrapper.is_file():
        return [str(wrapper)]
    found, node = shutil.which("gitlab-ci-local"), shutil.which("node")
    if not (found and node):
        return None
    version = subprocess.run([node, "--version"], capture_output=True, text=True).stdout
    major = re.match(r"v(\d+)", version)
    return [found] if major and int(major.group(1)) >= 22 else None


def project_copy(target: Path) -> Path:
    """Copy the checkout's files (tracked and new, not ignored) into a fresh git repository."""
    listed = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "-co", "--exclude-standard", "-z"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\0")
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    from leaklib.params import read_yaml

    data = read_yaml(ROOT / "parameters" / "default.yaml")["dataset"]["source"]
    if "://" not in data and (ROOT / data).is_file() and not (target / data).exists():
        (target / data).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / data, target / data)
    git = ["git", "-C", str(target), "-c", "user.name=ci", "-c", "user.email=ci@example.com"]
    subprocess.run([*git, "init", "-q", "-b", "main"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "copy"], check=True)
    subprocess.run([*git, "remote", "add", "origin", "https://gitlab.example.com/leak/leak.git"])
    return target


# --- leak run --durable, as the retrain job runs it ---------------------------------------------


def refused(project: Path, params_file: str) -> str:
    """Run ``leak run --durable -f params_file``; return stderr's first line, nothing written."""
    before = sorted(p.name for p in project.iterdir())
    done = leak(project, "run", "--durable", "-f", params_file)
    assert done.returncode == 2, done.stdout + done.stderr
    assert sorted(p.name for p in project.iterdir()) == before  # no stores/, reports/, mlflow.db
    return done.stderr.splitlines()[0]


def test_durable_run_refuses_local_stores_naming_them(tmp_path: Path) -> None:
    first = refused(make_project(tmp_path / "project"), "parameters/smoke.yaml")
    assert first.startswith(
        "leak run: error: --durable: snapshot_store 'stores/snapshots' and "
        "metadata_store 'stores/metadata' would live only inside this job"
    )
    assert "set LEAK_PARAMS_FILE to a parameter set" in first


def test_durable_run_refuses_the_example_placeholders(tmp_path: Path) -> None:
    first = refused(make_project(tmp_path / "project"), "parameters/gcp.example.yaml")
    assert first.startswith(
        "leak run: error: LEAK_PARAMS_FILE still holds the placeholders of "
        "parameters/gcp.example.yaml"
    )
    for placeholder in (
        "snapshot_store 'gs://my-leak-snapshots/snapshots'",
        "metadata_store 'firestore://my-project/leak-runs'",
    ):
        assert placeholder in first
