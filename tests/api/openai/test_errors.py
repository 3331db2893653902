"""OpenAI's error shape on the OpenAI surface, from the same exceptions as the native API."""

from __future__ import annotations

import httpx
import openai
import pytest

from tests.api.openai.conftest import UPSTREAM_KEY, message_of
from tests.conftest import ADMIN_KEY, Server
from tests.providers.upstreams.openai import GENERATIONS, FakeOpenAI, openai_error


@pytest.mark.parametrize(
    ("size", "message"),
    [
        ("0x64", "Invalid size '0x64': expected WIDTHxHEIGHT (such as 512x512) or auto"),
        ("big", "Invalid size 'big': expected WIDTHxHEIGHT (such as 512x512) or auto"),
    ],
)
def test_an_invalid_size_names_size(client: openai.OpenAI, size: str, message: str) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.images.generate(model="local/tiny", prompt="x", size=size)

    assert caught.value.status_code == 400
    assert caught.value.param == "size"
    assert caught.value.type == "invalid_request_error"
    assert message_of(caught.value) == message


def test_a_size_out_of_a_local_models_range_is_fitted_to_it(client: openai.OpenAI) -> None:
    """As on the native API: the nearest size the model takes, reported in `size`."""
    result = client.images.generate(model="local/tiny", prompt="x", size="1000x64")

    assert result.size == "256x32"  # multiples of 8 in [32, 256]


def test_a_hosted_models_size_is_checked_before_the_upstream_call(
    client: openai.OpenAI, upstream: FakeOpenAI
) -> None:
    before = len(upstream.requests_to(GENERATIONS))

    with pytest.raises(openai.BadRequestError) as caught:
        client.images.generate(model="dall-e-3", prompt="x", size="512x512")

    assert caught.value.param == "size"
    assert "allowed: '1024x1024', '1792x1024' or '1024x1792'" in message_of(caught.value)
    assert len(upstream.requests_to(GENERATIONS)) == before


def test_a_bad_key(gateway: Server) -> None:
    sdk = openai.OpenAI(api_key="pg_nope", base_url=gateway.url + "/v1", max_retries=0)
    with sdk, pytest.raises(openai.AuthenticationError) as caught:
        sdk.images.generate(model="local/tiny", prompt="x")

    assert caught.value.status_code == 401
    assert caught.value.code == "invalid_api_key"
    assert message_of(caught.value) == "Invalid API key"


@pytest.mark.anyio
async def test_a_bad_key_async(gateway: Server) -> None:
    async with openai.AsyncOpenAI(
        api_key="pg_nope", base_url=gateway.url + "/oai/v1", max_retries=0
    ) as sdk:
        with pytest.raises(openai.AuthenticationError):
            await sdk.images.generate(model="local/tiny", prompt="x")


@pytest.mark.parametrize(
    ("fields", "param", "message"),
    [
        ({"style": "vivid"}, "style", "Model 'local/tiny' does not support style='vivid'"),
        (
            {"background": "transparent"},
            "background",
            "Model 'local/tiny' does not support background='transparent'",
        ),
        ({"stream": True}, "stream", "Model 'local/tiny' does not support stream=True"),
        ({"model": "nope"}, "model", None),
        ({"extra_body": {"colour": "red"}}, "colour", None),
        ({"extra_body": {"width": 64}, "size": "64x64"}, "width", None),
    ],
)
def test_unsupported_fields_name_the_param(
    client: openai.OpenAI, fields: dict[str, object], param: str, message: str | None
) -> None:
    request: dict[str, object] = {"model": "local/tiny", "prompt": "x"} | fields
    with pytest.raises(openai.BadRequestError) as caught:
        client.images.generate(**request)  # type: ignore[call-overload]

    assert caught.value.param == param
    if message is not None:
        assert message_of(caught.value) == message


def test_neutral_values_are_accepted_by_models_without_the_field(client: openai.OpenAI) -> None:
    result = client.images.generate(
        model="local/tiny", prompt="x", quality="standard", moderation="auto", size="auto"
    )

    assert result.size == "64x64"  # the model's default


def test_a_missing_prompt_is_a_400_in_openais_shape(gateway: Server) -> None:
    with gateway.client() as http:
        response = http.post("/oai/v1/images/generations", json={"model": "local/tiny"})

    assert response.status_code == 400
    assert response.json() == {
        "error": {
            "message": "Missing required field 'prompt'",
            "type": "invalid_request_error",
            "param": "prompt",
            "code": None,
        }
    }
    assert response.headers["x-should-retry"] == "false"


def test_unknown_paths_under_oai_answer_in_openais_shape(gateway: Server) -> None:
    response = httpx.get(gateway.url + "/oai/v1/nothing-here")

    assert response.status_code == 404
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert response.json()["error"]["code"] == "not_found"


def test_the_native_api_keeps_its_own_shape(gateway: Server) -> None:
    response = httpx.post(
        gateway.url + "/v1/inference/images/generate",
        json={"model": "local/tiny", "prompt": "x"},
        headers={"Authorization": "Bearer pg_nope"},
    )

    assert response.json() == {
        "status": "error",
        "error": {"code": "UNAUTHORIZED", "message": "Invalid API key", "param": None},
    }


def _tenant_key(admin: httpx.Client, tenant_id: str, **fields: object) -> str:
    created = admin.post("/v1/admin/tenants", json={"id": tenant_id, "name": tenant_id, **fields})
    assert created.status_code == 201, created.text
    key = admin.post("/v1/admin/keys", json={"tenant_id": tenant_id, "name": "app"})
    assert key.status_code == 201, key.text
    return str(key.json()["data"]["key"])


def test_an_exhausted_budget_is_insufficient_quota_and_not_retried(
    gateway: Server, admin: httpx.Client, upstream: FakeOpenAI
) -> None:
    key = _tenant_key(admin, "oai-broke", budget_total="0.05")
    before = len(upstream.requests_to(GENERATIONS))
    with openai.OpenAI(api_key=key, base_url=gateway.url + "/v1", max_retries=2) as sdk:
        sdk.images.generate(model="dall-e-3", prompt="first")  # 0.04 of 0.05
        with pytest.raises(openai.RateLimitError) as caught:
            sdk.images.generate(model="dall-e-3", prompt="second")

    assert caught.value.status_code == 429
    assert caught.value.code == "insufficient_quota"
    assert caught.value.type == "insufficient_quota"
    assert caught.value.response.headers["x-should-retry"] == "false"
    assert len(upstream.requests_to(GENERATIONS)) == before + 1


def test_a_rate_limit_carries_retry_after(gateway: Server, admin: httpx.Client) -> None:
    key = _tenant_key(admin, "oai-slow", limits={"requests_per_minute": 1})
    with openai.OpenAI(api_key=key, base_url=gateway.url + "/oai/v1", max_retries=0) as sdk:
        sdk.images.generate(model="local/tiny", prompt="one")
        with pytest.raises(openai.RateLimitError) as caught:
            sdk.images.generate(model="local/tiny", prompt="two")

    assert caught.value.code == "rate_limit_exceeded"
    assert caught.value.type == "requests"
    assert 1 <= int(caught.value.response.headers["retry-after"]) <= 60
    assert caught.value.response.headers["x-should-retry"] == "true"


def test_a_model_outside_the_allow_list(gateway: Server, admin: httpx.Client) -> None:
    key = _tenant_key(admin, "oai-narrow", allow_models=["local/*"])
    with openai.OpenAI(api_key=key, base_url=gateway.url + "/v1", max_retries=0) as sdk:
        with pytest.raises(openai.PermissionDeniedError) as caught:
            sdk.images.generate(model="dall-e-3", prompt="x")
        listed = [model.id for model in sdk.models.list()]

    assert caught.value.code == "model_not_found"
    assert caught.value.param == "model"
    assert listed == ["local/tiny"]


def test_an_upstream_failure_is_a_502_server_error(gateway: Server, upstream: FakeOpenAI) -> None:
    upstream.script(GENERATIONS, openai_error(500, "The server had an error", type="server_error"))
    sdk = openai.OpenAI(api_key=ADMIN_KEY, base_url=gateway.url + "/v1", max_retries=2)
    with sdk, pytest.raises(openai.InternalServerError) as caught:
        sdk.images.generate(model="dall-e-2", prompt="x")

    assert caught.value.status_code == 502
    assert caught.value.type == "server_error"
    assert caught.value.code == "backend_error"
    assert "HTTP 500" in message_of(caught.value)
    assert UPSTREAM_KEY not in message_of(caught.value)
