"""Background removal with the real rembg library on the real u2netp weights."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from pixelgate.catalog import Catalog
from pixelgate.errors import Canceled, ModelUnavailable, ValidationError
from pixelgate.providers import CancelToken, ImageInput, ImageTask
from pixelgate.providers.rembg import RembgProvider
from tests.helpers import alpha_at
from tests.installed_weights import rembg_home


def picture(
    size: tuple[int, int], background: tuple[int, int, int], fmt: str = "PNG", **shape: object
) -> bytes:
    """A coloured disc or square in the middle of a plain background."""
    width, height = size
    image = Image.new("RGB", size, background)
    draw = ImageDraw.Draw(image)
    box = (width * 0.3, height * 0.25, width * 0.7, height * 0.75)
    if shape.get("kind") == "square":
        draw.rectangle(box, fill=shape["colour"])  # type: ignore[arg-type]
    else:
        draw.ellipse(box, fill=shape["colour"])  # type: ignore[arg-type]
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def task(
    catalog: Catalog, data: bytes, model: str = "rembg/u2netp", **options: object
) -> ImageTask:
    spec = catalog.resolve(model)
    with Image.open(io.BytesIO(data)) as image:
        size = image.size
        content_type = Image.MIME[image.format or "PNG"]
    return ImageTask(
        kind="remove-background",
        options=catalog.validate_options(spec, options),
        image=ImageInput(data=data, content_type=content_type, width=size[0], height=size[1]),
    )


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog.load()


@pytest.fixture(scope="module")
def provider() -> RembgProvider:
    return RembgProvider(rembg_home(), threads=1)


@pytest.mark.parametrize(
    ("background", "shape", "fmt"),
    [
        ((235, 235, 235), {"kind": "disc", "colour": (200, 30, 30)}, "PNG"),
        ((255, 255, 255), {"kind": "square", "colour": (20, 60, 200)}, "JPEG"),
        ((30, 140, 40), {"kind": "disc", "colour": (250, 210, 20)}, "WEBP"),
    ],
)
def test_the_object_stays_opaque_and_the_background_turns_transparent(
    catalog: Catalog,
    provider: RembgProvider,
    background: tuple[int, int, int],
    shape: dict[str, object],
    fmt: str,
) -> None:
    data = picture((240, 180), background, fmt, **shape)
    steps: list[tuple[int, int]] = []

    [result] = provider.run(
        catalog.resolve("rembg/u2netp"),
        task(catalog, data),
        progress=lambda done, total: steps.append((done, total)),
        cancel=CancelToken(),
    )

    cutout = Image.open(io.BytesIO(result.data))
    assert (cutout.format, cutout.mode, cutout.size) == ("PNG", "RGBA", (240, 180))
    assert (result.content_type, result.width, result.height) == ("image/png", 240, 180)
    assert alpha_at(cutout, (120, 90)) >= 200  # the object's centre
    for corner in ((3, 3), (236, 3), (3, 176), (236, 176)):
        assert alpha_at(cutout, corner) <= 20, corner
    red, green, blue, _ = cutout.getpixel((120, 90))  # type: ignore[misc]
    assert (red, green, blue) == pytest.approx(shape["colour"], abs=40)
    assert steps == [(0, 1), (1, 1)]


def test_webp_output_keeps_the_alpha_channel(catalog: Catalog, provider: RembgProvider) -> None:
    data = picture((160, 120), (240, 240, 240), kind="disc", colour=(10, 10, 10))

    [result] = provider.run(
        catalog.resolve("u2netp"),
        task(catalog, data, output_format="webp"),
        progress=lambda done, total: None,
        cancel=CancelToken(),
    )

    cutout = Image.open(io.BytesIO(result.data))
    assert (cutout.format, cutout.mode, result.content_type) == ("WEBP", "RGBA", "image/webp")
    assert alpha_at(cutout, (2, 2)) <= 20


def test_a_canceled_job_hands_back_nothing(catalog: Catalog, provider: RembgProvider) -> None:
    token = CancelToken()
    token.cancel()
    data = picture((64, 64), (255, 255, 255), kind="disc", colour=(255, 0, 0))

    with pytest.raises(Canceled):
        provider.run(
            catalog.resolve("rembg/u2netp"),
            task(catalog, data),
            progress=lambda done, total: None,
            cancel=token,
        )


def test_only_background_removal_is_offered(catalog: Catalog, provider: RembgProvider) -> None:
    data = picture((64, 64), (255, 255, 255), kind="disc", colour=(255, 0, 0))
    generate = ImageTask(kind="generate", options=task(catalog, data).options)

    with pytest.raises(ValidationError, match="does not support generate"):
        provider.run(
            catalog.resolve("rembg/u2netp"),
            generate,
            progress=lambda done, total: None,
            cancel=CancelToken(),
        )


def test_models_without_weights_are_unavailable_with_the_reason(
    catalog: Catalog, provider: RembgProvider, tmp_path: Path
) -> None:
    empty = RembgProvider(tmp_path / "rembg")
    u2netp = catalog.resolve("rembg/u2netp")
    birefnet = catalog.resolve("rembg/birefnet-general")

    assert provider.unavailable_reason(u2netp) is None
    reason = empty.unavailable_reason(u2netp)
    assert reason is not None
    assert "u2netp.onnx" in reason and str(tmp_path / "rembg") in reason
    assert "scripts/setup" in reason
    assert "birefnet-general.onnx" in (provider.unavailable_reason(birefnet) or "")
    data = picture((64, 64), (255, 255, 255), kind="disc", colour=(255, 0, 0))
    with pytest.raises(ModelUnavailable, match=r"birefnet-general\.onnx"):
        provider.run(
            birefnet,
            task(catalog, data, "rembg/birefnet-general"),
            progress=lambda done, total: None,
            cancel=CancelToken(),
        )


def test_larger_models_are_selectable_once_their_weights_are_present(
    catalog: Catalog, tmp_path: Path
) -> None:
    home = tmp_path / "rembg"
    (home / "models" / "isnet-general-use").mkdir(parents=True)
    (home / "models" / "isnet-general-use" / "isnet-general-use.onnx").write_bytes(b"onnx")
    provider = RembgProvider(home)

    assert provider.unavailable_reason(catalog.resolve("rembg/isnet-general-use")) is None
    assert provider.unavailable_reason(catalog.resolve("rembg/birefnet-general")) is not None


def test_the_background_removal_family_takes_no_prompt(catalog: Catalog) -> None:
    spec = catalog.resolve("rembg/u2netp")

    options = catalog.validate_options(spec, {})

    assert (options.n, options.output_format_value) == (1, "png")
    with pytest.raises(
        ValidationError, match=r"Unknown option 'prompt'.*allowed: n, output_format"
    ):
        catalog.validate_options(spec, {"prompt": "a cat"})
    with pytest.raises(ValidationError, match="Invalid output_format: 'jpeg'"):
        catalog.validate_options(spec, {"output_format": "jpeg"})
    hosted = catalog.resolve("stability/remove-background")
    assert (hosted.provider, hosted.family, hosted.capabilities) == (
        "stability",
        "background-removal",
        ("remove-background",),
    )
