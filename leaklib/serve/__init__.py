"""The HTTP API over the pipeline (``leak serve``), built as FastAPI projects are.

- :mod:`~leaklib.serve.app`: :func:`create_app`, thin: state, routers, middleware;
- :mod:`~leaklib.serve.routers`: one ``APIRouter`` per resource (runs, reports, champion,
  predict, health);
- :mod:`~leaklib.serve.deps`: what the routes get through ``Depends`` from ``app.state``;
- :mod:`~leaklib.serve.schemas`: request and response bodies;
- :mod:`~leaklib.serve.security`: the token, the location allow-list, secret masking, the
  body limit;
- :mod:`~leaklib.serve.worker`: ``leak run`` in a child process, one at a time;
- :mod:`~leaklib.serve.errors`: how errors become HTTP answers.
"""

from leaklib.serve.app import create_app
from leaklib.serve.security import (
    ENV_TOKEN,
    ServeError,
    check_token,
    within_locations,
    without_secrets,
)
from leaklib.serve.worker import RunBusy, RunWorker

__all__ = [
    "ENV_TOKEN",
    "RunBusy",
    "RunWorker",
    "ServeError",
    "check_token",
    "create_app",
    "within_locations",
    "without_secrets",
]
