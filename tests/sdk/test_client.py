"""The blocking client against a real server."""

from __future__ import annotations

import secrets
import time
from decimal import Decimal
from pathlib import Path

import pytest
from PIL import Image as PILImage

import pixelgate
from pixelgate.errors import Canceled, NotFound, Timeout, Unauthorized, ValidationError
from tests.conftest import Server
from tests.sdk.conftest import FAST


def test_generate_url_saves_a_png_of_the_requested_size(
    client: pixelgate.Client, tmp_path: Path
) -> None:
    result = client.images.generate(
        model="local/tiny",
        prompt="a red circle",
        metadata={"purpose": "test"},
        num_steps=FAST["num_steps"],
        width=96,
        height=64,
    )

    assert result.model == "local/tiny"
    assert result.metadata == {"purpose": "test"}
    assert len(result.data) == 1
    image = result.data[0]
    assert image.url is not None and "/v1/media/" in image.url
    assert image.b64_json is None
    path = image.save(tmp_path / "circle.png")
    with PILImage.open(path) as picture:
        assert picture.format == "PNG"
        assert picture.size == (96, 64)
    assert image.to_pil().size == (96, 64)


def test_generate_b64_json_decodes_to_the_image(client: pixelgate.Client, tmp_path: Path) -> None:
    result = client.images.generate(
        model="local/tiny", prompt="a blue square", response_format="b64_json", **FAST
    )

    image = result.data[0]
    assert image.b64_json is not None
    assert image.content().startswith(b"\x89PNG")
    with PILImage.open(image.save(tmp_path / "square.png")) as picture:
        assert picture.size == (64, 64)


def test_seed_round_trips_and_reproduces_the_image(client: pixelgate.Client) -> None:
    first = client.images.generate(model="local/tiny", prompt="noise", seed=1234, **FAST)
    again = client.images.generate(model="local/tiny", prompt="noise", seed=1234, **FAST)

    assert first.data[0].seed == 1234
    assert again.data[0].seed == 1234
    assert first.data[0].content() == again.data[0].content()


def test_a_repeat_says_it_came_from_the_cache(client: pixelgate.Client) -> None:
    first = client.images.generate(model="local/tiny", prompt="a repeat", seed=77, **FAST)
    again = client.images.generate(model="local/tiny", prompt="a repeat", seed=77, **FAST)

    assert (first.cached, again.cached) == (False, True)
    assert again.data[0].content() == first.data[0].content()


def test_several_images_in_one_request(client: pixelgate.Client) -> None:
    result = client.images.generate(model="local/tiny", prompt="dots", n=2, **FAST)

    assert len(result.data) == 2
    assert len({image.file_id for image in result.data}) == 2


def test_submit_then_wait_returns_the_finished_job(client: pixelgate.Client) -> None:
    job = client.images.submit(model="local/tiny", prompt="a boat", seed=5, **FAST)
    assert job.status in ("queued", "running")
    assert job.result is None

    done = client.jobs.wait(job.id, timeout=30)

    assert done.id == job.id
    assert done.status == "succeeded"
    assert done.is_terminal
    assert done.raise_for_status() is done
    assert done.result is not None
    assert done.result.job_id == job.id
    assert done.result.data[0].seed == 5
    assert client.jobs.get(job.id).status == "succeeded"


def test_results_jobs_and_their_last_event_say_what_they_cost(
    client: pixelgate.Client, server: Server
) -> None:
    tenant_id = "sdk-cost-" + secrets.token_hex(4)
    client.admin.create_tenant(tenant_id, name="payer", prices={"local/tiny": {"default": "0.03"}})
    key = client.admin.create_key(tenant_id=tenant_id, name="app")["key"]
    with pixelgate.Client(base_url=server.url, api_key=key) as payer:
        result = payer.images.generate(model="local/tiny", prompt="paid", n=2, **FAST)
        job = payer.images.submit(model="local/tiny", prompt="paid later", **FAST)
        events = list(payer.jobs.events(job.id))
        done = payer.jobs.get(job.id)
        listed = payer.jobs.list()

    assert result.cost == pixelgate.Cost(Decimal("0.06"), "USD")
    assert str(result.cost) == "0.06 USD"
    assert job.cost is None  # not settled while queued
    assert events[-1].job is not None and events[-1].job.cost == pixelgate.Cost(
        Decimal("0.03"), "USD"
    )
    assert done.cost is not None and done.cost.amount == Decimal("0.03")
    assert [each.cost for each in listed] == [done.cost, pixelgate.Cost(Decimal("0.06"), "USD")]


def test_events_arrive_in_order_with_increasing_progress(client: pixelgate.Client) -> None:
    job = client.images.submit(
        model="local/tiny", prompt="waves", width=64, height=64, num_steps=20
    )

    events = list(client.jobs.events(job.id))

    types = [event.type for event in events]
    assert types[:2] == ["queued", "running"]
    assert types[-1] == "succeeded"
    progress = [event for event in events if event.type == "progress"]
    assert progress, types
    assert set(types[2:-1]) == {"progress"}
    steps = [event.step or 0 for event in progress]
    assert steps == sorted(set(steps))
    assert all(event.total == 20 for event in progress)
    final = events[-1].job
    assert final is not None and final.status == "succeeded"
    assert final.result is not None and len(final.result.data) == 1


def test_events_resume_after_the_last_event_id(client: pixelgate.Client) -> None:
    job = client.images.submit(model="local/tiny", prompt="resume", **FAST)
    client.jobs.wait(job.id, timeout=30)
    recorded = list(client.jobs.events(job.id))
    first_id = recorded[0].id
    assert first_id is not None

    resumed = list(client.jobs.events(job.id, last_event_id=first_id))

    assert [event.type for event in resumed] == ["running", "succeeded"]


def test_cancel_a_running_job(client: pixelgate.Client) -> None:
    job = client.images.submit(
        model="local/tiny", prompt="slow", width=128, height=128, num_steps=150
    )
    for event in client.jobs.events(job.id):
        if event.type == "progress":
            break

    requested = client.jobs.cancel(job.id)
    assert requested.cancel_requested or requested.status == "canceled"
    started = time.monotonic()
    done = client.jobs.wait(job.id, timeout=30)

    assert time.monotonic() - started < 5
    assert done.status == "canceled"
    assert done.result is None
    with pytest.raises(Canceled):
        done.raise_for_status()


def test_wait_gives_up_after_its_timeout(client: pixelgate.Client) -> None:
    job = client.images.submit(
        model="local/tiny", prompt="slow", width=128, height=128, num_steps=150
    )
    started = time.monotonic()
    try:
        with pytest.raises(Timeout) as caught:
            client.jobs.wait(job.id, timeout=0.5)
        assert time.monotonic() - started < 3
        assert caught.value.param == "timeout"
    finally:
        client.jobs.cancel(job.id)
    assert client.jobs.wait(job.id, timeout=30).status == "canceled"


def test_models_list_has_the_tiny_model(client: pixelgate.Client) -> None:
    models = {model.id: model for model in client.models.list()}

    tiny = models["local/tiny"]
    assert tiny.available
    assert tiny.provider == "diffusers"
    assert "generate" in tiny.capabilities
    assert client.models.get("tiny").id == "local/tiny"


def test_files_get_gives_a_fresh_link(client: pixelgate.Client) -> None:
    image = client.images.generate(model="local/tiny", prompt="file", **FAST).data[0]

    stored = client.files.get(image.file_id)

    assert stored.id == image.file_id
    assert (stored.width, stored.height) == (64, 64)
    assert stored.content_type == "image/png"
    assert client.files.content(image.file_id) == image.content()


def test_a_bad_key_is_unauthorized(server: Server) -> None:
    with (
        pixelgate.Client(base_url=server.url, api_key="pg_wrong") as client,
        pytest.raises(Unauthorized) as caught,
    ):
        client.models.list()
    assert caught.value.code == "UNAUTHORIZED"


def test_an_invalid_width_names_the_parameter(client: pixelgate.Client) -> None:
    with pytest.raises(ValidationError) as caught:
        client.images.generate(model="local/tiny", prompt="too wide", width=1000)

    assert caught.value.param == "width"
    assert "Invalid width" in caught.value.message


def test_an_unknown_job_is_not_found(client: pixelgate.Client) -> None:
    with pytest.raises(NotFound):
        client.jobs.get("job_does_not_exist")
    with pytest.raises(NotFound):
        client.jobs.wait("job_does_not_exist", timeout=5)
