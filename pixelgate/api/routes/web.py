"""The web page at `/`: static files shipped in the package (`pixelgate/web/`), no build step.

The page talks to the native API with the caller's key like any client; these routes only hand
out its files, with a content security policy that lets it load nothing from elsewhere.
"""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter
from fastapi.responses import Response

from pixelgate.errors import NotFound

router = APIRouter(include_in_schema=False)

ASSETS = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
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


@router.get("/web/{name}")
def web_asset(name: str) -> Response:
    return asset(name)
