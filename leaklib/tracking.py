"""MLflow tracking: where runs go, what each run logs, and links between runs and reports.

The tracking server comes from ``MLFLOW_TRACKING_URI`` (and ``MLFLOW_TRACKING_TOKEN``, read
by MLflow itself) or, by default, a local sqlite store ``mlflow.db`` in the project folder.
Models are logged as run artifacts (``runs:/<id>/model``), which every MLflow server
implements, GitLab's subset of the API included.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import time
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pandas as pd
import requests

from leaklib import models
from leaklib.errors import LeakError
from leaklib.params import Params, flatten
from leaklib.paths import project_root
from leaklib.run_record import RunRecord, SnapshotRef

log = logging.getLogger(__name__)

MODEL_PATH = "model"
_REQUIREMENTS = ("scikit-learn", "pandas", "numpy", "scipy", "skops")


def mlflow_module() -> Any:
    """Return the ``mlflow`` module with its telemetry off (the one place that switch is set)."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("MLFLOW_ENABLE_TELEMETRY", "false")
    import mlflow  # heavy (1.6 to 2.5 s): loaded only by the steps that track

    return mlflow


def local_tracking_uri() -> str:
    """Return the embedded default: a sqlite store in the project folder."""
    return f"sqlite:///{project_root() / 'mlflow.db'}"


def public_uri(uri: str) -> str:
    """Return a tracking URI with any user name, password or query secrets removed."""
    parts = urlsplit(uri)
    if not parts.netloc:
        return uri
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def configure() -> str:
    """Point MLflow at ``$MLFLOW_TRACKING_URI`` or the local store; return the public URI."""
    mlflow = mlflow_module()
    uri = tracking_uri()
    mlflow.set_tracking_uri(uri)
    return public_uri(uri)


def is_local_tracking(uri: str) -> bool:
    """Return True when the tracking store is a local file or sqlite database."""
    return uri.startswith(("sqlite:", "file:")) or "://" not in uri


class TrackingUnreachable(LeakError, RuntimeError):
    """The MLflow tracking server does not answer; the message names MLFLOW_TRACKING_URI."""


def tracking_uri() -> str:
    """Return the tracking URI a run will use: ``$MLFLOW_TRACKING_URI`` or the local store."""
    return os.environ.get("MLFLOW_TRACKING_URI") or local_tracking_uri()


def check_reachable(*, attempts: int = 3, timeout_s: float = 5.0, backoff_s: float = 2.0) -> str:
    """Ask a remote tracking server for one experiment, with a bounded retry; return its URI.

    A local store (sqlite, folder) needs no check. Any HTTP answer below 500 except 401/403
    means the server is there; a refused or timed-out connection, a 5xx, or a refused token
    after ``attempts`` tries raises :class:`TrackingUnreachable` naming the variable, in at
    most ``attempts * (timeout_s + backoff_s)`` seconds (21 s by default).
    """
    uri = tracking_uri()
    if is_local_tracking(uri):
        return public_uri(uri)
    token = os.environ.get("MLFLOW_TRACKING_TOKEN")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    url = uri.rstrip("/") + "/api/2.0/mlflow/experiments/search"
    problem = ""
    for attempt in range(1, attempts + 1):
        try:
            answer = requests.get(
                url, params={"max_results": 1}, headers=headers, timeout=timeout_s
            )
        except requests.RequestException as exc:
            problem = f"no answer ({type(exc).__name__})"
        else:
            if answer.status_code in (401, 403):
                raise TrackingUnreachable(
                    f"MLFLOW_TRACKING_URI {public_uri(uri)} refused the credentials "
                    f"(HTTP {answer.status_code}): check MLFLOW_TRACKING_TOKEN"
                )
            if answer.status_code < 500:
                return public_uri(uri)
            problem = f"HTTP {answer.status_code}"
        if attempt < attempts:
            time.sleep(backoff_s * attempt)
    raise TrackingUnreachable(
        f"MLFLOW_TRACKING_URI {public_uri(uri)} is unreachable after {attempts} tries "
        f"({problem}); start the server, fix the variable, or unset it to track in a local "
        "mlflow.db"
    )


def experiment_id(name: str) -> str:
    """Return the id of the named experiment, creating it (locally with artifacts in the project)."""
    mlflow = mlflow_module()
    found = mlflow.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    location = None
    if is_local_tracking(mlflow.get_tracking_uri()):
        location = (project_root() / "mlartifacts").as_uri()
    return mlflow.create_experiment(name, artifact_location=location)


def run_url(tracking_uri: str, experiment: str, run_id: str) -> str | None:
    """Return a browser link to the run, or None for a local store without a UI."""
    if is_local_tracking(tracking_uri):
        return None
    marker = "/api/v4/projects/"
    if marker in tracking_uri:  # GitLab: the UI lives beside the API, not under it
        base = tracking_uri.split(marker)[0]
        return f"{base}/-/ml/experiments" if base else None
    return f"{tracking_uri.rstrip('/')}/#/experiments/{experiment}/runs/{run_id}"


def lineage_tags(run: RunRecord) -> dict[str, str]:
    """Return the tags that tie an MLflow run to the run record, commit, data and lock."""
    git = run.git or {}
    snapshot = run.snapshot or SnapshotRef()
    return {
        "leak.run_id": run.run_id,
        "leak.git_commit": str(run.git_commit),
        "leak.git_dirty": str(git.get("dirty")),
        "leak.param_files": ",".join(run.param_files or []),
        "leak.lock_sha256": str(run.lock_hash),
        "leak.snapshot_sha256": str(snapshot.sha256),
        "leak.snapshot_uri": str(snapshot.uri),
        "leak.seed": str(run.seed),
        "mlflow.source.git.commit": str(run.git_commit),
    }


def start_training_run(
    *, run: RunRecord, params: Params, snapshot_frame: pd.DataFrame
) -> dict[str, Any]:
    """Open the MLflow run of a pipeline run: params, lineage tags, dataset input.

    Returns:
        The ``mlflow`` field of the run record: run_id, experiment_id, tracking_uri, run_url.
    """
    mlflow = mlflow_module()
    uri = configure()
    exp = experiment_id(params.mlflow_experiment)
    snapshot = run.snapshot
    with mlflow.start_run(experiment_id=exp, run_name=run.run_id, tags=lineage_tags(run)) as active:
        mlflow.log_params(
            {k: "" if v is None else str(v) for k, v in flatten(params.to_plain()).items()}
        )
        dataset = mlflow.data.from_pandas(
            snapshot_frame,
            source=snapshot.uri,
            targets=params.dataset.target,
            name=f"snapshot-{snapshot.sha256[:12]}",
            digest=snapshot.sha256[:36],
        )
        dataset.schema = frame_schema(snapshot_frame)  # a cached_property: assigning sets it
        try:
            mlflow.log_input(dataset, context="training")
        except mlflow.exceptions.MlflowException as exc:  # servers without the inputs API
            log.warning("dataset input not logged (%s); lineage kept in tags", exc.error_code)
        mlflow_run_id = active.info.run_id
    return {
        "run_id": mlflow_run_id,
        "experiment_id": exp,
        "tracking_uri": uri,
        "run_url": run_url(uri, exp, mlflow_run_id),
    }


def frame_schema(frame: pd.DataFrame) -> Any:
    """Return MLflow's column schema of a table, as MLflow infers it, computed by column.

    MLflow's own inference decides whether a column is required by testing every value in
    Python (7 s for the default table, 100,800 rows by 117 columns); the types come from one
    row and the missing values from pandas here, which gives the same schema.
    """
    from mlflow.models import infer_signature  # heavy: part of mlflow
    from mlflow.types import ColSpec, Schema  # heavy: part of mlflow

    missing = frame.isna().any()
    inferred = infer_signature(frame.head(1)).inputs
    return Schema(
        [
            ColSpec(col.type, col.name, required=not bool(missing[col.name]))
            for col in inferred.inputs
        ]
    )


@contextlib.contextmanager
def resume(mlflow_run_id: str) -> Iterator[Any]:
    """Re-open a pipeline run's MLflow run (a later notebook, or the runner) and close it after."""
    mlflow = mlflow_module()
    configure()
    with mlflow.start_run(run_id=mlflow_run_id) as active:
        yield active


def pip_requirements() -> list[str]:
    """Return the exact requirements a served model needs, read from this environment."""
    return [f"{name}=={version(name)}" for name in _REQUIREMENTS]


def log_model(
    pipeline: Any, *, example: pd.DataFrame, metadata: dict[str, Any] | None = None
) -> str:
    """Log a fitted pipeline as an MLflow sklearn model in the active run; return its URI.

    ``metadata`` (the alarm threshold, say) is kept in the model's MLmodel file.
    """
    mlflow = mlflow_module()
    import skops.io  # heavy (15 MiB, pytest with it), and the runner needs none
    from mlflow.models import infer_signature  # heavy: part of mlflow

    signature = infer_signature(example, pipeline.predict_proba(example))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / MODEL_PATH
        mlflow.sklearn.save_model(
            pipeline,
            path,
            signature=signature,
            input_example=example,
            pip_requirements=pip_requirements(),
            pyfunc_predict_fn="predict_proba",
            metadata=metadata,
            serialization_format="skops",
            skops_trusted_types=models.trusted_types(skops.io.dumps(pipeline)),
        )
        mlflow.log_artifacts(str(path), MODEL_PATH)
    return f"runs:/{mlflow.active_run().info.run_id}/{MODEL_PATH}"


def load_logged_model(model_uri: str) -> Any:
    """Load a logged sklearn pipeline (``runs:/`` or ``models:/`` URI)."""
    mlflow = mlflow_module()
    configure()
    return mlflow.sklearn.load_model(model_uri)


def log_metrics(metrics: dict[str, float]) -> None:
    """Log numeric metrics to the active run (counts and NaNs are skipped)."""
    mlflow = mlflow_module()
    clean = {k: float(v) for k, v in metrics.items() if isinstance(v, int | float) and v == v}
    mlflow.log_metrics(clean)


def log_figures(figures: dict[str, Any], *, folder: str = "plots") -> None:
    """Log matplotlib figures as PNG artifacts of the active run."""
    mlflow = mlflow_module()
    for name, figure in figures.items():
        mlflow.log_figure(figure, f"{folder}/{name}.png")


def log_reports(
    mlflow_run_id: str, paths: list[Path] | list[str], *, index_url: str | None = None
) -> None:
    """Attach the rendered reports to the MLflow run and tag where the report index is."""
    mlflow = mlflow_module()
    with resume(mlflow_run_id):
        for path in paths:
            mlflow.log_artifact(str(path), "reports")
        if index_url:
            mlflow.set_tag("leak.report_index", index_url)


def log_table(frame: pd.DataFrame, path: str) -> None:
    """Log a small table as one CSV artifact of the active run (one file, not a run per row)."""
    mlflow_module().log_text(frame.to_csv(), path)
