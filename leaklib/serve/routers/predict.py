"""``/predict``: score readings with the champion or a run's model.

The body is built from the dataset's ``features`` (:func:`leaklib.serve.schemas.record_model`),
so this router is made per app by :func:`build_router`.
"""

from datetime import UTC, datetime
from typing import Annotated, Any

import pandas as pd
from fastapi import APIRouter, Query

from leaklib import score_events, score_history, scoring
from leaklib.leak_events import row_spacing
from leaklib.params import DatasetSpec
from leaklib.run_record import RunRecord
from leaklib.serve.deps import MetadataDep, ModelsDep, ServerDep
from leaklib.serve.schemas import (
    RUN_ID_PATTERN,
    UNREADABLE,
    Message,
    PredictedEvent,
    Prediction,
    Predictions,
    record_model,
)
from leaklib.serve.security import within_locations


def _plain(value: Any) -> Any:
    """Return a table cell as a JSON value (a NumPy integer as an int)."""
    return value.item() if hasattr(value, "item") else value


def _events(
    done: scoring.Scored, run: RunRecord, params: Any, locator: Any = None
) -> list[PredictedEvent]:
    """The leak and sensor-fault events of the answered rows (one series, a stream).

    With a ``locator`` (:func:`leaklib.score_events.scoring_locator`), each leak event comes
    with its ranked candidate locations.
    """
    dataset = scoring.recorded_dataset(run)
    rows = done.rows
    if dataset.group is not None or dataset.timestamp is None or rows.empty:
        return []
    times = pd.to_datetime(rows[dataset.timestamp])
    spacing = done.spacing or (row_spacing(times) if len(times) > 1 else None)
    if spacing is None:
        return []
    parts = [
        score_events.leak_events(
            rows,
            timestamp=dataset.timestamp,
            spacing=pd.Timedelta(spacing),
            rules=params.events,
            earlier=pd.DataFrame(),
            deviation=done.deviation,
        )
    ]
    if done.faults is not None:
        parts.append(
            score_events.fault_events(
                done.faults,
                spacing=pd.Timedelta(spacing),
                earlier=pd.DataFrame(),
                last_row=pd.Timestamp(times.iloc[-1]),
            )
        )
    parts[0] = score_events.locate_events(
        parts[0], earlier=pd.DataFrame(), derived=done.derived, locator=locator, scoring_id="-"
    )
    return [
        _event(event)
        for part in parts
        for event in part.to_dict(orient="records")
        if event["counts"] or not event["closed"]
    ]


def _event(event: dict[str, Any]) -> PredictedEvent:
    """One event row as the answer gives it, with its ranked candidates when located."""
    peak = event["peak_probability"]
    location = score_events.location_of(event)
    return PredictedEvent(
        **{k: event[k] for k in ("event_id", "kind", "sensor", "fault", "closed")},
        first=pd.Timestamp(event["first"]).isoformat(),
        last=pd.Timestamp(event["last"]).isoformat(),
        rows=int(event["rows"]),
        peak_probability=None if pd.isna(peak) else float(peak),
        top_sensors=event["top_sensors"],
        candidates=[] if location is None else location.to_dict()["candidates"],
        walk_m=None if location is None else round(location.walk_m, 1),
    )


def _locator(models: Any, run: RunRecord, metadata: Any) -> Any:
    """The run's event locator, read once per model and kept beside it (None: off).

    Its signatures come from the stores, never solved per request.
    """
    return models.get(
        f"locator:{run.model.sha256}",
        lambda: score_events.scoring_locator(run, store=metadata),
    )


def _predictions(
    done: scoring.Scored, run: RunRecord, params: Any, locator: Any = None
) -> Predictions:
    """The scored table as the answer: one prediction per record, in time order."""
    dataset = scoring.recorded_dataset(run)
    scored = done.rows
    groups = scored.get(dataset.group)
    stamps = scored.get(dataset.timestamp)
    rows = [
        Prediction(
            group=None if groups is None else _plain(groups.iloc[i]),
            timestamp=None if stamps is None else pd.Timestamp(stamps.iloc[i]).isoformat(),
            probability=float(p),
            alarm=bool(a),
            sensor_fault=bool(f),
            fault_sensors=str(n),
        )
        for i, (p, a, f, n) in enumerate(
            zip(
                scored["probability"],
                scored["alarm"],
                scored["sensor_fault"],
                scored["fault_sensors"],
                strict=True,
            )
        )
    ]
    return Predictions(
        run_id=run.run_id,
        model_sha256=run.model.sha256,
        threshold=float(scored["threshold"].iloc[0]),
        rows=len(rows),
        alarms=sum(r.alarm for r in rows),
        predictions=rows,
        events=_events(done, run, params, locator),
    )


def build_router(
    *, dataset: DatasetSpec, max_records: int, example: list[dict] | None = None
) -> APIRouter:
    """Return the ``/predict`` router, its body typed by ``dataset``'s declared columns.

    ``example``: real records for the API document (the source's newest hour).
    """
    request_model = record_model(dataset, max_records=max_records, example=example)
    router = APIRouter()

    @router.post(
        "/predict",
        summary="Score readings",
        description="Score the newest readings with the champion (or `run_id`'s model): each "
        "gets its leak probability, an alarm at the model's threshold unless a sensor fault "
        "marks it, and the events the records open or extend. On a stream the derived "
        "features' history (their lookback) comes from `history`, else the run's recorded "
        "source within serve_allowed_locations; when neither has it, 422 says how many "
        "earlier rows are missing. With groups, whole series are sent. At most "
        f"{max_records} records (more: 413).",
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
        server: ServerDep,
        metadata: MetadataDep,
        models: ModelsDep,
        run_id: Annotated[
            str | None,
            Query(pattern=RUN_ID_PATTERN, description="Score with this run's model instead."),
        ] = None,
    ) -> Any:
        name = server.params.dataset.model_name
        run = scoring.model_run(metadata, model_name=name, run_id=run_id)
        frame = pd.DataFrame([r.model_dump(by_alias=True) for r in body.records])
        history = None
        if body.history:
            history = pd.DataFrame([r.model_dump(by_alias=True) for r in body.history])
        model = models.get(run.model.sha256, lambda: scoring.load_run_model(run))
        stamp = datetime.now(UTC).isoformat(timespec="seconds")
        allowed = server.params.serve_allowed_locations
        done = score_history.score_newest(
            frame,
            history=history,
            run=run,
            params=server.params,
            scored_at=stamp,
            model=model,
            allowed=lambda where: within_locations(where, allowed),
        )
        return _predictions(done, run, server.params, _locator(models, run, metadata))

    return router
