"""Stability AI's edit models (inpaint, outpaint, search-and-replace, erase) end to end: the
real server, its job system and the fake Stability v2beta API on loopback (issue 23, item 7)."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from tests.conftest import Server
from tests.helpers import error_of
from tests.providers.conftest import STABILITY_KEY
from tests.providers.upstreams.images import image_bytes
from tests.providers.upstreams.stability import (
    ERASE,
    INPAINT,
    OUTPAINT,
    SEARCH_AND_REPLACE,
    FakeStability,
)

EDIT = "/v1/inference/images/edit"
EDIT_MODELS = {
    "stability/inpaint": ("0.03", ["edit", "inpaint"]),
    "stability/outpaint": ("0.04", ["edit"]),
    "stability/search-and-replace": ("0.04", ["edit"]),
    "stability/erase": ("0.03", ["edit", "inpaint"]),
}


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeStability]:
    with FakeStability(STABILITY_KEY) as fake:
        yield fake


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, models_dir: Path, upstream: FakeStability
) -> Iterator[Server]:
    instance = Server(
        tmp_path_factory.mktemp("stability-edit") / "data",
        models_dir,
        PIXELGATE_STABILITY_API_KEY=STABILITY_KEY,
        PIXELGATE_STABILITY_BASE_URL=upstream.url,
    ).start()
    yield instance
    instance.stop()


@pytest.fixture
def api(server: Server, upstream: FakeStability) -> Iterator[httpx.Client]:
    upstream.received.clear()
    upstream.finish_reason = "SUCCESS"
    with server.client() as client:
        client.headers["Cache-Control"] = "no-cache"
        yield client


def photo() -> bytes:
    return image_bytes(96, 64, "jpeg")


def white_mask() -> bytes:
    return image_bytes(96, 64, color=(255, 255, 255))


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def size_of_result(response: httpx.Response) -> tuple[int, int]:
    assert response.status_code == 200, response.text
    item = response.json()["data"]["data"][0]
    return Image.open(io.BytesIO(base64.b64decode(item["b64_json"]))).size


def edit(client: httpx.Client, model: str, **body: Any) -> httpx.Response:
    return client.post(
        EDIT,
        json={"model": model, "input_image": b64(photo()), "response_format": "b64_json", **body},
    )


def sent_fields(upstream: FakeStability, path: str) -> dict[str, str]:
    [request] = upstream.requests_to(path)
    return {name: part.text for name, part in request.parts.items() if part.filename is None}


def test_the_edit_models_are_listed_with_prices_and_availability(api: httpx.Client) -> None:
    models = {model["id"]: model for model in api.get("/v1/models").json()["data"]}

    for model_id, (price, capabilities) in EDIT_MODELS.items():
        listed = models[model_id]
        assert listed["available"] is True, listed
        assert listed["prices"] == {"default": price}
        assert listed["capabilities"] == capabilities
    properties = models["stability/outpaint"]["options_schema"]["properties"]
    assert {"left", "right", "up", "down", "creativity", "prompt"} <= set(properties)
    assert properties["left"]["title"] == "Extend left"
    assert "prompt" not in models["stability/erase"]["options_schema"]["properties"]
    schema = models["stability/search-and-replace"]["options_schema"]
    assert {"prompt", "search_prompt"} <= set(schema["required"])


def test_inpaint_as_multipart_with_a_mask(api: httpx.Client, upstream: FakeStability) -> None:
    response = api.post(
        EDIT,
        data={"model": "stability/inpaint", "prompt": "a red fox", "grow_mask": "10", "seed": "4"},
        files={"image": ("photo.jpg", photo(), "image/jpeg"), "mask": ("m.png", white_mask())},
    )

    assert response.status_code == 200, response.text
    [request] = upstream.requests_to(INPAINT)
    assert request.headers["authorization"] == f"Bearer {STABILITY_KEY}"
    assert set(request.parts) >= {"image", "mask"}
    assert sent_fields(upstream, INPAINT) == {
        "prompt": "a red fox",
        "grow_mask": "10",
        "seed": "4",
        "output_format": "png",
    }


def test_outpaint_makes_an_image_larger_than_its_input(
    api: httpx.Client, upstream: FakeStability
) -> None:
    response = edit(api, "stability/outpaint", left=32, up=16, creativity=0.5)

    assert size_of_result(response) == (96 + 32, 64 + 16)
    fields = sent_fields(upstream, OUTPAINT)
    assert (fields["left"], fields["up"], fields["creativity"]) == ("32", "16", "0.5")
    assert "prompt" not in fields


def test_outpaint_with_every_side_zero_is_a_400_naming_left(
    api: httpx.Client, upstream: FakeStability
) -> None:
    error = error_of(edit(api, "stability/outpaint", prompt="more sky"))

    assert (error["code"], error["param"]) == ("VALIDATION_ERROR", "left")
    assert "left, right, up and down are all 0" in error["message"]
    assert upstream.received == []


def test_search_and_replace_needs_its_search_prompt(
    api: httpx.Client, upstream: FakeStability
) -> None:
    error = error_of(edit(api, "stability/search-and-replace", prompt="a dog"))
    assert (error["param"], error["message"]) == (
        "search_prompt",
        "Missing required option 'search_prompt'",
    )
    assert upstream.received == []

    response = edit(api, "stability/search-and-replace", prompt="a dog", search_prompt="the cat")

    assert size_of_result(response) == (96, 64)
    fields = sent_fields(upstream, SEARCH_AND_REPLACE)
    assert (fields["prompt"], fields["search_prompt"]) == ("a dog", "the cat")


def test_erase_takes_no_prompt_and_ignores_one_with_a_note(
    api: httpx.Client, upstream: FakeStability
) -> None:
    response = edit(api, "stability/erase", prompt="remove the cat", mask_image=b64(white_mask()))

    assert size_of_result(response) == (96, 64)
    assert "prompt" not in sent_fields(upstream, ERASE)
    assert response.json()["data"]["adjustments"] == [
        {
            "param": "prompt",
            "from": "remove the cat",
            "to": "ignored",
            "reason": "stability/erase takes no prompt: it fills the masked area from the "
            "image itself",
        }
    ]


def test_erase_without_a_mask_on_an_opaque_image_is_a_400_naming_mask(
    api: httpx.Client, upstream: FakeStability
) -> None:
    error = error_of(edit(api, "stability/erase"))

    assert (error["code"], error["param"]) == ("MUST_PROVIDE_FILE", "mask")
    assert upstream.received == []


def job_ids(api: httpx.Client) -> list[str]:
    """The jobs listed, by id: their bodies carry media links signed afresh at each read."""
    return [job["id"] for job in api.get("/v1/jobs").json()["data"]]


@pytest.mark.parametrize("model", ["stability/inpaint", "stability/erase"])
@pytest.mark.parametrize("asynchronous", [False, True])
def test_an_opaque_image_without_a_mask_is_refused_at_submit(
    api: httpx.Client, upstream: FakeStability, model: str, asynchronous: bool
) -> None:
    """The rule is the service's (the catalog's `transparency_as_mask`): an asynchronous job is
    refused when submitted, not accepted and then failed by the provider."""
    jobs_before = job_ids(api)

    response = edit(api, model, prompt="a fox", **({"async": True} if asynchronous else {}))

    assert response.status_code == 400, response.text
    error = error_of(response)
    assert (error["code"], error["param"]) == ("MUST_PROVIDE_FILE", "mask")
    assert "transparent pixels" in error["message"]
    assert job_ids(api) == jobs_before
    assert upstream.received == []


@pytest.mark.parametrize(
    ("model", "options"),
    [("stability/outpaint", {"left": 10}), ("stability/search-and-replace", {"prompt": "a",
     "search_prompt": "b"})],
)  # fmt: skip
@pytest.mark.parametrize("asynchronous", [False, True])
def test_the_edits_that_find_their_area_refuse_a_mask_at_submit(
    api: httpx.Client,
    upstream: FakeStability,
    model: str,
    options: dict[str, Any],
    asynchronous: bool,
) -> None:
    """The catalog's `takes_mask = false`: refused before a job exists, never dropped silently."""
    jobs_before = job_ids(api)
    extra = {"async": True} if asynchronous else {}

    response = edit(api, model, mask_image=b64(white_mask()), **options, **extra)

    assert response.status_code == 400, response.text
    error = error_of(response)
    assert (error["code"], error["param"]) == ("VALIDATION_ERROR", "mask")
    assert "takes no mask" in error["message"]
    assert job_ids(api) == jobs_before
    assert upstream.received == []


def test_an_image_with_transparent_pixels_is_its_own_mask(
    api: httpx.Client, upstream: FakeStability
) -> None:
    pixels = Image.new("RGBA", (96, 64), (200, 40, 40, 255))
    pixels.putpixel((10, 10), (0, 0, 0, 0))
    buffer = io.BytesIO()
    pixels.save(buffer, format="PNG")

    response = edit(api, "stability/inpaint", prompt="a fox", input_image=b64(buffer.getvalue()))

    assert size_of_result(response) == (96, 64)
    [request] = upstream.requests_to(INPAINT)
    assert "image" in request.parts
    assert "mask" not in request.parts


def test_erase_through_the_openai_edits_route(api: httpx.Client, upstream: FakeStability) -> None:
    """OpenAI's edits require a prompt; erase takes none, so it is set aside."""
    response = api.post(
        "/v1/images/edits",
        data={"model": "stability/erase", "prompt": "remove it", "response_format": "b64_json"},
        files={"image": ("photo.jpg", photo(), "image/jpeg"), "mask": ("m.png", white_mask())},
    )

    assert response.status_code == 200, response.text
    assert "prompt" not in sent_fields(upstream, ERASE)


def test_a_filtered_result_is_a_backend_error(api: httpx.Client, upstream: FakeStability) -> None:
    upstream.finish_reason = "CONTENT_FILTERED"

    response = edit(api, "stability/outpaint", right=8)

    assert response.status_code == 502, response.text
    assert response.json()["error"]["code"] == "BACKEND_ERROR"
    assert "CONTENT_FILTERED" in response.json()["error"]["message"]
