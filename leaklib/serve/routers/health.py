"""``/health``: whether the stores and MLflow answer. No token needed."""

import logging
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from leaklib import tracking
from leaklib.metadata import open_metadata_store
from leaklib.serve.deps import ServerDep
from leaklib.serve.schemas import Health
from leaklib.snapshots import open_snapshot_store

log = logging.getLogger(__name__)

router = APIRouter()


@router.get(
    "/health",
    summary="Check the stores and MLflow",
    description="No token needed. 200 when the metadata store, the snapshot store and the "
    "MLflow tracking server answer, else 503; which check failed and why is logged.",
    response_model=Health,
    responses={503: {"model": Health, "description": "A store or MLflow does not answer."}},
)
def health(server: ServerDep) -> Any:
    params = server.params
    checks = {  # each opens its store inside the check: a store that cannot open is down
        "metadata_store": lambda: open_metadata_store(params.metadata_store).check(),
        "snapshot_store": lambda: open_snapshot_store(params.snapshot_store).check(),
        "mlflow": lambda: tracking.check_reachable(attempts=1, timeout_s=3.0),
    }
    results = {}
    for name, check in checks.items():
        try:
            check()
            results[name] = True
        except Exception as exc:  # any failure is "unavailable"; the log says which
            log.warning("health: %s does not answer: %s", name, exc)
            results[name] = False
    ok = all(results.values())
    answer = Health(status="ok" if ok else "unavailable", checks=results)
    return JSONResponse(status_code=200 if ok else 503, content=answer.model_dump())
