"""The body of `POST /v1/inference/images/remove-background` (pydantic only; the request turns
itself into the service's command)."""

from __future__ import annotations

import base64
import binascii
from typing import Any, Literal

from pydantic import ConfigDict, Field

from pixelgate.api.protocol import AliasedRequest, WebhookFields, with_aliases
from pixelgate.errors import ValidationError
from pixelgate.service.inputs import ImageUpload
from pixelgate.service.jobs import ImageCommand

DEFAULT_MODEL = "rembg/u2netp"
MetadataValue = str | int | float | bool | None


@with_aliases
class RemoveBackgroundRequest(AliasedRequest, WebhookFields):
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
    image: str | None = Field(default=None, description="The picture, base64.")
    input_image: str | None = Field(default=None, description="Same as `image`.")
    image_file_id: str | None = Field(default=None, description="Or a stored result's id.")
    input_image_file_id: str | None = Field(default=None, description="Same as `image_file_id`.")
    output_format: Literal["png", "webp"] | None = Field(
        default=None, description="`png` (default) or `webp`; both keep transparency."
    )
    response_format: Literal["url", "b64_json"] = "url"
    metadata: dict[str, MetadataValue] | None = Field(
        default=None, max_length=32, description="Stored with the job and echoed back."
    )
    async_: bool = Field(
        default=False,
        alias="async",
        description="Answer 202 at once with the job; same as the header Prefer: respond-async.",
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
            image=self._upload(image_file),
            webhook=self.webhook_request(),
        )

    def _upload(self, image_file: bytes | None) -> ImageUpload | None:
        """The one input, from whichever form was sent; base64 is decoded here."""
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
