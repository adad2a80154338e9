"""The MLflow model registry, on a full MLflow server and on GitLab's subset of its API.

Each successful run registers its model as a new version of ``params.dataset.model_name``, tagged
with the lineage that ties it to the run record (run id, snapshot SHA-256, git commit).

GitLab's MLflow layer (``<gitlab>/api/v4/projects/<id>/ml/mlflow``) implements experiments,
runs, registered models and the creation, reading and description of model versions, but
no aliases, stages, model-version tags or dataset inputs (its ``lib/api/ml/mlflow/*.rb``);
an unknown endpoint answers 404. So every registry call beyond "create a version" is tried
and, when the server does not implement it, skipped with a log line, never failed:

- the lineage tags travel with the version's creation request, which GitLab stores;
- the champion marker is a ``champion=true`` version tag where tags can be set after
  creation, otherwise the version's description; plus a ``champion`` alias where aliases
  exist. The pointer that counts lives in the metadata store (:mod:`leaklib.champion`).

GitLab may number versions semantically (``1.0.0``), which ``models:/<name>/<version>``
cannot address (the MLflow client reads a non-integer as a stage); such versions are then
loaded through the run's model URI (``runs:/<id>/model``) instead.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from leaklib import tracking
from leaklib.errors import LeakError
from leaklib.run_record import ModelRecord, RunRecord, Verdict

log = logging.getLogger(__name__)

CHAMPION_ALIAS = "champion"
CHAMPION_TAG = "champion"
_UNSUPPORTED_STATUS = re.compile(r"\b(404|405|501)\b")
_ANSWERED = {
    "RESOURCE_DOES_NOT_EXIST",
    "RESOURCE_ALREADY_EXISTS",
    "INVALID_PARAMETER_VALUE",
    "PERMISSION_DENIED",
    "UNAUTHENTICATED",
}


def client() -> Any:
    """Return an MLflow client for the configured tracking server (see :mod:`leaklib.tracking`)."""
    mlflow = tracking.mlflow_module()
    tracking.configure()
    return mlflow.MlflowClient()


def is_unsupported(exc: BaseException) -> bool:
    """Return True when an MLflow error means "this server has no such endpoint".

    GitLab answers an unknown route with ``404 {"error": "404 Not Found"}``, which the MLflow
    client reports as an error without an MLflow error code; a full server answering about a
    missing model or alias (also HTTP 404) carries ``RESOURCE_DOES_NOT_EXIST`` and is not one.
    """
    code = getattr(exc, "error_code", None)
    if code == "ENDPOINT_NOT_FOUND":
        return True
    if code in _ANSWERED:
        return False
    return bool(_UNSUPPORTED_STATUS.search(str(exc)))


def version_tags(run: RunRecord) -> dict[str, str]:
    """Return the lineage tags of a model version: leak run id, snapshot SHA-256, git commit."""
    tags = tracking.lineage_tags(run)
    return {
        key: tags[key]
        for key in ("leak.run_id", "leak.snapshot_sha256", "leak.git_commit", "leak.git_dirty")
    }


def model_version_uri(name: str, version: str, *, fallback: str) -> str:
    """Return ``models:/<name>/<version>``, or ``fallback`` when the version is not an integer."""
    return f"models:/{name}/{version}" if str(version).isdigit() else fallback


def register_model(*, model_uri: str, name: str, run: RunRecord) -> dict[str, str]:
    """Register a logged model as a new version of ``name``, tagged with the run's lineage.

    Args:
        model_uri: Where the model was logged, e.g. ``runs:/<mlflow run id>/model``.
        name: The registered model name (``params.dataset.model_name``).
        run: The run record (for the lineage tags).

    Returns:
        ``{"name", "version", "registry_uri"}``; ``registry_uri`` loads exactly this version.
    """
    mlflow = tracking.mlflow_module()
    tracking.configure()
    created = mlflow.register_model(model_uri, name, tags=version_tags(run))
    version = str(created.version)
    log.info("registered %s version %s from %s", name, version, model_uri)
    return {
        "name": created.name,
        "version": version,
        "registry_uri": model_version_uri(created.name, version, fallback=model_uri),
    }


def supports_aliases(mlflow_client: Any = None, *, name: str | None = None) -> bool:
    """Return True when the registry implements model aliases (GitLab's does not).

    Probes by deleting an alias that does not exist on a registered model (``name``, else
    any): a full server answers (or does nothing), a server without aliases answers 404
    for the endpoint itself. Nothing is changed. False when there is no model to probe.
    """
    from mlflow.exceptions import MlflowException  # heavy: mlflow loads only when tracking

    mlflow_client = mlflow_client or client()
    if name is None:
        found = mlflow_client.search_registered_models(max_results=1)
        if not found:
            return False
        name = found[0].name
    try:
        mlflow_client.delete_registered_model_alias(name, "leak-alias-probe")
    except MlflowException as exc:
        return not is_unsupported(exc)
    return True


def _try(what: str, call: Any, *args: Any, **kwargs: Any) -> bool:
    """Run one optional registry call; False (and a log line) when the server lacks it."""
    from mlflow.exceptions import MlflowException  # heavy: mlflow loads only when tracking

    try:
        call(*args, **kwargs)
    except MlflowException as exc:
        if is_unsupported(exc):
            log.info("%s: not supported by this MLflow server, skipped", what)
        else:
            log.warning("%s failed: %s", what, exc)
        return False
    return True


def tag_version(
    name: str, version: str, tags: dict[str, str], *, mlflow_client: Any = None
) -> bool:
    """Set tags on a model version; False when the server cannot tag existing versions."""
    mlflow_client = mlflow_client or client()
    for key, value in tags.items():
        if not _try(
            f"tag {key} on {name} v{version}",
            mlflow_client.set_model_version_tag,
            name,
            version,
            key,
            value,
        ):
            return False
    return True


def tag_run(mlflow_run_id: str, tags: dict[str, str], *, mlflow_client: Any = None) -> bool:
    """Set tags on an MLflow run (finished or not); False if the server refused."""
    mlflow_client = mlflow_client or client()
    return all(
        _try(f"tag {key} on run {mlflow_run_id}", mlflow_client.set_tag, mlflow_run_id, key, value)
        for key, value in tags.items()
    )


def set_champion_markers(
    name: str,
    version: str,
    *,
    previous_version: str | None = None,
    note: str = "",
    mlflow_client: Any = None,
) -> dict[str, bool]:
    """Mark ``version`` as the champion in the registry, and unmark the previous one.

    ``champion=true`` as a version tag (or, where tags cannot be set after creation, in the
    version's description), the tag removed from ``previous_version``, and the ``champion``
    alias moved when the server has aliases. Every marker is best effort: the champion
    pointer in the metadata store is the reference.

    Returns:
        Which markers were set: ``tag``, ``description``, ``alias``, ``previous_unmarked``.
    """
    mlflow_client = mlflow_client or client()
    done = {"tag": False, "description": False, "alias": False, "previous_unmarked": False}
    done["tag"] = tag_version(name, version, {CHAMPION_TAG: "true"}, mlflow_client=mlflow_client)
    if not done["tag"]:
        done["description"] = _try(
            f"describe {name} v{version}",
            mlflow_client.update_model_version,
            name,
            version,
            description=f"champion: {note}".strip().rstrip(":"),
        )
    if previous_version and str(previous_version) != str(version):
        if done["tag"]:
            done["previous_unmarked"] = _try(
                f"untag {name} v{previous_version}",
                mlflow_client.delete_model_version_tag,
                name,
                previous_version,
                CHAMPION_TAG,
            )
        else:
            done["previous_unmarked"] = _try(
                f"describe {name} v{previous_version}",
                mlflow_client.update_model_version,
                name,
                previous_version,
                description=f"former champion, replaced by version {version}",
            )
    if supports_aliases(mlflow_client, name=name):
        done["alias"] = _try(
            f"alias {CHAMPION_ALIAS} on {name} v{version}",
            mlflow_client.set_registered_model_alias,
            name,
            CHAMPION_ALIAS,
            version,
        )
    log.info("champion markers on %s v%s: %s", name, version, done)
    return done


def mirror_champion(
    name: str, version: str, *, previous_version: str | None = None, note: str = ""
) -> dict[str, bool]:
    """Set the champion markers, never failing: the metadata store's pointer is the reference."""
    try:
        return set_champion_markers(name, version, previous_version=previous_version, note=note)
    except (
        Exception
    ) as exc:  # MLflow raises many kinds; a registry hiccup must not undo a promotion
        log.warning("champion markers not set in MLflow: %s", exc)
        return {}


def decision_tags(decision: dict[str, Any]) -> dict[str, str]:
    """Return the ``leak.promotion.*`` tags that mirror a promotion decision in MLflow."""
    champion = decision.get("champion") or {}
    previous = decision.get("previous_champion") or {}
    tags = {
        "leak.promotion.decision": decision["decision"],
        "leak.promotion.reason": decision["reason"][:4000],
        "leak.promotion.primary_metric": str(decision.get("primary_metric")),
        "leak.promotion.difference": str(decision.get("difference")),
        "leak.promotion.ci_low": str(decision.get("ci_low")),
        "leak.promotion.ci_high": str(decision.get("ci_high")),
        "leak.promotion.confidence": str(decision.get("confidence")),
        "leak.promotion.decided_at": decision["decided_at"],
        "leak.promotion.decided_by": "manual" if decision.get("manual") else "gate",
        "leak.promotion.champion_run_id": str(champion.get("run_id")),
        "leak.promotion.previous_champion_run_id": str(previous.get("run_id")),
    }
    if decision["decision"] == Verdict.PROMOTED:
        tags["leak.champion"] = "true"
    return tags


def mirror_decision(
    run: RunRecord, decision: dict[str, Any], *, model_name: str
) -> dict[str, bool]:
    """Tag the challenger's MLflow run and model version with the decision (best effort).

    Where versions cannot be tagged after creation (GitLab), the decision goes to the
    version's description instead (unless it is promoted: then the champion marker does).
    """
    done = {"run": False, "version": False}
    try:
        tags = decision_tags(decision)
        model = run.model or ModelRecord()
        mlflow_run_id = run.mlflow_run_id or model.mlflow_run_id
        if mlflow_run_id:
            done["run"] = tag_run(mlflow_run_id, tags)
        version = model.version
        if version:
            mlflow_client = client()
            done["version"] = tag_version(
                model_name, str(version), tags, mlflow_client=mlflow_client
            )
            if not done["version"] and decision["decision"] != Verdict.PROMOTED:
                done["version"] = _try(
                    f"describe {model_name} v{version}",
                    mlflow_client.update_model_version,
                    model_name,
                    str(version),
                    description=decision["reason"],
                )
    except Exception as exc:  # the metadata store holds the decision; MLflow mirrors it
        log.warning("promotion decision not recorded in MLflow: %s", exc)
    return done


def check_version_run(model_uri: str, *, expected_run_id: str | None) -> None:
    """Refuse a ``models:/NAME/VERSION`` URI whose version was logged by another MLflow run.

    In a job-local MLflow store, version 1 of a name may be this pipeline's own challenger
    rather than an earlier pipeline's champion; comparing it would compare a model with
    itself. ``runs:/`` URIs name their run already and pass.
    """
    if not model_uri.startswith("models:/") or not expected_run_id:
        return
    name, _, version = model_uri.removeprefix("models:/").rpartition("/")
    found = client().get_model_version(name, version)
    if found.run_id != expected_run_id:
        raise RegistryMismatch(
            f"{model_uri} was logged by MLflow run {found.run_id}, not by the champion's run "
            f"{expected_run_id} (a different or fresh MLflow store)"
        )


class RegistryMismatch(LeakError, RuntimeError):
    """A registry version is not the model the champion pointer names."""
