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

import contextlib
from collections.abc import AsyncIterator, Sequence

from fastapi import Depends, FastAPI

from leaklib import params
from leaklib.score_history import newest_readings
from leaklib.serve.deps import ModelCache, Server
from leaklib.serve.errors import add_error_handlers
from leaklib.serve.routers import champion, docs, health, predict, reports, runs
from leaklib.serve.schemas import MAX_RECORDS, UNAUTHORIZED
from leaklib.serve.security import MAX_BODY_BYTES, BodyLimit, authorised
from leaklib.serve.worker import RunWorker


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

    What the routes share lives in ``app.state`` (``server``, ``worker``, ``models``,
    ``token``, ``max_records``) and reaches them through :mod:`leaklib.serve.deps`.

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
    base = params.load(files, overrides)  # a bad set stops the server before it listens
    worker = worker or RunWorker()

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        worker.stop()

    app = FastAPI(
        title="leak serve",
        summary="Start and follow leak-detection runs, read their reports, score readings.",
        description=(__doc__ or "").split("\n\n", 1)[1],
        version="1",
        lifespan=lifespan,
        docs_url=None,  # served from the package by docs.add_docs: no CDN, works offline
        redoc_url=None,
    )
    docs.add_docs(app)
    app.state.server = Server(files=files, overrides=overrides, params=base, token=token)
    app.state.token = token
    app.state.worker = worker
    app.state.models = ModelCache()
    app.state.max_records = max_records
    _include_routers(app, base=base, max_records=max_records)
    add_error_handlers(app)
    app.add_middleware(BodyLimit, limit=max_body_bytes)
    return app


def _include_routers(app: FastAPI, *, base: params.Params, max_records: int) -> None:
    """Add every resource's routes: all behind the token check but ``/health``."""
    protected = {"dependencies": [Depends(authorised)], "responses": UNAUTHORIZED}
    app.include_router(runs.router, **protected)
    app.include_router(reports.router, **protected)
    app.include_router(champion.router, **protected)
    predicting = predict.build_router(
        dataset=base.dataset, max_records=max_records, example=newest_readings(base)
    )
    app.include_router(predicting, **protected)
    app.include_router(health.router)
