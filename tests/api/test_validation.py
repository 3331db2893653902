# ruff: noqa: E501  (a table of exact messages reads best one case per line)
"""Every option rule refuses bad input before any model runs, naming the parameter."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.helpers import GENERATE

CASES: list[tuple[dict[str, Any], str, str]] = [
    # (request body, param, message)
    ({"model": "nope/model", "prompt": "x"}, "model", "Unsupported image model name: 'nope/model'. See GET /v1/models for the models you may use."),
    ({"model": "local/tiny", "prompt": ""}, "prompt", "Prompt must not be empty"),
    ({"model": "local/tiny", "prompt": "   "}, "prompt", "Prompt must not be empty"),
    ({"model": "local/tiny"}, "prompt", "Missing required option 'prompt'"),
    ({"model": "local/tiny", "prompt": "x" * 1001}, "prompt", "Prompt is 1001 characters; this model accepts at most 1000"),
    ({"model": "local/tiny", "prompt": "x", "colour": "red"}, "colour", "Unknown option 'colour' for model 'local/tiny'; allowed: guidance_scale, height, n, negative_prompt, num_steps, output_format, prompt, seed, strength, user, width"),
    ({"model": "local/tiny", "prompt": "x", "width": 100}, "width", "Invalid width: 100; allowed: multiples of 8 in [32, 256]"),
    ({"model": "local/tiny", "prompt": "x", "height": 512}, "height", "Invalid height: 512; allowed: multiples of 8 in [32, 256]"),
    ({"model": "local/tiny", "prompt": "x", "num_steps": 201}, "num_steps", "Invalid num_steps: 201; allowed: 1 to 200"),
    ({"model": "local/tiny", "prompt": "x", "n": 9}, "n", "Invalid n: 9; this model makes at most 8 per request"),
    ({"model": "local/tiny", "prompt": "x", "output_format": "gif"}, "output_format", "Invalid output_format: 'gif'; allowed: 'png', 'jpeg' or 'webp'"),
    ({"model": "local/tiny", "prompt": "x", "seed": -1}, "seed", "Invalid seed: Input should be greater than or equal to 0"),
    ({"model": "local/tiny", "prompt": "x", "guidance_scale": 31}, "guidance_scale", "Invalid guidance_scale: Input should be less than or equal to 30"),
    # DALL-E 3
    ({"model": "dall-e-3", "prompt": "x", "size": "512x512"}, "size", "Invalid size: '512x512'; allowed: '1024x1024', '1792x1024' or '1024x1792'"),
    ({"model": "dall-e-3", "prompt": "x", "quality": "ultra"}, "quality", "Invalid quality: 'ultra'; allowed: standard, hd, auto, low, medium, high"),
    ({"model": "dall-e-3", "prompt": "x", "style": "moody"}, "style", "Invalid style: 'moody'; allowed: 'vivid' or 'natural'"),
    ({"model": "dall-e-3", "prompt": "x", "n": 2}, "n", "Invalid n: 2; allowed: 1"),
    ({"model": "dall-e-3", "prompt": "x" * 4001}, "prompt", "Prompt is 4001 characters; this model accepts at most 4000"),
    # Stable Diffusion core
    ({"model": "stable-diffusion-core", "prompt": "x", "aspect_ratio": "7:3"}, "aspect_ratio", "Invalid aspect_ratio: '7:3'; allowed: '16:9', '1:1', '21:9', '2:3', '3:2', '4:5', '5:4', '9:16' or '9:21'"),
    ({"model": "stable-diffusion-core", "prompt": "x", "style_preset": "cubism"}, "style_preset", "Invalid style_preset: 'cubism'; allowed: '3d-model', 'analog-film', 'anime', 'cinematic', 'comic-book', 'digital-art', 'enhance', 'fantasy-art', 'isometric', 'line-art', 'low-poly', 'modeling-compound', 'neon-punk', 'origami', 'photographic', 'pixel-art' or 'tile-texture'"),
    ({"model": "stable-diffusion-core", "prompt": "x", "output_format": "gif"}, "output_format", "Invalid output_format: 'gif'; allowed: 'png', 'jpeg' or 'webp'"),
    # Flux
    ({"model": "bfl/flux-pro-1.1", "prompt": "x", "width": 1000}, "width", "Invalid width: 1000"),
    ({"model": "bfl/flux-pro-1.1", "prompt": "x", "width": 224}, "width", "Invalid width: 224"),
    ({"model": "bfl/flux-pro-1.1", "prompt": "x", "height": 1472}, "height", "Invalid height: 1472"),
    ({"model": "bfl/flux-pro-1.1", "prompt": "x", "safety_tolerance": 6}, "safety_tolerance", "Invalid safety tolerance: 6; allowed: an integer from 1 to 5"),
    ({"model": "bfl/flux-pro-1.1", "prompt": "x", "safety_tolerance": "high"}, "safety_tolerance", "Invalid safety tolerance: high; allowed: an integer from 1 to 5"),
]  # fmt: skip


@pytest.mark.parametrize(("body", "param", "message"), CASES)
def test_invalid_options_are_refused_with_the_rule(
    api: httpx.Client, body: dict[str, Any], param: str, message: str
) -> None:
    response = api.post(GENERATE, json=body)

    assert response.status_code == 400, response.text
    assert response.json() == {
        "status": "error",
        "error": {"code": "VALIDATION_ERROR", "message": message, "param": param},
    }


def test_nothing_runs_for_a_refused_request(api: httpx.Client) -> None:
    before = len(api.get("/v1/jobs", params={"limit": 100}).json()["data"])
    api.post(GENERATE, json={"model": "local/tiny", "prompt": "x", "width": 7})
    assert len(api.get("/v1/jobs", params={"limit": 100}).json()["data"]) == before


def test_valid_hosted_options_pass_validation_then_meet_the_missing_provider(
    api: httpx.Client,
) -> None:
    response = api.post(
        GENERATE, json={"model": "bfl/flux-pro-1.1", "prompt": "x", "width": 1440, "height": 256}
    )
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "MODEL_UNAVAILABLE"


def test_a_model_missing_its_weights_names_the_pull_command(api: httpx.Client) -> None:
    response = api.post(GENERATE, json={"model": "sd-turbo", "prompt": "x"})

    assert response.status_code == 503
    error = response.json()["error"]
    assert error["param"] == "model"
    assert "stabilityai/sd-turbo" in error["message"]
    assert "pixelgate pull stabilityai/sd-turbo" in error["message"]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"prompt": "x"}, "model"),
        ({"model": "local/tiny", "response_format": "gif"}, "response_format"),
    ],
)
def test_malformed_bodies_are_400_with_the_field(
    api: httpx.Client, body: dict[str, Any], param: str
) -> None:
    response = api.post(GENERATE, json=body)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "VALIDATION_ERROR"
    assert response.json()["error"]["param"] == param


def test_a_body_that_is_not_json(api: httpx.Client) -> None:
    response = api.post(
        GENERATE, content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["error"]["message"] == "The request body is not valid JSON"


def test_an_oversized_body_is_413(api: httpx.Client) -> None:
    response = api.post(GENERATE, json={"model": "local/tiny", "prompt": "x" * (21 * 1024 * 1024)})
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "PAYLOAD_TOO_LARGE"
