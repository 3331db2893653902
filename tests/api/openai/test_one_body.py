"""One body, every model, every surface: the gateway body (`model`, `prompt`, `n`, `size`,
`quality`, `response_format`, `metadata`) on the native route and on the OpenAI surface, with a
hosted model and with a local one; the OpenAI base the README gives (`/v1`) answering every
call of the official SDKs and of LiteLLM as a client."""

from __future__ import annotations

import base64
import importlib
from typing import Any

import httpx
import openai
import pytest

import pixelgate
from tests.api.openai.conftest import image_of
from tests.conftest import ADMIN_KEY, Server
from tests.providers.upstreams.openai import GENERATIONS, FakeOpenAI

NATIVE = "/v1/inference/images/generate"


def gateway_body(model: str) -> dict[str, Any]:
    return {
        "model": model,
        "prompt": "a lighthouse on a cliff",
        "n": 1,
        "size": "1024x1024",
        "quality": "hd",
        "response_format": "b64_json",
        "metadata": {"campaign": "spring"},
    }


@pytest.mark.parametrize("path", [NATIVE, "/v1/images/generations", "/oai/v1/images/generations"])
def test_the_gateway_body_with_dall_e_3(
    admin: httpx.Client, upstream: FakeOpenAI, path: str
) -> None:
    response = admin.post(path, json=gateway_body("dall-e-3"))

    assert response.status_code == 200, response.text
    sent = upstream.requests_to(GENERATIONS)[-1].json
    assert (sent["model"], sent["size"], sent["quality"]) == ("dall-e-3", "1024x1024", "hd")


@pytest.mark.parametrize("path", [NATIVE, "/v1/images/generations", "/oai/v1/images/generations"])
def test_the_gateway_body_with_a_local_model(admin: httpx.Client, path: str) -> None:
    """The same body, the model swapped: the size fitted to local/tiny's limits, `hd` as its
    steps. The client waits longer than its default 60 s: 8 steps at 256x256 on one torch
    thread, the first of them starting the shared server's model worker, took 50-60 s while
    the suite's other workers loaded both cores."""
    response = admin.post(path, json=gateway_body("local/tiny"), timeout=240)

    assert response.status_code == 200, response.text
    body = response.json()
    result = body["data"] if path == NATIVE else body
    [item] = result["data"]
    assert image_of(base64.b64decode(item["b64_json"])).size == (256, 256)
    if path == NATIVE:
        assert result["metadata"] == {"campaign": "spring"}
        assert result["adjustments"] == [
            {
                "param": "size",
                "from": "1024x1024",
                "to": "256x256",
                "reason": "local/tiny takes sizes that are multiples of 8 in [32, 256]: the "
                "nearest it takes",
            },
            {
                "param": "quality",
                "from": "hd",
                "to": "num_steps=8",
                "reason": "local/tiny has no quality setting: hd runs 8 steps, not 4",
            },
        ]
        job = admin.get(f"/v1/jobs/{result['job_id']}").json()["data"]
        assert job["result"]["adjustments"] == result["adjustments"]  # every view of the job
    else:
        assert result["size"] == "256x256"  # OpenAI's field says what was made


def test_a_portable_quality_becomes_dall_e_3s_own(
    admin: httpx.Client, upstream: FakeOpenAI
) -> None:
    response = admin.post(NATIVE, json={**gateway_body("dall-e-3"), "quality": "high"})

    assert response.status_code == 200, response.text
    assert upstream.requests_to(GENERATIONS)[-1].json["quality"] == "hd"
    assert response.json()["data"]["adjustments"] == [
        {
            "param": "quality",
            "from": "high",
            "to": "hd",
            "reason": "openai/dall-e-3 names its qualities standard, hd",
        }
    ]


def test_a_bad_size_for_a_model_of_listed_sizes_names_what_is_allowed(
    admin: httpx.Client,
) -> None:
    response = admin.post(NATIVE, json={**gateway_body("dall-e-3"), "size": "512x512"})

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == "size"
    assert error["message"] == (
        "Invalid size: '512x512'; allowed: '1024x1024', '1792x1024' or '1024x1792'"
    )


# -- the OpenAI base the README gives ---------------------------------------------------


def test_models_retrieve_gives_openais_model(client: openai.OpenAI) -> None:
    model = client.models.retrieve("dall-e-3")

    assert (model.id, model.object, model.owned_by) == ("openai/dall-e-3", "model", "openai")
    assert model.created > 0


def test_one_model_at_v1_is_both_shapes_at_once(gateway: Server) -> None:
    response = httpx.get(
        gateway.url + "/v1/models/tiny", headers={"Authorization": f"Bearer {ADMIN_KEY}"}
    )

    body = response.json()
    assert (body["status"], body["id"], body["object"], body["owned_by"]) == (
        "ok",
        "local/tiny",
        "model",
        "diffusers",
    )
    assert body["data"]["id"] == "local/tiny"
    assert {"available", "options_schema", "limits"} <= set(body["data"])
    with pixelgate.Client(base_url=gateway.url, api_key=ADMIN_KEY) as native:
        assert native.models.get("tiny").id == "local/tiny"  # pixelgate's SDK reads `data`


@pytest.mark.anyio
async def test_the_async_sdk_retrieves_too(async_client: openai.AsyncOpenAI) -> None:
    model = await async_client.models.retrieve("local/tiny")

    assert (model.id, model.owned_by) == ("local/tiny", "diffusers")


@pytest.mark.parametrize("base", ["/v1", "/oai/v1"])
def test_litellm_as_a_client(
    gateway: Server, upstream: FakeOpenAI, base: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`litellm.image_generation` with `openai/<model>` and pixelgate as its `api_base`."""
    monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no download at import
    litellm = importlib.import_module("litellm")

    local = litellm.image_generation(  # LiteLLM sends response_format to dall-e models only
        model="openai/local/tiny",
        prompt="a red circle",
        size="96x32",
        api_base=gateway.url + base,
        api_key=ADMIN_KEY,
    )
    hosted = litellm.image_generation(
        model="openai/dall-e-3",
        prompt="a lighthouse",
        quality="hd",
        api_base=gateway.url + base,
        api_key=ADMIN_KEY,
    )

    [picture] = local.data
    assert image_of(httpx.get(picture.url).content).size == (96, 32)
    [linked] = hosted.data
    assert linked.url.startswith(gateway.url + "/v1/media/")
    assert upstream.requests_to(GENERATIONS)[-1].json["quality"] == "hd"
    assert httpx.get(linked.url).content == upstream.made[-1]
