"""`/mcp`: pixelgate's agent tools (`pixelgate.agent_tools`) over the Model Context Protocol's
streamable HTTP transport.

The caller is authenticated once per HTTP request, by the same bearer key and function as every
route (`deps.authenticate`); each tool then acts for that principal through the service layer,
as the routes do, so scopes, model allow-lists, budgets and rate limits apply unchanged.

The transport is stateless (each POST stands alone, answered with JSON): replicas behind a load
balancer need no sticky sessions, and every message carries its key anyway.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import pydantic
from fastapi import FastAPI, Request
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.streamable_http_manager import StreamableHTTPASGIApp
from mcp.server.transport_security import TransportSecuritySettings
from starlette.concurrency import run_in_threadpool
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from pixelgate.agent_tools import MEDIA_PATH, ImageTools, MadeImage, ToolAnswer, build_server
from pixelgate.api import views
from pixelgate.api.background_protocol import RemoveBackgroundRequest
from pixelgate.api.body import check_values, validate
from pixelgate.api.deps import authenticate, base_url_of
from pixelgate.api.errors import error_response
from pixelgate.api.protocol import EditRequest, GenerateRequest, GenerateResult
from pixelgate.api.upscale_protocol import UpscaleRequest
from pixelgate.db.tables import Job
from pixelgate.errors import Error, ValidationError
from pixelgate.runtime import Runtime
from pixelgate.service.access import Principal
from pixelgate.service.job_store import JobStatus
from pixelgate.service.jobs import ImageCommand

PATH = "/mcp"
_CALLER = "pixelgate.mcp.caller"
"""The ASGI scope key under which the endpoint leaves the authenticated caller for the tools."""

Body = TypeVar("Body", bound=pydantic.BaseModel)


@dataclass(frozen=True)
class _Caller:
    runtime: Runtime
    principal: Principal
    base_url: str


class ServiceTools(ImageTools):
    """The tools' backend on the server: the service layer, acting for one caller."""

    def __init__(self, runtime: Runtime, principal: Principal, base_url: str) -> None:
        self._runtime = runtime
        self._principal = principal
        self._base_url = base_url

    async def generate(self, body: dict[str, Any]) -> ToolAnswer:
        return await self._run(_read(GenerateRequest, body).to_command())

    async def edit(self, body: dict[str, Any]) -> ToolAnswer:
        return await self._run(_read(EditRequest, body).to_command())

    async def remove_background(self, body: dict[str, Any]) -> ToolAnswer:
        return await self._run(_read(RemoveBackgroundRequest, body).to_command())

    async def upscale(self, body: dict[str, Any]) -> ToolAnswer:
        return await self._run(_read(UpscaleRequest, body).to_command())

    async def get_job(self, job_id: str) -> ToolAnswer:
        self._principal.require("read")  # as `GET /v1/jobs/{id}` does
        job = await run_in_threadpool(self._runtime.jobs.get, self._principal, job_id)
        return await run_in_threadpool(self._job_answer, job)

    async def list_models(self) -> list[dict[str, Any]]:
        return await run_in_threadpool(self._models)

    def _models(self) -> list[dict[str, Any]]:
        """As `GET /v1/models?modality=image` lists them (the tenant is read in a thread)."""
        specs = self._runtime.model_directory.visible_to(self._principal, modality="image")
        return [
            views.model_public(self._runtime, self._principal, spec).model_dump(mode="json")
            for spec in specs
        ]

    async def image_at(self, url: str, name: str) -> dict[str, Any]:
        """A link pixelgate signed stands for its stored file (the tenant's own only, as any
        file id); the server fetches no other URL on a caller's word."""
        _, found, token = url.partition(MEDIA_PATH)
        if not found or not token:
            raise ValidationError(
                f"The server reads only its own links ({MEDIA_PATH}...) as {name}; send "
                "other images as base64",
                param=name,
            )
        return {f"{name}_file_id": self._runtime.files.links.verify(token.split("?")[0])}

    async def _run(self, command: ImageCommand) -> ToolAnswer:
        """Submit and wait, as a synchronous request does; the agent waits for its images."""
        return await self._runtime.jobs.run(
            self._principal,
            command,
            timeout=self._runtime.settings.sync_timeout_seconds,
            disconnected=_never,
            answer=lambda job: self._answer(
                views.generate_result(self._runtime, job, self._base_url)
            ),
        )

    def _job_answer(self, job: Job) -> ToolAnswer:
        public = views.job_public(self._runtime, job, self._base_url)
        if job.status != JobStatus.SUCCEEDED or public.result is None:
            return ToolAnswer(public.model_dump(mode="json"))
        return ToolAnswer(public.model_dump(mode="json"), self._images(public.result))

    def _answer(self, result: GenerateResult) -> ToolAnswer:
        return ToolAnswer(result.model_dump(mode="json"), self._images(result))

    def _images(self, result: GenerateResult) -> list[MadeImage]:
        """The result's images read back from storage (in a worker thread)."""
        files = self._runtime.files
        records = files.get_many(self._principal.tenant_id, [item.file_id for item in result.data])
        return [
            MadeImage(files.read(records[item.file_id]), item.file_id, item.url)
            for item in result.data
            if item.file_id in records
        ]


def create_server() -> MCPServer:
    return build_server(_tools_of)


def route(app: FastAPI, server: MCPServer) -> Route:
    """The `/mcp` route of `app`, serving `server` to authenticated callers."""
    server.streamable_http_app(
        streamable_http_path=PATH,
        json_response=True,
        stateless_http=True,
        # every request carries a bearer key (no cookies), so a page that rebinds a host name
        # to this server gains nothing; and the server answers under any host name it is given
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
    )
    endpoint = _Endpoint(app, StreamableHTTPASGIApp(server.session_manager))
    return Route(PATH, endpoint, methods=["GET", "POST", "DELETE"], include_in_schema=False)


@asynccontextmanager
async def serving(server: MCPServer) -> AsyncIterator[None]:
    """The transport's task group, for the app's life."""
    async with server.session_manager.run():
        yield


class _Endpoint:
    """Authenticates each request, then hands it to the MCP transport."""

    def __init__(self, app: FastAPI, transport: StreamableHTTPASGIApp) -> None:
        self._app = app
        self._transport = transport

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        runtime: Runtime = self._app.state.runtime
        try:
            principal = await authenticate(runtime, request.headers.get("authorization"))
        except Error as exc:
            await error_response(exc, path=PATH)(scope, receive, send)
            return
        scope[_CALLER] = _Caller(
            runtime=runtime, principal=principal, base_url=base_url_of(request, runtime)
        )
        await self._transport(scope, receive, send)


def _tools_of(ctx: Context) -> ImageTools:
    request = ctx.request_context.request
    caller = request.scope[_CALLER] if isinstance(request, Request) else None
    if not isinstance(caller, _Caller):
        raise RuntimeError("an MCP tool was called outside an authenticated /mcp request")
    return ServiceTools(caller.runtime, caller.principal, caller.base_url)


def _read(model: type[Body], body: dict[str, Any]) -> Body:
    """A tool's body as the route's request model, checked as every request body is."""
    check_values(body)
    return validate(model, body)


async def _never() -> bool:
    """An MCP call has no connection of its own to watch: its answer ends it."""
    return False
