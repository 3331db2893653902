"""Text-to-image over HTTP against a running server."""

from __future__ import annotations

import base64
import io

import httpx
from PIL import Image

from tests.conftest import Server
from tests.helpers import GENERATE, MEDIUM, generate, png_size, submit, wait_for


def test_sync_generate_returns_a_stored_image_behind_a_signed_link(api: httpx.Client) -> None:
    response = generate(api, seed=11, metadata={"order": "A-17"})

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "ok"
    result = body["data"]
    assert result["job_id"].startswith("job_")
    assert result["model"] == "local/tiny"
    assert result["metadata"] == {"order": "A-17"}
    [item] = result["data"]
    assert item["seed"] == 11
    assert item["revised_prompt"] is None
    assert item["b64_json"] is None
    image = httpx.get(item["url"])  # no API key: the link is the credential
    assert image.status_code == 200
    assert image.headers["content-type"] == "image/png"
    assert png_size(image.content) == (64, 64)


def test_b64_json_returns_the_image_inline(api: httpx.Client) -> None:
    response = generate(api, response_format="b64_json", width=96, height=32)

    [item] = response.json()["data"]["data"]
    assert item["url"] is None
    assert png_size(base64.b64decode(item["b64_json"])) == (96, 32)


def test_n_images_each_with_its_own_seed(api: httpx.Client) -> None:
    response = generate(api, n=3, seed=100)

    items = response.json()["data"]["data"]
    assert [item["seed"] for item in items] == [100, 101, 102]
    assert len({item["file_id"] for item in items}) == 3


def test_an_unset_seed_is_chosen_and_reported(api: httpx.Client) -> None:
    [item] = generate(api).json()["data"]["data"]
    assert isinstance(item["seed"], int)
    assert 0 <= item["seed"] < 2**32


def test_output_formats(api: httpx.Client) -> None:
    for fmt, pil_format in (("jpeg", "JPEG"), ("webp", "WEBP"), ("png", "PNG")):
        [item] = generate(api, output_format=fmt).json()["data"]["data"]
        media = httpx.get(item["url"])
        assert media.headers["content-type"] == f"image/{fmt}"
        assert Image.open(io.BytesIO(media.content)).format == pil_format


def test_async_in_the_body_answers_202_then_the_job_succeeds(api: httpx.Client) -> None:
    response = generate(api, **{"async": True}, seed=5)

    assert response.status_code == 202
    assert response.headers["location"] == f"/v1/jobs/{response.json()['data']['id']}"
    job = response.json()["data"]
    assert job["status"] in ("queued", "running", "succeeded")
    done = wait_for(api, job["id"], "succeeded", "failed")
    assert done["status"] == "succeeded"
    assert done["result"]["data"][0]["seed"] == 5
    assert httpx.get(done["result"]["data"][0]["url"]).status_code == 200


def test_prefer_respond_async_header_answers_202(api: httpx.Client) -> None:
    response = api.post(
        GENERATE,
        json={"model": "local/tiny", "prompt": "x"},
        headers={"Prefer": "respond-async"},
    )
    assert response.status_code == 202
    assert response.headers["preference-applied"] == "respond-async"


def test_stored_file_gives_a_fresh_link(api: httpx.Client) -> None:
    [item] = generate(api).json()["data"]["data"]

    stored = api.get(f"/v1/files/{item['file_id']}")

    assert stored.status_code == 200
    data = stored.json()["data"]
    assert data["width"] == 64 and data["content_type"] == "image/png"
    assert httpx.get(data["url"]).content == httpx.get(item["url"]).content
    assert api.get(f"/v1/files/{item['file_id']}/content").content == httpx.get(data["url"]).content


def test_metadata_is_stored_with_the_job(api: httpx.Client) -> None:
    job = submit(api, metadata={"user": "u-1", "count": 3})
    assert api.get(f"/v1/jobs/{job['id']}").json()["data"]["metadata"] == {
        "user": "u-1",
        "count": 3,
    }


def test_sync_request_that_outlives_its_wait_answers_504_and_the_job_goes_on(make_server) -> None:  # type: ignore[no-untyped-def]
    server: Server = make_server(PIXELGATE_SYNC_TIMEOUT_SECONDS="0.5").start()
    with server.client() as api:
        response = generate(api, **MEDIUM)

        assert response.status_code == 504
        error = response.json()["error"]
        assert error["code"] == "TIMEOUT"
        job_id = error["message"].split()[1]
        assert wait_for(api, job_id, "succeeded", timeout=120)["status"] == "succeeded"
