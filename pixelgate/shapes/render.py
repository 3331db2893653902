"""Drawing scenes: flat colours, circles, axis-aligned squares and upright triangles."""

from __future__ import annotations

from PIL import Image, ImageDraw

from pixelgate.shapes.world import PALETTE, Scene

SUPERSAMPLE = 4  # anti-aliasing: draw this many times larger, then average down


def render(scene: Scene, size: int = 64, *, antialias: bool = True) -> Image.Image:
    """The scene as an RGB image `size` pixels square. Anti-aliased edges look like what a
    model draws; hard edges (`antialias=False`) hold only palette colours."""
    if size < 16:
        raise ValueError(f"size must be at least 16 pixels, got {size}")
    scale = size * (SUPERSAMPLE if antialias else 1)
    image = Image.new("RGB", (scale, scale), PALETTE[scene.background])
    draw = ImageDraw.Draw(image)
    for thing in scene.things:
        left, top, right, bottom = (v * scale for v in thing.box())
        # PIL boxes include their last pixel: step back one so the extent is exact
        box = (left, top, right - 1, bottom - 1)
        colour = PALETTE[thing.colour]
        if thing.shape == "circle":
            draw.ellipse(box, fill=colour)
        elif thing.shape == "square":
            draw.rectangle(box, fill=colour)
        else:
            apex = ((box[0] + box[2]) / 2, box[1])
            draw.polygon([apex, (box[2], box[3]), (box[0], box[3])], fill=colour)
    if antialias:
        image = image.resize((size, size), Image.Resampling.BOX)
    return image
