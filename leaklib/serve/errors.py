"""How errors become HTTP answers, in one place: :data:`ANSWERS` maps each kind of
:class:`~leaklib.errors.LeakError` the routes let through to its status and shape. A LeakError
of another kind, or any other exception, is a bug: a 500, with its traceback in the log.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exception_handlers import request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from leaklib.errors import LeakError, NotFoundError
from leaklib.features import DeriveError
from leaklib.models import ModelFileError
from leaklib.params import ParameterError
from leaklib.schema import SchemaError
from leaklib.score_history import HistoryMissing
from leaklib.scoring import ScoringError
from leaklib.serve.worker import RunBusy

log = logging.getLogger(__name__)


class LocationNotAllowed(LeakError):  # noqa: N818 - reads as what happened
    """A request points the pipeline outside ``serve_allowed_locations``.

    Attributes:
        by_key: ``(key, problem)`` for each location outside the allow-list.
    """

    def __init__(self, by_key: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(p for _, p in by_key), problems=[p for _, p in by_key])
        self.by_key = by_key


@dataclass(frozen=True)
class Answer:
    """The HTTP answer to one kind of LeakError."""

    status: int
    field: str | None = None  # 422: the body field the problems are in ("params", "records")
    kind: str | None = None  # 422: each problem's "type"
    detail: str | None = None  # shown instead of the message (its cause is the server's)


ANSWERS: dict[type[LeakError], Answer] = {
    ParameterError: Answer(422, "params", "parameter_error"),
    LocationNotAllowed: Answer(422, "params", "location_not_allowed"),
    SchemaError: Answer(422, "records", "schema_error"),
    DeriveError: Answer(422, "records", "derive_error"),
    HistoryMissing: Answer(422, "history", "history_missing"),
    NotFoundError: Answer(404),  # no such run
    ScoringError: Answer(404),  # no champion yet, or the run has no model file
    RunBusy: Answer(409),
    ModelFileError: Answer(503, detail="the model cannot be loaded"),
}


def answer_for(error: LeakError) -> Answer | None:
    """The answer to ``error``: its own kind's, else its nearest base's; None when unmapped."""
    return next((ANSWERS[kind] for kind in type(error).__mro__ if kind in ANSWERS), None)


def unprocessable(problems: list[tuple[list[str], str]], kind: str) -> JSONResponse:
    """A 422 in FastAPI's own shape, one entry per problem, each naming its key or column."""
    detail = [{"loc": ["body", *loc], "msg": msg, "type": kind} for loc, msg in problems]
    return JSONResponse(status_code=422, content={"detail": detail})


def _located(error: LeakError, field: str) -> list[tuple[list[str], str]]:
    """Each problem of ``error`` with where it is: the key it names, when the error says."""
    by_key = getattr(error, "by_key", None)
    if by_key:
        return [([field, key], problem) for key, problem in by_key]
    if isinstance(error, ParameterError):  # one problem, about no one key
        return [([field], str(error))]
    return [([field], problem) for problem in error.problems]


async def leak_error(request: Request, error: Exception) -> Any:
    """Answer a LeakError as :data:`ANSWERS` says; re-raise one it does not list (a 500)."""
    assert isinstance(error, LeakError)
    answer = answer_for(error)
    if answer is None:
        raise error
    if answer.status == 422:
        return unprocessable(_located(error, answer.field or "body"), answer.kind or "error")
    if answer.status >= 500:
        log.error("%s %s: %s", request.method, request.url.path, error)
    content: dict[str, Any] = {"detail": answer.detail or str(error)}
    if isinstance(error, RunBusy):
        content["run_id"] = error.run_id
    return JSONResponse(status_code=answer.status, content=content)


async def too_many_records(request: Request, exc: Exception) -> Any:
    """413 for a ``POST /predict`` batch over ``app.state.max_records``; FastAPI's 422 else."""
    assert isinstance(exc, RequestValidationError)
    if any(
        e.get("type") == "too_long" and tuple(e.get("loc", ()))[:2] == ("body", "records")
        for e in exc.errors()
    ):
        limit = request.app.state.max_records
        return JSONResponse(status_code=413, content={"detail": f"more than {limit} records"})
    return await request_validation_exception_handler(request, exc)


def add_error_handlers(app: FastAPI) -> None:
    """Register the answers to LeakErrors and to over-long batches on ``app``."""
    for kind in ANSWERS:
        app.add_exception_handler(kind, leak_error)
    app.add_exception_handler(RequestValidationError, too_many_records)
