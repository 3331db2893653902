"""fal.ai and ComfyUI through the real server: listed with prices and availability, a request
run end to end against each fake on loopback, and a canceled job canceled upstream."""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.conftest import Server
from tests.helpers import generate, read_events, submit, wait_for
from tests.providers.test_fal import ENDPOINTS, FAL_KEY
from tests.providers.upstreams.comfyui import SHRINK, FakeComfyUI
from tests.providers.upstreams.comfyui import Plan as ComfyPlan
from tests.providers.upstreams.fal import FakeFal, Plan
from tests.providers.upstreams.images import image_bytes, size_of


@pytest.fixture
def fal() -> Iterator[FakeFal]:
    with FakeFal(FAL_KEY, ENDPOINTS) as fake:
        yield fake


def fal_server(make_server: Callable[..., Server], fal: FakeFal) -> Server:
    return make_server(
        PIXELGATE_FAL_API_KEY=FAL_KEY,
        PIXELGATE_FAL_BASE_URL=fal.url,
        PIXELGATE_FAL_POLL_INTERVAL_SECONDS="0.05",
    ).start()


def models_of(server: Server, provider: str) -> dict[str, dict[str, Any]]:
    with server.client() as client:
        listed = client.get("/v1/models").json()["data"]
    return {model["id"]: model for model in listed if model["provider"] == provider}


def test_fal_models_are_listed_unavailable_without_a_key(
    make_server: Callable[..., Server],
) -> None:
    models = models_of(make_server().start(), "fal")

    assert set(models) == {
        "fal/flux-pro-v1.1",
        "fal/flux-pro-v1.1-ultra",
        "fal/flux-pro-kontext",
        "fal/flux-dev",
        "fal/flux-schnell",
    }
    assert {model["available"] for model in models.values()} == {False}
    assert models["fal/flux-pro-v1.1"]["unavailable_reason"] == (
        "provider 'fal' has no API key (set PIXELGATE_FAL_API_KEY)"
    )


def test_a_fal_request_runs_through_the_server_and_is_billed_by_megapixel(
    make_server: Callable[..., Server], fal: FakeFal
) -> None:
    server = fal_server(make_server, fal)
    fal.plan = Plan(queued_polls=2, running_polls=2)
    models = models_of(server, "fal")
    assert models["fal/flux-pro-v1.1"]["available"] is True
    assert models["fal/flux-pro-v1.1"]["prices"] == {"per_megapixel": "0.04"}
    assert models["fal/flux-pro-v1.1-ultra"]["prices"] == {"default": "0.06"}

    with server.client() as client:
        job = submit(client, model="fal-flux-pro-1.1", prompt="a fox", n=2, width=1440, height=1024)
        events = read_events(client, job["id"])
        done = wait_for(client, job["id"], "succeeded", "failed")
        usage = client.get("/v1/usage").json()["data"]

    assert done["status"] == "succeeded", done
    progress = [(data["step"], data["total"]) for name, data, _ in events if name == "progress"]
    assert progress[-1] == (2, 2)
    [submitted] = fal.requests.values()
    assert submitted.body["image_size"] == {"width": 1440, "height": 1024}
    assert submitted.body["num_images"] == 2
    # the seed chosen at submission went to fal, and comes back on both images of its request
    assert [image["seed"] for image in done["result"]["data"]] == [submitted.body["seed"]] * 2
    # 1440x1024 is 1.4 megapixels: 2 at $0.04 each, for each of 2 images
    assert usage["budgets"][0]["spent"] == "0.16"


def test_a_mask_sent_to_fal_kontext_is_refused_at_submit(
    make_server: Callable[..., Server], fal: FakeFal
) -> None:
    server = fal_server(make_server, fal)
    picture = base64.b64encode(image_bytes(40, 24, "png")).decode()

    with server.client() as client:
        response = client.post(
            "/v1/inference/images/edit",
            json={"model": "fal/flux-pro-kontext", "prompt": "make it blue", "async": True,
                  "input_image": picture, "mask_image": picture},
        )  # fmt: skip
        jobs = client.get("/v1/jobs").json()["data"]

    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert (error["code"], error["param"]) == ("VALIDATION_ERROR", "mask")
    assert jobs == []
    assert fal.requests == {}


def test_canceling_a_fal_job_cancels_its_request_upstream(
    make_server: Callable[..., Server], fal: FakeFal
) -> None:
    server = fal_server(make_server, fal)
    fal.plan = Plan(queued_polls=10**6)
    with server.client() as client:
        job = submit(client, model="fal/flux-pro-v1.1", prompt="a patient fox")
        deadline = time.monotonic() + 30
        while not fal.requests and time.monotonic() < deadline:
            time.sleep(0.05)
        assert client.post(f"/v1/jobs/{job['id']}/cancel").status_code == 200
        ended = wait_for(client, job["id"], "canceled", "failed", "succeeded", timeout=30)
        answer = generate(client, model="fal/flux-pro-v1.1", prompt="x", safety_tolerance=9)

    assert ended["status"] == "canceled"
    [queued] = fal.requests.values()
    assert queued.canceled
    assert [r.method for r in fal.received if r.path.endswith("/cancel")] == ["PUT"]
    assert answer.status_code == 400
    assert answer.json()["error"]["param"] == "safety_tolerance"


@pytest.fixture
def comfy() -> Iterator[FakeComfyUI]:
    with FakeComfyUI() as fake:
        yield fake


def comfy_server(make_server: Callable[..., Server], comfy: FakeComfyUI) -> Server:
    return make_server(
        PIXELGATE_COMFYUI_BASE_URL=comfy.url, PIXELGATE_COMFYUI_POLL_INTERVAL_SECONDS="0.05"
    ).start()


def test_comfyui_models_are_available_only_with_a_server(
    make_server: Callable[..., Server], comfy: FakeComfyUI
) -> None:
    without = models_of(make_server().start(), "comfyui")
    with_server = models_of(comfy_server(make_server, comfy), "comfyui")

    assert set(without) == set(with_server) == {"comfyui/flux", "comfyui/flux/inpainting"}
    assert {model["available"] for model in without.values()} == {False}
    assert {model["available"] for model in with_server.values()} == {True}
    assert with_server["comfyui/flux"]["prices"] == {"default": "0"}
    assert with_server["comfyui/flux/inpainting"]["capabilities"] == ["inpaint"]


def test_a_comfyui_workflow_runs_through_the_server_with_step_progress(
    make_server: Callable[..., Server], comfy: FakeComfyUI
) -> None:
    server = comfy_server(make_server, comfy)
    # steps that take a moment: progress is live-only, and an instant run ends before the
    # event stream below is open
    comfy.plan = ComfyPlan(step_seconds=0.25)
    with server.client() as client:
        job = submit(
            client, model="comfyui/flux", prompt="a lighthouse", num_steps=4, width=512, height=256
        )
        events = read_events(client, job["id"])
        done = wait_for(client, job["id"], "succeeded", "failed")
        url = done["result"]["data"][0]["url"]
        image = client.get(url).content

    assert done["status"] == "succeeded", done
    progress = [(data["step"], data["total"]) for name, data, _ in events if name == "progress"]
    assert progress[-1] == (4, 4) and len(progress) >= 2
    [body] = comfy.prompts
    assert [n["inputs"]["text"] for n in body["prompt"].values() if "text" in n["inputs"]] == [
        "a lighthouse",
        "",
    ]
    assert size_of(image) == (512 // SHRINK, 256 // SHRINK)


def test_a_comfyui_inpainting_edit_runs_through_the_server(
    make_server: Callable[..., Server], comfy: FakeComfyUI
) -> None:
    server = comfy_server(make_server, comfy)
    source = image_bytes(64, 48, "png")
    mask = image_bytes(64, 48, "png", (255, 255, 255))
    with server.client() as client:
        response = client.post(
            "/v1/inference/images/edit",
            data={"model": "comfyui/flux/inpainting", "prompt": "a boat", "seed": "3"},
            files={"image": ("in.png", source, "image/png"), "mask": ("m.png", mask, "image/png")},
        )

    assert response.status_code == 200, response.text
    assert len(comfy.requests_to("/upload/image", "POST")) == 2
    [body] = comfy.prompts
    [sampler] = [n["inputs"] for n in body["prompt"].values() if n["class_type"] == "KSampler"]
    assert sampler["seed"] == 3


def test_canceling_a_comfyui_job_interrupts_its_run(
    make_server: Callable[..., Server], comfy: FakeComfyUI
) -> None:
    server = comfy_server(make_server, comfy)
    comfy.plan = ComfyPlan(hold=True)
    with server.client() as client:
        job = submit(client, model="comfyui/flux", prompt="a patient lighthouse")
        deadline = time.monotonic() + 30
        while comfy.running is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert comfy.running is not None
        held = comfy.running.prompt_id
        assert client.post(f"/v1/jobs/{job['id']}/cancel").status_code == 200
        ended = wait_for(client, job["id"], "canceled", "failed", "succeeded", timeout=30)

    assert ended["status"] == "canceled"
    [interrupt] = comfy.requests_to("/interrupt", "POST")
    assert interrupt.json == {"prompt_id": held}
