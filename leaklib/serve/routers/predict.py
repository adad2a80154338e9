"""``/predict``: score readings with the champion or a run's model.

The body is built from the dataset's ``features`` (:func:`leaklib.serve.schemas.record_model`),
so this router is made per app by :func:`build_router`.
"""

from datetime import UTC, datetime
from typing import Annotated, Any

import pandas as pd
from fastapi import APIRouter, Query

from leaklib import runs, scoring
from leaklib.params import DatasetSpec
from leaklib.serve.deps import MetadataDep, ModelsDep, ServerDep
from leaklib.serve.schemas import (
    RUN_ID_PATTERN,
    UNREADABLE,
    Message,
    Prediction,
    Predictions,
    record_model,
)


def _plain(value: Any) -> Any:
    """Return a table cell as a JSON value (a NumPy integer as an int)."""
    return value.item() if hasattr(value, "item") else value


def _predictions(scored: pd.DataFrame, run: dict[str, Any]) -> Predictions:
    """The scored table as the answer: one prediction per record, in the order sent."""
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


def build_router(*, dataset: DatasetSpec, max_records: int) -> APIRouter:
    """Return the ``/predict`` router, its body typed by ``dataset``'s declared columns."""
    request_model = record_model(dataset, max_records=max_records)
    router = APIRouter()

    @router.post(
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
        model = models.get(run["model"]["sha256"], lambda: scoring.load_run_model(run))
        stamp = datetime.now(UTC).isoformat(timespec="seconds")
        scored = scoring.score_frame(frame, run=run, scored_at=stamp, model=model)
        return _predictions(scored, run)

    return router
