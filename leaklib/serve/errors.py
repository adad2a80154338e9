"""How errors become HTTP answers: a 422 in FastAPI's own shape, and the 413 of a batch with
too many records."""

from typing import Any

from fastapi import Request
from fastapi.exception_handlers import request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from leaklib.params import ParameterError

Problem = tuple[list[str | int], str]  # (where in the body, what is wrong)


def unprocessable(problems: list[Problem], kind: str) -> JSONResponse:
    """A 422 in FastAPI's own shape, one entry per problem, each naming its key or column."""
    detail = [{"loc": ["body", *loc], "msg": msg, "type": kind} for loc, msg in problems]
    return JSONResponse(status_code=422, content={"detail": detail})


def parameter_problems(error: ParameterError) -> list[Problem]:
    """One problem per key a ParameterError names."""
    lines = str(error).splitlines()
    if len(lines) > 1:  # "invalid parameters:" then "  key: message" lines
        return [(["params", line.strip().split(":", 1)[0]], line.strip()) for line in lines[1:]]
    return [(["params"], str(error))]


async def too_many_records(request: Request, exc: RequestValidationError) -> Any:
    """413 for a ``POST /predict`` batch over ``app.state.max_records``; FastAPI's 422 else."""
    if any(
        e.get("type") == "too_long" and tuple(e.get("loc", ()))[:2] == ("body", "records")
        for e in exc.errors()
    ):
        limit = request.app.state.max_records
        return JSONResponse(status_code=413, content={"detail": f"more than {limit} records"})
    return await request_validation_exception_handler(request, exc)
