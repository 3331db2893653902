"""The body of `POST /v1/inference/images/remove-background` (pydantic only; the request turns
itself into the service's command)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field

from pixelgate.api.protocol import WebhookFields, with_aliases
from pixelgate.api.single_image_protocol import SingleImageRequest
from pixelgate.service.jobs import ImageCommand

DEFAULT_MODEL = "rembg/u2netp"


@with_aliases
class RemoveBackgroundRequest(SingleImageRequest, WebhookFields):
    """Background removal: one input image in, one transparent PNG (or WebP) out. The image comes
    as base64 (`image`, or `input_image` as in edits; a `data:` URL is fine) or as the id of a
    stored result (`image_file_id` / `input_image_file_id`). The same fields, with the image as
    the file `image`, are accepted as multipart/form-data."""

    model_config = ConfigDict(
        extra="allow",
        populate_by_name=True,
        json_schema_extra={
            "examples": [
                {"image": "<base64 PNG>"},
                {"model": "stability/remove-background", "image_file_id": "file_..."},
            ]
        },
    )

    model: str = Field(default=DEFAULT_MODEL, description="A background-removal model.")
    output_format: Literal["png", "webp"] | None = Field(
        default=None, description="`png` (default) or `webp`; both keep transparency."
    )

    def to_command(self, *, image_file: bytes | None = None) -> ImageCommand:
        """The service command; `image_file` is a multipart upload."""
        options: dict[str, Any] = dict(self.model_extra or {})
        if self.output_format is not None:
            options["output_format"] = self.output_format
        return ImageCommand(
            task="remove-background",
            model=self.model,
            options=options,
            response_format=self.response_format,
            metadata=self.metadata,
            image=self.upload(image_file),
            webhook=self.webhook_request(),
        )
