from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable

import numpy as np
import pytest
from PIL import Image, ImageCms

from pixelgate.imaging import encode_image, encode_png


def noise(mode: str, size: tuple[int, int], seed: int = 0) -> Image.Image:
    bands = len(Image.new(mode, (1, 1)).getbands())
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, size=(size[1], size[0], bands), dtype=np.uint8)
    return Image.fromarray(pixels.squeeze(axis=2) if bands == 1 else pixels, mode)


def smooth(mode: str, size: tuple[int, int]) -> Image.Image:
    """A gradient with a hard edge: neighbouring rows differ by little, then by a lot."""
    width, height = size
    ramp = np.add.outer(np.arange(height) * 3, np.arange(width) * 2) % 256
    ramp[height // 2 :, : width // 3] = 255 - ramp[height // 2 :, : width // 3]
    bands = len(Image.new(mode, (1, 1)).getbands())
    pixels = np.stack([(ramp + 40 * band) % 256 for band in range(bands)], axis=-1)
    return Image.fromarray(
        pixels.astype(np.uint8).squeeze(axis=-1) if bands == 1 else pixels.astype(np.uint8), mode
    )


def chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """The PNG's chunks (kind, data), each checked against its CRC."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    found, offset = [], 8
    while offset < len(data):
        (length,) = struct.unpack("!I", data[offset : offset + 4])
        kind, body = data[offset + 4 : offset + 8], data[offset + 8 : offset + 8 + length]
        (crc,) = struct.unpack("!I", data[offset + 8 + length : offset + 12 + length])
        assert crc == zlib.crc32(kind + body), kind
        found.append((kind, body))
        offset += 12 + length
    return found


@pytest.mark.parametrize("mode", ["L", "LA", "RGB", "RGBA"])
@pytest.mark.parametrize("size", [(1, 1), (3, 7), (64, 64), (256, 128)])
@pytest.mark.parametrize("draw", [noise, smooth])
def test_png_decodes_to_the_same_pixels(
    mode: str, size: tuple[int, int], draw: Callable[[str, tuple[int, int]], Image.Image]
) -> None:
    image = draw(mode, size)
    data = encode_image(image, "png")
    with Image.open(io.BytesIO(data)) as decoded:
        assert decoded.format == "PNG"
        assert decoded.mode == mode
        assert decoded.size == size
        assert np.array_equal(np.asarray(decoded), np.asarray(image))
    assert [kind for kind, _ in chunks(data)] == [b"IHDR", b"IDAT", b"IEND"]


def test_png_is_not_much_larger_than_pillows_and_shrinks_smooth_images() -> None:
    image = smooth("RGB", (512, 512))
    ours = encode_png(image)
    pillows = io.BytesIO()
    image.save(pillows, format="PNG")
    assert len(ours) < 1.3 * len(pillows.getvalue())
    assert len(ours) < 0.1 * image.width * image.height * 3


def test_png_keeps_the_icc_profile() -> None:
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    image = noise("RGB", (16, 16))
    image.info["icc_profile"] = profile
    data = encode_image(image, "png")
    with Image.open(io.BytesIO(data)) as decoded:
        assert decoded.info["icc_profile"] == profile
        assert np.array_equal(np.asarray(decoded), np.asarray(image))


@pytest.mark.parametrize("mode", ["P", "1", "I;16"])
def test_other_modes_are_written_by_pillow_as_before(mode: str) -> None:
    image = noise("L", (20, 10)).convert(mode)
    data = encode_image(image, "png")
    with Image.open(io.BytesIO(data)) as decoded:
        assert decoded.mode == mode
        assert np.array_equal(np.asarray(decoded), np.asarray(image))


def test_a_transparent_colour_is_kept() -> None:
    image = noise("RGB", (8, 8))
    image.info["transparency"] = (0, 0, 0)
    with Image.open(io.BytesIO(encode_image(image, "png"))) as decoded:
        assert decoded.info["transparency"] == (0, 0, 0)


@pytest.mark.parametrize(("output_format", "pillow_format"), [("jpeg", "JPEG"), ("webp", "WEBP")])
def test_jpeg_and_webp_still_come_from_pillow(output_format: str, pillow_format: str) -> None:
    image = smooth("RGBA", (64, 48))
    with Image.open(io.BytesIO(encode_image(image, output_format))) as decoded:
        assert decoded.format == pillow_format
        assert decoded.size == (64, 48)
