"""The native API under the names the product's source documents use: the SDK's camelCase
(`modelName`, `numberOfImagesToGenerate`, `negativePrompt`, `outputFormat`, ...) and the
serverless API's `model_name`, on generate, edit and remove-background; and `size` and
`quality` on every model."""

from __future__ import annotations

import base64
import io
from typing import Any

import httpx
import pytest
from PIL import Image

from tests.api.openai.conftest import png as png_bytes
from tests.helpers import GENERATE, error_of

EDIT = "/v1/inference/images/edit"
REMOVE_BACKGROUND = "/v1/inference/images/remove-background"


def pictures(response: httpx.Response) -> list[Image.Image]:
    assert response.status_code == 200, response.text
    return [
        Image.open(io.BytesIO(base64.b64decode(item["b64_json"])))
        for item in response.json()["data"]["data"]
    ]


def png(size: tuple[int, int] = (64, 64)) -> str:
    return base64.b64encode(png_bytes(size)).decode()


def test_the_sdks_camel_case_names(api: httpx.Client) -> None:
    sdk_names = {
        "modelName": "local/tiny",
        "prompt": "a red circle",
        "numberOfImagesToGenerate": 2,
        "negativePrompt": "blurry",
        "outputFormat": "webp",
        "responseFormat": "b64_json",
        "numSteps": 2,
        "guidanceScale": 3.0,
        "seed": 11,
    }

    response = api.post(GENERATE, json=sdk_names)

    made = pictures(response)
    assert [(picture.format, picture.size) for picture in made] == [("WEBP", (64, 64))] * 2
    result = response.json()["data"]
    assert result["model"] == "local/tiny"
    assert [item["seed"] for item in result["data"]] == [11, 12]


def test_the_same_request_under_either_name_is_the_same_request(api: httpx.Client) -> None:
    """camelCase names reach the model as its own options: the same seed and options draw
    the same picture."""
    own = {"model": "tiny", "negative_prompt": "blue", "guidance_scale": 2.0, "num_steps": 2}
    camel = {"modelName": "tiny", "negativePrompt": "blue", "guidanceScale": 2.0, "numSteps": 2}
    other = {**camel, "negativePrompt": "green"}
    common = {"prompt": "a circle", "seed": 5, "response_format": "b64_json", "cache": False}

    [first] = pictures(api.post(GENERATE, json={**own, **common}))
    [second] = pictures(api.post(GENERATE, json={**camel, **common}))
    [third] = pictures(api.post(GENERATE, json={**other, **common}))

    assert first.tobytes() == second.tobytes()
    assert first.tobytes() != third.tobytes()  # the negative prompt did reach the model


def test_the_serverless_model_name(api: httpx.Client) -> None:
    response = api.post(
        GENERATE,
        json={"model_name": "local/tiny", "prompt": "a circle", "width": 96, "height": 32,
              "num_steps": 2, "response_format": "b64_json"},
    )  # fmt: skip

    assert [picture.size for picture in pictures(response)] == [(96, 32)]


def test_an_edit_under_camel_case_names_json_and_multipart(api: httpx.Client) -> None:
    fields = {"modelName": "local/tiny", "prompt": "a circle", "numSteps": 4,
              "responseFormat": "b64_json", "negativePrompt": "1234"}  # fmt: skip

    as_json = api.post(EDIT, json={**fields, "inputImage": png((96, 32))})
    as_form = api.post(
        EDIT,
        data={key: str(value) for key, value in fields.items()},
        files={"image": ("in.png", base64.b64decode(png((96, 32))), "image/png")},
    )

    assert [picture.size for picture in pictures(as_json)] == [(96, 32)]
    # a form's `negativePrompt` stays text, as `negative_prompt` does
    assert [picture.size for picture in pictures(as_form)] == [(96, 32)]


@pytest.mark.parametrize(
    ("path", "body", "param", "message"),
    [
        (
            GENERATE,
            {"model": "local/tiny", "modelName": "dall-e-3", "prompt": "x"},
            "modelName",
            "model and modelName are one field, sent as 'local/tiny' and 'dall-e-3'; send one",
        ),
        (
            GENERATE,
            {"model": "tiny", "prompt": "x", "n": 1, "numberOfImagesToGenerate": 2},
            "numberOfImagesToGenerate",
            "n and numberOfImagesToGenerate are one field, sent as 1 and 2; send one",
        ),
        (
            GENERATE,
            {"modelName": "tiny", "model_name": "sd-turbo", "prompt": "x"},
            "model_name",
            "modelName and model_name are one field, sent as 'tiny' and 'sd-turbo'; send one",
        ),
        (
            EDIT,
            {"model": "tiny", "prompt": "x", "input_image": png(), "inputImage": png((8, 8))},
            "inputImage",
            None,
        ),
        (
            REMOVE_BACKGROUND,
            {"model": "u2netp", "modelName": "isnet-general-use", "image": png()},
            "modelName",
            "model and modelName are one field, sent as 'u2netp' and 'isnet-general-use'; send one",
        ),
    ],
)
def test_one_field_under_two_names_with_two_values_is_refused_naming_both(
    api: httpx.Client, path: str, body: dict[str, Any], param: str, message: str | None
) -> None:
    error = error_of(api.post(path, json=body))

    assert (error["code"], error["param"]) == ("VALIDATION_ERROR", param)
    if message is not None:
        assert error["message"] == message


def test_one_field_under_two_names_with_one_value_is_fine(api: httpx.Client) -> None:
    body = {"model": "tiny", "modelName": "tiny", "prompt": "x", "num_steps": 2}

    assert api.post(GENERATE, json=body).status_code == 200


def test_an_alias_reaches_remove_background(api: httpx.Client) -> None:
    """The shared server has no background-removal weights: the alias is read all the same,
    as the unknown model it names shows."""
    error = error_of(api.post(REMOVE_BACKGROUND, json={"modelName": "nope", "inputImage": png()}))

    assert error["param"] == "model"
    assert "Unsupported image model name: 'nope'" in error["message"]


def test_an_unknown_camel_case_name_is_an_unknown_option(api: httpx.Client) -> None:
    error = error_of(api.post(GENERATE, json={"modelName": "tiny", "prompt": "x", "fooBar": 1}))

    assert error["param"] == "fooBar"
    assert error["message"].startswith("Unknown option 'fooBar' for model 'local/tiny'; allowed:")


# -- size and quality (the gateway body itself: tests/api/openai/test_one_body.py) ------


def test_a_size_the_model_takes_needs_no_note(api: httpx.Client) -> None:
    response = api.post(
        GENERATE,
        json={"model": "tiny", "prompt": "x", "size": "96x32", "quality": "standard",
              "response_format": "b64_json"},
    )  # fmt: skip

    assert [picture.size for picture in pictures(response)] == [(96, 32)]
    assert response.json()["data"]["adjustments"] is None


def test_size_on_an_edit_sets_the_output_size(api: httpx.Client) -> None:
    response = api.post(
        EDIT,
        json={"model": "tiny", "prompt": "x", "input_image": png((64, 64)), "size": "96x32",
              "response_format": "b64_json"},
    )  # fmt: skip

    assert [picture.size for picture in pictures(response)] == [(96, 32)]


@pytest.mark.parametrize(
    ("fields", "param", "message"),
    [
        (
            {"size": "large"},
            "size",
            "Invalid size 'large': expected WIDTHxHEIGHT (such as 512x512) or auto",
        ),
        (
            {"quality": "ultra"},
            "quality",
            "Invalid quality: 'ultra'; allowed: auto, low, medium, standard, high, hd",
        ),
        ({"size": "64x64", "height": 64}, "height", "height is also set by size; send one"),
    ],
)
def test_bad_sizes_and_qualities(
    api: httpx.Client, fields: dict[str, Any], param: str, message: str
) -> None:
    error = error_of(api.post(GENERATE, json={"model": "tiny", "prompt": "x", **fields}))

    assert (error["param"], error["message"]) == (param, message)
