"""``leak serve``: serve the HTTP API with uvicorn (the only command that loads the web stack)."""

from __future__ import annotations

import argparse
import os
import sys

import uvicorn

from leaklib import serve
from leaklib.cli.options import add_param_options


def _serve(args: argparse.Namespace) -> int:
    host, token = args.host, os.environ.get(serve.ENV_TOKEN)
    if args.insecure_local:
        if host not in (None, "127.0.0.1", "localhost"):
            raise serve.ServeError(f"--insecure-local binds to 127.0.0.1 only, not --host {host}")
        host, token = "127.0.0.1", None
        print(
            f"leak serve: warning: --insecure-local: no token checked ({serve.ENV_TOKEN} is "
            "ignored); anyone on this machine can start runs",
            file=sys.stderr,
        )
    else:
        token = serve.check_token(token)
    port = args.port if args.port is not None else int(os.environ.get("PORT") or 8000)
    app = serve.create_app(
        files=args.files, overrides=[tuple(o) for o in args.overrides], token=token
    )
    print(f"leak serve: http://{host or '127.0.0.1'}:{port} (API docs at /docs)", flush=True)
    uvicorn.run(
        app,
        host=host or "127.0.0.1",
        port=port,
        log_level="info" if args.verbose else "warning",
        server_header=False,
        proxy_headers=True,
    )
    return 0


def configure(server: argparse.ArgumentParser) -> None:
    """Add ``leak serve``'s options and its handler."""
    server.description = (
        "Serve the HTTP API (FastAPI, docs at /docs) over the parameter set -f/-p "
        f"names: runs start from it, and it names the stores and the dataset. Every endpoint "
        f"but /health needs 'Authorization: Bearer ${serve.ENV_TOKEN}'; without that variable "
        "the server does not start, unless --insecure-local."
    )
    add_param_options(server)
    server.add_argument(
        "--host", help="address to bind (default 127.0.0.1; 0.0.0.0 in a container)"
    )
    server.add_argument(
        "--port", type=int, help="port (default: $PORT, as Cloud Run sets it, else 8000)"
    )
    server.add_argument(
        "--insecure-local",
        action="store_true",
        help=f"serve without {serve.ENV_TOKEN}, on 127.0.0.1 only (a laptop)",
    )
    server.set_defaults(func=_serve)
