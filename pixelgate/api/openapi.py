"""The OpenAPI document and the pages that show it.

- `/docs` (Swagger UI) and `/redoc` load their scripts and styles from pixelgate itself, taken
  from the `fastapi-offline` package, so they work on a machine with no network.
- Every operation's id is `operation_id(route)`: readable, unique, and the names generated
  clients use (`images_generate`, `jobs_get`).
- The bearer scheme (`Authorization: Bearer <key>`) is declared once, and required by the
  operations that read the caller's key, so Swagger UI has an Authorize button. Only the
  document changes: the key is still read by `deps.current_principal`, and a missing or wrong
  one is still pixelgate's own 401.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from fastapi_offline import FastAPIOffline

from pixelgate.api.deps import current_principal
from pixelgate.api.openai.routes import openai_serving

BEARER = "bearer"
"""The security scheme's name in `components.securitySchemes`."""

SECURITY_SCHEME: dict[str, Any] = {
    "type": "http",
    "scheme": "bearer",
    "description": "An API key: `Authorization: Bearer pg_...` (`pixelgate keys create`).",
}

_AUTHENTICATING: frozenset[Callable[..., Any]] = frozenset({current_principal, openai_serving})
"""The dependencies that read the caller's key (the OpenAI routes' one calls it itself)."""


def operation_id(route: APIRoute) -> str:
    """`{tag}_{name}`: the route's first tag, then its name less the words that repeat the tag
    (`jobs` and `list_jobs` give `jobs_list`; `files` and `get_file_content`,
    `files_get_content`). A route without tags keeps its name."""
    if not route.tags:
        return route.name
    tag = str(route.tags[0])
    repeats = {tag, tag.removesuffix("s"), tag.removesuffix("es")}  # jobs: job; batches: batch
    return "_".join([tag, *(word for word in route.name.split("_") if word not in repeats)])


def create_documented_app(routers: Sequence[APIRouter], **kwargs: Any) -> FastAPI:
    """A FastAPI app (`kwargs` as for `FastAPI`) serving `routers` in their order, whose docs
    pages work offline, with readable operation ids and the bearer scheme in its document."""
    app = FastAPIOffline(
        generate_unique_id_function=operation_id,
        # no badge fetched from validator.swagger.io
        swagger_ui_parameters={"validatorUrl": None},
        **kwargs,
    )
    for router in routers:
        app.include_router(router)
    keyed = [
        (route.path_format, method.lower())
        for router in routers
        for route in router.routes
        if isinstance(route, APIRoute) and route.include_in_schema and _reads_key(route.dependant)
        for method in route.methods or ()
    ]
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            schema.setdefault("components", {})["securitySchemes"] = {BEARER: SECURITY_SCHEME}
            for path, method in keyed:
                schema["paths"][path][method]["security"] = [{BEARER: []}]
        return build()  # the schema FastAPI keeps once made

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented way
    return app


def _reads_key(dependant: Dependant) -> bool:
    return dependant.call in _AUTHENTICATING or any(
        _reads_key(sub) for sub in dependant.dependencies
    )
