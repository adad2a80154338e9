"""The API's request and response bodies, path and query types, and documented error answers.

The body of ``POST /predict`` is built from the dataset's ``features`` mapping
(:func:`record_model`), so it is documented in the OpenAPI schema.
"""

from datetime import UTC, datetime
from enum import Enum
from typing import Annotated, Any, Literal

from fastapi import Path as PathParam
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, create_model

from leaklib import runs
from leaklib.params import ID_PATTERN, DatasetSpec, FeatureSpec
from leaklib.steps import STEPS

MAX_RECORDS = 5000  # records in one POST /predict
MAX_PAGE = 100  # runs in one page of GET /runs
RUN_ID_PATTERN = ID_PATTERN  # a run id or a model name in a path or query

RunStatus = Enum("RunStatus", {s: s for s in runs.SHOWN_STATUSES}, type=str)
StepName = Enum("StepName", {s: s for s in STEPS}, type=str)
RunId = Annotated[str, PathParam(pattern=RUN_ID_PATTERN, examples=["20261129-101500-3fa2"])]


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
    alarm: bool = Field(
        description="probability >= the model's alarm threshold, and no sensor fault."
    )
    sensor_fault: bool = Field(
        default=False, description="A reading the row's features depend on is faulty."
    )
    fault_sensors: str = Field(default="", description="The faulty sensors, comma-separated.")


class Candidate(BaseModel):
    """One ranked candidate location of a leak event (leaklib.leak_location)."""

    rank: int = Field(description="1: the node whose leak signature explains the event best.")
    node: str = Field(description="The candidate junction of the network model.")
    score: float = Field(description="How well its signature explains the event (higher: better).")
    pipes: list[str] = Field(description="The pipes that end at the node: where to dig.")
    distance_m: float = Field(description="Its walk along the pipes from the top candidate, in m.")


class PredictedEvent(BaseModel):
    """A leak alarm event or sensor-fault event the records open or extend."""

    event_id: str
    kind: Literal["leak", "sensor_fault"]
    sensor: str = Field(description="sensor_fault: the sensor ('' for a leak).")
    fault: str = Field(description="sensor_fault: gap, stuck, out_of_range, jump or drift.")
    first: str
    last: str
    closed: bool = Field(description="False: a later reading may still extend it.")
    rows: int
    peak_probability: float | None = None
    top_sensors: str = Field(description="leak: the three sensors deviating most.")
    candidates: list[Candidate] = Field(
        default_factory=list,
        description="leak, when the model's run has localisation on: the top-k candidate "
        "junctions ranked by their simulated leak signatures (empty otherwise).",
    )
    walk_m: float | None = Field(
        default=None,
        description="leak, with candidates: the length of main a crew walks to cover them, m.",
    )


class Predictions(BaseModel):
    """The scores of one batch and the model that gave them."""

    run_id: str
    model_sha256: str
    threshold: float
    rows: int
    alarms: int
    predictions: list[Prediction]
    events: list[PredictedEvent] = Field(default_factory=list)

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
                            "group": None,
                            "timestamp": "2019-12-31T23:45:00",
                            "probability": 0.03,
                            "alarm": False,
                            "sensor_fault": False,
                            "fault_sensors": "",
                        }
                    ],
                    "events": [],
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
    try:
        return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment
    except OverflowError:  # 0001-01-01T00:00+00:01 has no UTC time
        raise ValueError("a time outside the range of dates") from None


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


def record_model(
    dataset: DatasetSpec, *, max_records: int, example: list[dict] | None = None
) -> type[BaseModel]:
    """Return the POST /predict body: ``records``, each one field per declared column.

    The group and timestamp are required (derivations order each series by them); each
    feature is required and may be null (a missing reading), typed and bounded as declared.
    The target is not sent. Fields carry the column names as aliases, so any column name
    works and a 422 names the column. ``example`` gives real records for the document's
    example (made-up values of the declared ranges without it).
    """
    fields: dict[str, Any] = {}
    made_up: dict[str, Any] = {}
    if dataset.group:
        fields["key_group"] = (
            int | str,
            Field(alias=dataset.group, description=f"{dataset.group}: the series (group)"),
        )
        made_up[dataset.group] = 7
    if dataset.timestamp:
        fields["key_timestamp"] = (
            Annotated[datetime, AfterValidator(_naive_utc)],
            Field(alias=dataset.timestamp, description=f"{dataset.timestamp}: the reading's time"),
        )
        made_up[dataset.timestamp] = "2024-01-01T00:15:00"
    for i, (name, spec) in enumerate(dataset.features.items()):
        fields[f"feature_{i}"] = _feature_field(name, spec)
        made_up[name] = _example_value(spec)
    shown = example or [made_up]
    record = create_model(
        "PredictRecord",
        __config__=ConfigDict(extra="forbid"),
        **fields,
    )
    return create_model(
        "PredictRequest",
        __config__=ConfigDict(extra="forbid", json_schema_extra={"examples": [{"records": shown}]}),
        history=(
            list[record] | None,  # type: ignore[valid-type]
            Field(
                default=None,
                description="Earlier readings of the stream, for the derived features' and "
                "sensor checks' lookback (not answered). When they fall short, the run's "
                "recorded source is read for the rest, within serve_allowed_locations; when "
                "that falls short too, 422 says how many earlier rows are missing.",
            ),
        ),
        records=(
            list[record],  # type: ignore[valid-type]
            Field(
                min_length=1,
                max_length=max_records,
                description=f"The newest readings, at most {max_records} (more: 413), each "
                "answered. On a stream their history comes from `history` or the run's "
                "source; with groups, whole series are sent.",
            ),
        ),
    )


UNAUTHORIZED = {401: {"model": Message, "description": "No or wrong bearer token."}}
UNREADABLE = {400: {"model": Message, "description": "A body that cannot be read as JSON text."}}


def json_error(description: str) -> dict[str, Any]:
    """An error documented as JSON on a route whose own answers are not JSON."""
    schema = {"$ref": "#/components/schemas/Message"}
    return {"description": description, "content": {"application/json": {"schema": schema}}}
