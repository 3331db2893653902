"""`POST /v1/inference/images/edit` end to end: image-to-image and inpainting on tiny
pipelines of every family, JSON and multipart, by reference, resizes reported, bad inputs."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from PIL import Image

import pixelgate
from pixelgate.cli.main import main
from tests.conftest import Server
from tests.helpers import generate, wait_for
from tests.providers.local_pipelines import build_family_models, catalog_text

EDIT = "/v1/inference/images/edit"


@pytest.fixture(scope="module")
def edit_server(tmp_path_factory: pytest.TempPathFactory, models_dir: Path) -> Iterator[Server]:
    build_family_models(models_dir)
    catalog = tmp_path_factory.mktemp("catalog") / "catalog.toml"
    catalog.write_text(catalog_text())
    data = tmp_path_factory.mktemp("edit") / "data"
    instance = Server(data, models_dir, PIXELGATE_CATALOG_FILE=str(catalog)).start()
    yield instance
    instance.stop()


@pytest.fixture
def api(edit_server: Server) -> Iterator[httpx.Client]:
    # every edit runs its model: equal results must come from equal work, not the cache
    with edit_server.client() as client:
        client.headers["Cache-Control"] = "no-cache"
        yield client


def picture(size: tuple[int, int] = (64, 64), fmt: str = "PNG") -> bytes:
    """A left-to-right gradient with a square: something the pixels can be checked against."""
    image = Image.new("RGB", size)
    image.putdata(
        [
            (x * 255 // size[0], y * 255 // size[1], 90)
            for y in range(size[1])
            for x in range(size[0])
        ]
    )
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def half_mask(size: tuple[int, int] = (64, 64)) -> bytes:
    """White (repaint) on the left half, black (keep) on the right."""
    mask = Image.new("L", size, 0)
    mask.paste(255, (0, 0, size[0] // 2, size[1]))
    buffer = io.BytesIO()
    mask.save(buffer, format="PNG")
    return buffer.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def edit(client: httpx.Client, **body: Any) -> httpx.Response:
    return client.post(EDIT, json={"model": "local/tiny", "prompt": "a red circle", **body})


def first_image(response: httpx.Response) -> Image.Image:
    assert response.status_code == 200, response.text
    item = response.json()["data"]["data"][0]
    return Image.open(io.BytesIO(base64.b64decode(item["b64_json"]))).convert("RGB")


def test_image_to_image_follows_the_input_size_and_strength(api: httpx.Client) -> None:
    source = picture((64, 48))
    common = {"input_image": b64(source), "seed": 5, "response_format": "b64_json"}

    light = first_image(edit(api, strength=0.3, **common))
    again = first_image(edit(api, strength=0.3, **common))
    heavy = first_image(edit(api, strength=1.0, **common))

    assert light.size == (64, 48)
    assert light.tobytes() == again.tobytes()  # same seed, same image
    assert light.tobytes() != heavy.tobytes()


def test_inpainting_keeps_every_pixel_under_black(api: httpx.Client) -> None:
    source = picture()
    response = edit(
        api,
        input_image=b64(source),
        mask_image=b64(half_mask()),
        seed=3,
        response_format="b64_json",
    )

    result = first_image(response)
    original = Image.open(io.BytesIO(source)).convert("RGB")
    kept = (32, 0, 64, 64)
    assert result.crop(kept).tobytes() == original.crop(kept).tobytes()
    assert result.crop((0, 0, 32, 64)).tobytes() != original.crop((0, 0, 32, 64)).tobytes()
    assert (
        "adjustments" not in response.json()["data"] or not response.json()["data"]["adjustments"]
    )


def test_multipart_upload_gives_the_same_image_as_json(api: httpx.Client) -> None:
    source, mask = picture(), half_mask()
    as_json = first_image(
        edit(
            api,
            input_image=b64(source),
            mask_image=b64(mask),
            seed=9,
            strength=0.7,
            response_format="b64_json",
        )
    )
    response = api.post(
        EDIT,
        data={
            "model": "local/tiny",
            "prompt": "a red circle",
            "seed": "9",
            "strength": "0.7",
            "response_format": "b64_json",
        },
        files={
            "image": ("in.png", source, "image/png"),
            "mask": ("mask.png", mask, "image/png"),
        },
    )

    assert first_image(response).tobytes() == as_json.tobytes()
    assert not response.json()["data"].get("cached")


def test_editing_a_stored_result_by_reference(api: httpx.Client) -> None:
    made = generate(api, seed=1)
    assert made.status_code == 200, made.text
    file_id = made.json()["data"]["data"][0]["file_id"]

    response = edit(api, input_image_file_id=file_id, strength=0.5, seed=2)

    assert response.status_code == 200, response.text
    assert response.json()["data"]["data"][0]["file_id"] != file_id


def test_a_mask_of_another_size_is_resized_and_reported(api: httpx.Client) -> None:
    response = edit(
        api,
        input_image=b64(picture((64, 64))),
        mask_image=b64(half_mask((32, 16))),
        seed=4,
        **{"async": True},
    )
    assert response.status_code == 202, response.text
    job = wait_for(api, response.json()["data"]["id"], "succeeded", "failed")

    assert job["status"] == "succeeded", job
    assert job["result"]["adjustments"] == [
        {
            "param": "mask",
            "from": "32x16",
            "to": "64x64",
            "reason": "the mask is resized to the image's size",
        }
    ]


def test_flux_fill_input_is_resized_to_multiples_of_16_and_reported(api: httpx.Client) -> None:
    response = edit(
        api,
        model="test/flux-fill",
        input_image=b64(picture((100, 75))),
        mask_image=b64(half_mask((100, 75))),
        seed=1,
    )

    assert response.status_code == 200, response.text
    data = response.json()["data"]
    image_item, mask_item = (
        {"param": "image", "from": "100x75", "to": "96x80"},
        {"param": "mask", "from": "100x75"},
    )
    [adjustment] = data["adjustments"]
    assert {key: adjustment[key] for key in image_item} == image_item
    assert "multiples of 16" in adjustment["reason"]
    assert mask_item["param"] != adjustment["param"]  # a mask the image's size follows it silently
    stored = api.get(f"/v1/jobs/{data['job_id']}").json()["data"]
    assert stored["result"]["adjustments"] == data["adjustments"]
    content = httpx.get(data["data"][0]["url"]).content
    assert Image.open(io.BytesIO(content)).size == (96, 80)


@pytest.mark.parametrize("model", ["test/sd", "test/sdxl", "test/flux"])
def test_every_family_does_every_task(api: httpx.Client, model: str) -> None:
    source = picture((32, 32))
    made = generate(api, model=model, seed=1)
    redrawn = edit(api, model=model, input_image=b64(source), strength=0.6, seed=1)
    inpainted = edit(
        api, model=model, input_image=b64(source), mask_image=b64(half_mask((32, 32))), seed=1
    )

    for response in (made, redrawn, inpainted):
        assert response.status_code == 200, response.text


def test_flux_fill_edits_only_with_a_mask(api: httpx.Client) -> None:
    response = edit(api, model="test/flux-fill", input_image=b64(picture((32, 32))))

    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["code"], error["param"]) == ("MUST_PROVIDE_FILE", "mask")
    assert "only inpaints: send a mask" in error["message"]


def test_flux_fill_rounds_a_requested_size_to_multiples_of_16_and_says_so(
    api: httpx.Client,
) -> None:
    response = edit(
        api,
        model="test/flux-fill",
        input_image=b64(picture((64, 64))),
        mask_image=b64(half_mask((64, 64))),
        width=100,
        height=75,
        seed=1,
    )

    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert data["adjustments"][-1] == {
        "param": "size",
        "from": "100x75",
        "to": "96x80",
        "reason": "test/flux-fill takes sizes that are multiples of 16; the requested width "
        "and height are rounded to the nearest",
    }
    content = httpx.get(data["data"][0]["url"]).content
    assert Image.open(io.BytesIO(content)).size == (96, 80)


def test_a_decompression_bomb_is_refused_with_413_before_decoding(api: httpx.Client) -> None:
    bomb = io.BytesIO()
    Image.new("L", (5000, 5000)).save(bomb, format="PNG")  # 25 megapixels in a few kB
    assert len(bomb.getvalue()) < 100_000

    response = edit(api, input_image=b64(bomb.getvalue()))

    assert response.status_code == 413
    assert response.json()["error"] == {
        "code": "PAYLOAD_TOO_LARGE",
        "message": "input_image is 5000x5000 pixels; the limit is 16777216 pixels",
        "param": "input_image",
    }


@pytest.mark.parametrize(
    ("data", "why"),
    [(b"not an image at all", "garbage"), (picture()[:80], "truncated PNG")],
)
def test_corrupt_input_is_a_validation_error_naming_the_field(
    api: httpx.Client, data: bytes, why: str
) -> None:
    as_json = edit(api, input_image=b64(picture()), mask_image=b64(data))
    as_upload = api.post(
        EDIT,
        data={"model": "local/tiny", "prompt": "x"},
        files={"image": ("in.png", data, "image/png")},
    )

    assert as_json.status_code == 400, why
    assert as_json.json()["error"]["code"] == "VALIDATION_ERROR"
    assert as_json.json()["error"]["param"] == "mask_image"
    assert as_upload.status_code == 400, why
    assert as_upload.json()["error"]["param"] == "image"


def test_bad_base64_is_a_validation_error(api: httpx.Client) -> None:
    response = edit(api, input_image="@@not base64@@")

    assert response.status_code == 400
    assert response.json()["error"]["param"] == "input_image"


def test_an_edit_without_an_image_must_provide_a_file(api: httpx.Client) -> None:
    response = edit(api)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "MUST_PROVIDE_FILE"


def test_strength_is_refused_for_text_to_image(api: httpx.Client) -> None:
    response = generate(api, strength=0.5)

    assert response.status_code == 400
    assert response.json()["error"]["param"] == "strength"
    assert "image editing only" in response.json()["error"]["message"]


def test_strength_out_of_range_is_refused(api: httpx.Client) -> None:
    response = edit(api, input_image=b64(picture()), strength=1.5)

    assert response.status_code == 400
    assert response.json()["error"]["param"] == "strength"


def test_the_sdk_and_the_cli_edit_with_a_mask(edit_server: Server, tmp_path: Path) -> None:
    source, mask = tmp_path / "in.png", tmp_path / "mask.png"
    source.write_bytes(picture((64, 64)))
    mask.write_bytes(half_mask((32, 32)))
    out = tmp_path / "out.png"

    with pixelgate.Client(base_url=edit_server.url, api_key=edit_server.admin_key) as client:
        result = client.images.edit(
            source, model="local/tiny", prompt="a boat", mask=mask, strength=0.9, seed=3
        )
    arguments = ["edit", str(source), "-p", "a boat", "--mask", str(mask), "-o", str(out)]
    cli = CliRunner().invoke(
        main,
        [*arguments, "--strength", "0.9", "--seed", "3"],
        env={"PIXELGATE_URL": edit_server.url, "PIXELGATE_API_KEY": edit_server.admin_key},
    )

    assert result.adjustments is not None and result.adjustments[0]["param"] == "mask"
    assert cli.exit_code == 0, cli.output
    assert "note: mask resized 32x32 -> 64x64" in cli.stderr
    with Image.open(out) as saved:
        assert saved.size == (64, 64)
