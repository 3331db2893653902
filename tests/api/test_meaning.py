# ruff: noqa: E501  (tables of exact bodies and messages read best one case per line)
"""One meaning on every route (issue 19): bad input is a 4xx naming the parameter, the same
mistake gets the same answer on every route, and nothing a caller sends is a 500."""

from __future__ import annotations

import base64
import io
from typing import Any

import httpx
import pytest
from PIL import Image

from tests.conftest import Server
from tests.helpers import GENERATE, error_of

EDIT = "/v1/inference/images/edit"
REMOVE_BACKGROUND = "/v1/inference/images/remove-background"


def png(size: tuple[int, int] = (64, 64)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 40, 40)).save(buffer, format="PNG")
    return buffer.getvalue()


# -- item 14 (remove-background's own: tests/api/test_remove_background.py) --------


def test_an_empty_file_to_edit_must_provide_a_file(api: httpx.Client) -> None:
    response = api.post(
        EDIT, data={"model": "local/tiny", "prompt": "x"}, files={"image": ("e.png", b"")}
    )
    assert (error_of(response)["code"], error_of(response)["param"]) == (
        "MUST_PROVIDE_FILE",
        "image",
    )


# -- item 8: nothing a caller sends is a 500 ---------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        (GENERATE, '{"model": "local/tiny", "prompt": "\\ud800"}', "prompt"),
        (GENERATE, '{"model": "local/tiny", "prompt": "x", "metadata": {"k": "\\udfff"}}', "metadata.k"),
        (EDIT, '{"model": "local/tiny", "prompt": "a \\ud800 b"}', "prompt"),
        (REMOVE_BACKGROUND, '{"metadata": {"k": "\\ud800"}}', "metadata.k"),
        ("/v1/images/generations", '{"model": "local/tiny", "prompt": "\\ud800"}', "prompt"),
    ],
)  # fmt: skip
def test_a_lone_surrogate_is_refused_naming_the_field(
    api: httpx.Client, path: str, body: str, param: str
) -> None:
    response = api.post(path, content=body, headers={"content-type": "application/json"})

    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == param
    assert "lone surrogate" in error["message"]


@pytest.mark.parametrize("path", [GENERATE, EDIT, "/v1/images/generations"])
def test_a_huge_integer_is_refused_naming_the_field(api: httpx.Client, path: str) -> None:
    body = '{"model": "local/tiny", "prompt": "x", "width": ' + "9" * 5000 + "}"
    response = api.post(path, content=body, headers={"content-type": "application/json"})

    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == "width"
    assert error["message"] == "Invalid width: a number of 5000 digits is out of range"


@pytest.mark.parametrize("tail", ["é", "1.sig", "².sig", "\u0660.x"])
def test_a_media_token_that_is_not_ascii_is_refused(server: Server, tail: str) -> None:
    response = httpx.get(f"{server.url}/v1/media/file_abc.{tail}é")

    assert response.status_code == 403, response.text
    assert response.json()["error"]["param"] == "token"


@pytest.mark.parametrize("value", ["1e308", "inf", "nan", "-1"])
def test_an_unbounded_look_back_for_workers_is_refused(api: httpx.Client, value: str) -> None:
    response = api.get("/v1/admin/workers", params={"within_seconds": value})

    error = error_of(response)
    assert (error["code"], error["param"]) == ("VALIDATION_ERROR", "within_seconds")


@pytest.mark.parametrize("size", ["²x²", "1x²", "9" * 5000 + "x1"])
def test_an_openai_size_of_other_digits_names_size(api: httpx.Client, size: str) -> None:
    response = api.post(
        "/v1/images/generations", json={"model": "local/tiny", "prompt": "x", "size": size}
    )

    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == "size"


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity"])
def test_a_float_that_is_not_finite_says_so(api: httpx.Client, value: str) -> None:
    body = '{"model": "local/tiny", "prompt": "x", "guidance_scale": ' + value + "}"
    response = api.post(GENERATE, content=body, headers={"content-type": "application/json"})

    assert error_of(response) == {
        "code": "VALIDATION_ERROR",
        "message": "Invalid guidance_scale: Input should be a finite number",
        "param": "guidance_scale",
    }


def test_an_edit_of_one_step_names_num_steps(api: httpx.Client) -> None:
    response = api.post(
        EDIT,
        json={
            "model": "local/tiny",
            "prompt": "x",
            "num_steps": 1,
            "input_image": base64.b64encode(png()).decode(),
        },
    )

    error = error_of(response)
    assert (error["code"], error["param"]) == ("VALIDATION_ERROR", "num_steps")
    assert "at least 2" in error["message"]


# -- item 15: the same mistake, the same answer ---------------------------------------------


MISTAKES = [
    ({"prompt": "x"}, "model", "Missing required field 'model'"),
    ({"model": "local/tiny", "prompt": "x", "metadata": 5}, "metadata", "Invalid metadata: Input should be a valid dictionary"),
    ({"model": "local/tiny", "prompt": "x", "response_format": "gif"}, "response_format", "Invalid response_format: 'gif'; allowed: 'url' or 'b64_json'"),
]  # fmt: skip


@pytest.mark.parametrize(("body", "param", "message"), MISTAKES)
@pytest.mark.parametrize("path", [GENERATE, EDIT])
def test_the_same_mistake_gets_the_same_answer_on_every_route(
    api: httpx.Client, path: str, body: dict[str, Any], param: str, message: str
) -> None:
    response = api.post(path, json=body)

    assert response.status_code == 400, response.text
    assert response.json()["error"] == {
        "code": "VALIDATION_ERROR",
        "message": message,
        "param": param,
    }


def test_remove_background_words_the_same_mistake_alike(api: httpx.Client) -> None:
    response = api.post(REMOVE_BACKGROUND, json={"metadata": 5})
    assert response.json()["error"] == {
        "code": "VALIDATION_ERROR",
        "message": "Invalid metadata: Input should be a valid dictionary",
        "param": "metadata",
    }


def test_a_bad_query_parameter_is_a_400_too(api: httpx.Client) -> None:
    response = api.get("/v1/jobs", params={"status": "bogus"})

    error = error_of(response)
    assert (error["code"], error["param"]) == ("VALIDATION_ERROR", "status")


def test_the_openai_surface_converts_the_same_way_in_its_own_shape(api: httpx.Client) -> None:
    response = api.post("/v1/images/generations", json={"model": "local/tiny", "prompt": 5})

    assert response.status_code == 400, response.text
    assert response.json() == {
        "error": {
            "message": "Invalid prompt: Input should be a valid string",
            "type": "invalid_request_error",
            "param": "prompt",
            "code": None,
        }
    }


def test_a_body_fastapi_cannot_parse_is_a_validation_error_too(api: httpx.Client) -> None:
    body = '{"id": "huge", "name": "x", "budget_total": ' + "9" * 5000 + "}"
    response = api.post(
        "/v1/admin/tenants", content=body, headers={"content-type": "application/json"}
    )

    assert error_of(response)["code"] == "VALIDATION_ERROR"
