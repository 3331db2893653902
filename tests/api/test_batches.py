"""Batches over HTTP against the real server: accepted whole or not at all, run as the
tenant's jobs under its limits, listed, read and canceled."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import Server
from tests.helpers import SLOW, png_size

BATCH = "/v1/inference/images/batch"
FAST = {"model": "local/tiny", "width": 64, "height": 32, "num_steps": 2}


@pytest.fixture
def admin(server: Server) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


def tenant_client(
    admin: httpx.Client, scopes: list[str] | None = None, **fields: Any
) -> httpx.Client:
    """A new tenant (with `fields`: prices, budgets, limits) and a client with its key."""
    tenant_id = "b-" + secrets.token_hex(5)
    created = admin.post("/v1/admin/tenants", json={"id": tenant_id, "name": tenant_id, **fields})
    assert created.status_code == 201, created.text
    key_body: dict[str, Any] = {"tenant_id": tenant_id, "name": "app"}
    if scopes is not None:
        key_body["scopes"] = scopes
    key = admin.post("/v1/admin/keys", json=key_body)
    assert key.status_code == 201, key.text
    return httpx.Client(
        base_url=str(admin.base_url),
        headers={"Authorization": f"Bearer {key.json()['data']['key']}"},
        timeout=60,
    )


def wait_done(client: httpx.Client, batch_id: str, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        batch: dict[str, Any] = client.get(f"/v1/batches/{batch_id}").json()["data"]
        if batch["status"] != "in_progress":
            return batch
        time.sleep(0.2)
    raise AssertionError(f"batch {batch_id} still in progress: {batch['counts']}")


def test_a_batch_runs_every_request_as_a_job(admin: httpx.Client) -> None:
    client = tenant_client(admin)
    requests = [{**FAST, "prompt": f"circle {index}", "seed": index} for index in range(3)]
    started = time.monotonic()
    response = client.post(BATCH, json={"requests": requests, "metadata": {"run": "one"}})
    assert response.status_code == 202, response.text
    assert time.monotonic() - started < 5  # answered at once, not after the images
    batch = response.json()["data"]
    assert response.headers["location"] == f"/v1/batches/{batch['id']}"
    assert batch["total"] == 3 and batch["metadata"] == {"run": "one"}

    done = wait_done(client, batch["id"])
    assert done["status"] == "completed"
    assert done["counts"] == {
        "pending": 0, "queued": 0, "running": 0, "succeeded": 3, "failed": 0, "canceled": 0,
    }  # fmt: skip
    assert [item["index"] for item in done["items"]] == [0, 1, 2]
    for index, item in enumerate(done["items"]):
        job = client.get(f"/v1/jobs/{item['job_id']}").json()["data"]
        assert job["status"] == "succeeded"
        assert job["result"]["data"][0]["seed"] == index
        (output,) = item["outputs"]
        assert png_size(httpx.get(output["url"]).content) == (64, 32)


def test_an_invalid_item_is_named_and_nothing_is_queued(admin: httpx.Client) -> None:
    client = tenant_client(admin)
    requests = [{**FAST, "prompt": "fine"}, {**FAST, "prompt": "bad", "width": 63}]
    response = client.post(BATCH, json={"requests": requests})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == "requests.1.width"
    assert error["message"].startswith("requests[1]: ")
    unknown = client.post(BATCH, json={"requests": [{**FAST, "prompt": "x"}, {"prompt": "x"}]})
    assert unknown.status_code in (400, 422) and unknown.json()["error"]["param"] == (
        "requests.1.model"
    )
    denied = client.post(BATCH, json={"requests": [{**FAST, "model": "no/such-model"}]})
    assert denied.status_code == 400 and denied.json()["error"]["param"] == "requests.0.model"
    too_many = client.post(BATCH, json={"requests": [{**FAST, "prompt": "x"}] * 101})
    assert too_many.status_code in (400, 422)
    assert too_many.json()["error"]["param"] == "requests"
    assert client.get("/v1/jobs").json()["data"] == []
    assert client.get("/v1/batches").json()["data"] == []


def test_a_key_without_generate_scope_is_refused(admin: httpx.Client) -> None:
    reader = tenant_client(admin, scopes=["read"])
    response = reader.post(BATCH, json={"requests": [{**FAST, "prompt": "x"}]})
    assert response.status_code == 403
    assert reader.get("/v1/batches").json()["data"] == []


def test_items_past_the_budget_fail_and_the_rest_go_on(admin: httpx.Client) -> None:
    client = tenant_client(admin, budget_total="0.02", prices={"local/tiny": {"default": "0.01"}})
    requests = [{**FAST, "prompt": f"item {index}"} for index in range(4)]
    batch = client.post(BATCH, json={"requests": requests}).json()["data"]
    done = wait_done(client, batch["id"])
    assert done["counts"]["succeeded"] == 2 and done["counts"]["failed"] == 2
    failed = [item for item in done["items"] if item["status"] == "failed"]
    assert {item["error"]["code"] for item in failed} == {"BUDGET_EXCEEDED"}
    assert all(item["job_id"] is None for item in failed)


def test_items_wait_for_the_concurrency_limit_instead_of_failing(admin: httpx.Client) -> None:
    client = tenant_client(admin, limits={"concurrent_jobs": 1})
    requests = [{**FAST, "prompt": f"item {index}", "num_steps": 6} for index in range(4)]
    batch = client.post(BATCH, json={"requests": requests}).json()["data"]
    seen_pending = False
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        now = client.get(f"/v1/batches/{batch['id']}").json()["data"]
        counts = now["counts"]
        assert counts["queued"] + counts["running"] <= 1  # never more than the limit at once
        seen_pending = seen_pending or counts["pending"] > 0
        if now["status"] != "in_progress":
            break
        time.sleep(0.05)
    assert seen_pending
    assert now["counts"]["succeeded"] == 4, now["counts"]


def test_cancel_stops_the_items_not_yet_run(admin: httpx.Client) -> None:
    client = tenant_client(admin, limits={"concurrent_jobs": 1})
    requests = [{**SLOW, "prompt": f"slow {index}"} for index in range(3)]
    batch = client.post(BATCH, json={"requests": requests}).json()["data"]
    canceled = client.post(f"/v1/batches/{batch['id']}/cancel")
    assert canceled.status_code == 200, canceled.text
    body = canceled.json()["data"]
    assert body["canceled_at"] is not None
    assert body["counts"]["canceled"] >= 2
    assert body["counts"]["pending"] == 0
    for item in body["items"]:
        if item["job_id"] is not None and item["status"] == "running":
            client.post(f"/v1/jobs/{item['job_id']}/cancel")
    assert wait_done(client, batch["id"])["status"] == "canceled"
    time.sleep(1.5)  # a dispatcher pass: nothing canceled is submitted after all
    after = client.get(f"/v1/batches/{batch['id']}").json()["data"]
    assert after["counts"]["pending"] == after["counts"]["queued"] == 0


def test_batches_are_listed_in_pages_and_kept_per_tenant(admin: httpx.Client) -> None:
    client = tenant_client(admin)
    ids = [
        client.post(BATCH, json={"requests": [{**FAST, "prompt": "x"}]}).json()["data"]["id"]
        for _ in range(3)
    ]
    first = client.get("/v1/batches", params={"limit": 2}).json()
    assert [item["id"] for item in first["data"]] == ids[::-1][:2] and first["has_more"]
    assert first["data"][0]["items"] is None and first["data"][0]["total"] == 1
    second = client.get("/v1/batches", params={"limit": 2, "after": first["last_id"]}).json()
    assert [item["id"] for item in second["data"]] == [ids[0]] and not second["has_more"]
    other = tenant_client(admin)
    assert other.get(f"/v1/batches/{ids[0]}").status_code == 404
    assert other.post(f"/v1/batches/{ids[0]}/cancel").status_code == 404
    for batch_id in ids:
        wait_done(client, batch_id)
