"""POST /v1/inference/images/remove-background against a real server running rembg on u2netp."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from PIL import Image, ImageDraw

from tests.conftest import Server
from tests.helpers import alpha_at, wait_for
from tests.installed_weights import rembg_home

PATH = "/v1/inference/images/remove-background"


def picture(fmt: str = "PNG", size: tuple[int, int] = (200, 150)) -> bytes:
    """A red disc on a plain light-grey background."""
    image = Image.new("RGB", size, (235, 235, 235))
    width, height = size
    ImageDraw.Draw(image).ellipse(
        (width * 0.3, height * 0.25, width * 0.7, height * 0.75), fill=(200, 30, 30)
    )
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def assert_cut_out(data: bytes, size: tuple[int, int] = (200, 150)) -> None:
    cutout = Image.open(io.BytesIO(data))
    assert (cutout.format, cutout.mode, cutout.size) == ("PNG", "RGBA", size)
    width, height = size
    assert alpha_at(cutout, (width // 2, height // 2)) >= 200  # the disc
    assert alpha_at(cutout, (2, 2)) <= 20  # the background
    assert alpha_at(cutout, (width - 3, height - 3)) <= 20


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, models_dir: Any) -> Iterator[Server]:
    instance = Server(
        tmp_path_factory.mktemp("rembg") / "data",
        models_dir,
        PIXELGATE_REMBG_HOME=str(rembg_home()),
        PIXELGATE_MAX_INPUT_PIXELS=str(400 * 400),
    ).start()
    yield instance
    instance.stop()


@pytest.fixture
def api(server: Server) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


def test_a_multipart_upload_comes_back_as_a_stored_transparent_png(api: httpx.Client) -> None:
    response = api.post(PATH, files={"image": ("photo.jpg", picture("JPEG"), "image/jpeg")})

    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert data["model"] == "rembg/u2netp"
    [image] = data["data"]
    download = httpx.get(image["url"])
    assert download.headers["content-type"] == "image/png"
    assert_cut_out(download.content)
    stored = api.get(f"/v1/files/{image['file_id']}").json()["data"]
    assert (stored["content_type"], stored["width"], stored["height"]) == ("image/png", 200, 150)
    job = api.get(f"/v1/jobs/{data['job_id']}").json()["data"]
    assert (job["task"], job["status"]) == ("remove-background", "succeeded")


@pytest.mark.parametrize("field", ["image", "input_image"])
def test_base64_json_works_under_either_name(api: httpx.Client, field: str) -> None:
    encoded = base64.b64encode(picture("WEBP")).decode()

    response = api.post(PATH, json={field: encoded, "response_format": "b64_json"})

    assert response.status_code == 200, response.text
    [image] = response.json()["data"]["data"]
    assert image["url"] is None
    assert_cut_out(base64.b64decode(image["b64_json"]))


def test_async_answers_202_and_the_job_finishes(api: httpx.Client) -> None:
    encoded = "data:image/png;base64," + base64.b64encode(picture()).decode()

    response = api.post(PATH, json={"image": encoded, "async": True})

    assert response.status_code == 202, response.text
    job = wait_for(api, response.json()["data"]["id"], "succeeded", "failed")
    assert job["status"] == "succeeded", job
    assert_cut_out(httpx.get(job["result"]["data"][0]["url"]).content)


def test_a_stored_result_can_be_cut_out_by_its_id(api: httpx.Client) -> None:
    first = api.post(PATH, files={"image": ("a.png", picture(), "image/png")}).json()["data"]
    file_id = first["data"][0]["file_id"]

    response = api.post(PATH, data={"image_file_id": file_id, "output_format": "webp"})

    assert response.status_code == 200, response.text
    [image] = response.json()["data"]["data"]
    cutout = Image.open(io.BytesIO(httpx.get(image["url"]).content))
    assert (cutout.format, cutout.mode) == ("WEBP", "RGBA")


@pytest.mark.parametrize(
    "send",
    [
        {"json": {}},
        {"json": {"model": "rembg/u2netp"}},
        {"data": {"model": "u2netp"}, "files": {"note": (None, "hello")}},
        {"content": b""},
    ],
)
def test_no_file_is_must_provide_file(api: httpx.Client, send: dict[str, Any]) -> None:
    response = api.post(PATH, **send)

    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert (error["code"], error["param"]) == ("MUST_PROVIDE_FILE", "image")


def test_an_empty_file_is_must_provide_file(api: httpx.Client) -> None:
    response = api.post(PATH, files={"image": ("empty.png", b"", "image/png")})

    assert response.status_code == 400, response.text
    assert response.json()["error"] == {
        "code": "MUST_PROVIDE_FILE",
        "message": "image is empty; send the picture's bytes",
        "param": "image",
    }


def test_a_file_that_is_not_an_image_is_a_validation_error(api: httpx.Client) -> None:
    response = api.post(PATH, files={"image": ("notes.txt", b"hello, not a picture", "text/plain")})

    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "VALIDATION_ERROR"
    assert error["param"] == "image"
    assert "not a readable image" in error["message"]


def test_bad_base64_is_a_validation_error(api: httpx.Client) -> None:
    response = api.post(PATH, json={"input_image": "%%% not base64 %%%"})

    assert response.status_code == 400
    assert response.json()["error"] == {
        "code": "VALIDATION_ERROR",
        "message": "input_image is not valid base64",
        "param": "input_image",
    }


def test_an_image_over_the_pixel_limit_is_refused_before_decoding(api: httpx.Client) -> None:
    response = api.post(PATH, files={"image": ("big.png", picture(size=(500, 500)), "image/png")})

    assert response.status_code == 413, response.text
    error = response.json()["error"]
    assert (error["code"], error["param"]) == ("PAYLOAD_TOO_LARGE", "image")


def test_a_prompt_is_not_an_option_here(api: httpx.Client) -> None:
    response = api.post(PATH, json={"image": base64.b64encode(picture()).decode(), "prompt": "x"})

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == "prompt"
    assert "Unknown option 'prompt'" in error["message"]


def test_models_without_weights_or_keys_are_unavailable(api: httpx.Client) -> None:
    encoded = base64.b64encode(picture()).decode()

    for model, reason in (
        ("rembg/birefnet-general", "birefnet-general.onnx"),
        ("stability/remove-background", "PIXELGATE_STABILITY_API_KEY"),
    ):
        response = api.post(PATH, json={"image": encoded, "model": model})
        assert response.status_code == 503, response.text
        error = response.json()["error"]
        assert error["code"] == "MODEL_UNAVAILABLE"
        assert reason in error["message"]


def test_a_generation_model_cannot_remove_backgrounds(api: httpx.Client) -> None:
    response = api.post(PATH, json={"image": base64.b64encode(picture()).decode(), "model": "tiny"})

    assert response.status_code == 400
    assert "does not support background removal" in response.json()["error"]["message"]


def test_the_catalog_lists_background_removal_models(api: httpx.Client) -> None:
    models = {model["id"]: model for model in api.get("/v1/models").json()["data"]}

    u2netp = models["rembg/u2netp"]
    assert (u2netp["available"], u2netp["capabilities"]) == (True, ["remove-background"])
    assert "prompt" not in u2netp["options_schema"]["properties"]
    assert models["rembg/isnet-general-use"]["available"] is False
