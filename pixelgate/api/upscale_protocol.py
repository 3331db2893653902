"""The body of `POST /v1/inference/images/upscale` (pydantic only; the request turns itself into
the service's command)."""

from __future__ import annotations

from typing import Any

from pydantic import ConfigDict, Field

from pixelgate.api.protocol import WebhookFields, with_aliases
from pixelgate.api.single_image_protocol import SingleImageRequest
from pixelgate.service.jobs import ImageCommand

DEFAULT_MODEL = "pixelgate/lanczos"


@with_aliases
class UpscaleRequest(SingleImageRequest, WebhookFields):
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
    cache: bool = Field(
        default=True,
        description="False skips the result cache; same as the header Cache-Control: no-cache.",
    )

    def to_command(self, *, image_file: bytes | None = None) -> ImageCommand:
        """The service command; `image_file` is a multipart upload."""
        options: dict[str, Any] = dict(self.model_extra or {})
        if self.factor is not None:
            options["factor"] = self.factor
        if self.prompt is not None:
            options["prompt"] = self.prompt
        return ImageCommand(
            task="upscale",
            model=self.model,
            options=options,
            response_format=self.response_format,
            metadata=self.metadata,
            image=self.upload(image_file),
            use_cache=self.cache,
            webhook=self.webhook_request(),
        )
