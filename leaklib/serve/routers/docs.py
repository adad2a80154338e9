"""``/docs`` and ``/redoc`` with no network: Swagger UI and ReDoc served from the package.

FastAPI's own pages load their scripts and styles from a public CDN, so on an intranet or an
air-gapped laptop they are blank. Here the files come from the ``fastapi-offline`` package
(Swagger UI, Apache 2.0; ReDoc, MIT), mounted under ``/docs/static``, as FastAPI documents
for self-hosting. No token needed, as for ``/openapi.json``.
"""

from importlib import resources

from fastapi import FastAPI
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

STATIC_URL = "/docs/static"
STATIC_FILES = resources.files("fastapi_offline") / "static"  # swagger-ui-bundle.js and more
# the pages may load nothing from elsewhere (ReDoc's sidebar asks a CDN for its logo)
SAME_ORIGIN_ONLY = {"Content-Security-Policy": "default-src 'self' 'unsafe-inline' data: blob:"}


def add_docs(app: FastAPI) -> None:
    """Serve ``/docs``, its OAuth2 redirect page and ``/redoc`` for ``app`` from local files.

    The app must be made with ``docs_url=None, redoc_url=None``.
    """
    app.mount(STATIC_URL, StaticFiles(directory=str(STATIC_FILES)), name="docs-static")
    openapi_url = app.openapi_url or "/openapi.json"
    redirect_url = app.swagger_ui_oauth2_redirect_url or "/docs/oauth2-redirect"

    @app.get("/docs", include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        page = get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{app.title} - Swagger UI",
            oauth2_redirect_url=redirect_url,
            swagger_js_url=f"{STATIC_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{STATIC_URL}/swagger-ui.css",
            swagger_favicon_url=f"{STATIC_URL}/favicon.png",
        )
        page.headers.update(SAME_ORIGIN_ONLY)
        return page

    @app.get(redirect_url, include_in_schema=False)
    def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get("/redoc", include_in_schema=False)
    def redoc() -> HTMLResponse:
        page = get_redoc_html(
            openapi_url=openapi_url,
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{STATIC_URL}/redoc.standalone.js",
            redoc_favicon_url=f"{STATIC_URL}/favicon.png",
            with_google_fonts=False,
        )
        page.headers.update(SAME_ORIGIN_ONLY)
        return page
