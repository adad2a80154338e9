"""The HTTP API over the pipeline (``leak serve``): start and follow runs, read reports, score.

A thin layer with no second code path: a run is ``leak run`` in a child process (one at a
time), run records are read through :mod:`leaklib.runs`, reports from the archive beside the
snapshots, the champion from :mod:`leaklib.champion`, and scores come from
:func:`leaklib.scoring.score_frame`. The body of ``POST /predict`` is a pydantic model built
from the dataset's ``features`` mapping, so it is documented in the OpenAPI schema.

``POST /predict`` scores a batch as whole series: derived features (the default dataset's
deviations from each group's first day) are computed inside each group from the records
sent only, in timestamp order, exactly as ``leak score`` computes them on a table. Send the
readings of each series from its start; a derivation needs its history in the same request
(for the default dataset at least one group with a day, 96 rows), and rows without enough
history get no derived value, as in training.

Every endpoint but ``/health`` (and the documentation: ``/docs``, ``/openapi.json``) needs
``Authorization: Bearer <LEAK_API_TOKEN>``, compared in constant time. Nothing here prints;
the CLI builds the app with :func:`create_app` and serves it with uvicorn.
"""

import collections
import contextlib
import hmac
import logging
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from enum import Enum
from typing import Annotated, Any, Literal

import pandas as pd
import yaml
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request, Response
from fastapi import Path as PathParam
from fastapi.exception_handlers import request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, create_model

from leaklib import champion, reports, runs, scoring, tracking
from leaklib import params as parameters
from leaklib.features import DeriveError
from leaklib.metadata import MetadataError, MetadataStore, open_metadata_store
from leaklib.models import ModelError
from leaklib.params import DatasetSpec, FeatureSpec, ParameterError, Params
from leaklib.paths import ENV_PROJECT_DIR, project_root, resolve
from leaklib.schema import SchemaError
from leaklib.snapshots import open_snapshot_store

log = logging.getLogger(__name__)

ENV_TOKEN = "LEAK_API_TOKEN"  # the bearer token clients send; read by the CLI, never logged
MIN_TOKEN_LENGTH = 16
MAX_BODY_BYTES = 8 * 1024 * 1024  # any request body
MAX_RECORDS = 5000  # records in one POST /predict
MAX_PAGE = 100  # runs in one page of GET /runs
# keys a client may not set over HTTP: the server picks the run id, and the allow-list
# would be no limit if a request could widen it
SERVER_ONLY = ("run_id", "serve_allowed_locations")
LOCATIONS = (
    "dataset.source",
    "dataset.leak_table",
    "dataset.leak_volumes",
    "snapshot_store",
    "metadata_store",
)
RUN_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
STOP_GRACE_S = 30.0  # a run still going at shutdown gets SIGTERM, then this long to record it

RunStatus = Enum("RunStatus", {s: s for s in runs.SHOWN_STATUSES}, type=str)
StepName = Enum("StepName", {s: s for s in runs.STEPS}, type=str)
RunId = Annotated[str, PathParam(pattern=RUN_ID_PATTERN, examples=["20261129-101500-3fa2"])]


class ServeError(ValueError):
    """The server cannot start as asked; the message says what to change."""


def check_token(token: str | None) -> str:
    """Return the token when it is usable; ServeError (never quoting it) otherwise."""
    if not token:
        raise ServeError(
            f"{ENV_TOKEN} is not set: set it to a long random secret (python -c 'import "
            "secrets; print(secrets.token_urlsafe(32))'), or give --insecure-local to serve on "
            "127.0.0.1 without a token"
        )
    if len(token) < MIN_TOKEN_LENGTH:
        raise ServeError(
            f"{ENV_TOKEN} is too short ({len(token)} characters); use at least {MIN_TOKEN_LENGTH}"
        )
    return token


# --- where an HTTP client may point the pipeline ----------------------------------------------

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def _is_uri(location: str) -> bool:
    return bool(_SCHEME.match(location)) and not location.startswith("file://")


def _uri_within(value: str, prefix: str) -> bool:
    if "/../" in f"{value}/" or "/./" in f"{value}/":
        return False
    if value == prefix:
        return True
    return value.startswith(prefix) and (prefix[-1] in "/.:" or value[len(prefix)] in "/.")


def within_locations(value: str, allowed: Sequence[str]) -> bool:
    """Return True when ``value`` lies under one of the ``allowed`` folders or URI prefixes.

    Local paths are resolved against the project, symbolic links and ``..`` included, before
    they are compared; URIs are compared as prefixes that end at a ``/``, ``.`` or ``:``.
    """
    if _is_uri(value):
        return any(_is_uri(a) and _uri_within(value, a) for a in allowed)
    target = resolve(value).resolve()
    return any(not _is_uri(a) and target.is_relative_to(resolve(a).resolve()) for a in allowed)


def _location_values(params: Params) -> dict[str, str | None]:
    return {
        "dataset.source": params.dataset.source,
        "dataset.leak_table": params.dataset.leak_table,
        "dataset.leak_volumes": params.dataset.leak_volumes,
        "snapshot_store": params.snapshot_store,
        "metadata_store": params.metadata_store,
    }


# --- the run worker ---------------------------------------------------------------------------


class RunBusy(RuntimeError):
    """A run this server started is still going."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        super().__init__(f"run {run_id} is still going; one run at a time")


class RunWorker:
    """Runs ``leak run`` in a child process, one at a time, and remembers how each start went.

    The child gets the server's environment without the API token, and its output goes to
    this module's log line by line.
    """

    def __init__(self, command: Sequence[str] | None = None) -> None:
        self.command = list(command or [sys.executable, "-m", "leaklib.cli", "run"])
        self._lock = threading.Lock()
        self._process: subprocess.Popen[str] | None = None
        self._run_id: str | None = None
        self._ended: dict[str, tuple[int, str]] = {}  # run id -> (exit code, last line)

    def running(self) -> str | None:
        """Return the id of the run still going, or None."""
        with self._lock:
            return self._running()

    def _running(self) -> str | None:
        alive = self._process is not None and self._process.poll() is None
        return self._run_id if alive else None

    def start(self, run_id: str, args: Sequence[str]) -> None:
        """Start ``leak run ARGS`` for ``run_id``; RunBusy while another run goes."""
        with self._lock:
            busy = self._running()
            if busy:
                raise RunBusy(busy)
            env = {k: v for k, v in os.environ.items() if k != ENV_TOKEN}
            env[ENV_PROJECT_DIR] = str(project_root())
            self._process = subprocess.Popen(
                [*self.command, *args],
                cwd=project_root(),
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                start_new_session=True,  # a ^C to the server is not a ^C to the run
            )
            self._run_id = run_id
            log.info("run %s started (pid %d)", run_id, self._process.pid)
            threading.Thread(target=self._follow, args=(run_id, self._process), daemon=True).start()

    def _follow(self, run_id: str, process: subprocess.Popen[str]) -> None:
        last = collections.deque(maxlen=1)
        assert process.stdout is not None
        for line in process.stdout:
            line = line.rstrip()
            if line:
                last.append(line)
                log.info("run %s: %s", run_id, line)
        code = process.wait()
        with self._lock:
            self._ended[run_id] = (code, last[0] if last else "")
        log.info("run %s: leak run exited with %d", run_id, code)

    def started_here(self, run_id: str) -> dict[str, Any] | None:
        """Return what is known of a run this server started but that has no record (yet)."""
        with self._lock:
            if run_id == self._running():
                return {"run_id": run_id, "status": "starting"}
            if run_id not in self._ended:
                return None
            code, line = self._ended[run_id]
        return {
            "run_id": run_id,
            "status": "failed",
            "error": f"leak run stopped before recording the run (exit code {code}): {line}",
        }

    def stop(self, *, grace_s: float = STOP_GRACE_S) -> None:
        """Stop a run still going: SIGTERM (recorded as interrupted), then SIGKILL."""
        with self._lock:
            process = self._process if self._running() else None
        if process is None:
            return
        log.warning("stopping run %s (server shutting down)", self._run_id)
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# --- request and response bodies --------------------------------------------------------------


class Message(BaseModel):
    """An error that is not about one field."""

    detail: str = Field(examples=["missing or wrong bearer token"])


class Busy(BaseModel):
    """Another run is still going."""

    detail: str
    run_id: str

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "detail": "run 20261129-101500-3fa2 is still going",
                    "run_id": "20261129-101500-3fa2",
                }
            ]
        }
    )


class RunRequest(BaseModel):
    """Parameter overrides for a new run: the keys and values of ``leak run -p KEY VALUE``."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"params": {"model.params.max_iter": 40, "cv_folds": 3}}, {"params": {}}]
        },
    )
    params: dict[str, Any] = Field(
        default_factory=dict,
        max_length=100,
        description="Dotted keys (dataset.max_groups, model.params.max_iter) and JSON values, "
        "applied after the server's own -f/-p, validated as `leak run -p` validates them. "
        "run_id and serve_allowed_locations are the server's; dataset.source, "
        "dataset.leak_table, dataset.leak_volumes, snapshot_store and metadata_store must stay "
        "within serve_allowed_locations.",
    )


class RunStarted(BaseModel):
    """A run was started; follow it at ``location``."""

    run_id: str
    status: Literal["starting"] = "starting"
    location: str

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "run_id": "20261129-101500-3fa2",
                    "status": "starting",
                    "location": "/runs/20261129-101500-3fa2",
                }
            ]
        }
    )


class RunSummary(BaseModel):
    """One line of the run list."""

    run_id: str
    status: str
    created_at: str | None = None
    finished_at: str | None = None
    origin: str | None = None
    error: str | None = None
    metrics: dict[str, Any] = Field(default_factory=dict)
    decision: str | None = Field(default=None, description="The promotion gate's decision.")


class RunPage(BaseModel):
    """A page of runs, newest first."""

    runs: list[RunSummary]
    total: int = Field(description="Runs matching the filter, on all pages.")
    limit: int
    offset: int

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "runs": [
                        {
                            "run_id": "20261129-101500-3fa2",
                            "status": "succeeded",
                            "created_at": "2026-11-29T10:15:00+00:00",
                            "finished_at": "2026-11-29T10:16:02+00:00",
                            "origin": "leak serve",
                            "error": None,
                            "metrics": {"holdout_roc_auc": 0.93},
                            "decision": "promoted",
                        }
                    ],
                    "total": 1,
                    "limit": 20,
                    "offset": 0,
                }
            ]
        }
    )


RUN_EXAMPLE = {
    "run_id": "20261129-101500-3fa2",
    "status": "succeeded",
    "shown_status": "succeeded",
    "created_at": "2026-11-29T10:15:00+00:00",
    "params": {"dataset": {"source": "data/l-town-leaks.parquet"}, "seed": 42},
    "steps": {"extract": {"status": "succeeded", "duration_s": 9.1}},
    "metrics": {"holdout_roc_auc": 0.93},
}


class Champion(BaseModel):
    """The current champion of a model name."""

    model_name: str
    run_id: str
    model_sha256: str | None = None
    version: str | int | None = None
    threshold: float | None = None
    metrics: dict[str, Any] = Field(default_factory=dict)
    reason: str | None = None
    decided_by: str | None = None
    promoted_at: str | None = None

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "model_name": "leak-detector",
                    "run_id": "20261129-101500-3fa2",
                    "model_sha256": "9f2c" + "0" * 60,
                    "version": "3",
                    "threshold": 0.41,
                    "metrics": {"roc_auc": 0.93},
                    "reason": "no champion yet",
                    "decided_by": "gate",
                    "promoted_at": "2026-11-29T10:16:00+00:00",
                }
            ]
        }
    )


class Prediction(BaseModel):
    """One scored record, in the order sent."""

    group: int | str | None = Field(default=None, description="The record's group column.")
    timestamp: str | None = Field(default=None, description="The record's timestamp column.")
    probability: float = Field(ge=0, le=1, description="Predicted leak probability.")
    alarm: bool = Field(description="probability >= the model's alarm threshold.")


class Predictions(BaseModel):
    """The scores of one batch and the model that gave them."""

    run_id: str
    model_sha256: str
    threshold: float
    rows: int
    alarms: int
    predictions: list[Prediction]

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "run_id": "20261129-101500-3fa2",
                    "model_sha256": "9f2c" + "0" * 60,
                    "threshold": 0.41,
                    "rows": 1,
                    "alarms": 0,
                    "predictions": [
                        {
                            "group": 7,
                            "timestamp": "2024-01-01T00:15:00",
                            "probability": 0.03,
                            "alarm": False,
                        }
                    ],
                }
            ]
        }
    )


class Health(BaseModel):
    """Whether the stores and MLflow answer (details are in the server's log)."""

    status: Literal["ok", "unavailable"]
    checks: dict[str, bool]

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "status": "ok",
                    "checks": {"metadata_store": True, "snapshot_store": True, "mlflow": True},
                }
            ]
        }
    )


def _naive_utc(moment: datetime) -> datetime:
    """One clock for a batch: aware times to UTC, naive ones kept (as in the tables)."""
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment


def _feature_field(name: str, spec: FeatureSpec) -> tuple[Any, Any]:
    described = f"{name}: {spec.type} feature"
    if spec.type == "numeric":
        bounds = [f"{k} {v:g}" for k, v in (("min", spec.min), ("max", spec.max)) if v is not None]
        shown = f"{described} ({', '.join(bounds)})" if bounds else described
        field = Field(alias=name, ge=spec.min, le=spec.max, allow_inf_nan=False, description=shown)
        return float | None, field
    if spec.type == "boolean":
        return bool | None, Field(alias=name, description=described)
    return str | int | None, Field(alias=name, max_length=200, description=described)


def _example_value(spec: FeatureSpec) -> Any:
    if spec.type == "boolean":
        return False
    if spec.type == "categorical":
        return "a"
    low, high = spec.min, spec.max
    if low is not None and high is not None:
        return (low + high) / 2
    return low if low is not None else (high if high is not None else 0.0)


def record_model(dataset: DatasetSpec, *, max_records: int) -> type[BaseModel]:
    """Return the POST /predict body: ``records``, each one field per declared column.

    The group and timestamp are required (derivations order each series by them); each
    feature is required and may be null (a missing reading), typed and bounded as declared.
    The target is not sent. Fields carry the column names as aliases, so any column name
    works and a 422 names the column.
    """
    fields: dict[str, Any] = {}
    example: dict[str, Any] = {}
    if dataset.group:
        fields["key_group"] = (
            int | str,
            Field(alias=dataset.group, description=f"{dataset.group}: the series (group)"),
        )
        example[dataset.group] = 7
    if dataset.timestamp:
        fields["key_timestamp"] = (
            Annotated[datetime, AfterValidator(_naive_utc)],
            Field(alias=dataset.timestamp, description=f"{dataset.timestamp}: the reading's time"),
        )
        example[dataset.timestamp] = "2024-01-01T00:15:00"
    for i, (name, spec) in enumerate(dataset.features.items()):
        fields[f"feature_{i}"] = _feature_field(name, spec)
        example[name] = _example_value(spec)
    record = create_model(
        "PredictRecord",
        __config__=ConfigDict(extra="forbid"),
        **fields,
    )
    return create_model(
        "PredictRequest",
        __config__=ConfigDict(
            extra="forbid", json_schema_extra={"examples": [{"records": [example]}]}
        ),
        records=(
            list[record],  # type: ignore[valid-type]
            Field(
                min_length=1,
                max_length=max_records,
                description=f"Readings of one or more whole series, at most {max_records} "
                "(more: 413). Derived features are computed per group from these records only.",
            ),
        ),
    )


# --- the app ----------------------------------------------------------------------------------

_SECRET_KEY = re.compile(r"token|password|secret|credential|authorization|api_?key", re.I)
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^/@\s]+@")


def without_secrets(value: Any, *, token: str | None = None) -> Any:
    """Return a copy with secret-named fields masked and credentials cut from URLs."""
    if isinstance(value, dict):
        return {
            k: "***" if _SECRET_KEY.search(str(k)) else without_secrets(v, token=token)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [without_secrets(v, token=token) for v in value]
    if isinstance(value, str):
        text = _USERINFO.sub(r"\g<scheme>", value)
        return text.replace(token, "***") if token else text
    return value


def _summary(record: dict[str, Any]) -> RunSummary:
    return RunSummary(
        run_id=record["run_id"],
        status=runs.shown_status(record),
        created_at=record.get("created_at"),
        finished_at=record.get("finished_at"),
        origin=record.get("origin"),
        error=record.get("error"),
        metrics=record.get("metrics") or {},
        decision=(record.get("promotion") or {}).get("decision"),
    )


def _unprocessable(problems: list[tuple[list[str | int], str]], kind: str) -> JSONResponse:
    """A 422 in FastAPI's own shape, one entry per problem, each naming its key or column."""
    detail = [{"loc": ["body", *loc], "msg": msg, "type": kind} for loc, msg in problems]
    return JSONResponse(status_code=422, content={"detail": detail})


def _parameter_problems(error: ParameterError) -> list[tuple[list[str | int], str]]:
    lines = str(error).splitlines()
    if len(lines) > 1:  # "invalid parameters:" then "  key: message" lines
        return [(["params", line.strip().split(":", 1)[0]], line.strip()) for line in lines[1:]]
    return [(["params"], str(error))]


class _BodyLimit:
    """Refuse request bodies over ``limit`` bytes with 413, before the app reads them."""

    def __init__(self, app: Any, *, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        too_big = declared is not None and (not declared.isdigit() or int(declared) > self.limit)
        chunks: list[bytes] = []
        size = 0
        more = not too_big
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            more = message.get("more_body", False)
            too_big = size > self.limit
            if too_big:
                break
        if too_big:
            response = JSONResponse(
                status_code=413,
                content={"detail": f"request body over {self.limit} bytes"},
                headers={"Connection": "close"},
            )
            await response(scope, receive, send)
            return
        body = b"".join(chunks)
        sent = False

        async def replay() -> dict:
            nonlocal sent
            if sent:
                return await receive()
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


UNAUTHORIZED = {401: {"model": Message, "description": "No or wrong bearer token."}}
UNREADABLE = {400: {"model": Message, "description": "A body that cannot be read as JSON text."}}


def _json_error(description: str) -> dict[str, Any]:
    """An error documented as JSON on a route whose own answers are not JSON."""
    schema = {"$ref": "#/components/schemas/Message"}
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def create_app(
    *,
    files: Sequence[str] = (),
    overrides: Sequence[tuple[str, str]] = (),
    token: str | None,
    worker: RunWorker | None = None,
    max_body_bytes: int = MAX_BODY_BYTES,
    max_records: int = MAX_RECORDS,
) -> FastAPI:
    """Return the API for the parameter set ``files`` + ``overrides`` (as ``leak run -f/-p``).

    Args:
        files: Parameter files the server's runs start from; they also name the stores,
            the dataset (its ``features`` shape ``POST /predict``) and the champion's model name.
        overrides: ``(key, yaml_text)`` pairs applied after the files.
        token: The bearer token every endpoint but ``/health`` requires; None serves without
            one (``--insecure-local``, which the CLI binds to 127.0.0.1).
        worker: Starts the runs (tests hand over one that runs a stand-in command).
        max_body_bytes: Larger request bodies get 413.
        max_records: Larger ``POST /predict`` batches get 413.
    """
    files = [str(f) for f in files]
    overrides = [(str(k), str(v)) for k, v in overrides]
    base = parameters.load(files, overrides)  # a bad set stops the server before it listens
    worker = worker or RunWorker()
    request_model = record_model(base.dataset, max_records=max_records)
    loaded: dict[str, Any] = {}  # model sha256 -> fitted model, so a batch does not reread it
    loaded_lock = threading.Lock()

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI):
        yield
        worker.stop()

    app = FastAPI(
        title="leak serve",
        summary="Start and follow leak-detection runs, read their reports, score readings.",
        description=(__doc__ or "").split("\n\n", 1)[1],
        version="1",
        lifespan=lifespan,
    )
    bearer = HTTPBearer(
        auto_error=False, description=f"The server's {ENV_TOKEN}, as `Authorization: Bearer ...`"
    )

    def authorised(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> None:
        if token is None:
            return
        given = credentials.credentials.encode() if credentials else b""
        if not hmac.compare_digest(given, token.encode()):
            log.warning("refused %s %s: no valid bearer token", request.method, request.url.path)
            raise HTTPException(
                status_code=401,
                detail="missing or wrong bearer token",
                headers={"WWW-Authenticate": "Bearer"},
            )

    api = APIRouter(dependencies=[Depends(authorised)], responses=UNAUTHORIZED)

    def metadata() -> MetadataStore:
        return open_metadata_store(base.metadata_store)

    def run_record(run_id: str) -> dict[str, Any]:
        record = runs.get_run_or_none(metadata(), run_id)
        if record is None:
            raise HTTPException(status_code=404, detail=f"run {run_id!r} not found")
        return record

    # --- runs ---------------------------------------------------------------------------------

    @api.post(
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
    def start_run(body: RunRequest, response: Response) -> Any:
        busy = worker.running()
        if busy:
            return JSONResponse(
                status_code=409, content=Busy(detail=str(RunBusy(busy)), run_id=busy).model_dump()
            )
        problems: list[tuple[list[str | int], str]] = []
        pairs: list[tuple[str, str]] = []
        for key, value in body.params.items():
            if key.split(".", 1)[0] in SERVER_ONLY:
                problems.append((["params", key], f"{key} is set by the server, not over HTTP"))
                continue
            text = yaml.safe_dump(value)  # the JSON value, written as `-p KEY VALUE` reads it
            try:
                parameters.parse_override(key, text)  # an unknown key, named
            except ParameterError as exc:
                problems.append((["params", key], str(exc)))
                continue
            pairs.append((key, text))
        if problems:
            return _unprocessable(problems, "parameter_error")
        try:
            chosen = parameters.load(files, [*overrides, *pairs])
        except ParameterError as exc:
            return _unprocessable(_parameter_problems(exc), "parameter_error")
        allowed = base.serve_allowed_locations
        before = _location_values(base)
        outside = [
            (["params", key], f"{key} {value!r} is outside serve_allowed_locations")
            for key, value in _location_values(chosen).items()
            if value is not None and value != before[key] and not within_locations(value, allowed)
        ]
        if outside:
            return _unprocessable(outside, "location_not_allowed")
        run_id = runs.new_run_id()
        args = [*(a for f in files for a in ("-f", f))]
        args += [a for k, v in [*overrides, *pairs] for a in ("-p", k, v)]
        try:
            worker.start(run_id, [*args, "-p", "run_id", run_id])
        except RunBusy as busy_now:
            return JSONResponse(
                status_code=409,
                content=Busy(detail=str(busy_now), run_id=busy_now.run_id).model_dump(),
            )
        response.headers["Location"] = f"/runs/{run_id}"
        return RunStarted(run_id=run_id, location=f"/runs/{run_id}")

    @api.get(
        "/runs",
        summary="List runs",
        description="Runs in the metadata store, newest first, as shown in the reports "
        "(`abandoned`: still marked running, but silent for ten minutes).",
        response_model=RunPage,
    )
    def list_runs(
        status: Annotated[
            RunStatus | None, Query(description="Only runs shown with this status.")
        ] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE, examples=[20])] = 20,
        offset: Annotated[int, Query(ge=0, le=1_000_000, examples=[0])] = 0,
    ) -> RunPage:
        shown = [_summary(r) for r in runs.list_runs(metadata())]
        if status is not None:
            shown = [s for s in shown if s.status == status.value]
        page = [
            RunSummary.model_validate(without_secrets(s.model_dump(), token=token))
            for s in shown[offset : offset + limit]
        ]
        return RunPage(runs=page, total=len(shown), limit=limit, offset=offset)

    @api.get(
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
    def read_run(run_id: RunId) -> dict[str, Any]:
        record = runs.get_run_or_none(metadata(), run_id)
        if record is None:
            pending = worker.started_here(run_id)
            if pending is None:
                raise HTTPException(status_code=404, detail=f"run {run_id!r} not found")
            return {**pending, "shown_status": pending["status"]}
        shown = without_secrets(record, token=token)
        return {**shown, "shown_status": runs.shown_status(record)}

    @api.get(
        "/runs/{run_id}/reports/{step}",
        summary="Read a run's report",
        description="The rendered HTML report of one step, from the archive beside the "
        "snapshots (verified by its hash), else from this machine's reports folder.",
        response_class=HTMLResponse,
        responses={
            200: {"content": {"text/html": {"example": "<!DOCTYPE html><html>...</html>"}}},
            401: _json_error("No or wrong bearer token."),
            404: _json_error("No such run, or no report of that step."),
        },
    )
    def read_report(run_id: RunId, step: StepName) -> HTMLResponse:
        record = run_record(run_id)
        html = _report_html(record, step.value)
        if html is None:
            rendering = worker.running() == run_id and record.get("status") != "running"
            later = ": it is being rendered, ask again in a few seconds" if rendering else ""
            raise HTTPException(
                status_code=404, detail=f"run {run_id!r} has no {step.value} report{later}"
            )
        return HTMLResponse(html, headers={"X-Content-Type-Options": "nosniff"})

    # --- the champion and scoring ---------------------------------------------------------------

    @api.get(
        "/champion",
        summary="Read the champion",
        description="The current champion of the dataset's model name (or `model_name`): its "
        "run, model hash, alarm threshold, metrics and why it was promoted.",
        response_model=Champion,
        responses={404: {"model": Message, "description": "No champion yet."}},
    )
    def read_champion(
        model_name: Annotated[
            str | None,
            Query(
                pattern=RUN_ID_PATTERN,
                examples=["leak-detector"],
                description="Default: the server's dataset.model_name.",
            ),
        ] = None,
    ) -> Champion:
        name = model_name or base.dataset.model_name
        pointer = champion.current_champion(metadata(), model_name=name)
        if pointer is None:
            raise HTTPException(status_code=404, detail=f"no champion yet for model {name!r}")
        shown = {k: pointer.get(k) for k in Champion.model_fields if k != "model_name"}
        return Champion(model_name=name, **{**shown, "metrics": pointer.get("metrics") or {}})

    def fitted(run: dict[str, Any]) -> Any:
        sha = run["model"]["sha256"]
        with loaded_lock:
            if sha in loaded:
                return loaded[sha]
        model = scoring.load_run_model(run)
        with loaded_lock:
            if len(loaded) >= 4:
                loaded.clear()
            loaded[sha] = model
        return model

    @api.post(
        "/predict",
        summary="Score readings",
        description="Score records with the champion (or `run_id`'s model): each gets its "
        "leak probability and an alarm at the model's threshold. Records are checked against "
        "the model's recorded schema; derived features are computed per group from the "
        f"records sent. At most {max_records} records (more: 413).",
        response_model=Predictions,
        responses={
            **UNREADABLE,
            404: {"model": Message, "description": "No champion yet, or no such run/model."},
            413: {"model": Message, "description": "Too many records, or body too large."},
            422: {"description": "A record does not fit; each entry names its field."},
        },
    )
    def predict(
        body: request_model,  # type: ignore[valid-type]
        run_id: Annotated[
            str | None,
            Query(pattern=RUN_ID_PATTERN, description="Score with this run's model instead."),
        ] = None,
    ) -> Any:
        try:
            run = scoring.model_run(metadata(), model_name=base.dataset.model_name, run_id=run_id)
        except (scoring.ScoringError, MetadataError) as exc:
            raise HTTPException(status_code=404, detail=str(exc)) from None
        frame = pd.DataFrame([r.model_dump(by_alias=True) for r in body.records])
        try:
            model = fitted(run)
        except ModelError as exc:
            log.error("model of run %s cannot be loaded: %s", run["run_id"], exc)
            raise HTTPException(status_code=503, detail="the model cannot be loaded") from None
        stamp = datetime.now(UTC).isoformat(timespec="seconds")
        try:
            scored = scoring.score_frame(frame, run=run, scored_at=stamp, model=model)
        except SchemaError as exc:
            return _unprocessable([(["records"], p) for p in exc.problems], "schema_error")
        except DeriveError as exc:
            return _unprocessable([(["records"], str(exc))], "derive_error")
        dataset = DatasetSpec.model_validate(runs.recorded_params(run)["dataset"])
        groups = scored.get(dataset.group)
        stamps = scored.get(dataset.timestamp)
        rows = [
            Prediction(
                group=None if groups is None else _plain(groups.iloc[i]),
                timestamp=None if stamps is None else pd.Timestamp(stamps.iloc[i]).isoformat(),
                probability=float(p),
                alarm=bool(a),
            )
            for i, (p, a) in enumerate(zip(scored["probability"], scored["alarm"], strict=True))
        ]
        return Predictions(
            run_id=run["run_id"],
            model_sha256=run["model"]["sha256"],
            threshold=float(scored["threshold"].iloc[0]),
            rows=len(rows),
            alarms=sum(r.alarm for r in rows),
            predictions=rows,
        )

    # --- health ---------------------------------------------------------------------------------

    @app.get(
        "/health",
        summary="Check the stores and MLflow",
        description="No token needed. 200 when the metadata store, the snapshot store and the "
        "MLflow tracking server answer, else 503; which check failed and why is logged.",
        response_model=Health,
        responses={503: {"model": Health, "description": "A store or MLflow does not answer."}},
    )
    def health() -> Any:
        checks = {
            "metadata_store": lambda: metadata().check(),
            "snapshot_store": lambda: open_snapshot_store(base.snapshot_store).check(),
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

    @app.exception_handler(RequestValidationError)
    async def _too_many(request: Request, exc: RequestValidationError) -> JSONResponse:
        if any(
            e.get("type") == "too_long" and tuple(e.get("loc", ()))[:2] == ("body", "records")
            for e in exc.errors()
        ):
            return JSONResponse(
                status_code=413, content={"detail": f"more than {max_records} records"}
            )
        return await request_validation_exception_handler(request, exc)

    app.include_router(api)
    app.add_middleware(_BodyLimit, limit=max_body_bytes)
    return app


def _plain(value: Any) -> Any:
    """Return a table cell as a JSON value (a NumPy integer as an int)."""
    return value.item() if hasattr(value, "item") else value


def _report_html(record: dict[str, Any], step: str) -> bytes | None:
    """Return a run's rendered report of ``step``: archived (verified), else rendered here."""
    archived = (record.get("reports_archive") or {}).get(step)
    if archived:
        try:
            snapshots = open_snapshot_store(record["params"]["snapshot_store"])
            return reports.archive_store(snapshots, record["run_id"]).get(archived["sha256"])
        except RuntimeError as exc:  # missing or altered in the archive: try the local copy
            log.warning("archived %s report of run %s: %s", step, record["run_id"], exc)
    rendered = (record.get("reports") or {}).get(step)
    path = project_root() / rendered if rendered else None
    if path is not None and path.is_file() and path.resolve().is_relative_to(project_root()):
        return path.read_bytes()
    return None
