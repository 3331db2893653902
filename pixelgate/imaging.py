"""Image bytes in and out: encoding results in the format a caller asked for."""

from __future__ import annotations

import io

from PIL import Image

CONTENT_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}


def encode_image(image: Image.Image, output_format: str) -> bytes:
    buffer = io.BytesIO()
    if output_format == "jpeg":
        image.convert("RGB").save(buffer, format="JPEG", quality=95)
    elif output_format == "webp":
        image.save(buffer, format="WEBP", quality=95)
    else:
        image.save(buffer, format="PNG")
    return buffer.getvalue()
