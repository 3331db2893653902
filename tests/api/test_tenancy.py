"""Tenants, keys, budgets, limits, cache and idempotency over HTTP, on a server of their own."""

from __future__ import annotations

import base64
import io
import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from tests.conftest import Server
from tests.helpers import (
    EDIT,
    GENERATE,
    SLOW,
    generate,
    make_tenant,
    start_with_a_broken_model,
    submit,
    wait_for,
)


@pytest.fixture(scope="module")
def tenancy(tmp_path_factory: pytest.TempPathFactory, models_dir: Path) -> Iterator[Server]:
    server = start_with_a_broken_model(tmp_path_factory.mktemp("tenancy"), models_dir)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def admin(tenancy: Server) -> Iterator[httpx.Client]:
    with tenancy.client() as client:
        yield client


def budgets(client: httpx.Client) -> dict[str, Any]:
    usage = client.get("/v1/usage").json()["data"]
    return {b["period"]: b for b in usage["budgets"]} | {"usage": usage}


# -- keys ---------------------------------------------------------------------------------


def test_a_key_is_shown_once_and_never_again(tenancy: Server, admin: httpx.Client) -> None:
    admin.post("/v1/admin/tenants", json={"id": "keys-t", "name": "K"})
    created = admin.post(
        "/v1/admin/keys", json={"tenant_id": "keys-t", "name": "ci", "scopes": ["read"]}
    ).json()["data"]
    key = created["key"]
    assert key.startswith("pg_") and created["prefix"] == key[:7]

    listed = admin.get("/v1/admin/keys", params={"tenant_id": "keys-t"})
    assert key not in listed.text
    assert [k["id"] for k in listed.json()["data"]] == [created["id"]]
    with httpx.Client(base_url=tenancy.url, headers={"Authorization": f"Bearer {key}"}) as c:
        assert c.get("/v1/models").status_code == 200
        assert c.get("/v1/usage").status_code == 200
    assert key not in tenancy.log_path.read_text()


def test_revoked_and_expired_keys_are_401(tenancy: Server, admin: httpx.Client) -> None:
    admin.post("/v1/admin/tenants", json={"id": "rev-t", "name": "R"})
    live = admin.post("/v1/admin/keys", json={"tenant_id": "rev-t", "name": "a"}).json()["data"]
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    expired = admin.post(
        "/v1/admin/keys", json={"tenant_id": "rev-t", "name": "b", "expires_at": past}
    ).json()["data"]

    revoked = admin.post(f"/v1/admin/keys/{live['id']}/revoke")
    assert revoked.json()["data"]["revoked_at"] is not None

    for key, word in ((live["key"], "revoked"), (expired["key"], "expired")):
        response = httpx.get(f"{tenancy.url}/v1/models", headers={"Authorization": f"Bearer {key}"})
        assert response.status_code == 401
        assert word in response.json()["error"]["message"]


def test_admin_routes_need_the_admin_scope(admin: httpx.Client) -> None:
    client = make_tenant(admin, "plain")
    for method, path in (
        ("GET", "/v1/admin/tenants"),
        ("POST", "/v1/admin/tenants"),
        ("PATCH", "/v1/admin/tenants/plain"),
        ("POST", "/v1/admin/keys"),
        ("GET", "/v1/admin/keys"),
        ("GET", "/v1/admin/usage"),
    ):
        response = client.request(method, path, json={"name": "x", "tenant_id": "plain"})
        assert response.status_code == 403, (method, path)
        assert response.json()["error"]["code"] == "FORBIDDEN"


def key_for(admin: httpx.Client, tenant_id: str, scopes: list[str]) -> httpx.Client:
    made = admin.post(
        "/v1/admin/keys", json={"tenant_id": tenant_id, "name": "k", "scopes": scopes}
    )
    assert made.status_code == 201, made.text
    return httpx.Client(
        base_url=str(admin.base_url),
        headers={"Authorization": f"Bearer {made.json()['data']['key']}"},
        timeout=60,
    )


def test_a_tenant_admin_reaches_its_own_tenant_and_no_other(admin: httpx.Client) -> None:
    """Issue 19.5: an admin key of tenant B minted keys for tenant A."""
    make_tenant(admin, "tenant-a")
    make_tenant(admin, "tenant-b")
    a_key = admin.get("/v1/admin/keys", params={"tenant_id": "tenant-a"}).json()["data"][0]
    b_admin = key_for(admin, "tenant-b", ["tenant_admin"])

    # its own tenant: keys made, listed and revoked; its record and usage read
    own = b_admin.post("/v1/admin/keys", json={"tenant_id": "tenant-b", "name": "app"})
    assert own.status_code == 201, own.text
    listed = b_admin.get("/v1/admin/keys").json()["data"]
    assert {k["tenant_id"] for k in listed} == {"tenant-b"}
    assert b_admin.post(f"/v1/admin/keys/{own.json()['data']['id']}/revoke").status_code == 200
    assert b_admin.get("/v1/admin/tenants/tenant-b").status_code == 200
    assert [u["tenant_id"] for u in b_admin.get("/v1/admin/usage").json()["data"]] == ["tenant-b"]
    assert b_admin.get("/v1/models").status_code == 200  # and uses its tenant as any key

    # another tenant: nothing
    requests: tuple[tuple[str, str, dict[str, Any] | None], ...] = (
        ("POST", "/v1/admin/keys", {"tenant_id": "tenant-a", "name": "stolen"}),
        ("GET", "/v1/admin/keys?tenant_id=tenant-a", None),
        ("GET", "/v1/admin/tenants/tenant-a", None),
        ("GET", "/v1/admin/usage?tenant_id=tenant-a", None),
    )
    for method, path, body in requests:
        response = b_admin.request(method, path, json=body)
        assert response.status_code == 403, (method, path, response.text)
    revoke = b_admin.post(f"/v1/admin/keys/{a_key['id']}/revoke")
    assert revoke.status_code == 404
    assert (
        admin.get("/v1/admin/keys", params={"tenant_id": "tenant-a"}).json()["data"][0][
            "revoked_at"
        ]
        is None
    )

    # nor what the operators set, nor their scope
    requests = (
        ("POST", "/v1/admin/tenants", {"id": "tenant-c", "name": "C"}),
        ("GET", "/v1/admin/tenants", None),
        ("PATCH", "/v1/admin/tenants/tenant-b", {"budget_total": "1000"}),
        ("GET", "/v1/admin/workers", None),
        ("POST", "/v1/admin/keys", {"tenant_id": "tenant-b", "name": "up", "scopes": ["admin"]}),
    )
    for method, path, body in requests:
        response = b_admin.request(method, path, json=body)
        assert response.status_code == 403, (method, path, response.text)


def test_the_global_admin_scope_is_the_operators_alone(admin: httpx.Client) -> None:
    """`admin` reaches every tenant, so only the operators' tenant's keys may hold it."""
    make_tenant(admin, "tenant-g")
    refused = admin.post(
        "/v1/admin/keys", json={"tenant_id": "tenant-g", "name": "x", "scopes": ["admin"]}
    )
    assert refused.status_code == 400
    assert refused.json()["error"]["param"] == "scopes"

    operator = key_for(admin, "default", ["admin"])
    made = operator.post("/v1/admin/keys", json={"tenant_id": "tenant-g", "name": "app"})
    assert made.status_code == 201
    assert operator.get("/v1/admin/tenants").status_code == 200
    assert (
        operator.patch("/v1/admin/tenants/tenant-g", json={"budget_total": "5"}).status_code == 200
    )


def test_a_read_only_key_cannot_generate(tenancy: Server, admin: httpx.Client) -> None:
    admin.post("/v1/admin/tenants", json={"id": "ro-t", "name": "RO"})
    key = admin.post(
        "/v1/admin/keys", json={"tenant_id": "ro-t", "name": "ro", "scopes": ["read"]}
    ).json()["data"]["key"]
    with httpx.Client(base_url=tenancy.url, headers={"Authorization": f"Bearer {key}"}) as c:
        response = generate(c)
    assert response.status_code == 403


# -- isolation ----------------------------------------------------------------------------


def test_another_tenants_jobs_and_files_are_not_found_on_every_route(admin: httpx.Client) -> None:
    owner = make_tenant(admin, "owner")
    stranger = make_tenant(admin, "stranger")
    done = generate(owner, seed=3).json()["data"]
    job_id, file_id = done["job_id"], done["data"][0]["file_id"]
    running = submit(owner, **SLOW)

    for method, path in (
        ("GET", f"/v1/jobs/{job_id}"),
        ("GET", f"/v1/jobs/{job_id}/events"),
        ("POST", f"/v1/jobs/{running['id']}/cancel"),
        ("GET", f"/v1/files/{file_id}"),
        ("GET", f"/v1/files/{file_id}/content"),
    ):
        response = stranger.request(method, path)
        assert response.status_code == 404, (method, path)
        assert response.json()["error"]["code"] == "NOT_FOUND"
    assert job_id not in stranger.get("/v1/jobs", params={"limit": 100}).text
    by_reference = stranger.post(
        "/v1/inference/images/edit",
        json={"model": "local/tiny", "prompt": "x", "input_image_file_id": file_id},
    )
    assert by_reference.status_code in (400, 404)
    assert owner.get(f"/v1/jobs/{running['id']}").json()["data"]["status"] != "canceled"
    owner.post(f"/v1/jobs/{running['id']}/cancel")
    wait_for(owner, running["id"], "canceled")


# -- model access -------------------------------------------------------------------------


def test_allow_lists_shape_the_catalog_and_refuse_the_rest(admin: httpx.Client) -> None:
    client = make_tenant(admin, "narrow", allow_models=["local/*"], deny_models=["acme/*"])

    visible = [m["id"] for m in client.get("/v1/models").json()["data"]]
    assert visible == ["local/tiny"]
    refused = client.post(GENERATE, json={"model": "dall-e-3", "prompt": "x"})
    assert refused.status_code == 403
    assert refused.json()["error"] == {
        "code": "MODEL_ACCESS_DENIED",
        "message": "Model 'openai/dall-e-3' is not allowed for this API key's tenant",
        "param": "model",
    }
    assert client.get("/v1/models/dall-e-3").status_code == 403
    assert generate(client).status_code == 200


# -- money --------------------------------------------------------------------------------


def test_fifty_concurrent_requests_into_a_budget_for_ten(admin: httpx.Client) -> None:
    client = make_tenant(
        admin, "tight", budget_total="0.10", prices={"local/tiny": {"default": "0.01"}}
    )
    statuses: list[int] = []
    lock = threading.Lock()

    def request() -> None:
        response = generate(client)
        with lock:
            statuses.append(response.status_code)

    threads = [threading.Thread(target=request) for _ in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)

    assert sorted(statuses) == [200] * 10 + [402] * 40
    state = budgets(client)
    assert state["total"]["spent"] == "0.10"
    assert state["total"]["reserved"] == "0.00"
    assert state["total"]["remaining"] == "0.00"
    assert state["usage"]["images"] == 10
    assert state["usage"]["by_model"] == {"local/tiny": {"spent": "0.10", "images": 10, "jobs": 10}}
    refused = generate(client)
    assert refused.status_code == 402
    assert refused.json()["error"]["message"] == (
        "Budget exceeded: this request costs 0.01 and 0.00 remains of the total budget"
    )


def test_canceled_and_failed_jobs_are_refunded(admin: httpx.Client) -> None:
    client = make_tenant(
        admin,
        "refunds",
        budget_total="1",
        prices={"local/tiny": {"default": "0.05"}, "acme/broken": {"default": "0.20"}},
    )
    running = submit(client, **SLOW)
    wait_for(client, running["id"], "running")
    assert budgets(client)["total"]["reserved"] == "0.05"
    client.post(f"/v1/jobs/{running['id']}/cancel")
    wait_for(client, running["id"], "canceled")

    failed = generate(client, model="acme/broken")
    assert failed.status_code == 500
    assert failed.json()["error"]["code"] == "INTERNAL_ERROR"

    state = budgets(client)
    assert (state["total"]["spent"], state["total"]["reserved"]) == ("0.00", "0.00")
    assert state["usage"]["images"] == 0


def test_prices_follow_the_catalog_and_tenant_overrides(admin: httpx.Client) -> None:
    tenant = admin.post(
        "/v1/admin/tenants",
        json={"id": "priced", "name": "P", "prices": {"local/tiny": {"64x64": "0.5"}}},
    ).json()["data"]
    assert tenant["prices"] == {"local/tiny": {"64x64": "0.5"}}
    updated = admin.patch("/v1/admin/tenants/priced", json={"budget_monthly": "12.50"})
    assert updated.json()["data"]["budget_monthly"] == "12.50"
    assert updated.json()["data"]["prices"] == {"local/tiny": {"64x64": "0.5"}}  # untouched
    bad = admin.patch("/v1/admin/tenants/priced", json={"budget_total": "-1"})
    assert bad.status_code == 400
    assert bad.json()["error"]["param"] == "budget_total"


def test_an_edit_refused_for_its_budget_leaves_no_input_behind(
    make_server: Callable[..., Server],
) -> None:
    """The inputs a refused request stored are deleted once they are due (not at once: another
    replica may be storing the same bytes), but never one a recorded job uses."""
    server = make_server().start()

    def png(color: tuple[int, int, int]) -> str:
        buffer = io.BytesIO()
        Image.new("RGB", (64, 64), color).save(buffer, format="PNG")
        return base64.b64encode(buffer.getvalue()).decode()

    def database() -> sqlite3.Connection:
        return sqlite3.connect(server.data_dir / "pixelgate.db")

    def stored() -> tuple[set[str], int]:
        blobs = {p.name for p in (server.data_dir / "blobs").rglob("*") if p.is_file()}
        with database() as db:
            [(files,)] = db.execute("SELECT count(*) FROM files").fetchall()
        return blobs, files

    with server.client() as admin:
        client = make_tenant(
            admin, "frugal", prices={"local/tiny": {"default": "0.02"}}, budget_total="0.02"
        )
    edit = {"model": "local/tiny", "prompt": "x", "num_steps": 2}
    kept = png((200, 10, 10))
    accepted = client.post(EDIT, json={**edit, "input_image": kept})
    assert accepted.status_code == 200, accepted.text
    before = stored()

    for body in (
        {"input_image": png((10, 200, 10)), "mask_image": png((255, 255, 255))},
        {"input_image": kept},  # the recorded job's input: still its own
    ):
        refused = client.post(EDIT, json={**edit, **body})
        assert refused.status_code == 402, refused.text
        assert refused.json()["error"]["code"] == "BUDGET_EXCEEDED"

    blobs, files = stored()
    assert files == before[1] and blobs > before[0]  # nothing recorded, nothing deleted yet
    with database() as db:
        waiting = {key for (key,) in db.execute("SELECT blob_key FROM blob_deletions")}
    # every input the refused requests stored waits, the recorded job's among them
    assert blobs - before[0] <= waiting <= blobs and waiting & before[0]
    server.stop()

    with database() as db:  # their time comes: the next start's housekeeping deletes them
        db.execute("UPDATE blob_deletions SET due_at = '2026-01-01 00:00:00.000000'")
    server.start()
    deadline = time.monotonic() + 30
    while stored() != before and time.monotonic() < deadline:
        time.sleep(0.2)
    assert stored() == before
    job = client.get(f"/v1/jobs/{accepted.json()['data']['job_id']}").json()["data"]
    assert job["status"] == "succeeded"
    with database() as db:
        assert db.execute("SELECT count(*) FROM blob_deletions").fetchall() == [(0,)]
    server.stop()


# -- limits -------------------------------------------------------------------------------


def test_over_the_rate_limit_is_429_with_retry_after(admin: httpx.Client) -> None:
    client = make_tenant(admin, "slow-lane", limits={"requests_per_minute": 2})
    assert generate(client).status_code == 200
    assert generate(client).status_code == 200

    limited = generate(client)

    assert limited.status_code == 429
    assert limited.json()["error"]["code"] == "RATE_LIMITED"
    assert 1 <= int(limited.headers["retry-after"]) <= 60


# -- cache and idempotency ----------------------------------------------------------------


def _pixels(item: dict[str, Any]) -> bytes:
    return httpx.get(item["url"]).content


def test_a_repeated_seeded_request_is_a_cache_hit_unless_bypassed(admin: httpx.Client) -> None:
    client = make_tenant(admin, "cachers")
    first = generate(client, seed=77, prompt="cached").json()["data"]
    hit = generate(client, seed=77, prompt="cached").json()["data"]

    assert (first["cached"], hit["cached"]) == (False, True)
    assert hit["job_id"] != first["job_id"]
    assert _pixels(hit["data"][0]) == _pixels(first["data"][0])
    assert hit["data"][0]["seed"] == 77
    assert client.get(f"/v1/jobs/{hit['job_id']}").json()["data"]["cached"] is True

    header = client.post(
        GENERATE,
        json={"model": "local/tiny", "prompt": "cached", "seed": 77},
        headers={"Cache-Control": "no-cache"},
    ).json()["data"]
    body = generate(client, seed=77, prompt="cached", cache=False).json()["data"]
    assert header["cached"] is False and body["cached"] is False
    other_tenant = make_tenant(admin, "cachers-2")
    assert generate(other_tenant, seed=77, prompt="cached").json()["data"]["cached"] is False


def test_an_idempotency_key_replays_the_job_and_refuses_another_body(admin: httpx.Client) -> None:
    client = make_tenant(admin, "idem", prices={"local/tiny": {"default": "0.01"}})
    headers = {"Idempotency-Key": "order-42"}
    body = {"model": "local/tiny", "prompt": "once"}

    first = client.post(GENERATE, json=body, headers=headers).json()["data"]
    again = client.post(GENERATE, json=body, headers=headers).json()["data"]
    conflict = client.post(GENERATE, json={**body, "prompt": "twice"}, headers=headers)

    assert again["job_id"] == first["job_id"]
    assert again["data"][0]["file_id"] == first["data"][0]["file_id"]
    assert conflict.status_code == 409
    assert conflict.json()["error"]["param"] == "Idempotency-Key"
    state = budgets(client)
    assert (state["total"]["spent"], state["usage"]["images"]) == ("0.01", 1)


# -- usage and metrics --------------------------------------------------------------------


def test_usage_by_model_and_day(admin: httpx.Client) -> None:
    client = make_tenant(admin, "counted", prices={"local/tiny": {"default": "0.02"}})
    generate(client, n=3)
    usage = client.get("/v1/usage").json()["data"]
    today = datetime.now(UTC).date().isoformat()
    assert usage["by_day"] == {today: {"spent": "0.06", "images": 3, "jobs": 1}}
    everyone = admin.get("/v1/admin/usage", params={"tenant_id": "counted"}).json()["data"]
    assert everyone[0]["spent"] == "0.06"


def test_metrics_count_requests_jobs_queue_and_spend(tenancy: Server, admin: httpx.Client) -> None:
    client = make_tenant(admin, "metered", prices={"local/tiny": {"default": "0.03"}})
    generate(client)
    text = httpx.get(f"{tenancy.url}/metrics").text

    assert (
        'pixelgate_http_requests_total{method="POST",route="/v1/inference/images/generate",'
        'status="200"}'
    ) in text
    assert 'pixelgate_http_request_duration_seconds_bucket{le="0.5",method="POST"' in text
    assert 'pixelgate_jobs{model="local/tiny",state="succeeded"}' in text
    assert "pixelgate_queue_depth 0.0" in text
    assert 'pixelgate_spend_total{tenant="metered"} 0.03' in text
    assert 'pixelgate_job_duration_seconds_count{model="local/tiny",state="succeeded"}' in text
    assert "/v1/jobs/job_" not in text  # routes are counted by template, not raw path


def _png() -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), "red").save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def test_bad_admin_input_is_refused_clearly(admin: httpx.Client) -> None:
    bad_id = admin.post("/v1/admin/tenants", json={"id": "Not Valid!", "name": "x"})
    assert bad_id.status_code == 400 and bad_id.json()["error"]["param"] == "id"
    admin.post("/v1/admin/tenants", json={"id": "dup", "name": "x"})
    assert admin.post("/v1/admin/tenants", json={"id": "dup", "name": "x"}).status_code == 409
    unknown = admin.post("/v1/admin/keys", json={"tenant_id": "nobody", "name": "k"})
    assert unknown.status_code == 404
    scope = admin.post("/v1/admin/keys", json={"tenant_id": "dup", "name": "k", "scopes": ["root"]})
    assert scope.status_code == 400
    assert json.loads(scope.text)["error"]["param"] == "scopes.0"


# -- retention and erasure ----------------------------------------------------------------


def test_a_tenants_retention_is_set_checked_and_shown(admin: httpx.Client) -> None:
    created = admin.post(
        "/v1/admin/tenants", json={"id": "kept-7", "name": "k", "retention_days": 7}
    )
    assert created.status_code == 201 and created.json()["data"]["retention_days"] == 7.0
    for bad in (-1, 0, "soon"):
        refused = admin.patch("/v1/admin/tenants/kept-7", json={"retention_days": bad})
        assert refused.status_code == 400, refused.text
        assert refused.json()["error"]["param"] == "retention_days"
    cleared = admin.patch("/v1/admin/tenants/kept-7", json={"retention_days": None})
    assert cleared.json()["data"]["retention_days"] is None
    missing = admin.patch("/v1/admin/tenants/nobody", json={"retention_days": 3})
    assert missing.status_code == 404 and missing.json()["error"]["param"] == "tenant_id"


def test_erasing_a_tenant_over_http(admin: httpx.Client) -> None:
    client = make_tenant(admin, "leaving", prices={"local/tiny": {"default": "0.02"}})
    file_id = generate(client).json()["data"]["data"][0]["file_id"]
    busy = submit(client, prompt="slow", **SLOW)["id"]

    refused = admin.post("/v1/admin/tenants/leaving/erase")
    assert refused.status_code == 409 and refused.json()["error"]["param"] == "tenant_id"
    assert "queued or running" in refused.json()["error"]["message"]
    assert client.post(f"/v1/jobs/{busy}/cancel").status_code in (200, 202)
    wait_for(client, busy, "canceled")

    erased = admin.post("/v1/admin/tenants/leaving/erase")
    assert erased.status_code == 200, erased.text
    body = erased.json()["data"]
    assert (body["jobs"], body["files"], body["api_keys"]) == (2, 1, 1)
    tenant = admin.get("/v1/admin/tenants/leaving").json()["data"]
    assert tenant["erased_at"] is not None and tenant["budgets"][0]["spent"] == "0.02"
    deadline = time.monotonic() + 10  # a key is trusted for 2 s after it was last read
    while client.get(f"/v1/files/{file_id}").status_code != 401:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    new_key = admin.post("/v1/admin/keys", json={"tenant_id": "leaving", "name": "x"})
    assert new_key.status_code == 409
    assert admin.post("/v1/admin/tenants/default/erase").status_code == 409
    assert admin.post("/v1/admin/tenants/nobody/erase").status_code == 404
    assert admin.get("/v1/usage").json()["data"]["tenant_id"] == "default"
