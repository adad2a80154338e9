"""What keeps the API safe: the bearer token, where a client may point the pipeline, what is
shown of a record (secrets masked) and the request-body size limit."""

import hmac
import logging
import re
from collections.abc import Callable, Sequence
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from leaklib.errors import LeakError
from leaklib.params import Params
from leaklib.paths import resolve

log = logging.getLogger(__name__)

ENV_TOKEN = "LEAK_API_TOKEN"  # the bearer token clients send; read by the CLI, never logged
MIN_TOKEN_LENGTH = 16
MAX_BODY_BYTES = 8 * 1024 * 1024  # any request body
# keys a client may not set over HTTP: the server picks the run id, and the allow-list
# would be no limit if a request could widen it
SERVER_ONLY = ("run_id", "serve_allowed_locations")


class ServeError(LeakError, ValueError):
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


# --- the token check, a dependency of every router but /health --------------------------------

bearer = HTTPBearer(
    auto_error=False, description=f"The server's {ENV_TOKEN}, as `Authorization: Bearer ...`"
)


def served_token(request: Request) -> str | None:
    """The token this app checks (``app.state.token``); None serves without one."""
    return request.app.state.token


def authorised(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    token: Annotated[str | None, Depends(served_token)],
) -> None:
    """Refuse the request with 401 unless it carries the server's token (constant time)."""
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


def location_values(params: Params) -> dict[str, str | None]:
    """The parameters that point the pipeline somewhere, by dotted key (None: not set)."""
    return {
        "dataset.source": params.dataset.source,
        "dataset.leak_table": params.dataset.leak_table,
        "dataset.leak_volumes": params.dataset.leak_volumes,
        "snapshot_store": params.snapshot_store,
        "metadata_store": params.metadata_store,
    }


# --- what is shown ----------------------------------------------------------------------------

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


# --- the body size limit ----------------------------------------------------------------------


class BodyLimit:
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
        await self.app(scope, _replay(b"".join(chunks), receive), send)


def _replay(body: bytes, receive: Callable) -> Callable:
    """A ``receive`` that hands over the body already read, then the real ``receive``."""
    sent = False

    async def replay() -> dict:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay
