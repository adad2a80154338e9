"""``/runs``: start a run (``leak run`` in a child process), list runs, read one."""

from typing import Annotated, Any

import yaml
from fastapi import APIRouter, HTTPException, Query, Response

from leaklib import params, run_record, runs
from leaklib.params import ParameterError
from leaklib.run_record import RunRecord
from leaklib.serve.deps import MetadataDep, Server, ServerDep, WorkerDep
from leaklib.serve.errors import LocationNotAllowed
from leaklib.serve.schemas import (
    MAX_PAGE,
    RUN_EXAMPLE,
    UNREADABLE,
    Busy,
    Message,
    RunId,
    RunPage,
    RunRequest,
    RunStarted,
    RunStatus,
    RunSummary,
)
from leaklib.serve.security import SERVER_ONLY, location_values, within_locations, without_secrets
from leaklib.serve.worker import RunBusy

router = APIRouter()


def _override_pairs(body: RunRequest) -> list[tuple[str, str]]:
    """The request's overrides as ``-p KEY VALUE`` pairs; ParameterError naming each bad key."""
    problems: list[tuple[str, str]] = []
    pairs: list[tuple[str, str]] = []
    for key, value in body.params.items():
        if key.split(".", 1)[0] in SERVER_ONLY:
            problems.append((key, f"{key} is set by the server, not over HTTP"))
            continue
        text = yaml.safe_dump(value)  # the JSON value, written as `-p KEY VALUE` reads it
        try:
            params.parse_override(key, text)  # an unknown key, named
        except ParameterError as exc:  # gathered, so the answer names every bad key at once
            problems.append((key, str(exc)))
            continue
        pairs.append((key, text))
    if problems:
        raise ParameterError("; ".join(p for _, p in problems), by_key=problems)
    return pairs


def _check_locations(server: Server, chosen: params.Params) -> None:
    """LocationNotAllowed naming each location the request moved outside the allow-list."""
    allowed = server.params.serve_allowed_locations
    before = location_values(server.params)
    outside = [
        (key, f"{key} {value!r} is outside serve_allowed_locations")
        for key, value in location_values(chosen).items()
        if value is not None and value != before[key] and not within_locations(value, allowed)
    ]
    if outside:
        raise LocationNotAllowed(outside)


@router.post(
    "/runs",
    status_code=202,
    summary="Start a run",
    description="Validate the overrides like `leak run -p`, then run extract -> train -> "
    "evaluate in a child process. Returns at once with the run id; follow it at "
    "`Location`. One run at a time: 409 while one is going.",
    response_model=RunStarted,
    responses={
        **UNREADABLE,
        409: {"model": Busy, "description": "A run is still going."},
        413: {"model": Message, "description": "Request body too large."},
        422: {
            "description": "An unknown key, a bad value, or a location outside "
            "serve_allowed_locations; each entry names its key."
        },
    },
)
def start_run(body: RunRequest, response: Response, server: ServerDep, worker: WorkerDep) -> Any:
    busy = worker.running()
    if busy:
        raise RunBusy(busy)
    pairs = _override_pairs(body)
    chosen = params.load(server.files, [*server.overrides, *pairs])
    _check_locations(server, chosen)
    run_id = runs.new_run_id()
    args = [*(a for f in server.files for a in ("-f", f))]
    args += [a for k, v in [*server.overrides, *pairs] for a in ("-p", k, v)]
    worker.start(run_id, [*args, "-p", "run_id", run_id])
    response.headers["Location"] = f"/runs/{run_id}"
    return RunStarted(run_id=run_id, location=f"/runs/{run_id}")


def _summary(record: RunRecord) -> RunSummary:
    decision = record.promotion.decision if record.promotion else None
    return RunSummary(
        run_id=record.run_id,
        status=record.shown().value,
        created_at=record.created_at,
        finished_at=record.finished_at,
        origin=record.origin,
        error=record.error,
        metrics=record.metrics,
        decision=decision.value if decision else None,
    )


@router.get(
    "/runs",
    summary="List runs",
    description="Runs in the metadata store, newest first, as shown in the reports "
    "(`abandoned`: still marked running, but silent for ten minutes).",
    response_model=RunPage,
)
def list_runs(
    server: ServerDep,
    metadata: MetadataDep,
    status: Annotated[
        RunStatus | None, Query(description="Only runs shown with this status.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE, examples=[20])] = 20,
    offset: Annotated[int, Query(ge=0, le=1_000_000, examples=[0])] = 0,
) -> RunPage:
    shown = [_summary(r) for r in run_record.list_runs(metadata)]
    if status is not None:
        shown = [s for s in shown if s.status == status.value]
    page = [
        RunSummary.model_validate(without_secrets(s.model_dump(), token=server.token))
        for s in shown[offset : offset + limit]
    ]
    return RunPage(runs=page, total=len(shown), limit=limit, offset=offset)


@router.get(
    "/runs/{run_id}",
    summary="Read a run",
    description="The run record as stored (parameters, lineage, steps, snapshot, metrics, "
    "model, promotion), secrets masked, with `shown_status`. A run this server started "
    "that has not recorded itself yet shows `starting` (or `failed` with the reason). "
    "Reports are rendered after the last step: `reports_archive` lists them, seconds "
    "after the status turns `succeeded` or `failed`.",
    responses={
        200: {"content": {"application/json": {"example": RUN_EXAMPLE}}},
        404: {"model": Message, "description": "No such run."},
    },
)
def read_run(
    run_id: RunId, server: ServerDep, metadata: MetadataDep, worker: WorkerDep
) -> dict[str, Any]:
    record = run_record.get_run_or_none(metadata, run_id)
    if record is None:
        pending = worker.started_here(run_id)
        if pending is None:
            raise HTTPException(status_code=404, detail=f"run {run_id!r} not found")
        return {**pending, "shown_status": pending["status"]}
    shown = without_secrets(record.to_doc(), token=server.token)
    return {**shown, "shown_status": record.shown().value}
