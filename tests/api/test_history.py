"""Listing and deleting a tenant's jobs and stored files over HTTP (issue 20, items 2 and 3):
`GET /v1/jobs` and `GET /v1/files` in cursor pages, `DELETE /v1/files/{id}` and
`DELETE /v1/jobs/{id}`, on the real server."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from pixelgate.storage import LocalBlobStore
from pixelgate.storage.blobs import blob_key
from tests.conftest import Server
from tests.helpers import SLOW, generate, submit, tenant_key, wait_for


@pytest.fixture
def tenant(server: Server, api: httpx.Client) -> Iterator[httpx.Client]:
    """A client of a tenant of its own: an empty history."""
    with server.client(tenant_key(api)) as client:
        yield client


def made(client: httpx.Client, prompt: str, **body: Any) -> dict[str, Any]:
    response = generate(client, prompt=prompt, **body)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()["data"]
    return result


def error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()["error"]
    return body


def test_job_pages_walk_every_job_once_both_ways(tenant: httpx.Client) -> None:
    job_ids = [made(tenant, f"circle {number}")["job_id"] for number in range(5)]
    newest_first = job_ids[::-1]

    walked: list[str] = []
    params: dict[str, Any] = {"limit": 2}
    while True:
        page = tenant.get("/v1/jobs", params=params).json()
        walked += [job["id"] for job in page["data"]]
        assert (page["object"], page["first_id"], page["last_id"]) == (
            "list",
            page["data"][0]["id"],
            page["data"][-1]["id"],
        )
        if not page["has_more"]:
            break
        params = {"limit": 2, "after": page["last_id"]}
    assert walked == newest_first

    back = tenant.get("/v1/jobs", params={"limit": 2, "before": newest_first[-1]}).json()
    assert [job["id"] for job in back["data"]] == newest_first[-3:-1]
    assert back["has_more"]
    top = tenant.get("/v1/jobs", params={"before": newest_first[0]}).json()
    assert (top["data"], top["has_more"], top["first_id"]) == ([], False, None)


def test_jobs_filter_by_model_status_time_and_prompt(tenant: httpx.Client) -> None:
    red = made(tenant, "A big RED circle")
    blue = made(tenant, "a blue square")
    created = tenant.get(f"/v1/jobs/{blue['job_id']}").json()["data"]["created_at"]

    def found(**params: Any) -> list[str]:
        response = tenant.get("/v1/jobs", params=params)
        assert response.status_code == 200, response.text
        return [job["id"] for job in response.json()["data"]]

    assert found(q="red") == [red["job_id"]]
    assert found(q="SQUARE", status="succeeded") == [blue["job_id"]]
    assert found(status="failed") == []
    assert found(model="local/tiny") == [blue["job_id"], red["job_id"]]
    assert found(model="openai/dall-e-3") == []
    assert found(created_after=created) == [blue["job_id"]]
    assert found(created_before=created) == [red["job_id"]]
    assert found(created_after="0", created_before="4102444800") == found()


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"after": "job_nope"}, "after"),
        ({"before": "file_nope"}, "before"),
        ({"created_after": "yesterday"}, "created_after"),
        ({"created_before": "2026-13-01"}, "created_before"),
        ({"limit": 0}, "limit"),
        ({"status": "sleeping"}, "status"),
    ],
)
def test_a_bad_cursor_or_filter_is_a_validation_error_naming_it(
    api: httpx.Client, params: dict[str, Any], param: str
) -> None:
    for path in ("/v1/jobs", "/v1/files"):
        if path == "/v1/files" and param == "status":
            continue
        body = error(api.get(path, params=params), 400)
        assert (body["code"], body["param"]) == ("VALIDATION_ERROR", param)


def test_another_tenants_job_is_no_cursor(api: httpx.Client, tenant: httpx.Client) -> None:
    theirs = made(api, "the admin's")
    body = error(tenant.get("/v1/jobs", params={"after": theirs["job_id"]}), 400)
    assert body["param"] == "after"


def test_files_are_listed_newest_first_with_prompt_model_and_a_working_link(
    tenant: httpx.Client,
) -> None:
    first = made(tenant, "two circles", n=2)
    second = made(tenant, "a triangle")

    page = tenant.get("/v1/files", params={"limit": 2}).json()
    rest = tenant.get("/v1/files", params={"after": page["last_id"]}).json()

    files = page["data"] + rest["data"]
    assert page["has_more"] and not rest["has_more"]
    assert [item["job_id"] for item in files] == [
        second["job_id"],
        first["job_id"],
        first["job_id"],
    ]
    top = files[0]
    assert (top["prompt"], top["model"], top["object"]) == ("a triangle", "local/tiny", "file")
    assert {"content_type", "size_bytes", "width", "height", "created_at", "expires_at"} <= set(top)
    assert httpx.get(top["url"]).content[:4] == b"\x89PNG"
    of_job = tenant.get("/v1/files", params={"job_id": first["job_id"]}).json()["data"]
    assert len(of_job) == 2
    assert [f["id"] for f in tenant.get("/v1/files", params={"q": "TRI"}).json()["data"]] == [
        top["id"]
    ]
    one = tenant.get(f"/v1/files/{top['id']}").json()["data"]
    assert (one["prompt"], one["model"]) == ("a triangle", "local/tiny")


def test_a_deleted_file_its_link_and_its_bytes_are_gone(
    server: Server, tenant: httpx.Client
) -> None:
    # a seed of its own: no other file shares these bytes
    result = made(tenant, "to delete", seed=secrets.randbelow(2**31), cache=False)
    [image] = result["data"]
    data = httpx.get(image["url"]).content
    blobs = LocalBlobStore(server.data_dir / "blobs")
    assert blobs.exists(blob_key(data))

    deleted = tenant.delete(f"/v1/files/{image['file_id']}")

    assert deleted.json()["data"] == {"id": image["file_id"], "object": "file", "deleted": True}
    assert httpx.get(image["url"]).status_code == 404
    for path in ("", "/content"):
        assert error(tenant.get(f"/v1/files/{image['file_id']}{path}"), 404)["code"] == "NOT_FOUND"
    assert error(tenant.delete(f"/v1/files/{image['file_id']}"), 404)["code"] == "NOT_FOUND"
    assert not blobs.exists(blob_key(data))
    listed = tenant.get("/v1/files").json()["data"]
    assert image["file_id"] not in [item["id"] for item in listed]
    job = tenant.get(f"/v1/jobs/{result['job_id']}").json()["data"]
    assert job["result"]["data"][0]["url"] is None


def test_a_file_whose_bytes_another_file_holds_keeps_them(
    server: Server, tenant: httpx.Client
) -> None:
    seed = secrets.randbelow(2**31)
    first = made(tenant, "shared bytes", seed=seed)
    hit = made(tenant, "shared bytes", seed=seed)  # a cache hit: a file of its own, same bytes
    assert hit["cached"]
    data = httpx.get(hit["data"][0]["url"]).content

    assert tenant.delete(f"/v1/files/{first['data'][0]['file_id']}").status_code == 200

    assert httpx.get(hit["data"][0]["url"]).content == data
    assert LocalBlobStore(server.data_dir / "blobs").exists(blob_key(data))


def test_deleting_needs_the_generate_scope_and_ones_own_tenant(
    server: Server, api: httpx.Client, tenant: httpx.Client
) -> None:
    theirs = made(api, "not yours")
    assert error(tenant.delete(f"/v1/files/{theirs['data'][0]['file_id']}"), 404)
    assert error(tenant.delete(f"/v1/jobs/{theirs['job_id']}"), 404)
    key = api.post(
        "/v1/admin/keys", json={"tenant_id": "default", "name": "ro", "scopes": ["read"]}
    ).json()["data"]["key"]
    with server.client(key) as reader:
        assert error(reader.delete(f"/v1/jobs/{theirs['job_id']}"), 403)["code"] == "FORBIDDEN"
    assert api.get(f"/v1/jobs/{theirs['job_id']}").status_code == 200


def test_a_running_job_is_refused_until_canceled_then_deleted_with_its_files(
    tenant: httpx.Client,
) -> None:
    job = submit(tenant, **SLOW)
    wait_for(tenant, job["id"], "running")

    refused = error(tenant.delete(f"/v1/jobs/{job['id']}"), 409)

    assert refused["code"] == "CONFLICT" and "cancel it first" in refused["message"]
    tenant.post(f"/v1/jobs/{job['id']}/cancel")
    wait_for(tenant, job["id"], "canceled")
    assert tenant.delete(f"/v1/jobs/{job['id']}").json()["data"]["deleted"] is True
    assert error(tenant.get(f"/v1/jobs/{job['id']}"), 404)["code"] == "NOT_FOUND"

    done = made(tenant, "deleted with its job")
    url = done["data"][0]["url"]
    assert tenant.delete(f"/v1/jobs/{done['job_id']}").status_code == 200
    assert httpx.get(url).status_code == 404
    assert error(tenant.get(f"/v1/files/{done['data'][0]['file_id']}"), 404)
    assert tenant.get("/v1/files", params={"job_id": done["job_id"]}).json()["data"] == []


def test_an_idempotency_key_goes_with_its_deleted_job(tenant: httpx.Client) -> None:
    headers = {"Idempotency-Key": "order-" + secrets.token_hex(4)}
    body = {"model": "local/tiny", "prompt": "once"}
    first = tenant.post("/v1/inference/images/generate", json=body, headers=headers)
    job_id = first.json()["data"]["job_id"]
    assert tenant.delete(f"/v1/jobs/{job_id}").status_code == 200

    again = tenant.post("/v1/inference/images/generate", json=body, headers=headers)

    assert again.status_code == 200, again.text
    assert again.json()["data"]["job_id"] != job_id
