"""Generations, edits and variations through the official `openai` SDK, sync and async, on
both mounts (`/v1` and `/oai/v1`), with local models and hosted ones behind the fake upstream."""

from __future__ import annotations

import base64
import io

import httpx
import openai
import pytest
from PIL import Image

from tests.api.openai.conftest import image_of, images, message_of, png
from tests.conftest import Server
from tests.providers.upstreams.images import image_bytes
from tests.providers.upstreams.openai import EDITS, GENERATIONS, VARIATIONS, FakeOpenAI
from tests.providers.upstreams.server import Reply


def test_generate_a_url_that_serves_the_png(client: openai.OpenAI, gateway: Server) -> None:
    result = client.images.generate(model="local/tiny", prompt="a red circle", size="64x64")

    [item] = images(result)
    assert item.b64_json is None
    assert item.url is not None and item.url.startswith(gateway.url + "/v1/media/")
    assert result.size == "64x64"
    assert result.output_format == "png"
    assert result.created > 0
    media = httpx.get(item.url)  # no key: the signed link is the credential
    assert media.headers["content-type"] == "image/png"
    assert image_of(media.content).size == (64, 64)


def test_generate_b64_json_with_the_size_as_width_and_height(client: openai.OpenAI) -> None:
    result = client.images.generate(
        model="tiny", prompt="a blue square", size="96x32", n=2, response_format="b64_json"
    )

    assert len(images(result)) == 2
    for item in images(result):
        assert item.url is None and item.b64_json is not None
        picture = image_of(base64.b64decode(item.b64_json))
        assert (picture.format, picture.size) == ("PNG", (96, 32))


def test_the_models_own_options_ride_in_extra_body(client: openai.OpenAI) -> None:
    def draw() -> bytes:
        result = client.images.generate(
            model="local/tiny",
            prompt="seeded",
            response_format="b64_json",
            extra_body={"seed": 1234, "num_steps": 2, "output_format": "webp"},
        )
        assert result.output_format == "webp"
        return base64.b64decode(images(result)[0].b64_json or "")

    first, second = draw(), draw()

    assert image_of(first).format == "WEBP"
    assert first == second  # same seed and options: the same picture (a cache hit)


def test_the_job_is_named_in_a_header(client: openai.OpenAI, gateway: Server) -> None:
    raw = client.images.with_raw_response.generate(model="local/tiny", prompt="x")

    job_id = raw.headers["x-pixelgate-job-id"]
    with gateway.client() as native:
        job = native.get(f"/v1/jobs/{job_id}").json()["data"]
    assert job["status"] == "succeeded"
    assert job["model"] == "local/tiny"


@pytest.mark.anyio
async def test_async_client_generates(async_client: openai.AsyncOpenAI) -> None:
    result = await async_client.images.generate(
        model="local/tiny", prompt="async", size="32x48", response_format="b64_json"
    )

    assert image_of(base64.b64decode(images(result)[0].b64_json or "")).size == (32, 48)


def test_edit_with_a_mask(client: openai.OpenAI) -> None:
    mask = png((64, 64), (255, 255, 255, 255))

    result = client.images.edit(
        model="local/tiny",
        image=("in.png", png((64, 64)), "image/png"),
        mask=("mask.png", mask, "image/png"),
        prompt="a green field",
        response_format="b64_json",
        extra_body={"seed": 3, "num_steps": 2},
    )

    [item] = images(result)
    assert image_of(base64.b64decode(item.b64_json or "")).size == (64, 64)


@pytest.mark.anyio
async def test_async_edit_answers_a_link(async_client: openai.AsyncOpenAI) -> None:
    result = await async_client.images.edit(
        model="local/tiny",
        image=("in.png", png((64, 64)), "image/png"),
        prompt="image to image",
        extra_body={"strength": 0.5, "num_steps": 2},
    )

    url = images(result)[0].url
    assert url is not None
    async with httpx.AsyncClient() as http:
        assert image_of((await http.get(url)).content).size == (64, 64)


def test_an_edit_takes_one_image(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.images.edit(
            model="local/tiny",
            image=[("a.png", png(), "image/png"), ("b.png", png(), "image/png")],
            prompt="two",
        )

    assert caught.value.param == "image"
    assert "got 2" in message_of(caught.value)


def test_an_edit_without_an_image_names_it(gateway: Server) -> None:
    with gateway.client() as http:
        response = http.post("/v1/images/edits", data={"model": "local/tiny", "prompt": "x"})

    assert response.status_code == 400
    assert response.json()["error"] == {
        "message": "Image editing needs an input image",
        "type": "invalid_request_error",
        "param": "image",
        "code": "missing_required_parameter",
    }


# -- hosted models, through the fake OpenAI upstream -------------------------------------


def test_dall_e_3_revised_prompt_and_pixelgates_own_link(
    client: openai.OpenAI, gateway: Server, upstream: FakeOpenAI
) -> None:
    result = client.images.generate(
        model="dall-e-3", prompt="a lighthouse", size="1792x1024", quality="hd"
    )

    [item] = images(result)
    assert item.revised_prompt == "A detailed rendering of a lighthouse"
    assert item.url is not None and item.url.startswith(gateway.url + "/v1/media/")
    assert upstream.url not in item.url
    sent = upstream.requests_to(GENERATIONS)[-1].json
    assert (sent["size"], sent["quality"], sent["style"]) == ("1792x1024", "hd", "vivid")
    assert httpx.get(item.url).content == upstream.made[-1]  # stored by pixelgate
    assert (result.size, result.quality) == ("1792x1024", "hd")


def test_the_response_says_what_it_cost(client: openai.OpenAI, gateway: Server) -> None:
    """pixelgate's `cost` rides as an extra field, which the SDK keeps on the response."""
    paid = client.images.with_raw_response.generate(
        model="dall-e-3", prompt="a costly lighthouse", size="1792x1024", quality="hd"
    )
    free = client.images.generate(model="local/tiny", prompt="a free circle", size="32x32")

    cost = paid.parse().model_extra or {}
    assert cost["cost"] == {"amount": "0.12", "currency": "USD"}  # the catalog's hd 1792x1024
    assert (free.model_extra or {})["cost"] == {"amount": "0.00", "currency": "USD"}
    with gateway.client() as native:
        job = native.get(f"/v1/jobs/{paid.headers['x-pixelgate-job-id']}").json()["data"]
    assert job["cost"] == {"amount": "0.12", "currency": "USD"}


def test_gpt_image_answers_b64_json_by_default(client: openai.OpenAI, upstream: FakeOpenAI) -> None:
    result = client.images.generate(
        model="gpt-image-1", prompt="a fox", size="1024x1024", background="opaque"
    )

    [item] = images(result)
    assert item.url is None
    assert base64.b64decode(item.b64_json or "") == upstream.made[-1]
    assert (result.background, result.output_format) == ("opaque", "png")


def test_variations_of_dall_e_2(client: openai.OpenAI, upstream: FakeOpenAI) -> None:
    result = client.images.create_variation(
        model="dall-e-2", image=("in.png", png((256, 256)), "image/png"), n=2, size="256x256"
    )

    assert len(images(result)) == 2
    sent = upstream.requests_to(VARIATIONS)[-1]
    assert sent.parts["image"].filename is not None
    assert (sent.parts["n"].text, sent.parts["size"].text) == ("2", "256x256")
    fetched = [httpx.get(item.url or "").content for item in images(result)]
    assert fetched == upstream.made[-2:]


def test_a_model_without_variations_is_refused(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.images.create_variation(model="local/tiny", image=("in.png", png(), "image/png"))

    assert caught.value.param == "model"
    assert message_of(caught.value) == "Model 'local/tiny' does not support image variations"


# -- issue 19, item 11: `user` and `metadata` -----------------------------------------------


def test_user_reaches_openai_and_metadata_is_kept_with_the_job(
    client: openai.OpenAI, gateway: Server, upstream: FakeOpenAI
) -> None:
    raw = client.images.with_raw_response.generate(
        model="dall-e-2",
        prompt="a lighthouse",
        size="256x256",
        user="end-user-7",
        extra_body={"metadata": {"order": 42}},
    )

    sent = upstream.requests_to(GENERATIONS)[-1].json
    assert sent["user"] == "end-user-7"
    assert "metadata" not in sent
    with gateway.client() as native:
        job = native.get(f"/v1/jobs/{raw.headers['x-pixelgate-job-id']}").json()["data"]
    assert (job["user"], job["metadata"]) == ("end-user-7", {"order": 42})


def test_user_and_metadata_are_kept_with_a_local_models_job(
    client: openai.OpenAI, gateway: Server
) -> None:
    raw = client.images.with_raw_response.generate(
        model="local/tiny", prompt="x", user="u-1", extra_body={"metadata": {"k": "v"}}
    )

    with gateway.client() as native:
        job = native.get(f"/v1/jobs/{raw.headers['x-pixelgate-job-id']}").json()["data"]
    assert (job["status"], job["user"], job["metadata"]) == ("succeeded", "u-1", {"k": "v"})


def test_the_native_api_sends_user_to_openai_too(gateway: Server, upstream: FakeOpenAI) -> None:
    with gateway.client() as native:
        response = native.post(
            "/v1/inference/images/generate",
            json={"model": "dall-e-2", "prompt": "x", "size": "256x256", "user": "native-user"},
        )
    assert response.status_code == 200, response.text
    assert upstream.requests_to(GENERATIONS)[-1].json["user"] == "native-user"


def test_a_user_over_256_characters_is_refused(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.images.generate(model="local/tiny", prompt="x", user="u" * 257)
    assert caught.value.param == "user"


# -- issue 19, item 9: masks mean the same on every model -----------------------------------


def openai_mask(size: tuple[int, int] = (64, 64)) -> bytes:
    """OpenAI's convention: transparent (edit) on the left half, opaque (keep) on the right."""
    mask = Image.new("RGBA", size, (0, 0, 0, 255))
    mask.paste((0, 0, 0, 0), (0, 0, size[0] // 2, size[1]))
    buffer = io.BytesIO()
    mask.save(buffer, format="PNG")
    return buffer.getvalue()


def test_an_sdk_mask_keeps_its_opaque_half_on_a_local_model(client: openai.OpenAI) -> None:
    source = png((64, 64), (30, 120, 200))

    result = client.images.edit(
        model="local/tiny",
        image=("in.png", source, "image/png"),
        mask=("mask.png", openai_mask(), "image/png"),
        prompt="a green field",
        response_format="b64_json",
        extra_body={"seed": 5, "num_steps": 2},
    )

    edited = image_of(base64.b64decode(images(result)[0].b64_json or "")).convert("RGB")
    original = image_of(source).convert("RGB")
    kept, repainted = (32, 0, 64, 64), (0, 0, 32, 64)
    assert edited.crop(kept).tobytes() == original.crop(kept).tobytes()
    assert edited.crop(repainted).tobytes() != original.crop(repainted).tobytes()


def test_dall_e_2_gets_a_square_rgba_png_and_openais_mask(
    gateway: Server, upstream: FakeOpenAI
) -> None:
    jpeg = io.BytesIO()
    Image.new("RGB", (96, 64), (10, 200, 30)).save(jpeg, format="JPEG")
    white_left = Image.new("L", (96, 64), 0)
    white_left.paste(255, (0, 0, 48, 64))
    mask = io.BytesIO()
    white_left.save(mask, format="PNG")

    with gateway.client() as native:
        response = native.post(
            "/v1/inference/images/edit",
            data={"model": "dall-e-2", "prompt": "x", "size": "256x256"},
            files={"image": ("in.jpg", jpeg.getvalue()), "mask": ("m.png", mask.getvalue())},
        )

    assert response.status_code == 200, response.text
    adjustments = response.json()["data"]["adjustments"]
    assert [(a["param"], a["from"], a["to"]) for a in adjustments] == [
        ("image", "96x64", "96x96"),
        ("mask", "96x64", "96x96"),
    ]
    parts = upstream.requests_to(EDITS)[-1].parts
    sent_image = Image.open(io.BytesIO(parts["image"].data))
    assert (sent_image.format, sent_image.mode, sent_image.size) == ("PNG", "RGBA", (96, 96))
    sent_mask = Image.open(io.BytesIO(parts["mask"].data))
    assert (sent_mask.format, sent_mask.mode, sent_mask.size) == ("PNG", "RGBA", (96, 96))
    alpha = sent_mask.getchannel("A")
    assert alpha.crop((0, 0, 48, 96)).getextrema() == (0, 0)
    assert alpha.crop((48, 0, 96, 96)).getextrema() == (255, 255)


def test_an_upstream_that_answers_more_images_than_asked_is_cut_to_n(
    client: openai.OpenAI, upstream: FakeOpenAI, gateway: Server
) -> None:
    """Issue 19.4: eight images for `n=1` were all stored and returned while one was charged."""
    extra = [image_bytes(256, 256, "png", color=(i, 1, 2)) for i in range(8)]
    upstream.script(
        GENERATIONS,
        Reply.json(
            {"created": 1, "data": [{"b64_json": base64.b64encode(raw).decode()} for raw in extra]}
        ),
    )
    raw = client.images.with_raw_response.generate(
        model="dall-e-2", prompt="one", n=1, size="256x256", response_format="b64_json"
    )

    result = raw.parse()
    assert [base64.b64decode(item.b64_json or "") for item in images(result)] == extra[:1]
    with gateway.client() as native:
        job = native.get(f"/v1/jobs/{raw.headers['x-pixelgate-job-id']}").json()["data"]
    assert len(job["result"]["data"]) == 1
