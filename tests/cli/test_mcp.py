"""`pixelgate mcp`: the agent tools over stdio against a real server, driven by the `mcp` SDK's
own stdio client."""

from __future__ import annotations

import base64
import io
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp.types import ImageContent, ResourceLink
from PIL import Image

from tests.conftest import ADMIN_KEY, Server
from tests.helpers import tenant_key
from tests.mcp_client import body_of, call

FAST = {"width": 32, "height": 64, "num_steps": 2}

pytestmark = pytest.mark.anyio


@asynccontextmanager
async def stdio_session(server: Server, key: str) -> AsyncIterator[ClientSession]:
    parameters = StdioServerParameters(
        command=sys.executable,
        args=["-m", "pixelgate", "mcp"],
        env={**os.environ, "PIXELGATE_URL": server.url, "PIXELGATE_API_KEY": key},
    )
    async with (
        stdio_client(parameters) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        yield session


async def test_generates_edits_and_fetches_jobs_over_stdio(server: Server) -> None:
    with server.client() as admin:
        key = tenant_key(admin)
    async with stdio_session(server, key) as session:
        made = await call(
            session,
            "generate_image",
            {"model": "local/tiny", "prompt": "a red circle", "options": {**FAST, "seed": 5}},
        )
        assert not made.is_error, made.content
        image = next(block for block in made.content if isinstance(block, ImageContent))
        png = base64.b64decode(image.data)
        assert image.mime_type == "image/png" and png.startswith(b"\x89PNG")
        assert Image.open(io.BytesIO(png)).size == (32, 64)
        link = next(block for block in made.content if isinstance(block, ResourceLink))
        body = body_of(made)
        assert str(link.uri) == body["data"][0]["url"]

        job = await call(session, "get_job", {"job_id": body["job_id"]})
        assert body_of(job)["status"] == "succeeded"
        assert any(isinstance(block, ImageContent) for block in job.content)

        edited = await call(
            session,
            "edit_image",
            {
                "model": "local/tiny",
                "prompt": "a blue circle",
                "image_file_id": body["data"][0]["file_id"],
                "options": {"strength": 0.5, "num_steps": 2, "seed": 1},
            },
        )
        assert not edited.is_error, edited.content
        edited_png = next(b for b in edited.content if isinstance(b, ImageContent)).data
        assert Image.open(io.BytesIO(base64.b64decode(edited_png))).size == (32, 64)

        upscaled = await call(
            session,
            "upscale_image",
            {"image_file_id": body["data"][0]["file_id"], "factor": 4},
        )
        assert not upscaled.is_error, upscaled.content
        large = next(b for b in upscaled.content if isinstance(b, ImageContent)).data
        assert Image.open(io.BytesIO(base64.b64decode(large))).size == (128, 256)

        models = body_of(await call(session, "list_models", {}))
        assert "local/tiny" in [model["id"] for model in models["models"]]


async def test_errors_come_back_as_tool_errors(server: Server) -> None:
    with server.client() as admin:
        created = admin.post(
            "/v1/admin/keys", json={"tenant_id": "default", "name": "reader", "scopes": ["read"]}
        )
        reader = str(created.json()["data"]["key"])
    async with stdio_session(server, reader) as session:
        refused = await call(
            session, "generate_image", {"model": "local/tiny", "prompt": "x", "options": FAST}
        )
    assert refused.is_error
    assert body_of(refused)["error"]["code"] == "FORBIDDEN"
    async with stdio_session(server, ADMIN_KEY) as session:
        missing = await call(session, "get_job", {"job_id": "job_nope"})
    assert missing.is_error and body_of(missing)["error"]["code"] == "NOT_FOUND"
