"""The diffusers families pixelgate runs, what each can do, and how one model's pipelines for
the three tasks are made from one set of weights. The upscalers (SD x4, SD x2 latent) do one
task only: upscaling."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

PipelineTask = Literal["text-to-image", "image-to-image", "inpaint", "upscale"]
ALL_TASKS: frozenset[PipelineTask] = frozenset({"text-to-image", "image-to-image", "inpaint"})
UPSCALE: frozenset[PipelineTask] = frozenset({"upscale"})


@dataclass(frozen=True)
class Family:
    name: str
    tasks: frozenset[PipelineTask]
    base_task: PipelineTask
    """What the pipeline in the model folder does; the others are made from it."""
    negative_prompt: bool
    """Whether a negative prompt steers it (FLUX.1 has no classifier-free guidance)."""

    @property
    def step_callback(self) -> str:
        """The keyword its `__call__` takes a step callback under: the upscalers still take
        only diffusers' older `callback(step, timestep, latents)`."""
        return "callback" if self.tasks == UPSCALE else "callback_on_step_end"


FAMILIES = {
    "StableDiffusionPipeline": Family("stable-diffusion", ALL_TASKS, "text-to-image", True),
    "StableDiffusionXLPipeline": Family("stable-diffusion-xl", ALL_TASKS, "text-to-image", True),
    "FluxPipeline": Family("flux", ALL_TASKS, "text-to-image", False),
    "FluxFillPipeline": Family("flux-fill", frozenset({"inpaint"}), "inpaint", False),
    "StableDiffusionUpscalePipeline": Family("sd-x4-upscaler", UPSCALE, "upscale", True),
    "StableDiffusionLatentUpscalePipeline": Family(
        "sd-x2-latent-upscaler", UPSCALE, "upscale", True
    ),
}


def family_of(pipeline: Any) -> Family:
    """The family of a loaded pipeline; an unknown class can only draw from text."""
    name = type(pipeline).__name__
    return FAMILIES.get(name, Family(name, frozenset({"text-to-image"}), "text-to-image", True))


def pipeline_for(pipelines: dict[str, Any], family: Family, task: PipelineTask) -> Any:
    """The pipeline of `task`, made from the base one on first use. `from_pipe` reuses the
    base pipeline's modules: no weights are loaded or copied."""
    if task not in pipelines:
        from diffusers import AutoPipelineForImage2Image, AutoPipelineForInpainting

        base = pipelines[family.base_task]
        maker = (
            AutoPipelineForImage2Image if task == "image-to-image" else AutoPipelineForInpainting
        )
        pipeline = maker.from_pipe(base)
        pipeline.set_progress_bar_config(disable=True)
        pipelines[task] = pipeline
    return pipelines[task]
