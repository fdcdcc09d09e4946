"""What a visitor meets first: `/` (to the admin, the cashier page or the login), the
favicon, and the API docs `/docs` and `/redoc` with their scripts served by us (from the
pinned fastapi-offline package), so they work on a network without internet."""

from __future__ import annotations

import base64
import functools
import hashlib
import re
from pathlib import Path

import fastapi_offline
from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response

from loyalwallet.web.pages import current
from loyalwallet.web.templating import STATIC

router = APIRouter(include_in_schema=False)

DOCS_ASSETS = Path(fastapi_offline.__file__).parent / "static"
# The only files served from the package (no path from the request reaches the disk).
ASSETS = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "redoc.standalone.js": "text/javascript",
}
CACHE = "public, max-age=86400"


@router.get("/")
def home(request: Request) -> Response:
    who = current(request)
    if who is None:
        return RedirectResponse("/login", status_code=303)
    return RedirectResponse("/cashier" if who.role == "cashier" else "/admin", status_code=303)


@router.get("/favicon.ico")
def favicon() -> Response:
    return FileResponse(STATIC / "favicon.ico", media_type="image/x-icon", headers={"Cache-Control": CACHE})


_INLINE_SCRIPT = re.compile(rb"<script>(.*?)</script>", re.S)


def _with_policy(page: HTMLResponse) -> HTMLResponse:
    """The docs pages start their viewer with an inline script: the policy allows exactly
    that script by its hash (no 'unsafe-inline' for scripts) and our own files. Styles stay
    inline-allowed here: both viewers inject their own <style> blocks."""
    hashes = " ".join(
        "'sha256-" + base64.b64encode(hashlib.sha256(m.group(1)).digest()).decode() + "'"
        for m in _INLINE_SCRIPT.finditer(bytes(page.body))
    )
    page.headers["Content-Security-Policy"] = (
        f"default-src 'self'; script-src 'self' {hashes}; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; worker-src 'self' blob:; connect-src 'self'; object-src 'none'; "
        "base-uri 'none'; frame-ancestors 'none'"
    )
    return page


@router.get("/docs")
def swagger_ui(request: Request) -> HTMLResponse:
    return _with_policy(
        get_swagger_ui_html(
            openapi_url=request.app.openapi_url or "/openapi.json",
            title=f"{request.app.title} API",
            swagger_js_url="/docs-assets/swagger-ui-bundle.js",
            swagger_css_url="/docs-assets/swagger-ui.css",
            swagger_favicon_url="/favicon.ico",
        )
    )


@router.get("/redoc")
def redoc(request: Request) -> HTMLResponse:
    return _with_policy(
        get_redoc_html(
            openapi_url=request.app.openapi_url or "/openapi.json",
            title=f"{request.app.title} API",
            redoc_js_url="/docs-assets/redoc.standalone.js",
            redoc_favicon_url="/favicon.ico",
            with_google_fonts=False,
        )
    )


# ReDoc's bundle shows a "powered by" logo fetched from the vendor's CDN: a request to
# the outside from every visit (and a broken image offline). Ours is served instead.
VENDOR_LOGO = b"https://cdn.redoc.ly/redoc/logo-mini.svg"


@functools.cache
def _asset(name: str) -> bytes:
    return (DOCS_ASSETS / name).read_bytes().replace(VENDOR_LOGO, b"/favicon.ico")


@router.get("/docs-assets/{name}")
def docs_asset(name: str) -> Response:
    media_type = ASSETS.get(name)
    if media_type is None:
        return Response(status_code=404)
    return Response(_asset(name), media_type=media_type, headers={"Cache-Control": CACHE})
