"""Batches and the MCP endpoint in cluster mode: both API replicas dispatch batch items, each
submitted once; `/mcp` answers on either replica (stateless)."""

from __future__ import annotations

import base64
import io
import secrets
import time
from typing import Any

import httpx
import httpx2
import pytest
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.types import ImageContent
from PIL import Image

from tests.cluster.conftest import Cluster
from tests.conftest import ADMIN_KEY
from tests.mcp_client import body_of, call

OPTIONS = {"width": 64, "height": 32, "num_steps": 2}
FAST = {"model": "local/tiny", **OPTIONS}


def tenant_key(url: str, **fields: Any) -> str:
    tenant_id = "cb-" + secrets.token_hex(4)
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as admin:
        created = admin.post("/v1/admin/tenants", json={"id": tenant_id, "name": "c", **fields})
        assert created.status_code == 201, created.text
        key = admin.post("/v1/admin/keys", json={"tenant_id": tenant_id, "name": "app"})
        return str(key.json()["data"]["key"])


def test_a_batch_runs_once_per_item_across_replicas(cluster: Cluster) -> None:
    key = tenant_key(cluster.replicas[0].url, limits={"concurrent_jobs": 2})
    headers = {"Authorization": f"Bearer {key}"}
    one, two = (
        httpx.Client(base_url=replica.url, headers=headers, timeout=60)
        for replica in cluster.replicas[:2]
    )
    requests = [{**FAST, "prompt": f"item {index}", "seed": index} for index in range(8)]
    created = one.post("/v1/inference/images/batch", json={"requests": requests})
    assert created.status_code == 202, created.text
    batch_id = created.json()["data"]["id"]
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        batch = two.get(f"/v1/batches/{batch_id}").json()["data"]
        assert batch["counts"]["queued"] + batch["counts"]["running"] <= 2
        if batch["status"] != "in_progress":
            break
        time.sleep(0.1)
    assert batch["counts"]["succeeded"] == 8, batch["counts"]
    job_ids = [item["job_id"] for item in batch["items"]]
    assert len(set(job_ids)) == 8
    # every item was submitted once: the tenant has exactly these jobs
    listed = one.get("/v1/jobs", params={"limit": 100}).json()["data"]
    assert sorted(job["id"] for job in listed) == sorted(job_ids)
    assert httpx.get(batch["items"][0]["outputs"][0]["url"]).status_code == 200


@pytest.mark.anyio
async def test_mcp_generates_on_either_replica(cluster: Cluster) -> None:
    for replica in cluster.replicas[:2]:
        async with (
            httpx2.AsyncClient(
                headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=120
            ) as http,
            streamable_http_client(f"{replica.url}/mcp", http_client=http) as (read, write),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            arguments = {"model": "local/tiny", "prompt": "x", "options": OPTIONS}
            made = await call(session, "generate_image", arguments)
            assert not made.is_error, made.content
            image = next(block for block in made.content if isinstance(block, ImageContent))
            assert Image.open(io.BytesIO(base64.b64decode(image.data))).size == (64, 32)
            job = await call(session, "get_job", {"job_id": body_of(made)["job_id"]})
            assert body_of(job)["status"] == "succeeded"
