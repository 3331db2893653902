"""A real server that can remove backgrounds (rembg's u2netp from scripts/setup), and the
picture the tests cut out: a red disc on a plain light-grey background."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image, ImageDraw

from tests.conftest import Server
from tests.installed_weights import rembg_home


def rembg_server(data_dir: Path, models_dir: Path, **env: str) -> Server:
    return Server(data_dir, models_dir, PIXELGATE_REMBG_HOME=str(rembg_home()), **env).start()


def disc_picture(fmt: str = "PNG", size: tuple[int, int] = (200, 150)) -> bytes:
    image = Image.new("RGB", size, (235, 235, 235))
    width, height = size
    ImageDraw.Draw(image).ellipse(
        (width * 0.3, height * 0.25, width * 0.7, height * 0.75), fill=(200, 30, 30)
    )
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def is_cut_out(picture: Image.Image) -> bool:
    """The disc's centre opaque, the background's corners transparent."""
    alpha = picture.convert("RGBA").getchannel("A")
    width, height = picture.size
    centre = alpha.getpixel((width // 2, height // 2))
    corners = [alpha.getpixel((x, y)) for x in (2, width - 3) for y in (2, height - 3)]
    return centre >= 200 and all(corner <= 20 for corner in corners)  # type: ignore[operator]
