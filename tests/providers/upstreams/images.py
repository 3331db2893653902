"""Small real images for the fakes to return and the tests to send."""

from __future__ import annotations

import io

from PIL import Image


def image_bytes(
    width: int, height: int, fmt: str = "png", color: tuple[int, ...] = (200, 40, 40)
) -> bytes:
    mode = "RGBA" if len(color) == 4 else "RGB"
    buffer = io.BytesIO()
    Image.new(mode, (width, height), color).save(buffer, format=fmt.upper())
    return buffer.getvalue()


def size_of(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as image:
        return image.size
