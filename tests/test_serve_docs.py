"""``/docs`` and ``/redoc`` in headless Chromium with every outside request blocked: the pages
draw the API from files the server itself serves (leaklib.serve.routers.docs)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from leaklib import serve
from tests import chromium
from tests.serving import TOKEN
from tests.test_gitlab_ci import need

pytestmark = pytest.mark.browser

SMOKE = Path(__file__).resolve().parents[1] / "parameters" / "smoke.yaml"
REDOC_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"
ENDPOINTS = ("/runs", "/runs/{run_id}", "/runs/{run_id}/reports/{step}", "/champion", "/predict")


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    """The API served by uvicorn on a free loopback port, in a thread."""
    app = serve.create_app(files=[str(SMOKE)], token=TOKEN, worker=serve.RunWorker(["true"]))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(300):
        if server.started:
            break
        time.sleep(0.1)
    assert server.started, "uvicorn did not start"
    yield f"http://localhost:{port}"  # the browser's resolver blocks every other name
    server.should_exit = True
    thread.join(timeout=30)


@pytest.fixture(scope="module")
def driver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    reason = chromium.missing()
    need(reason is None, reason or "")
    with chromium.chromium(tmp_path_factory.mktemp("chromium-profile")) as browser:
        yield browser


def _outside(seen: dict[str, Any], url: str) -> list[str]:
    urls = seen["requests"] + seen["resources"]
    assert urls, "the performance log recorded no request at all"
    return [u for u in urls if not u.startswith((url, "data:", "blob:"))]


def test_swagger_ui_lists_the_endpoints_offline(driver: Any, url: str, tmp_path: Path) -> None:
    seen = chromium.inspect(driver, f"{url}/docs", ready=".opblock-summary-path")
    driver.save_screenshot(str(tmp_path / "docs.png"))  # kept with the test's files
    for endpoint in ENDPOINTS:
        assert endpoint in seen["text"]
    assert "leak serve" in seen["text"]
    assert _outside(seen, url) == []
    assert chromium.console_errors(seen) == []


def test_redoc_lists_the_endpoints_offline(driver: Any, url: str) -> None:
    seen = chromium.inspect(driver, f"{url}/redoc", ready="[data-section-id]")
    for summary in ("Start a run", "List runs", "Read the champion", "Score readings"):
        assert summary in seen["text"]
    # ReDoc's sidebar badge asks its CDN for a logo (hidden when it fails); the page's
    # Content-Security-Policy refuses it, so nothing else is asked and nothing outside loads
    assert set(_outside(seen, url)) <= {REDOC_LOGO}
    assert not [i for i in seen["images"] if i["ok"] and not i["src"].startswith(url)]


def test_the_docs_pages_name_no_outside_host(url: str) -> None:
    for page in ("/docs", "/redoc"):
        html = httpx.get(f"{url}{page}").text
        assert "cdn." not in html and "fonts.googleapis" not in html, page
