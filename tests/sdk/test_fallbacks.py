"""`fallbacks=[...]` from the SDK, sync and async, against the shared real server: it has no
OpenAI key, so dall-e-3 cannot run there and the tiny model serves."""

from __future__ import annotations

import pytest

import pixelgate
from tests.conftest import ADMIN_KEY, Server
from tests.sdk.conftest import FAST


def test_generate_with_a_fallback_says_which_model_served(client: pixelgate.Client) -> None:
    result = client.images.generate(
        model="dall-e-3", prompt="a red circle", fallbacks=["local/tiny"]
    )

    assert (result.model, result.requested_model) == ("local/tiny", "openai/dall-e-3")
    job = client.jobs.get(result.job_id)
    assert job.requested_model == "openai/dall-e-3"
    assert job.tries is not None
    assert [(t.model, t.outcome) for t in job.tries] == [
        ("openai/dall-e-3", "unavailable"),
        ("local/tiny", "succeeded"),
    ]


def test_a_bad_fallback_raises_naming_it(client: pixelgate.Client) -> None:
    with pytest.raises(pixelgate.ValidationError) as caught:
        client.images.submit(model="local/tiny", prompt="a boat", fallbacks=["no/such"])

    assert caught.value.param == "fallbacks.0"


@pytest.mark.anyio
async def test_async_submit_edit_with_a_fallback(server: Server) -> None:
    async with pixelgate.AsyncClient(base_url=server.url, api_key=ADMIN_KEY) as client:
        made = await client.images.generate(model="local/tiny", prompt="a red circle", **FAST)
        image = await made.data[0].acontent()
        job = await client.images.submit_edit(
            image, model="dall-e-2", prompt="a blue circle", fallbacks=["local/tiny"]
        )
        ended = await client.jobs.wait(job.id)

    assert (job.model, job.requested_model, job.fallbacks) == ("local/tiny", "openai/dall-e-2", [])
    assert ended.result is not None and ended.result.model == "local/tiny"
