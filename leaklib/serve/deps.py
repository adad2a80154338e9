"""What the routes depend on, read from ``app.state`` through ``Depends``, so a test can swap
any of them with ``app.dependency_overrides``: the server's parameter set, the run worker, the
metadata store and the cache of loaded models."""

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request

from leaklib.metadata import MetadataStore, open_metadata_store
from leaklib.params import Params
from leaklib.serve.worker import RunWorker


@dataclass(frozen=True)
class Server:
    """The parameter set the server was started with (as ``leak run -f/-p``), validated."""

    files: Sequence[str]
    overrides: Sequence[tuple[str, str]]
    params: Params
    token: str | None


class ModelCache:
    """Fitted models by their SHA-256, so a batch does not reread the model (at most ``size``)."""

    def __init__(self, *, size: int = 4) -> None:
        self.size = size
        self._models: dict[str, Any] = {}
        self._lock = threading.Lock()

    def get(self, sha256: str, load: Callable[[], Any]) -> Any:
        """Return the model of ``sha256``, loading it with ``load`` the first time."""
        with self._lock:
            if sha256 in self._models:
                return self._models[sha256]
        model = load()
        with self._lock:
            if len(self._models) >= self.size:
                self._models.clear()
            self._models[sha256] = model
        return model


def server(request: Request) -> Server:
    """The server's parameter set (``app.state.server``)."""
    return request.app.state.server


def worker(request: Request) -> RunWorker:
    """The run worker (``app.state.worker``)."""
    return request.app.state.worker


def models(request: Request) -> ModelCache:
    """The loaded models (``app.state.models``)."""
    return request.app.state.models


def metadata(chosen: Annotated[Server, Depends(server)]) -> MetadataStore:
    """The metadata store the server's parameters name."""
    return open_metadata_store(chosen.params.metadata_store)


ServerDep = Annotated[Server, Depends(server)]
WorkerDep = Annotated[RunWorker, Depends(worker)]
ModelsDep = Annotated[ModelCache, Depends(models)]
MetadataDep = Annotated[MetadataStore, Depends(metadata)]
