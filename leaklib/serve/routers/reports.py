"""``/runs/{run_id}/reports/{step}``: a run's rendered report of one step."""

from fastapi import APIRouter, HTTPException
from fastapi.responses import HTMLResponse

from leaklib import reports, run_record
from leaklib.paths import project_root
from leaklib.run_record import RunStatus
from leaklib.serve.deps import MetadataDep, WorkerDep
from leaklib.serve.schemas import RunId, StepName, json_error

router = APIRouter()


@router.get(
    "/runs/{run_id}/reports/{step}",
    summary="Read a run's report",
    description="The rendered HTML report of one step, from the archive beside the "
    "snapshots (verified by its hash), else from this machine's reports folder.",
    response_class=HTMLResponse,
    responses={
        200: {"content": {"text/html": {"example": "<!DOCTYPE html><html>...</html>"}}},
        401: json_error("No or wrong bearer token."),
        404: json_error("No such run, or no report of that step."),
    },
)
def read_report(
    run_id: RunId, step: StepName, metadata: MetadataDep, worker: WorkerDep
) -> HTMLResponse:
    record = run_record.get_run_or_none(metadata, run_id)
    if record is None:
        raise HTTPException(status_code=404, detail=f"run {run_id!r} not found")
    html = reports.fetch_report(record, step.value, reports_root=project_root() / "reports")
    if html is None:
        rendering = worker.running() == run_id and record.status is not RunStatus.RUNNING
        later = ": it is being rendered, ask again in a few seconds" if rendering else ""
        raise HTTPException(
            status_code=404, detail=f"run {run_id!r} has no {step.value} report{later}"
        )
    return HTMLResponse(html, headers={"X-Content-Type-Options": "nosniff"})
