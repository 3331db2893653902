"""The web pages: the studio at `/` and the operator console at `/console`, static files shipped
in the package (`pixelgate/web/`, ES modules, no build step).

The pages talk to the native API with the caller's key like any client; these routes only hand
out their files, with a content security policy that lets them load nothing from elsewhere.
"""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter
from fastapi.responses import Response

from pixelgate.errors import NotFound

router = APIRouter(include_in_schema=False)

ASSETS = {
    "index.html": "text/html; charset=utf-8",
    "console.html": "text/html; charset=utf-8",
    "api.js": "text/javascript; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "console.js": "text/javascript; charset=utf-8",
    "upscale.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data: blob:; script-src 'self'; "
        "style-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; "
        "frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def asset(name: str) -> Response:
    if name not in ASSETS:
        raise NotFound(f"No page asset {name!r}")
    content = resources.files("pixelgate.web").joinpath(name).read_bytes()
    return Response(content, media_type=ASSETS[name], headers=HEADERS)


@router.get("/")
def index() -> Response:
    """The page: sign in with a key, generate, edit, remove backgrounds, browse results."""
    return asset("index.html")


@router.get("/console")
def console() -> Response:
    """The operators' console: tenants, keys, usage, workers and models (admin keys only)."""
    return asset("console.html")


@router.get("/favicon.ico")
def favicon() -> Response:
    """Browsers ask for it on every page that names no icon (the API docs among them)."""
    return asset("favicon.svg")


@router.get("/web/{name}")
def web_asset(name: str) -> Response:
    return asset(name)
