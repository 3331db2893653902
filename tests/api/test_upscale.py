"""`POST /v1/inference/images/upscale` end to end (issue 23, item 6): the real server with the
Lanczos upscaler, tiny random-weight SD x4 and SD x2 latent upscalers run for real, and
Stability's upscale endpoints on the fake v2beta API on loopback."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from tests.conftest import Server
from tests.helpers import error_of, read_events, tenant_key, wait_for
from tests.providers.conftest import STABILITY_KEY
from tests.providers.local_pipelines import build_upscaler_models, upscaler_catalog_text
from tests.providers.upstreams.stability import (
    RESULTS,
    UPSCALE_CONSERVATIVE,
    UPSCALE_CREATIVE,
    UPSCALE_FAST,
    FakeStability,
)

UPSCALE = "/v1/inference/images/upscale"


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeStability]:
    with FakeStability(STABILITY_KEY) as fake:
        yield fake


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, models_dir: Path, upstream: FakeStability
) -> Iterator[Server]:
    build_upscaler_models(models_dir)
    catalog = tmp_path_factory.mktemp("catalog") / "catalog.toml"
    catalog.write_text(upscaler_catalog_text())
    instance = Server(
        tmp_path_factory.mktemp("upscale") / "data",
        models_dir,
        PIXELGATE_CATALOG_FILE=str(catalog),
        PIXELGATE_STABILITY_API_KEY=STABILITY_KEY,
        PIXELGATE_STABILITY_BASE_URL=upstream.url,
        PIXELGATE_STABILITY_POLL_INTERVAL_SECONDS="0.05",
    ).start()
    yield instance
    instance.stop()


@pytest.fixture
def api(server: Server, upstream: FakeStability) -> Iterator[httpx.Client]:
    upstream.received.clear()
    with server.client() as client:
        client.headers["Cache-Control"] = "no-cache"
        yield client


def picture(size: tuple[int, int] = (40, 30), mode: str = "RGB") -> bytes:
    """A two-way gradient: every pixel differs, so a resampling can be checked exactly."""
    image = Image.new(mode, size)
    width, height = size
    pixels = [
        (x * 255 // width, y * 255 // height, 90, 255 if x < width // 2 else 0)[: len(mode)]
        for y in range(height)
        for x in range(width)
    ]
    image.putdata(pixels)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def result_image(response: httpx.Response) -> Image.Image:
    assert response.status_code == 200, response.text
    [item] = response.json()["data"]["data"]
    data = (
        base64.b64decode(item["b64_json"]) if item["b64_json"] else httpx.get(item["url"]).content
    )
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def upscale(client: httpx.Client, image: bytes, **body: Any) -> httpx.Response:
    return client.post(UPSCALE, json={"image": b64(image), "response_format": "b64_json", **body})


# -- the catalog --------------------------------------------------------------------------


def test_the_upscalers_are_listed_with_their_factors_prices_and_availability(
    api: httpx.Client,
) -> None:
    models = {model["id"]: model for model in api.get("/v1/models").json()["data"]}
    expected = {
        "pixelgate/lanczos": ("0", [2, 4]),
        "stabilityai/stable-diffusion-x4-upscaler": ("0", [4]),
        "stabilityai/sd-x2-latent-upscaler": ("0", [2]),
        "stability/upscale-fast": ("0.02", [4]),
        "stability/upscale-conservative": ("0.40", []),
        "stability/upscale-creative": ("0.60", []),
        "test/x4-upscaler": ("0", [4]),
        "test/latent-upscaler": ("0", [2]),
    }
    for model_id, (price, factors) in expected.items():
        listed = models[model_id]
        assert listed["capabilities"] == ["upscale"]
        assert listed["prices"] == {"default": price}
        assert listed["limits"]["upscale"]["factors"] == factors
        assert listed["options_schema"]["properties"]["factor"]["title"] == "Enlarge by"
    assert models["pixelgate/lanczos"]["available"] is True
    assert models["stability/upscale-creative"]["available"] is True
    # the Hub upscalers are listed, and say how to get their weights
    hub = models["stabilityai/stable-diffusion-x4-upscaler"]
    assert hub["available"] is False
    assert "pixelgate pull stabilityai/stable-diffusion-x4-upscaler" in hub["unavailable_reason"]
    assert "noise_level" in hub["options_schema"]["properties"]


# -- Lanczos, model-free -----------------------------------------------------------------


def test_lanczos_enlarges_a_multipart_upload_four_times_exactly_as_pillow_does(
    api: httpx.Client,
) -> None:
    sent = picture()
    response = api.post(
        UPSCALE,
        data={"model": "pixelgate/lanczos", "factor": "4", "response_format": "b64_json"},
        files={"image": ("small.png", sent, "image/png")},
    )

    upscaled = result_image(response)
    expected = Image.open(io.BytesIO(sent)).resize((160, 120), Image.Resampling.LANCZOS)
    assert (upscaled.format, upscaled.size, upscaled.mode) == ("PNG", (160, 120), "RGB")
    assert upscaled.tobytes() == expected.tobytes()
    data = response.json()["data"]
    job = api.get(f"/v1/jobs/{data['job_id']}").json()["data"]
    assert (job["task"], job["model"], job["status"]) == (
        "upscale",
        "pixelgate/lanczos",
        "succeeded",
    )


def test_the_default_model_is_lanczos_and_a_stored_result_is_upscaled_by_its_id(
    api: httpx.Client,
) -> None:
    first = api.post(UPSCALE, json={"image": b64(picture((20, 10)))})
    assert first.status_code == 200, first.text
    assert first.json()["data"]["model"] == "pixelgate/lanczos"
    [item] = first.json()["data"]["data"]
    stored = api.get(f"/v1/files/{item['file_id']}").json()["data"]
    assert (stored["width"], stored["height"]) == (40, 20)  # its first factor: 2

    again = api.post(
        UPSCALE, json={"image_file_id": item["file_id"], "factor": 4, "output_format": "webp"}
    )

    assert again.status_code == 200, again.text
    [twice] = again.json()["data"]["data"]
    download = httpx.get(twice["url"])
    assert download.headers["content-type"] == "image/webp"
    assert Image.open(io.BytesIO(download.content)).size == (160, 80)


def test_lanczos_keeps_transparency(api: httpx.Client) -> None:
    upscaled = result_image(upscale(api, picture((16, 16), "RGBA"), factor=2))

    assert (upscaled.mode, upscaled.size) == ("RGBA", (32, 32))
    alpha = upscaled.getchannel("A")
    assert alpha.getpixel((2, 16)) == 255 and alpha.getpixel((29, 16)) == 0


def test_a_prompt_to_lanczos_is_ignored_and_the_answer_says_so(api: httpx.Client) -> None:
    response = upscale(api, picture(), prompt="a sharper photo")

    assert response.status_code == 200, response.text
    [change] = response.json()["data"]["adjustments"]
    assert (change["param"], change["to"]) == ("prompt", "ignored")
    assert "enlarges the image as it is" in change["reason"]


# -- bad input, refused before any work ----------------------------------------------------


@pytest.mark.parametrize(
    ("model", "factor", "allowed"),
    [
        ("pixelgate/lanczos", 3, "allowed: 2 or 4"),
        ("pixelgate/lanczos", 8, "allowed: 2 or 4"),
        ("test/x4-upscaler", 2, "allowed: 4"),
        ("stability/upscale-creative", 4, "picks the output size itself"),
    ],
)
def test_a_factor_the_model_does_not_make_is_refused_naming_it(
    api: httpx.Client, model: str, factor: int, allowed: str
) -> None:
    error = error_of(upscale(api, picture(), model=model, factor=factor, prompt="a cat"))

    assert error["param"] == "factor"
    assert f"Invalid factor: {factor}" in error["message"] and allowed in error["message"]


def test_an_image_too_large_for_the_model_is_refused_naming_the_image(api: httpx.Client) -> None:
    error = error_of(upscale(api, picture((200, 40)), model="test/x4-upscaler"))

    assert error["param"] == "image"
    assert error["message"] == (
        "The image is 200x40; model 'test/x4-upscaler' upscales images of at most 128 px a side "
        "(it makes 4x that). Send a smaller image"
    )
    small = error_of(upscale(api, picture((8, 8)), model="test/x4-upscaler"))
    assert "at least 16 px a side" in small["message"]
    pixels = error_of(upscale(api, picture((1100, 1000)), model="stability/upscale-fast"))
    assert "at most 1048576 pixels" in pixels["message"]


def test_without_an_image_the_answer_is_must_provide_file(api: httpx.Client) -> None:
    response = api.post(UPSCALE, json={"factor": 2})

    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "MUST_PROVIDE_FILE"
    assert response.json()["error"]["param"] == "image"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"size": "512x512"}, "size"),
        ({"model": "dall-e-3"}, "model"),
        ({"mask_image": "AAAA"}, "mask_image"),
        ({"strength": 0.5}, "strength"),
        ({"model": "test/x4-upscaler", "noise_level": 400}, "noise_level"),
        ({"model": "test/latent-upscaler", "noise_level": 20}, "noise_level"),
    ],
)
def test_other_bad_options_name_their_parameter(
    api: httpx.Client, body: dict[str, Any], param: str
) -> None:
    assert error_of(upscale(api, picture(), **body))["param"] == param


# -- local diffusers upscalers, tiny random weights, run for real ----------------------------


@pytest.mark.parametrize(
    ("model", "size", "out"),
    [("test/x4-upscaler", (32, 24), (128, 96)), ("test/latent-upscaler", (64, 64), (128, 128))],
)
def test_a_local_upscaler_runs_and_a_seed_reproduces_it(
    api: httpx.Client, model: str, size: tuple[int, int], out: tuple[int, int]
) -> None:
    sent = picture(size)
    first = upscale(api, sent, model=model, prompt="a gradient", seed=5)
    second = upscale(api, sent, model=model, prompt="a gradient", seed=5)
    other = upscale(api, sent, model=model, prompt="a gradient", seed=6)

    assert result_image(first).size == out
    assert first.json()["data"]["data"][0]["seed"] == 5
    assert result_image(first).tobytes() == result_image(second).tobytes()
    assert result_image(first).tobytes() != result_image(other).tobytes()


def test_an_input_off_the_models_multiple_is_resized_and_the_answer_says_so(
    api: httpx.Client,
) -> None:
    response = upscale(api, picture((36, 29)), model="test/x4-upscaler", seed=1)

    assert result_image(response).size == (128, 96)
    [change] = response.json()["data"]["adjustments"]
    assert (change["param"], change["from"], change["to"]) == ("image", "36x29", "32x24")


def test_an_async_local_upscale_streams_its_steps(api: httpx.Client) -> None:
    response = api.post(
        UPSCALE,
        json={"image": b64(picture((32, 32))), "model": "test/x4-upscaler", "num_steps": 3},
        headers={"Prefer": "respond-async"},
    )

    assert response.status_code == 202, response.text
    job_id = response.json()["data"]["id"]
    events = read_events(api, job_id)
    names = [name for name, _, _ in events]
    assert names[-1] == "succeeded"
    steps = [data for name, data, _ in events if name == "progress"]
    assert steps and all(data["total"] == 3 for data in steps)
    assert steps[-1]["step"] == 3
    job = wait_for(api, job_id, "succeeded")
    [item] = job["result"]["data"]
    assert api.get(f"/v1/files/{item['file_id']}").json()["data"]["width"] == 128


# -- Stability's upscalers, on the fake v2beta API --------------------------------------------


def sent_fields(upstream: FakeStability, path: str) -> dict[str, str]:
    [request] = upstream.requests_to(path)
    return {name: part.text for name, part in request.parts.items() if part.filename is None}


def test_stability_fast_makes_4x_and_bills_its_price(
    server: Server, upstream: FakeStability
) -> None:
    with (
        server.client() as admin,
        httpx.Client(
            base_url=server.url, headers={"Authorization": f"Bearer {tenant_key(admin)}"}
        ) as client,
    ):
        response = upscale(client, picture((50, 40)), model="stability/upscale-fast")

        assert result_image(response).size == (200, 160)
        assert sent_fields(upstream, UPSCALE_FAST) == {"output_format": "png"}
        [request] = upstream.requests_to(UPSCALE_FAST)
        assert request.parts["image"].filename is not None
        usage = client.get("/v1/usage").json()["data"]
        today = datetime.now(UTC).date().isoformat()
        assert usage["by_day"] == {today: {"spent": "0.02", "images": 1, "jobs": 1}}


def test_stability_conservative_sends_its_options_and_needs_a_prompt(
    api: httpx.Client, upstream: FakeStability
) -> None:
    missing = error_of(upscale(api, picture(), model="stability/upscale-conservative"))
    assert missing["param"] == "prompt"
    too_creative = upscale(
        api, picture(), model="stability/upscale-conservative", prompt="a cat", creativity=0.9
    )
    assert error_of(too_creative)["param"] == "creativity"
    assert upstream.requests_to(UPSCALE_CONSERVATIVE) == []  # refused before any call

    response = upscale(
        api,
        picture((64, 64)),
        model="stability/upscale-conservative",
        prompt="a cat",
        negative_prompt="blur",
        creativity=0.3,
        seed=42,
    )

    assert result_image(response).size == (2048, 2048)
    assert sent_fields(upstream, UPSCALE_CONSERVATIVE) == {
        "prompt": "a cat",
        "negative_prompt": "blur",
        "creativity": "0.3",
        "seed": "42",
        "output_format": "png",
    }
    assert response.json()["data"]["data"][0]["seed"] == 42


def test_stability_creative_is_started_then_polled_until_ready(
    api: httpx.Client, upstream: FakeStability
) -> None:
    response = api.post(
        UPSCALE,
        json={
            "image": b64(picture((64, 64))),
            "model": "stability/upscale-creative",
            "prompt": "a castle",
            "style_preset": "fantasy-art",
            "async": True,
        },
    )

    assert response.status_code == 202, response.text
    job_id = response.json()["data"]["id"]
    events = read_events(api, job_id)
    assert [name for name, _, _ in events][-1] == "succeeded"
    job = wait_for(api, job_id, "succeeded")
    fields = sent_fields(upstream, UPSCALE_CREATIVE)
    assert (fields["prompt"], fields["style_preset"]) == ("a castle", "fantasy-art")
    assert "factor" not in fields
    polls = [r for r in upstream.received if r.path.startswith(RESULTS)]
    assert len(polls) == 3  # in progress twice, then the image
    assert all(r.headers["authorization"] == f"Bearer {STABILITY_KEY}" for r in polls)
    [item] = job["result"]["data"]
    assert api.get(f"/v1/files/{item['file_id']}").json()["data"]["width"] == 2048
