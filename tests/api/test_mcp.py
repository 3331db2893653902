"""`/mcp`: the agent tools over streamable HTTP, driven by the `mcp` SDK's own client against the
real server."""

from __future__ import annotations

import base64
import io
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import httpx2
import pytest
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.types import ImageContent, ResourceLink
from PIL import Image

from tests.conftest import ADMIN_KEY, Server
from tests.mcp_client import body_of, call

FAST = {"width": 64, "height": 32, "num_steps": 2}

pytestmark = pytest.mark.anyio


@asynccontextmanager
async def mcp_session(server: Server, key: str | None) -> AsyncIterator[ClientSession]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=120) as http,
        streamable_http_client(f"{server.url}/mcp", http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        yield session


def new_key(server: Server, *, scopes: list[str], allow_models: list[str] | None = None) -> str:
    tenant_id = "mcp-" + secrets.token_hex(4)
    with server.client() as admin:
        fields: dict[str, Any] = {"id": tenant_id, "name": tenant_id}
        if allow_models is not None:
            fields["allow_models"] = allow_models
        assert admin.post("/v1/admin/tenants", json=fields).status_code == 201
        created = admin.post(
            "/v1/admin/keys", json={"tenant_id": tenant_id, "name": "agent", "scopes": scopes}
        )
        assert created.status_code == 201, created.text
        return str(created.json()["data"]["key"])


async def test_lists_the_tools(server: Server) -> None:
    async with mcp_session(server, ADMIN_KEY) as session:
        tools = await session.list_tools()
    names = {tool.name for tool in tools.tools}
    assert names == {
        "generate_image",
        "edit_image",
        "remove_background",
        "upscale_image",
        "get_job",
        "list_models",
    }


async def test_generates_an_image_as_image_content_and_link(server: Server) -> None:
    key = new_key(server, scopes=["generate", "read"])
    async with mcp_session(server, key) as session:
        result = await call(
            session,
            "generate_image",
            {"model": "local/tiny", "prompt": "a red circle", "options": {**FAST, "seed": 3}},
        )
        assert not result.is_error, result.content
        images = [block for block in result.content if isinstance(block, ImageContent)]
        assert len(images) == 1 and images[0].mime_type == "image/png"
        png = base64.b64decode(images[0].data)
        assert png.startswith(b"\x89PNG")
        assert Image.open(io.BytesIO(png)).size == (64, 32)
        links = [block for block in result.content if isinstance(block, ResourceLink)]
        body = body_of(result)
        assert result.structured_content == body
        assert [str(link.uri) for link in links] == [body["data"][0]["url"]]
        # the link is the server's own signed media link, and serves the same bytes
        assert httpx.get(str(links[0].uri)).content == png

        job = await call(session, "get_job", {"job_id": body["job_id"]})
        assert not job.is_error
        assert body_of(job)["status"] == "succeeded"
        again = [block for block in job.content if isinstance(block, ImageContent)]
        assert base64.b64decode(again[0].data) == png

        # edit by the link it just got, and remove a background by its file id
        edited = await call(
            session,
            "edit_image",
            {
                "model": "local/tiny",
                "prompt": "a blue circle",
                "image_url": str(links[0].uri),
                "options": {"strength": 0.5, "num_steps": 2, "seed": 1},
            },
        )
        assert not edited.is_error, edited.content
        assert body_of(edited)["model"] == "local/tiny"


async def test_upscales_a_stored_result_by_its_link_and_names_a_bad_factor(
    server: Server,
) -> None:
    async with mcp_session(server, ADMIN_KEY) as session:
        made = body_of(
            await call(
                session,
                "generate_image",
                {"model": "local/tiny", "prompt": "a red circle", "options": FAST},
            )
        )
        upscaled = await call(
            session,
            "upscale_image",
            {"image_url": made["data"][0]["url"], "factor": 2, "model": "lanczos"},
        )
        refused = await call(
            session, "upscale_image", {"image_file_id": made["data"][0]["file_id"], "factor": 3}
        )
    assert not upscaled.is_error, upscaled.content
    [image] = [block for block in upscaled.content if isinstance(block, ImageContent)]
    assert Image.open(io.BytesIO(base64.b64decode(image.data))).size == (128, 64)
    assert body_of(upscaled)["model"] == "pixelgate/lanczos"
    assert refused.is_error and body_of(refused)["error"]["param"] == "factor"


async def test_a_key_without_generate_scope_is_refused(server: Server) -> None:
    key = new_key(server, scopes=["read"])
    async with mcp_session(server, key) as session:
        result = await call(
            session, "generate_image", {"model": "local/tiny", "prompt": "x", "options": FAST}
        )
        # reading is still allowed
        models = await call(session, "list_models", {})
    assert result.is_error
    assert body_of(result)["error"]["code"] == "FORBIDDEN"
    assert "generate" in body_of(result)["error"]["message"]
    assert not models.is_error


async def test_a_model_the_tenant_may_not_use_is_refused(server: Server) -> None:
    key = new_key(server, scopes=["generate", "read"], allow_models=["local/tiny"])
    async with mcp_session(server, key) as session:
        refused = await call(
            session, "generate_image", {"model": "pixelgate/shapes", "prompt": "a red circle"}
        )
        listed = body_of(await call(session, "list_models", {}))
    assert refused.is_error
    assert body_of(refused)["error"]["code"] == "MODEL_ACCESS_DENIED"
    assert [model["id"] for model in listed["models"]] == ["local/tiny"]


async def test_bad_options_are_a_tool_error_naming_the_parameter(server: Server) -> None:
    async with mcp_session(server, ADMIN_KEY) as session:
        result = await call(
            session,
            "generate_image",
            {"model": "local/tiny", "prompt": "x", "options": {"width": 63, "num_steps": 2}},
        )
        other_url = await call(
            session,
            "remove_background",
            {"image_url": "http://169.254.169.254/latest/meta-data"},
        )
    assert result.is_error and body_of(result)["error"]["param"] == "width"
    assert other_url.is_error and body_of(other_url)["error"]["param"] == "image"


async def test_another_tenants_job_is_not_found(server: Server) -> None:
    key = new_key(server, scopes=["generate", "read"])
    with server.client() as admin:
        job = admin.post(
            "/v1/inference/images/generate",
            json={"model": "local/tiny", "prompt": "x", "async": True, **FAST},
        ).json()["data"]
    async with mcp_session(server, key) as session:
        result = await call(session, "get_job", {"job_id": job["id"]})
    assert result.is_error and body_of(result)["error"]["code"] == "NOT_FOUND"


async def test_a_missing_or_wrong_key_is_401(server: Server) -> None:
    for headers in ({}, {"Authorization": "Bearer pg_wrong"}):
        response = httpx.post(
            f"{server.url}/mcp",
            json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
            headers={"Accept": "application/json, text/event-stream", **headers},
        )
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "UNAUTHORIZED"
