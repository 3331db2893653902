"""Request bodies of the routes that take one input image and no mask (background removal,
upscaling): the image as base64 (`image`, or `input_image` as in edits; a `data:` URL is fine),
as the id of a stored result (`image_file_id` / `input_image_file_id`), or as the multipart file
`image` (pydantic only; each request turns itself into the service's command)."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from pydantic import Field

from pixelgate.api.protocol import JobRequest
from pixelgate.errors import ValidationError
from pixelgate.service.inputs import ImageUpload

IMAGE_FIELDS = ("image", "input_image", "image_file_id", "input_image_file_id")


class SingleImageRequest(JobRequest):
    """The fields every one-image request shares: the image, in one of its forms."""

    image: str | None = Field(default=None, description="The picture, base64.")
    input_image: str | None = Field(default=None, description="Same as `image`.")
    image_file_id: str | None = Field(default=None, description="Or a stored result's id.")
    input_image_file_id: str | None = Field(default=None, description="Same as `image_file_id`.")

    def upload(self, image_file: bytes | None) -> ImageUpload | None:
        """The one input, from whichever form was sent (`image_file`: a multipart upload);
        base64 is decoded here."""
        sent = [
            (name, value)
            for name, value in (
                ("image", image_file),
                ("image", self.image),
                ("input_image", self.input_image),
                ("image_file_id", self.image_file_id),
                ("input_image_file_id", self.input_image_file_id),
            )
            if value is not None
        ]
        if len(sent) > 1:
            names = " and ".join(name for name, _ in sent)
            raise ValidationError(f"Send the image once; got {names}", param=sent[1][0])
        if not sent:
            return None
        name, value = sent[0]
        if isinstance(value, bytes):
            return ImageUpload(name, data=value)
        if name.endswith("_file_id"):
            return ImageUpload(name, file_id=value)
        _, _, payload = value.rpartition(",")  # a data: URL's header is allowed
        try:
            return ImageUpload(name, data=base64.b64decode(payload, validate=True))
        except (binascii.Error, ValueError):
            raise ValidationError(f"{name} is not valid base64", param=name) from None


def single_image_openapi(model: type[SingleImageRequest]) -> dict[str, Any]:
    """The OpenAPI request body of a one-image route: JSON, or multipart with the file `image`."""
    schema = model.model_json_schema(by_alias=True)
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": schema},
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "properties": {
                            "image": {"type": "string", "format": "binary"},
                            **{k: v for k, v in schema["properties"].items() if k != "image"},
                        },
                    }
                },
            },
        }
    }
