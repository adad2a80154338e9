"""Headless Chromium for the tests that open the report site: start it offline, inspect a page.

Used by ``tests/test_browser.py`` (every page of a local site) and ``tests/test_gitlab_ci.py``
(the site the ``pages`` job built). Debian's ``chromium`` and ``chromium-driver``; Selenium
runs with ``SE_OFFLINE=true``, so Selenium Manager downloads nothing, and every host name
resolves to nothing, so no page can reach the network even by mistake.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urldefrag, urlparse

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")

_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--window-size=1280,1024",
    # any name lookup fails, so nothing can leave the machine even by mistake
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE localhost",
)

_INSPECT = """
return {
  images: Array.from(document.images).map(i => ({src: i.src.slice(0, 60), ok: i.complete && i.naturalWidth > 0})),
  links: Array.from(document.querySelectorAll('a[href]')).map(a => a.getAttribute('href')),
  ids: Array.from(document.querySelectorAll('[id]')).map(e => e.id),
  resources: performance.getEntriesByType('resource').map(r => r.name),
  // a row folded in a closed <details> (the index's failed runs) has no innerText
  rows: Object.fromEntries(Array.from(document.querySelectorAll('tr[id]')).map(r => [r.id, r.innerText || r.textContent])),
  text: document.body.innerText,
};
"""


def missing() -> str | None:
    """Return why headless Chromium cannot start here, or None when it can."""
    for path, what in ((CHROMIUM, "headless Chromium"), (CHROMEDRIVER, "chromedriver")):
        if not path.is_file():
            return f"{what} ({path}) is not installed"
    return None


@contextlib.contextmanager
def chromium(profile: Path) -> Iterator[Any]:
    """Start headless Chromium with its profile in ``profile``; quit it on exit."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ["SE_OFFLINE"] = "true"  # never let Selenium Manager download a driver
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*_FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    browser = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    browser.get("about:blank")  # the start page's own chrome:// loads are not the site's
    try:
        yield browser
    finally:
        browser.quit()


def inspect(driver: Any, path: Path | str, *, ready: str | None = None) -> dict[str, Any]:
    """Open a file (or a URL) in the browser and return what it logged, requested and shows.

    Args:
        ready: A CSS selector to wait for (up to 30 s) before looking: a page that draws
            itself with a script.
    """
    driver.get_log("performance")  # drop what earlier pages logged
    driver.get_log("browser")
    driver.get(path if isinstance(path, str) else path.as_uri())
    if ready:
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support.ui import WebDriverWait

        WebDriverWait(driver, 30).until(lambda d: d.find_elements(By.CSS_SELECTOR, ready))
    seen = driver.execute_script(_INSPECT)
    seen["console"] = driver.get_log("browser")
    messages = (json.loads(e["message"])["message"] for e in driver.get_log("performance"))
    seen["requests"] = [
        m["params"]["request"]["url"]
        for m in messages
        if m["method"] == "Network.requestWillBeSent"
    ]
    seen["path"] = path
    return seen


def console_errors(seen: dict[str, Any]) -> list[dict[str, Any]]:
    """Return the console entries of an inspected page that are errors or warnings."""
    return [e for e in seen["console"] if e["level"] in ("SEVERE", "WARNING")]


def broken_links(seen: dict[str, Any], *, root: Path) -> list[str]:
    """Return the links of an inspected page that do not resolve to a file inside ``root``.

    ``http(s)`` links (MLflow) are links to follow, not something the site holds, and pass.
    A fragment must name an element of the page.
    """
    page = seen["path"]
    broken = []
    for href in seen["links"]:
        if urlparse(href).scheme in ("http", "https"):
            continue
        target, fragment = urldefrag(href)
        if not target:
            # browsers match the fragment as written, then percent-decoded
            if fragment not in seen["ids"] and unquote(fragment) not in seen["ids"]:
                broken.append(href)
            continue
        resolved = (page.parent / unquote(target)).resolve()
        inside = resolved.is_relative_to(root.resolve())
        if urlparse(href).scheme or href.startswith("/") or not inside or not resolved.is_file():
            broken.append(href)
    return broken
