""".gitlab-ci.yml and .pre-commit-config.yaml: GitLab's schema, the pipeline's shape, the hooks,
the retrain job's --durable refusals, and three retrain-then-pages pipelines run for real with
gitlab-ci-local on the Cloud Storage and Firestore emulators."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests import chromium
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


def test_pipeline_has_test_retrain_pages_and_deploy_stages(pipeline: dict[str, Any]) -> None:
    assert pipeline["stages"] == ["test", "retrain", "pages", "deploy"]
    assert {pipeline[j]["stage"] for j in ("test", "retrain", "pages", "deploy")} == {
        "test",
        "retrain",
        "pages",
        "deploy",
    }


DEPLOY_VARIABLES = (
    "GCP_PROJECT_ID",
    "GCP_REGION",
    "CLOUD_RUN_SERVICE",
    "CLOUD_RUN_SERVICE_ACCOUNT",
    "ARTIFACT_REGISTRY_REPOSITORY",
    "GCP_DEPLOY_CREDENTIALS",
    "LEAK_API_TOKEN_SECRET",
)


def test_deploy_is_manual_on_the_default_branch_after_the_tests(pipeline: dict[str, Any]) -> None:
    job = pipeline["deploy"]
    assert job["rules"] == [{"if": "$CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH", "when": "manual"}]
    assert job["needs"] == [{"job": "test"}]
    script = "\n".join(job["script"])
    assert "gcloud builds submit" in script and "gcloud run deploy" in script
    assert "LEAK_API_TOKEN=$LEAK_API_TOKEN_SECRET:latest" in script  # from Secret Manager
    for variable in DEPLOY_VARIABLES:
        assert f"${variable}" in script + "\n".join(job["before_script"]), variable


@pytest.mark.parametrize("variable", DEPLOY_VARIABLES)
def test_deploy_variables_are_documented(variable: str) -> None:
    comments = "\n".join(line for line in CI_FILE.read_text().splitlines() if line.startswith("#"))
    assert variable in comments
    assert variable in (ROOT / "docs" / "ci.md").read_text()


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


def gitlab_ci_local_env() -> dict[str, str]:
    """This process's environment without what would leak into the jobs (CI, MLflow, Google)."""
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("LEAK_", "MLFLOW_", "GOOGLE_", "CI_", "GITLAB_"))
        and not k.endswith("_EMULATOR_HOST")
    }


# --- leak run --durable, as the retrain job runs it ---------------------------------------------


def refused(project: Path, params_file: str) -> str:
    """Run ``leak run --durable -f params_file``; return stderr's first line, nothing written."""
    before = sorted(p.name for p in project.iterdir())
    done = leak(project, "run", "--durable", "-f", params_file)
    assert done.returncode == 2, done.stdout + done.stderr
    assert sorted(p.name for p in project.iterdir()) == before  # no stores/, reports/, mlflow.db
    return done.stderr.splitlines()[0]


@pytest.mark.slow
def test_durable_run_refuses_local_stores_naming_them(tmp_path: Path) -> None:
    first = refused(make_project(tmp_path / "project"), "parameters/smoke.yaml")
    assert first.startswith(
        "leak run: error: --durable: snapshot_store 'stores/snapshots' and "
        "metadata_store 'stores/metadata' would live only inside this job"
    )
    assert "set LEAK_PARAMS_FILE to a parameter set" in first


@pytest.mark.slow
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


# --- three scheduled retrains on the emulators, with gitlab-ci-local -----------------------------

# The model of each pipeline; everything else is parameters/smoke.yaml, with the least work the
# loop's checks need (two folds, one permutation repeat, the fewest bootstrap draws allowed).
LEAST_WORK = {"cv_folds": 2, "permutation_repeats": 1}
PIPELINE_MODELS = (
    {"name": "hist_gradient_boosting", "params": {"max_iter": 40}},  # the first champion
    {"name": "hist_gradient_boosting", "params": {"max_iter": 80}},  # another reasonable model
    {"name": "hist_gradient_boosting", "params": {"max_iter": 1, "max_depth": 1}},  # one stump
)
# The stream grows between pipelines, as a scheduled retrain sees it: the smoke stretch up to
# 22 February, then 1 March, then 15 March 2019 (the holdout starts on 1 February)
GROWTH = tuple(
    {"dataset.period": {"start": "2018-09-15", "end": end}}
    for end in ("2019-02-22", "2019-03-01", "2019-03-15")
)
# Written by the jobs into the folder gitlab-ci-local runs in, or left by them there
MODEL_NAME = yaml.safe_load((ROOT / "parameters" / "smoke.yaml").read_text()).get(
    "dataset.model_name", "leak-detector"
)
JOB_LEFTOVERS = ("reports", "public", "stores", "mlflow.db", "mlruns", "mlartifacts")
PIPELINE_TIMEOUT_S = 900


def write_pipeline_params(project: Path, *, bucket: str, firestore_uri: str) -> list[str]:
    """Write parameters/ciN.yaml (smoke, the emulator stores, pipeline N's model) and commit them.

    gitlab-ci-local's shell isolation copies only files git tracks into each job's folder.
    """
    smoke = yaml.safe_load((ROOT / "parameters" / "smoke.yaml").read_text())
    names = []
    for number, (model, growth) in enumerate(zip(PIPELINE_MODELS, GROWTH, strict=True), start=1):
        values = {
            **smoke,
            **LEAST_WORK,
            **growth,
            # ROC-AUC: the loop's checks (a one-stump model loses) hold on any three weeks
            "promotion": {**smoke["promotion"], "n_bootstrap": 100, "primary_metric": "roc_auc"},
            "model": model,
            "snapshot_store": f"gs://{bucket}/snapshots",
            "metadata_store": firestore_uri,
        }
        name = f"parameters/ci{number}.yaml"
        (project / name).write_text(yaml.safe_dump(values, sort_keys=False))
        names.append(name)
    git = ["git", "-C", str(project), "-c", "user.name=ci", "-c", "user.email=ci@example.com"]
    subprocess.run([*git, "add", *names], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "three pipeline parameter sets"], check=True)
    return names


def forget_earlier_pipelines(project: Path) -> None:
    """Delete what earlier pipelines left in the project, so only the durable stores carry over.

    Shell isolation runs each job in .gitlab-ci-local/builds/<job> (a fresh rsync of the
    tracked files, so the job's mlflow.db dies with it) and copies its artifacts (reports/,
    public/) back into the project; those, and the build and artifact folders, go.
    """
    state = project / ".gitlab-ci-local"
    for path in [
        *(project / name for name in JOB_LEFTOVERS),
        state / "builds",
        state / "artifacts",
    ]:
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def run_pipeline(
    command: list[str], project: Path, *, params_file: str, variables: dict[str, str], home: Path
) -> subprocess.CompletedProcess[str]:
    """Run retrain then pages as a pipeline started by hand (Build > Pipelines > Run pipeline)."""
    flags = [f"--variable={key}={value}" for key, value in variables.items()]
    return subprocess.run(
        [*command, "retrain", "pages", "--force-shell-executor", "--shell-isolation"]
        + [f"--variable=LEAK_PARAMS_FILE={params_file}", f"--variable=LEAK_VENV={sys.prefix}"]
        + ["--variable=CI_PIPELINE_SOURCE=web", "--ignore-predefined-vars", "CI_PIPELINE_SOURCE"]
        + [*flags, "--home", str(home), "--color=false"],
        cwd=project,
        env=gitlab_ci_local_env(),
        capture_output=True,
        text=True,
        timeout=PIPELINE_TIMEOUT_S,
    )


def loop_line(number: int, run: dict[str, Any], seconds: float) -> str:
    """One line per pipeline: run, decision, reason, and the champion the gate compared with."""
    promotion = run["promotion"]
    compared = promotion.get("champion") or {}
    against = (
        f"champion run {compared['run_id']} model sha256 {compared['model_sha256']}"
        if compared
        else "no champion"
    )
    return (
        f"pipeline {number}: run {run['run_id']} | {promotion['decision']} | "
        f"{promotion['reason']} | compared with {against} | {seconds:.0f} s"
    )


@pytest.mark.slow
@pytest.mark.emulators
def test_three_pipelines_retrain_against_the_champion_of_the_one_before(
    tmp_path: Path,
    gcs_emulator: Any,
    firestore_emulator: Any,
    gcs_bucket: str,
    firestore_project: str,
    storage_client: Any,
) -> None:
    """The issue's loop: three pipelines, stores on the emulators, MLflow fresh in every job.

    Pipeline 1 promotes its model (no champion yet); pipeline 2's gate loads pipeline 1's
    model from Cloud Storage by hash and compares; pipeline 3's one-stump model loses to the
    champion of the day. Pipeline 3's Pages site lists all three runs with their reports,
    fetched from the archive (pipeline 3's pages job has only its own retrain's reports).
    """
    from leaklib import champion, run_record
    from leaklib.metadata import open_metadata_store

    command = gitlab_ci_local()
    need(command is not None, "gitlab-ci-local on Node >= 22 is not installed")
    need(shutil.which("rsync") is not None, "rsync (needed by gitlab-ci-local) is not installed")
    need(chromium.missing() is None, chromium.missing() or "")
    started = time.monotonic()
    firestore_uri = f"firestore://{firestore_project}/(default)"
    project = project_copy(tmp_path / "project")
    files = write_pipeline_params(project, bucket=gcs_bucket, firestore_uri=firestore_uri)
    # what the emulator fixtures set in this process (GOOGLE_APPLICATION_CREDENTIALS they
    # unset), handed to the jobs as CI/CD variables
    variables = {
        **gcs_emulator.env,
        **firestore_emulator.env,
        "GOOGLE_CLOUD_PROJECT": os.environ["GOOGLE_CLOUD_PROJECT"],
    }
    store = open_metadata_store(firestore_uri)
    loop_log = Path(os.environ["LEAK_CI_LOOP_LOG"]) if os.environ.get("LEAK_CI_LOOP_LOG") else None
    if loop_log:
        loop_log.write_text("")
    seen: list[dict[str, Any]] = []
    champions: list[dict[str, Any] | None] = [None]  # [n]: the champion after pipeline n
    for number, params_file in enumerate(files, start=1):
        forget_earlier_pipelines(project)
        began = time.monotonic()
        result = run_pipeline(
            command, project, params_file=params_file, variables=variables, home=tmp_path / "home"
        )
        log = (result.stdout + result.stderr)[-6000:]
        assert result.returncode == 0, f"pipeline {number}:\n{log}"
        done = {s["run_id"] for s in seen}
        new = [r.to_doc() for r in run_record.list_runs(store) if r.run_id not in done]
        assert len(new) == 1, f"pipeline {number} recorded {len(new)} runs:\n{log}"
        assert new[0]["status"] == "succeeded", f"pipeline {number}: {new[0].get('error')}\n{log}"
        seen.append(new[0])
        champions.append(champion.current_champion(store, model_name=MODEL_NAME))
        line = loop_line(number, new[0], time.monotonic() - began)
        print(line)
        if loop_log:
            with loop_log.open("a") as out:
                out.write(line + "\n")

    first, second, third = seen
    # every model went to Cloud Storage once, by hash; each job's MLflow began empty
    for run in seen:
        model = run["model"]
        assert model["uri"] == f"gs://{gcs_bucket}/snapshots/models/{model['sha256']}.skops"
        assert (
            storage_client.bucket(gcs_bucket)
            .blob(f"snapshots/models/{model['sha256']}.skops")
            .exists()
        )
        assert str(model.get("version")) == "1", model
    # 1: no champion yet, promoted
    assert first["promotion"]["decision"] == "promoted"
    assert first["promotion"]["champion"] is None
    assert champions[1]["run_id"] == first["run_id"]
    assert champions[1]["model_sha256"] == first["model"]["sha256"]
    # 2: compared with pipeline 1's model, loaded from storage and verified by its hash
    compared = second["promotion"]["champion"]
    assert compared["run_id"] == first["run_id"]
    assert compared["model_sha256"] == first["model"]["sha256"] != second["model"]["sha256"]
    assert second["promotion"]["difference"] is not None, second["promotion"]["reason"]
    assert compared["metrics"], second["promotion"]["reason"]
    # the stream grew, but the holdout still starts after the champion's training period
    for run in (second, third):
        comparison = run["promotion"]["comparison"]
        assert comparison["left_out_rows"] == 0 and comparison["rows"] > 0, comparison
        assert comparison["source"] == "record", comparison
    # 3: the weaker challenger loses to the champion of the day, which stays
    compared = third["promotion"]["champion"]
    assert third["promotion"]["decision"] == "not promoted"
    assert compared["run_id"] == champions[2]["run_id"]
    assert compared["model_sha256"] == champions[2]["model_sha256"] != third["model"]["sha256"]
    assert third["promotion"]["difference"] < 0, third["promotion"]["reason"]
    assert champions[3]["run_id"] == champions[2]["run_id"]
    assert_site_lists_every_run(project / "public", seen, tmp_path / "chromium-profile")
    print(f"three pipelines in {time.monotonic() - started:.0f} s")


def assert_site_lists_every_run(public: Path, seen: list[dict[str, Any]], profile: Path) -> None:
    """Open the site in headless Chromium: every run listed, each with its three reports."""
    with chromium.chromium(profile) as driver:
        index = chromium.inspect(driver, public / "index.html")
        assert chromium.console_errors(index) == []
        assert chromium.broken_links(index, root=public) == []
        assert set(index["rows"]) == {f"run-{run['run_id']}" for run in seen}
        for run in seen:
            links = sorted(h for h in index["links"] if h.startswith(f"{run['run_id']}/"))
            archived = sorted(run["reports_archive"].values(), key=lambda e: e["file"])
            assert len(archived) == 3, run["reports_archive"]
            assert links == [f"{run['run_id']}/{entry['file']}" for entry in archived]
            for entry in archived:
                page = public / run["run_id"] / entry["file"]
                assert hashlib.sha256(page.read_bytes()).hexdigest() == entry["sha256"]
                report = chromium.inspect(driver, page)
                assert chromium.console_errors(report) == [], page
                assert run["run_id"] in report["text"]
