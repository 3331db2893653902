"""The FastAPI application: routers, error handlers, middleware, and the runtime's life."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI
from starlette.concurrency import run_in_threadpool

from pixelgate import __version__
from pixelgate.api import mcp
from pixelgate.api.errors import install_error_handlers
from pixelgate.api.middleware import RequestContext
from pixelgate.api.openai import routes as openai_routes
from pixelgate.api.openapi import create_documented_app
from pixelgate.api.routes import (
    admin,
    background,
    batches,
    health,
    images,
    jobs,
    media,
    models,
    upscale,
    usage,
    web,
    webhooks,
)
from pixelgate.engine.model_process import ModelProcess
from pixelgate.runtime import Runtime
from pixelgate.settings import Settings

ROUTERS: tuple[APIRouter, ...] = (
    # the OpenAI routes first: requests are matched in order, and a gateway's traffic is theirs
    openai_routes.router,
    openai_routes.oai_router,
    *(
        m.router
        for m in (
            health,
            images,
            batches,
            jobs,
            webhooks,
            media,
            models,
            usage,
            admin,
            background,
            upscale,
            web,
        )
    ),
)


def create_app(settings: Settings, *, local_models: ModelProcess | None = None) -> FastAPI:
    """The app over a runtime made from `settings` at start-up; `local_models` is the local
    model worker when the caller started it already."""
    tools = mcp.create_server()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = Runtime(settings, local_models=local_models)
        await run_in_threadpool(runtime.start)
        app.state.runtime = runtime
        # what start-up made lives as long as the process: out of every garbage collection
        # from now on (a full one over it pauses the server for ~0.1 s)
        gc.freeze()
        try:
            async with mcp.serving(tools):
                yield
        finally:
            await run_in_threadpool(runtime.stop)

    app = create_documented_app(
        ROUTERS,
        title="pixelgate",
        version=__version__,
        summary="One API for every image model, local or hosted.",
        lifespan=lifespan,
    )
    app.router.routes.append(mcp.route(app, tools))
    install_error_handlers(app)
    app.add_middleware(RequestContext, max_body_bytes=settings.max_request_bytes)
    return app
