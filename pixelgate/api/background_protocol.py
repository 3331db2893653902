"""The body of `POST /v1/inference/images/remove-background` (pydantic only; the request turns
itself into the service's command)."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field

from pixelgate.api.protocol import NO_UPLOADS, Uploads, with_aliases
from pixelgate.api.single_image_protocol import SingleImageRequest
from pixelgate.service.jobs import ImageCommand

DEFAULT_MODEL = "rembg/u2netp"


@with_aliases
class RemoveBackgroundRequest(SingleImageRequest):
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

    def to_command(self, files: Uploads = NO_UPLOADS) -> ImageCommand:
        return self.command(
            "remove-background",
            {"output_format": self.output_format},
            image=self.upload(files.get("image")),
        )
