"""The body of `POST /v1/inference/images/upscale` (pydantic only; the request turns itself into
the service's command)."""

from __future__ import annotations

from pydantic import ConfigDict, Field

from pixelgate.api.protocol import NO_UPLOADS, CachedJobRequest, Uploads, with_aliases
from pixelgate.api.single_image_protocol import SingleImageRequest
from pixelgate.service.jobs import ImageCommand

DEFAULT_MODEL = "pixelgate/lanczos"


@with_aliases
class UpscaleRequest(SingleImageRequest, CachedJobRequest):
    """Upscaling: one input image in, the same picture `factor` times wider and taller out. The
    image comes as base64 (`image` / `input_image`), as a stored result's id (`image_file_id` /
    `input_image_file_id`), or as the multipart file `image`. Send the model's own options at
    the top level too (`num_steps`, `guidance_scale`, `noise_level`, `seed`, `creativity`,
    ...); `GET /v1/models` lists each upscaler's options, factors and input limits."""

    model_config = ConfigDict(
        extra="allow",
        populate_by_name=True,
        json_schema_extra={
            "examples": [
                {"image": "<base64 PNG>", "factor": 4},
                {
                    "model": "stabilityai/stable-diffusion-x4-upscaler",
                    "image_file_id": "file_...",
                    "prompt": "a sharp photo of a lighthouse",
                },
            ]
        },
    )

    model: str = Field(
        default=DEFAULT_MODEL, description="An upscaler (`pixelgate/lanczos` when unset)."
    )
    factor: int | None = Field(
        default=None,
        description="How many times wider and taller: 2 or 4, as the model allows (its first "
        "when unset; none for a model that picks the output size itself).",
    )
    prompt: str | None = Field(
        default=None, description="What the picture shows, for upscalers that take a prompt."
    )

    def to_command(self, files: Uploads = NO_UPLOADS) -> ImageCommand:
        return self.command(
            "upscale",
            {"factor": self.factor, "prompt": self.prompt},
            image=self.upload(files.get("image")),
            use_cache=self.cache,
        )
