"""Local models run with Hugging Face diffusers, in the process that calls `run` (the model
worker process: see `pixelgate.engine.model_process`).

Families: Stable Diffusion 1.x/2.x (SD-Turbo), SDXL (SDXL-Turbo), FLUX.1 (schnell, dev) and
FLUX.1 Fill, and the upscalers (SD x4, SD x2 latent). Tasks: text-to-image, image-to-image
(`strength`), inpainting (white repaints, black keeps) and upscaling (an upscaler's only one).
A model is loaded once by the `ModelManager` and its three pipelines share those weights.
Concurrent compatible jobs are merged into one pipeline call by its `Batcher`; each job keeps
its own prompt, negative prompt and seeds.

Reproducibility: a request with a seed gives the same bytes every time it runs alone, and a
batched one the same bytes whenever the same requests are batched together in the same order.
Batching may change an image's last bits (CPU convolution kernels differ with the batch size),
never what it shows; making batches bit-identical to solo calls would mean turning oneDNN off
for the whole process, which made solo calls several times slower.

Every pipeline call runs on one thread, the same for every model: a thread's first torch call
sets up its OpenMP team and caches (a tiny SD 1.x at 256x256 took about 75 ms more a call when
each call came from a new thread), and a second long-lived team would make OpenMP count more
threads than cores and stop spinning between parallel regions, which slowed every call by a
quarter on 2 cores.

Progress comes from the diffusers step callback, which is also where a cancel takes effect. A
job whose caller shows previews gets, now and then, a small picture of its first image's
current latents with its progress (see `step_previews`).
"""

from __future__ import annotations

import io
import logging
import os
import threading
from collections.abc import Hashable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from PIL import Image

from pixelgate.catalog import DiffusionOptions, ModelSpec
from pixelgate.catalog.options import (
    DEFAULT_STRENGTH,
    DiffusionUpscaleOptions,
    DiffusionX4UpscaleOptions,
)
from pixelgate.errors import Canceled, ModelUnavailable, ValidationError
from pixelgate.extras import missing_extra
from pixelgate.imaging import CONTENT_TYPES, encode_image
from pixelgate.providers.base import (
    CancelToken,
    GeneratedImage,
    ImageInput,
    ImageTask,
    PreviewCallback,
    ProgressCallback,
    previews_of,
)
from pixelgate.providers.batching import Batcher, BatchStats, Withdrawn
from pixelgate.providers.devices import (
    fit_memory,
    pick_device,
    pipeline_bytes,
)
from pixelgate.providers.diffusion_families import PipelineTask, family_of, pipeline_for
from pixelgate.providers.model_manager import LoadedModel, ModelManager
from pixelgate.providers.step_previews import PreviewPacer, latent_format, render
from pixelgate.providers.tiny_model import build_tiny_pipeline

__all__ = [
    "LocalDiffusionProvider",
    "local_folder_name",
    "model_path",
    "pick_device",
    "unavailable_reason",
]

log = logging.getLogger(__name__)

BUILTIN_BUILDERS = {"builtin:tiny": build_tiny_pipeline}
"""Built-in models made on first use, into the models folder."""
SHIPPED_FOLDERS = {"builtin:shapes": Path(__file__).resolve().parent.parent / "weights" / "shapes"}
"""Built-in models whose trained weights ship inside the package, with their model card (the
shapes model: trained by training/shapes)."""


def local_folder_name(source: str) -> str:
    """`stabilityai/sd-turbo` → `stabilityai--sd-turbo`; `builtin:tiny` → `builtin--tiny`."""
    return source.replace("/", "--").replace(":", "--")


def model_path(models_dir: Path, spec: ModelSpec) -> Path:
    """Where a local model's diffusers folder is: shipped in the package, or under `models_dir`."""
    source = spec.source or spec.id
    return SHIPPED_FOLDERS.get(source) or models_dir / local_folder_name(source)


def unavailable_reason(models_dir: Path, spec: ModelSpec) -> str | None:
    """Why a local model cannot run here (no local engine installed, or its weights are
    missing), or None when it can."""
    without_engine = missing_extra("a local model", "local")
    if without_engine is not None:
        return without_engine
    source = spec.source or spec.id
    if source in BUILTIN_BUILDERS or (model_path(models_dir, spec) / "model_index.json").exists():
        return None
    if source in SHIPPED_FOLDERS:
        folder = SHIPPED_FOLDERS[source]
        return f"its weights are missing from this installation (expected in {folder})"
    return (
        f"its weights are not on this machine. Run `pixelgate pull {spec.id}` "
        "where the Hugging Face Hub can be reached"
    )


@dataclass(frozen=True)
class Request:
    """One job's share of a pipeline call."""

    options: DiffusionOptions | DiffusionUpscaleOptions
    seeds: list[int]
    image: Image.Image | None
    mask: Image.Image | None
    """Binary, `L` mode, the image's size: 255 repaints, 0 keeps."""
    progress: ProgressCallback
    cancel: CancelToken
    preview: PreviewCallback | None = None
    """Where previews of this job's first image go, when someone shows them."""


@dataclass(frozen=True)
class BatchKey:
    """What jobs must share to run in one pipeline call."""

    task: PipelineTask
    width: int
    height: int
    num_steps: int
    guidance_scale: float
    strength: float
    negative_prompt: bool
    factor: int = 1
    """An upscale's factor (`width` and `height` are its input's)."""
    noise_level: int | None = None
    """The SD x4 upscaler's noise on its input."""


class LocalDiffusionProvider:
    name = "diffusers"

    def __init__(
        self,
        models_dir: Path,
        *,
        device: str = "auto",
        torch_threads: int | None = None,
        memory_budget_bytes: int | None = None,
        vram_budget_bytes: int | None = None,
        max_batch_size: int = 4,
        batch_window_seconds: float = 0.01,
        torch_compile: bool = False,
    ) -> None:
        self.models_dir = models_dir
        self._device_setting = device
        self._torch_threads = torch_threads
        self._torch_compile = torch_compile
        self.max_batch_size = max_batch_size
        self.batch_window_seconds = batch_window_seconds
        self.models = ModelManager(
            self._load_by_id,
            self._estimate,
            budgets={"cpu": memory_budget_bytes, "cuda": vram_budget_bytes},
        )
        self._specs: dict[str, ModelSpec] = {}
        self._batchers: dict[str, Batcher[Request, list[GeneratedImage]]] = {}
        self._model_thread = ThreadPoolExecutor(
            1, thread_name_prefix="pixelgate-model", initializer=self._set_threads
        )
        """Where every pipeline call runs (see the module's docstring)."""
        self._encoders = ThreadPoolExecutor(
            max(2, torch_threads or os.cpu_count() or 1), thread_name_prefix="pixelgate-encode"
        )
        """Where a batch's images are encoded, several at once: WebP lets go of the GIL (8 of
        256x256 in 142 ms instead of 218 ms on 2 cores); PNG and JPEG take about a millisecond
        an image either way."""
        self._lock = threading.Lock()

    def model_path(self, spec: ModelSpec) -> Path:
        return model_path(self.models_dir, spec)

    def unavailable_reason(self, spec: ModelSpec) -> str | None:
        return unavailable_reason(self.models_dir, spec)

    # -- running --------------------------------------------------------------------------

    def run(
        self,
        spec: ModelSpec,
        task: ImageTask,
        *,
        progress: ProgressCallback,
        cancel: CancelToken,
        alone: bool = False,
    ) -> list[GeneratedImage]:
        """The provider interface's `run`; `alone`: no other job for this model is on its way
        (the model worker process is told so by the API process), so the batcher starts at once."""
        # 1. the job's share of a pipeline call: its inputs, its seeds, what it shares
        if task.kind == "upscale":
            request, key = _upscale_request(spec, task, progress, cancel)
        else:
            request, key = _drawing_request(spec, task, progress, cancel)
        if cancel.canceled:
            raise Canceled("Job canceled")
        # 2. the pipeline call, shared with compatible jobs that wait for the same model
        try:
            return self._batcher(spec).submit(key, request, alone=alone)
        except Withdrawn:
            raise Canceled("Job canceled") from None

    def preload(self, specs: Sequence[ModelSpec]) -> None:
        """Load these models now, in order (under the memory budget like any other)."""
        for spec in specs:
            with self._lock:
                self._specs[spec.id] = spec
            self.models.preload([spec.id])

    def batch_stats(self, model_id: str) -> BatchStats:
        with self._lock:
            batcher = self._batchers.get(model_id)
        return batcher.stats if batcher is not None else BatchStats(0, 0, 0)

    def _batcher(self, spec: ModelSpec) -> Batcher[Request, list[GeneratedImage]]:
        with self._lock:
            self._specs[spec.id] = spec
            batcher = self._batchers.get(spec.id)
            if batcher is None:

                def run(key: Hashable, requests: Sequence[Request]) -> list[Any]:
                    assert isinstance(key, BatchKey)
                    return self._model_thread.submit(self._run_batch, spec, key, requests).result()

                batcher = Batcher(
                    run,
                    max_size=self.max_batch_size,
                    window_seconds=self.batch_window_seconds,
                    size=lambda request: len(request.seeds),
                    canceled=lambda request: request.cancel.canceled,
                )
                self._batchers[spec.id] = batcher
            return batcher

    def _run_batch(
        self, spec: ModelSpec, key: BatchKey, requests: Sequence[Request]
    ) -> list[list[GeneratedImage] | BaseException]:
        """One pipeline call for every live request; each gets its own images or error."""
        import torch

        outcomes: list[list[GeneratedImage] | BaseException] = [
            Canceled("Job canceled") for _ in requests
        ]
        live = [index for index, request in enumerate(requests) if not request.cancel.canceled]
        if not live:
            return outcomes
        with self.models.use(spec.id) as model, model.run_lock:
            # 1. the task's pipeline, made from the model's one set of weights
            family = family_of(next(iter(model.pipelines.values())))  # the base comes first
            if key.task not in family.tasks:
                error = ValidationError(
                    f"Model {spec.id!r} ({family.name}) does not support {key.task}",
                    param="model",
                )
                return [error for _ in requests]
            pipeline = pipeline_for(model.pipelines, family, key.task)
            # 2. one row per image: its request's prompt, negative prompt, seed and inputs
            rows = [(index, seed) for index in live for seed in requests[index].seeds]
            arguments: dict[str, Any] = {
                "prompt": [requests[index].options.prompt or "" for index, _ in rows],
                "num_inference_steps": key.num_steps,
                "guidance_scale": key.guidance_scale,
                "generator": [torch.Generator("cpu").manual_seed(seed) for _, seed in rows],
            }
            if family.negative_prompt and key.negative_prompt:
                arguments["negative_prompt"] = [
                    requests[index].options.negative_prompt or "" for index, _ in rows
                ]
            if key.task == "upscale":
                arguments["image"] = [requests[index].image for index, _ in rows]
                if key.noise_level is not None:
                    arguments["noise_level"] = key.noise_level
            else:
                arguments["num_images_per_prompt"] = 1
                if key.task != "image-to-image" or family.name.startswith("flux"):
                    arguments["width"], arguments["height"] = key.width, key.height
                if key.task != "text-to-image":
                    arguments["image"] = [requests[index].image for index, _ in rows]
                    arguments["strength"] = key.strength
                if key.task == "inpaint":
                    arguments["mask_image"] = [requests[index].mask for index, _ in rows]

            # 3. progress to every job, with a preview of its first image to those who show
            # them (now and then); stop early only when every job was canceled
            preview_format = latent_format(family.name)
            first_rows = {index: rows.index((index, requests[index].seeds[0])) for index in live}
            pacer = PreviewPacer()

            def on_step_end(pipe: Any, step: int, _timestep: Any, kwargs: dict[str, Any]) -> Any:
                total = int(getattr(pipe, "num_timesteps", None) or key.num_steps)
                latents: Any = kwargs.get("latents")
                previewing = (
                    preview_format is not None
                    and latents is not None
                    and latents.ndim == 4
                    and any(requests[index].preview is not None for index in live)
                    and pacer.due()
                )
                for index in live:
                    request = requests[index]
                    if request.cancel.canceled:
                        continue
                    if previewing and request.preview is not None and preview_format is not None:
                        picture = render(latents[first_rows[index]], preview_format)
                        request.preview(step + 1, total, picture)
                    else:
                        request.progress(step + 1, total)
                if all(requests[index].cancel.canceled for index in live):
                    pipe._interrupt = True
                return kwargs

            def on_step(step: int, _timestep: Any, latents: Any) -> None:
                """The upscalers' older callback: progress, and a stop (no image at all) when
                every job was canceled."""
                on_step_end(pipeline, step, _timestep, {"latents": latents})
                if all(requests[index].cancel.canceled for index in live):
                    raise _AllCanceled

            # 4. the pipeline call
            pixels = key.width * key.height * key.factor**2
            fit_memory(pipeline, model.device, pixels=pixels, images=len(rows))
            if len(live) > 1:
                log.info("batch of %d jobs (%d images) on %s", len(live), len(rows), spec.id)
            callback = on_step if family.step_callback == "callback" else on_step_end
            try:
                with torch.inference_mode():
                    images = pipeline(**arguments, **{family.step_callback: callback}).images
            except _AllCanceled:
                return outcomes
        # 5. each job's images, encoded side by side (the encoders let go of the GIL); a
        # canceled job never gets the half-made ones
        position = 0
        kept: list[tuple[int, list[tuple[Image.Image, int]]]] = []
        for index in live:
            request = requests[index]
            mine = images[position : position + len(request.seeds)]
            position += len(request.seeds)
            if not request.cancel.canceled:
                kept.append((index, list(zip(mine, request.seeds, strict=True))))

        def encode(item: tuple[int, Image.Image, int]) -> GeneratedImage:
            index, image, seed = item
            return _result(image, seed, requests[index], key.task)

        work = [(index, image, seed) for index, pairs in kept for image, seed in pairs]
        encoded = iter(self._encoders.map(encode, work) if len(work) > 1 else map(encode, work))
        for index, pairs in kept:
            outcomes[index] = [next(encoded) for _ in pairs]
        return outcomes

    def _set_threads(self) -> None:
        """The configured torch thread count, for the calling thread (OpenMP's count is kept
        per thread)."""
        if self._torch_threads:
            import torch

            torch.set_num_threads(self._torch_threads)

    # -- loading --------------------------------------------------------------------------

    def _estimate(self, model_id: str) -> tuple[str, int]:
        """The device a model goes to and the bytes of its weight files."""
        device, _dtype = pick_device(self._device_setting)
        path = self.model_path(self._specs[model_id])
        on_disk = sum(
            file.stat().st_size
            for pattern in ("*.safetensors", "*.bin")
            for file in path.rglob(pattern)
        )
        return device, on_disk

    def _load_by_id(self, model_id: str) -> LoadedModel:
        return self._load(self._specs[model_id])

    def _load(self, spec: ModelSpec) -> LoadedModel:
        import torch
        from diffusers import DiffusionPipeline

        self._set_threads()
        path = self.model_path(spec)
        builder = BUILTIN_BUILDERS.get(spec.source or "")
        if builder is not None and not (path / "model_index.json").exists():
            builder(path)
        if not (path / "model_index.json").exists():
            raise ModelUnavailable(
                f"Model {spec.id!r} is unavailable: {self.unavailable_reason(spec)}",
                param="model",
            )
        device, dtype = pick_device(self._device_setting)
        pipeline = DiffusionPipeline.from_pretrained(path, dtype=dtype, local_files_only=True)
        pipeline = pipeline.to(device)
        pipeline.set_progress_bar_config(disable=True)
        if device == "cpu":
            # oneDNN's convolutions are faster on channels-last tensors: a tiny SD 1.x at 256x256
            # ran about 10% faster (CUDA: not measured yet, so left as loaded)
            for name in ("unet", "vae"):
                module = getattr(pipeline, name, None)
                if module is not None:
                    module.to(memory_format=torch.channels_last)
        if self._torch_compile:
            denoiser = getattr(pipeline, "unet", None) or getattr(pipeline, "transformer", None)
            if denoiser is not None:
                denoiser.compile()  # in place, so the pipelines made by from_pipe share it
        family = family_of(pipeline)
        return LoadedModel(
            pipelines={family.base_task: pipeline},
            device=device,
            nbytes=pipeline_bytes(pipeline),
            family=family.name,
        )


DrawingTask = Literal["text-to-image", "image-to-image", "inpaint"]
"""The pipeline tasks of the models that draw (every one but upscaling)."""


class _AllCanceled(Exception):
    """Raised from an upscaler's step callback to stop it: every job of the call was canceled."""


def _drawing_request(
    spec: ModelSpec, task: ImageTask, progress: ProgressCallback, cancel: CancelToken
) -> tuple[Request, BatchKey]:
    """A text-to-image, image-to-image or inpainting job's share of a pipeline call."""
    options = task.options
    if not isinstance(options, DiffusionOptions) or options.seed is None:
        raise TypeError("local diffusion needs DiffusionOptions with a seed")
    # 1. the pipeline task, and the inputs it needs
    pipeline_task = _pipeline_task(spec, task)
    size = (options.width, options.height)
    image = _decode(task.image, size, "RGB") if task.image is not None else None
    mask = _binary(_decode(task.mask, size, "L")) if task.mask is not None else None
    if pipeline_task != "text-to-image" and image is None:
        raise ValidationError("Image editing needs an input image", param="image")
    # 2. one seed per image, so each image is reproducible from its own seed
    seeds = [(options.seed + index) % 2**32 for index in range(options.n)]
    request = Request(options, seeds, image, mask, progress, cancel, previews_of(progress))
    key = BatchKey(
        task=pipeline_task,
        width=options.width,
        height=options.height,
        num_steps=options.num_steps,
        guidance_scale=options.guidance_scale,
        strength=options.strength
        or (1.0 if pipeline_task == "text-to-image" else DEFAULT_STRENGTH[pipeline_task]),
        negative_prompt=options.negative_prompt is not None,
    )
    return request, key


def _upscale_request(
    spec: ModelSpec, task: ImageTask, progress: ProgressCallback, cancel: CancelToken
) -> tuple[Request, BatchKey]:
    """An upscale's share of a pipeline call: its input at the size the service chose."""
    options = task.options
    if not isinstance(options, DiffusionUpscaleOptions) or options.seed is None:
        raise TypeError("a local upscaler needs DiffusionUpscaleOptions with a seed")
    if task.image is None:
        raise ValidationError("Upscaling needs an input image", param="image")
    size = (task.image.width, task.image.height)
    image = _decode(task.image, size, "RGB")
    request = Request(options, [options.seed], image, None, progress, cancel)
    key = BatchKey(
        task="upscale",
        width=size[0],
        height=size[1],
        num_steps=options.num_steps,
        guidance_scale=options.guidance_scale,
        strength=1.0,
        negative_prompt=options.negative_prompt is not None,
        factor=options.factor or 1,
        noise_level=(
            options.noise_level if isinstance(options, DiffusionX4UpscaleOptions) else None
        ),
    )
    return request, key


def _pipeline_task(spec: ModelSpec, task: ImageTask) -> DrawingTask:
    if task.kind == "generate":
        return "text-to-image"
    if task.kind == "edit":
        return "inpaint" if task.mask is not None else "image-to-image"
    raise ValidationError(f"Model {spec.id!r} does not support {task.kind}", param="model")


def _decode(data: ImageInput, size: tuple[int, int], mode: str) -> Image.Image:
    """An input image in `mode` at the size the job runs at (the service chose it)."""
    with Image.open(io.BytesIO(data.data)) as opened:
        image = opened.convert(mode)
    if image.size != size:
        image = image.resize(size, Image.Resampling.LANCZOS)
    return image


def _binary(mask: Image.Image) -> Image.Image:
    """White (≥ 128) repaints, the rest keeps: the same threshold diffusers binarizes at."""
    return mask.point(lambda value: 255 if value >= 128 else 0)


def _result(image: Image.Image, seed: int, request: Request, task: PipelineTask) -> GeneratedImage:
    if task == "inpaint" and request.image is not None and request.mask is not None:
        # diffusers repaints in latent space, so kept pixels drift through the VAE; put the
        # caller's own pixels back wherever the mask says keep
        image = Image.composite(image.convert("RGB"), request.image, request.mask)
    fmt = request.options.output_format
    return GeneratedImage(
        data=encode_image(image, fmt),
        content_type=CONTENT_TYPES[fmt],
        width=image.width,
        height=image.height,
        seed=seed,
    )
