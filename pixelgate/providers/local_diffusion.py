"""Local models run in-process with Hugging Face diffusers.

Each pipeline is loaded once and kept; one pipeline call at a time per model. Progress comes
from the diffusers step callback, which is also where a cancel takes effect.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from pixelgate.catalog import DiffusionOptions, ImageOptions, ModelSpec
from pixelgate.errors import Canceled, ModelUnavailable, ValidationError
from pixelgate.imaging import CONTENT_TYPES, encode_image
from pixelgate.providers.base import CancelToken, GeneratedImage, ImageTask, ProgressCallback
from pixelgate.providers.tiny_model import build_tiny_pipeline

BUILTIN_BUILDERS = {"builtin:tiny": build_tiny_pipeline}


def local_folder_name(source: str) -> str:
    """`stabilityai/sd-turbo` → `stabilityai--sd-turbo`; `builtin:tiny` → `builtin--tiny`."""
    return source.replace("/", "--").replace(":", "--")


def pick_device(setting: str) -> tuple[str, Any]:
    """The device and dtype to run on: bf16/fp16 on CUDA, fp32 elsewhere."""
    import torch

    device = setting
    if setting == "auto":
        if torch.cuda.is_available():
            device = "cuda"
        elif torch.backends.mps.is_available():
            device = "mps"
        else:
            device = "cpu"
    if device == "cuda":
        return device, torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device == "mps":
        return device, torch.float16
    return device, torch.float32


class LocalDiffusionProvider:
    name = "diffusers"

    def __init__(
        self, models_dir: Path, *, device: str = "auto", torch_threads: int | None = None
    ) -> None:
        self.models_dir = models_dir
        self._device_setting = device
        self._torch_threads = torch_threads
        self._pipelines: dict[str, Any] = {}
        self._load_lock = threading.Lock()
        self._run_locks: dict[str, threading.Lock] = {}

    def model_path(self, spec: ModelSpec) -> Path:
        return self.models_dir / local_folder_name(spec.source or spec.id)

    def unavailable_reason(self, spec: ModelSpec) -> str | None:
        source = spec.source or spec.id
        if source in BUILTIN_BUILDERS or (self.model_path(spec) / "model_index.json").exists():
            return None
        return (
            f"its weights are not on this machine. Run `pixelgate pull {spec.id}` "
            "where the Hugging Face Hub can be reached"
        )

    def run(
        self,
        spec: ModelSpec,
        task: ImageTask,
        *,
        progress: ProgressCallback,
        cancel: CancelToken,
    ) -> list[GeneratedImage]:
        if task.kind != "generate":
            raise ValidationError(f"Model {spec.id!r} does not support {task.kind}", param="model")
        return self._text_to_image(spec, task.options, progress=progress, cancel=cancel)

    def _text_to_image(
        self,
        spec: ModelSpec,
        options: ImageOptions,
        *,
        progress: ProgressCallback,
        cancel: CancelToken,
    ) -> list[GeneratedImage]:
        import torch

        if not isinstance(options, DiffusionOptions) or options.seed is None:
            raise TypeError("local diffusion needs DiffusionOptions with a seed")
        # 1. the pipeline, loaded once
        pipeline = self._pipeline(spec)
        if cancel.canceled:
            raise Canceled("Job canceled")
        # 2. one generator per image, so each image is reproducible from its own seed
        seeds = [(options.seed + index) % 2**32 for index in range(options.n)]
        generators = [torch.Generator("cpu").manual_seed(seed) for seed in seeds]

        def on_step_end(pipe: Any, step: int, _timestep: Any, kwargs: dict[str, Any]) -> Any:
            progress(step + 1, options.num_steps)
            if cancel.canceled:
                pipe._interrupt = True
            return kwargs

        # 3. the pipeline call, one at a time per model
        with self._run_locks[spec.id], torch.inference_mode():
            output = pipeline(
                prompt=options.prompt,
                negative_prompt=options.negative_prompt,
                num_images_per_prompt=options.n,
                width=options.width,
                height=options.height,
                num_inference_steps=options.num_steps,
                guidance_scale=options.guidance_scale,
                generator=generators,
                callback_on_step_end=on_step_end,
            )
        # 4. an interrupted run still decodes a half-made image: never hand that back
        if cancel.canceled:
            raise Canceled("Job canceled")
        fmt = options.output_format
        return [
            GeneratedImage(
                data=encode_image(image, fmt),
                content_type=CONTENT_TYPES[fmt],
                width=image.width,
                height=image.height,
                seed=seed,
            )
            for image, seed in zip(output.images, seeds, strict=True)
        ]

    def _pipeline(self, spec: ModelSpec) -> Any:
        with self._load_lock:
            if spec.id not in self._pipelines:
                self._pipelines[spec.id] = self._load(spec)
                self._run_locks[spec.id] = threading.Lock()
            return self._pipelines[spec.id]

    def _load(self, spec: ModelSpec) -> Any:
        import torch
        from diffusers import DiffusionPipeline

        if self._torch_threads:
            torch.set_num_threads(self._torch_threads)
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
        return pipeline
