"""One meaning on every backend (issue 19): what the service does with an option or an input
that one family takes and another does not, before any provider runs."""

from __future__ import annotations

import io
from typing import Any

import pytest
from PIL import Image

from pixelgate.db.tables import Job
from pixelgate.errors import MustProvideFile, ValidationError
from pixelgate.service.access import Principal
from pixelgate.service.inputs import ImageUpload
from pixelgate.service.jobs import ImageCommand
from tests.service.conftest import Services

CALLER = Principal("key_test", "default", frozenset({"admin"}))


def adjustments_of(job: Job) -> list[dict[str, Any]]:
    """The job's adjustments as the JSON kept with it."""
    return [item.to_json() for item in job.inputs.adjustments] if job.inputs else []


def png(size: tuple[int, int], mode: str = "RGB", color: Any = (200, 40, 40)) -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, color).save(buffer, format="PNG")
    return buffer.getvalue()


def edit(
    services: Services,
    model: str,
    *,
    image: bytes | None = None,
    mask: bytes | None = None,
    **options: Any,
) -> Any:
    return services.jobs.submit(
        CALLER,
        ImageCommand(
            task="edit",
            model=model,
            options={"prompt": "x", **options},
            image=ImageUpload("image", data=image or png((64, 64))),
            mask=None if mask is None else ImageUpload("mask", data=mask),
        ),
    )


# -- item 8: an edit of one step at the default strength runs no step ---------------------


def test_an_edit_that_would_run_no_step_is_refused_naming_num_steps(services: Services) -> None:
    with pytest.raises(ValidationError) as caught:
        edit(services, "test/fixture", num_steps=1)

    assert caught.value.param == "num_steps"
    assert caught.value.message == (
        "Invalid num_steps: 1 at the default strength 0.8 runs no denoising step (an edit runs "
        "num_steps * strength, rounded down); send num_steps of at least 2, or a higher strength"
    )
    with pytest.raises(ValidationError) as explicit:
        edit(services, "test/fixture", num_steps=3, strength=0.3)
    assert explicit.value.param == "num_steps"
    assert "at strength 0.3" in explicit.value.message
    assert "at least 4" in explicit.value.message
    assert services.provider.runs == 0


def test_one_step_is_enough_where_it_runs_one(services: Services) -> None:
    edit(services, "test/fixture", num_steps=1, strength=1.0)
    edit(services, "test/fixture", num_steps=1, mask=png((64, 64), "L", 255))  # inpaint: 1.0
    services.jobs.submit(
        CALLER,
        ImageCommand(
            task="generate", model="test/fixture", options={"prompt": "x", "num_steps": 1}
        ),
    )


# -- item 13: FLUX Fill -----------------------------------------------------------------


def test_an_inpainting_only_model_without_a_mask_asks_for_the_mask(services: Services) -> None:
    with pytest.raises(MustProvideFile) as caught:
        edit(services, "test/fill")

    assert caught.value.param == "mask"
    assert "only inpaints: send a mask" in caught.value.message


def test_a_requested_size_off_the_multiple_is_rounded_and_reported(services: Services) -> None:
    job = edit(services, "test/fill", mask=png((64, 64), "L", 255), width=100, height=75)

    assert (job.options.values["width"], job.options.values["height"]) == (96, 80)
    assert adjustments_of(job) == [
        {
            "param": "image",
            "from": "64x64",
            "to": "96x80",
            "reason": "resized to the requested width and height",
        },
        {
            "param": "size",
            "from": "100x75",
            "to": "96x80",
            "reason": "test/fill takes sizes that are multiples of 16; the requested width and "
            "height are rounded to the nearest",
        },
    ]


def test_a_requested_size_out_of_range_is_still_refused(services: Services) -> None:
    with pytest.raises(ValidationError) as caught:
        edit(services, "test/fill", mask=png((64, 64), "L", 255), width=1000, height=64)
    assert caught.value.param == "width"


# -- item 12: a width and height for a model that takes an aspect ratio ---------------------


def test_width_and_height_become_the_nearest_aspect_ratio(services: Services) -> None:
    job = services.jobs.submit(
        CALLER,
        ImageCommand(
            task="generate",
            model="test/kontext",
            options={"prompt": "x", "width": 1000, "height": 600},
        ),
    )

    assert job.options.values["aspect_ratio"] == "16:9"
    assert "width" not in job.options.values
    assert adjustments_of(job) == [
        {
            "param": "size",
            "from": "1000x600",
            "to": "16:9",
            "reason": "test/kontext takes an aspect ratio, not a width and height: the nearest "
            "it takes",
        }
    ]
    services.executor.run(job.id)
    assert services.jobs.get(CALLER, job.id).status == "succeeded"
    assert services.provider.tasks[0].options.aspect_ratio == "16:9"  # type: ignore[attr-defined]


def test_stable_image_core_takes_the_nearest_of_its_own_ratios() -> None:
    from pixelgate.catalog import Catalog
    from pixelgate.catalog.options import StabilityCoreOptions
    from pixelgate.service.edit_sizes import plan_aspect_ratio

    spec = Catalog.load().resolve("stable-diffusion-core")
    options, change = plan_aspect_ratio(
        spec, StabilityCoreOptions, {"prompt": "x", "width": 1024, "height": 1792}
    )
    assert options == {"prompt": "x", "aspect_ratio": "9:16"}
    assert change is not None and change.to == "9:16"


@pytest.mark.parametrize(
    ("options", "param"),
    [
        ({"width": 1000, "height": 600, "aspect_ratio": "1:1"}, "width"),
        ({"width": 1000}, "height"),
        ({"width": 0, "height": 600}, "width"),
    ],
)
def test_a_size_that_cannot_be_mapped_names_the_parameter(
    services: Services, options: dict[str, Any], param: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        services.jobs.submit(
            CALLER,
            ImageCommand(task="generate", model="test/kontext", options={"prompt": "x", **options}),
        )
    assert caught.value.param == param


# -- item 16: a mask of another size than the image ----------------------------------------


@pytest.mark.parametrize("mask_size", [(1, 1), (32, 16)])
def test_a_hosted_models_mask_is_resized_to_the_image_and_reported(
    services: Services, mask_size: tuple[int, int]
) -> None:
    job = edit(services, "test/hosted-edit", image=png((64, 48)), mask=png(mask_size, "L", 255))

    assert adjustments_of(job) == [
        {
            "param": "mask",
            "from": f"{mask_size[0]}x{mask_size[1]}",
            "to": "64x48",
            "reason": "the mask is resized to the image's size",
        }
    ]
    services.executor.run(job.id)
    [task] = services.provider.tasks
    assert task.mask is not None
    assert (task.mask.width, task.mask.height) == (64, 48)
    assert Image.open(io.BytesIO(task.mask.data)).size == (64, 48)


def test_a_mask_of_the_images_size_is_not_resized(services: Services) -> None:
    job = edit(services, "test/hosted-edit", mask=png((64, 64), "L", 255))

    assert adjustments_of(job) == []
    services.executor.run(job.id)
    mask = services.provider.tasks[0].mask
    assert mask is not None and (mask.width, mask.height) == (64, 64)


# -- item 9: every mask in pixelgate's convention, whichever way it came --------------------


def half_transparent(size: tuple[int, int] = (64, 64)) -> bytes:
    """OpenAI's convention, as the `openai` SDK's users send it: transparent (edit) on the left
    half, opaque black (keep) on the right."""
    mask = Image.new("RGBA", size, (0, 0, 0, 255))
    mask.paste((0, 0, 0, 0), (0, 0, size[0] // 2, size[1]))
    buffer = io.BytesIO()
    mask.save(buffer, format="PNG")
    return buffer.getvalue()


def received_mask(services: Services, job_id: str) -> Image.Image:
    services.executor.run(job_id)
    mask = services.provider.tasks[-1].mask
    assert mask is not None
    return Image.open(io.BytesIO(mask.data))


@pytest.mark.parametrize("model", ["test/fixture", "test/hosted-edit"])
def test_a_mask_with_transparency_is_read_by_its_alpha_channel(
    services: Services, model: str
) -> None:
    job = edit(services, model, mask=half_transparent())

    mask = received_mask(services, job.id)
    assert (mask.format, mask.mode) == ("PNG", "L")
    assert mask.crop((0, 0, 32, 64)).getextrema() == (255, 255)  # transparent: repaint
    assert mask.crop((32, 0, 64, 64)).getextrema() == (0, 0)  # opaque: keep


@pytest.mark.parametrize(
    ("mode", "white", "black"),
    [("L", 255, 0), ("RGB", (255, 255, 255), (0, 0, 0)), ("RGBA", (255,) * 4, (0, 0, 0, 255))],
)
def test_a_mask_without_transparency_is_read_by_its_brightness(
    services: Services, mode: str, white: Any, black: Any
) -> None:
    source = Image.new(mode, (64, 64), black)
    source.paste(white, (0, 0, 32, 64))
    buffer = io.BytesIO()
    source.save(buffer, format="PNG")

    job = edit(services, "test/hosted-edit", mask=buffer.getvalue())

    mask = received_mask(services, job.id)
    assert mask.crop((0, 0, 32, 64)).getextrema() == (255, 255)
    assert mask.crop((32, 0, 64, 64)).getextrema() == (0, 0)


def test_a_model_of_square_inputs_gets_a_square_image_and_mask(services: Services) -> None:
    jpeg = io.BytesIO()
    Image.new("RGB", (96, 64), (10, 200, 30)).save(jpeg, format="JPEG")

    job = edit(services, "test/square-edit", image=jpeg.getvalue(), mask=png((96, 64), "L", 255))

    assert [(item["param"], item["from"], item["to"]) for item in adjustments_of(job)] == [
        ("image", "96x64", "96x96"),
        ("mask", "96x64", "96x96"),
    ]
    services.executor.run(job.id)
    [task] = services.provider.tasks
    assert task.image is not None and task.mask is not None
    assert Image.open(io.BytesIO(task.image.data)).size == (96, 96)
    assert Image.open(io.BytesIO(task.mask.data)).size == (96, 96)


def test_an_openai_size_means_the_same_nearest_ratio(services: Services) -> None:
    from pixelgate.api.openai.protocol import ImageGenerationRequest
    from pixelgate.api.openai.serving import family_options
    from tests.service.conftest import FIXTURE_KONTEXT

    request = ImageGenerationRequest(model="test/kontext", prompt="x", size="1000x600")
    options = family_options(FIXTURE_KONTEXT, request)
    job = services.jobs.submit(
        CALLER, ImageCommand(task="generate", model="test/kontext", options=options)
    )

    assert job.options.values["aspect_ratio"] == "16:9"
    assert [item["to"] for item in adjustments_of(job)] == ["16:9"]
