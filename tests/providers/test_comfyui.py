"""The ComfyUI backend against a fake ComfyUI server on loopback (HTTP and its websocket on one
port): templates filled, inputs uploaded, progress from the websocket or /history, outputs
from /view, cancel by /interrupt or by taking the prompt off the queue."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from pixelgate.catalog import Catalog, ModelSpec
from pixelgate.errors import (
    BackendError,
    Canceled,
    ModelUnavailable,
    ProviderTimeout,
    ValidationError,
)
from pixelgate.providers import CancelToken, GeneratedImage, ImageInput, ImageTask
from pixelgate.providers.comfyui import ComfyUIProvider, TemplateError, Workflow, template_path
from tests.providers.conftest import Progress, options_for
from tests.providers.upstreams.comfyui import SHRINK, FakeComfyUI, Plan
from tests.providers.upstreams.images import image_bytes, size_of

AUTH = ("x-comfy-token", "secret-0123456789")


@pytest.fixture
def upstream() -> Iterator[FakeComfyUI]:
    with FakeComfyUI() as fake:
        yield fake


def comfy_settings(make_settings: Any, upstream: FakeComfyUI, **overrides: Any) -> Any:
    values = {
        "comfyui_base_url": upstream.url,
        "comfyui_poll_interval_seconds": 0.02,
        "comfyui_timeout_seconds": 10.0,
    }
    return make_settings(**(values | overrides))


@pytest.fixture
def provider(upstream: FakeComfyUI, make_settings: Any) -> ComfyUIProvider:
    return ComfyUIProvider.from_settings(comfy_settings(make_settings, upstream))


def run(
    provider: ComfyUIProvider,
    catalog: Catalog,
    model: str = "comfyui/flux",
    *,
    kind: Any = "generate",
    image: ImageInput | None = None,
    mask: ImageInput | None = None,
    progress: Progress | None = None,
    cancel: CancelToken | None = None,
    **options: Any,
) -> list[GeneratedImage]:
    spec = catalog.resolve(model)
    task = ImageTask(
        kind=kind, options=options_for(catalog, spec, **options), image=image, mask=mask
    )
    return provider.run(spec, task, progress=progress or Progress(), cancel=cancel or CancelToken())


def inputs_of(graph: dict[str, Any], class_type: str) -> list[dict[str, Any]]:
    return [node["inputs"] for node in graph.values() if node["class_type"] == class_type]


def test_a_workflow_is_filled_run_and_its_output_read(
    provider: ComfyUIProvider, upstream: FakeComfyUI, catalog: Catalog, progress: Progress
) -> None:
    [image] = run(
        provider,
        catalog,
        progress=progress,
        prompt="a lighthouse at dusk",
        negative_prompt="blurry",
        seed=1234,
        num_steps=5,
        guidance_scale=4.0,
        width=512,
        height=768,
    )

    [body] = upstream.prompts
    graph = body["prompt"]
    [positive, negative] = inputs_of(graph, "CLIPTextEncode")
    assert (positive["text"], negative["text"]) == ("a lighthouse at dusk", "blurry")
    [sampler] = inputs_of(graph, "KSampler")
    assert (sampler["seed"], sampler["steps"], sampler["cfg"]) == (1234, 5, 1.0)
    assert inputs_of(graph, "FluxGuidance")[0]["guidance"] == 4.0
    [latent] = inputs_of(graph, "EmptySD3LatentImage")
    assert (latent["width"], latent["height"], latent["batch_size"]) == (512, 768, 1)
    # the template itself is left as shipped
    assert json.loads(template_path("flux.json").read_text())["8"]["inputs"]["seed"] == 0
    [socket] = upstream.requests_to("/ws", "WS")
    assert socket.query == {"clientId": body["client_id"]}
    [view] = upstream.requests_to("/view")
    assert view.query["type"] == "output" and view.query["filename"].startswith("pixelgate_")
    assert image.data == upstream.outputs[view.query["filename"]]
    assert (image.width, image.height, image.seed) == (512 // SHRINK, 768 // SHRINK, 1234)
    assert progress.calls == [(0, 5), (1, 5), (2, 5), (3, 5), (4, 5), (5, 5)]


def test_n_images_are_n_runs_with_consecutive_seeds(
    provider: ComfyUIProvider, upstream: FakeComfyUI, catalog: Catalog, progress: Progress
) -> None:
    images = run(provider, catalog, progress=progress, n=2, seed=7, num_steps=2)

    seeds = [inputs_of(body["prompt"], "KSampler")[0]["seed"] for body in upstream.prompts]
    assert seeds == [7, 8]
    assert [image.seed for image in images] == [7, 8]
    assert progress.calls == [(0, 4), (1, 4), (2, 4), (3, 4), (4, 4)]


def test_inpainting_uploads_the_image_and_mask_and_loads_them(
    provider: ComfyUIProvider, upstream: FakeComfyUI, catalog: Catalog
) -> None:
    source = ImageInput(image_bytes(48, 32, "png"), "image/png", 48, 32)
    mask = ImageInput(image_bytes(48, 32, "png", (255,) * 3), "image/png", 48, 32)

    [image] = run(
        provider, catalog, "comfyui/flux/inpainting", kind="edit", image=source, mask=mask
    )

    uploads = upstream.requests_to("/upload/image", "POST")
    assert [(u.form["type"], u.form["subfolder"], u.form["overwrite"]) for u in uploads] == [
        ("input", "pixelgate", "true")
    ] * 2
    assert [u.form["image"][1] for u in uploads] == [source.data, mask.data]
    graph = upstream.prompts[0]["prompt"]
    [loaded] = inputs_of(graph, "LoadImage")
    [masked] = inputs_of(graph, "LoadImageMask")
    assert upstream.uploads[loaded["image"]] == source.data
    assert upstream.uploads[masked["image"]] == mask.data
    assert loaded["image"].startswith("pixelgate/image-") and masked["channel"] == "red"
    assert inputs_of(graph, "FluxGuidance")[0]["guidance"] == 30.0
    assert size_of(image.data) == (48, 32)


def test_inpainting_n_images_upload_their_inputs_once(
    provider: ComfyUIProvider, upstream: FakeComfyUI, catalog: Catalog
) -> None:
    source = ImageInput(image_bytes(48, 32, "png"), "image/png", 48, 32)

    images = run(
        provider, catalog, "comfyui/flux/inpainting", kind="edit", image=source, mask=source,
        n=3, seed=10,
    )  # fmt: skip

    assert [image.seed for image in images] == [10, 11, 12]
    assert len(upstream.requests_to("/upload/image", "POST")) == 2
    loaded = {inputs_of(body["prompt"], "LoadImage")[0]["image"] for body in upstream.prompts}
    assert len(loaded) == 1 and len(upstream.prompts) == 3


def test_inpainting_without_a_mask_is_refused_before_any_call(
    provider: ComfyUIProvider, upstream: FakeComfyUI, catalog: Catalog
) -> None:
    source = ImageInput(image_bytes(48, 32, "png"), "image/png", 48, 32)

    with pytest.raises(ValidationError):
        run(provider, catalog, "comfyui/flux/inpainting", kind="edit", image=source)

    assert upstream.seen == []


@pytest.mark.parametrize(
    "plan",
    [
        Plan(websocket=False, step_seconds=0.02),
        Plan(drop_socket_after_start=True, step_seconds=0.02),
    ],
    ids=["websocket-refused", "websocket-lost-mid-run"],
)
def test_without_its_websocket_a_run_is_followed_by_its_history(
    provider: ComfyUIProvider, upstream: FakeComfyUI, catalog: Catalog, plan: Plan
) -> None:
    upstream.plan = plan

    [image] = run(provider, catalog, num_steps=5)

    [prompt_id] = upstream.history
    assert image.data == upstream.outputs[upstream.requests_to("/view")[0].query["filename"]]
    assert len(upstream.requests_to(f"/history/{prompt_id}")) >= 2


def test_an_execution_error_is_a_backend_error_with_comfyuis_message(
    provider: ComfyUIProvider, upstream: FakeComfyUI, catalog: Catalog
) -> None:
    upstream.plan = Plan(fail="Allocation on device 0 would exceed allowed memory")

    with pytest.raises(BackendError) as caught:
        run(provider, catalog)

    assert caught.value.message == (
        "ComfyUI failed the workflow at node 8 (KSampler): "
        "Allocation on device 0 would exceed allowed memory"
    )
    assert upstream.requests_to("/view") == []


def test_a_refused_workflow_is_a_backend_error_naming_the_node(
    provider: ComfyUIProvider, upstream: FakeComfyUI, catalog: Catalog
) -> None:
    errors = {
        "1": {
            "errors": [
                {
                    "type": "value_not_in_list",
                    "message": "Value not in list",
                    "details": "unet_name: 'flux1-dev.safetensors' not in []",
                }
            ],
            "class_type": "UNETLoader",
        }
    }
    upstream._validate = lambda graph: errors  # type: ignore[method-assign]

    with pytest.raises(BackendError) as caught:
        run(provider, catalog)

    assert caught.value.message == (
        "ComfyUI refused the workflow: Prompt outputs failed validation; node 1 (UNETLoader): "
        "Value not in list (unet_name: 'flux1-dev.safetensors' not in [])"
    )


def test_cancel_interrupts_the_running_prompt(
    provider: ComfyUIProvider, upstream: FakeComfyUI, catalog: Catalog, cancel: CancelToken
) -> None:
    upstream.plan = Plan(step_seconds=0.05)
    threading.Timer(0.3, cancel.cancel).start()

    started = time.monotonic()
    with pytest.raises(Canceled):
        run(provider, catalog, cancel=cancel, num_steps=100)

    assert time.monotonic() - started < 2.0
    deadline = time.monotonic() + 5
    while not upstream.history and time.monotonic() < deadline:
        time.sleep(0.02)
    [prompt_id] = upstream.history
    assert upstream.history[prompt_id]["status"]["status_str"] == "error"  # interrupted
    [interrupt] = upstream.requests_to("/interrupt", "POST")
    assert interrupt.json == {"prompt_id": prompt_id}
    assert upstream.requests_to("/queue", "POST") == []


def test_cancel_takes_a_waiting_prompt_off_the_queue_and_leaves_others_running(
    provider: ComfyUIProvider, upstream: FakeComfyUI, catalog: Catalog, cancel: CancelToken
) -> None:
    upstream.plan = Plan(hold=True)
    graph = json.loads(template_path("flux.json").read_text())
    other = httpx.post(f"{upstream.url}/prompt", json={"prompt": graph, "client_id": "other"})
    other_id = other.json()["prompt_id"]
    threading.Timer(0.3, cancel.cancel).start()

    with pytest.raises(Canceled):
        run(provider, catalog, cancel=cancel)

    [delete] = upstream.requests_to("/queue", "POST")
    ours = upstream.seen[-1]  # the delete was the last call
    assert ours is delete
    assert delete.json["delete"] != [other_id] and len(delete.json["delete"]) == 1
    assert upstream.pending == []
    assert upstream.running is not None and upstream.running.prompt_id == other_id
    assert not upstream.running.interrupted
    assert upstream.requests_to("/interrupt") == []


def test_past_its_window_a_run_is_interrupted_and_times_out(
    upstream: FakeComfyUI, make_settings: Any, catalog: Catalog
) -> None:
    provider = ComfyUIProvider.from_settings(
        comfy_settings(make_settings, upstream, comfyui_timeout_seconds=0.3)
    )
    upstream.plan = Plan(step_seconds=0.05)

    with pytest.raises(ProviderTimeout):
        run(provider, catalog, num_steps=100)

    assert len(upstream.requests_to("/interrupt", "POST")) == 1


def test_the_auth_header_goes_with_every_call_and_the_websocket(
    make_settings: Any, catalog: Catalog
) -> None:
    with FakeComfyUI(auth=AUTH) as upstream:
        provider = ComfyUIProvider.from_settings(
            comfy_settings(make_settings, upstream, comfyui_auth_header=f"{AUTH[0]}: {AUTH[1]}")
        )
        source = ImageInput(image_bytes(48, 32, "png"), "image/png", 48, 32)
        run(provider, catalog, "comfyui/flux/inpainting", kind="edit", image=source, mask=source)

        assert {r.path for r in upstream.seen} >= {"/ws", "/prompt", "/upload/image", "/view"}
        assert {r.headers.get(AUTH[0]) for r in upstream.seen} == {AUTH[1]}
        assert upstream.requests_to(f"/history/{next(iter(upstream.history))}")


def test_a_refused_auth_header_is_a_backend_error(make_settings: Any, catalog: Catalog) -> None:
    with FakeComfyUI(auth=AUTH) as upstream:
        provider = ComfyUIProvider.from_settings(
            comfy_settings(make_settings, upstream, comfyui_auth_header=f"{AUTH[0]}: wrong")
        )
        with pytest.raises(BackendError, match=r"HTTP 401") as caught:
            run(provider, catalog)

    assert "wrong" not in caught.value.message


def test_without_a_server_the_models_are_unavailable(make_settings: Any, catalog: Catalog) -> None:
    provider = ComfyUIProvider.from_settings(make_settings())

    assert provider.unavailable_reason(catalog.resolve("comfyui/flux")) == (
        "provider 'comfyui' has no server (set PIXELGATE_COMFYUI_BASE_URL)"
    )
    with pytest.raises(ModelUnavailable):
        run(provider, catalog)


def operator_spec(catalog: Catalog, path: Path, model: str = "comfyui/flux") -> ModelSpec:
    return catalog.resolve(model).model_copy(update={"source": str(path)})


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        (lambda g: g.pop("7"), "no node titled for size"),
        (lambda g: g["7"]["_meta"].update(title="pixelgate: sizes"), "names role 'sizes'"),
        (lambda g: g["6"]["_meta"].update(title="pixelgate: prompt"), "named by nodes 4 and 6"),
        (lambda g: g["7"]["inputs"].pop("height"), "node 7 (size) has no input width or height"),
        (lambda g: g["8"].pop("inputs"), "node 8 has no inputs: not API format"),
    ],
)
def test_an_unusable_template_makes_its_model_unavailable_with_the_reason(
    provider: ComfyUIProvider, catalog: Catalog, tmp_path: Path, edit: Any, reason: str
) -> None:
    graph = json.loads(template_path("flux.json").read_text())
    edit(graph)
    path = tmp_path / "mine.json"
    path.write_text(json.dumps(graph))

    said = provider.unavailable_reason(operator_spec(catalog, path))

    assert said is not None and reason in said


def test_an_operator_template_by_absolute_path_is_used(
    provider: ComfyUIProvider, upstream: FakeComfyUI, catalog: Catalog, tmp_path: Path
) -> None:
    graph = json.loads(template_path("flux.json").read_text())
    graph["8"]["inputs"]["sampler_name"] = "dpmpp_2m"
    path = tmp_path / "mine.json"
    path.write_text(json.dumps(graph))
    spec = operator_spec(catalog, path)
    task = ImageTask(kind="generate", options=options_for(catalog, spec))

    provider.run(spec, task, progress=Progress(), cancel=CancelToken())

    assert inputs_of(upstream.prompts[0]["prompt"], "KSampler")[0]["sampler_name"] == "dpmpp_2m"


def test_a_title_may_name_several_roles_and_seed_may_be_noise_seed() -> None:
    workflow = Workflow.parse(
        {
            "1": {
                "class_type": "KSamplerAdvanced",
                "inputs": {"noise_seed": 0, "steps": 20},
                "_meta": {"title": "pixelgate: seed, steps"},
            }
        }
    )

    assert workflow.nodes == {"seed": "1", "steps": "1"}
    assert workflow.filled({"seed": 5, "steps": 3})["1"]["inputs"] == {"noise_seed": 5, "steps": 3}
    with pytest.raises(TemplateError, match="no node titled for prompt"):
        workflow.require(frozenset({"prompt", "seed"}))
