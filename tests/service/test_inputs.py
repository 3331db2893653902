"""Input images: checked once, refused clearly, stored; edits carry them to the provider."""

from __future__ import annotations

import io
import struct
import zlib

import pytest
from PIL import Image
from sqlalchemy import select

from pixelgate.db.tables import BlobDeletion
from pixelgate.errors import (
    BudgetExceeded,
    MustProvideFile,
    NotFound,
    PayloadTooLarge,
    ValidationError,
)
from pixelgate.service.access import Principal
from pixelgate.service.inputs import REFUSED_INPUTS_KEPT, ImageUpload, InputImages
from pixelgate.service.jobs import ImageCommand
from tests.service.conftest import Services, images_of

CALLER = Principal("key_test", "default", frozenset({"admin"}))


def picture(fmt: str = "PNG", size: tuple[int, int] = (32, 24)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(buffer, format=fmt)
    return buffer.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims huge dimensions: decoding it would allocate gigabytes."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + body))
        return struct.pack(">I", len(body)) + kind + body + crc

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\0" * 64)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize(
    ("fmt", "content_type"), [("PNG", "image/png"), ("JPEG", "image/jpeg"), ("WEBP", "image/webp")]
)
def test_png_jpeg_and_webp_are_accepted(services: Services, fmt: str, content_type: str) -> None:
    image = services.inputs.inspect(picture(fmt), "image")
    assert (image.content_type, image.width, image.height) == (content_type, 32, 24)


def test_other_formats_are_refused_by_name(services: Services) -> None:
    with pytest.raises(
        ValidationError, match="image must be a PNG, JPEG or WebP image, not GIF"
    ) as caught:
        services.inputs.inspect(picture("GIF"), "image")
    assert caught.value.param == "image"


@pytest.mark.parametrize("data", [b"not an image at all", picture()[:60]])
def test_corrupt_data_is_a_validation_error_naming_the_field(
    services: Services, data: bytes
) -> None:
    with pytest.raises(ValidationError, match="mask is not a readable image") as caught:
        services.inputs.inspect(data, "mask")
    assert caught.value.param == "mask"


@pytest.mark.parametrize(
    ("side", "message"),
    [(5_000, "image is 5000x5000 pixels; the limit is 65536 pixels"), (50_000, "too many pixels")],
)
def test_a_decompression_bomb_is_refused_before_decoding(
    services: Services, side: int, message: str
) -> None:
    with pytest.raises(PayloadTooLarge, match=message) as caught:
        services.inputs.inspect(png_header_only(side, side), "image")
    assert caught.value.status == 413


def test_too_many_bytes_is_413(services: Services) -> None:
    with pytest.raises(PayloadTooLarge, match="limit is 100000"):
        services.inputs.inspect(b"\x89PNG" + b"\0" * 100_001, "image")


def test_an_edit_carries_its_image_and_mask_to_the_provider(services: Services) -> None:
    job = services.jobs.submit(
        CALLER,
        ImageCommand(
            task="edit",
            model="test/fixture",
            options={"prompt": "x"},
            image=ImageUpload("image", data=picture()),
            mask=ImageUpload("mask", data=picture(size=(32, 24))),
        ),
    )
    services.executor.run(job.id)

    [task] = services.provider.tasks
    assert task.kind == "edit"
    assert task.image is not None and task.image.data == picture()
    assert task.mask is not None and (task.mask.width, task.mask.height) == (32, 24)


def test_an_edit_by_reference_uses_a_stored_result(services: Services) -> None:
    first = services.jobs.submit(
        CALLER, ImageCommand(task="generate", model="test/fixture", options={"prompt": "x"})
    )
    services.provider.behaviour = lambda task, progress, cancel: [  # a real PNG this time
        __import__("pixelgate.providers", fromlist=["GeneratedImage"]).GeneratedImage(
            picture(), "image/png", 32, 24
        )
    ]
    services.executor.run(first.id)
    file_id = images_of(services.jobs.get(CALLER, first.id))[0].file_id

    edit = services.jobs.submit(
        CALLER,
        ImageCommand(
            task="edit",
            model="test/fixture",
            options={"prompt": "y"},
            image=ImageUpload("image", file_id=file_id),
        ),
    )
    assert (
        edit.inputs is not None and edit.inputs.image is not None and edit.inputs.image.width == 32
    )

    stranger = Principal("key_x", "other", frozenset({"admin"}))
    with pytest.raises(NotFound):
        services.jobs.submit(
            stranger,
            ImageCommand(
                task="edit",
                model="test/fixture",
                options={"prompt": "y"},
                image=ImageUpload("image", file_id=file_id),
            ),
        )


def test_tasks_need_the_right_inputs_and_capabilities(services: Services) -> None:
    with pytest.raises(MustProvideFile, match="needs an input image"):
        services.jobs.submit(
            CALLER, ImageCommand(task="edit", model="test/fixture", options={"prompt": "x"})
        )
    with pytest.raises(ValidationError, match="takes no input image"):
        services.jobs.submit(
            CALLER,
            ImageCommand(
                task="generate",
                model="test/fixture",
                options={"prompt": "x"},
                image=ImageUpload("image", data=picture()),
            ),
        )
    with pytest.raises(ValidationError, match="does not support image editing"):
        services.jobs.submit(
            CALLER,
            ImageCommand(
                task="edit",
                model="openai/dall-e-3",
                options={"prompt": "x"},
                image=ImageUpload("image", data=picture()),
            ),
        )


def test_a_refused_request_s_inputs_are_deleted_later_unless_a_job_uses_them(
    services: Services,
) -> None:
    """Two replicas store the same bytes; the one whose request is refused must not delete
    them while the other's job is not recorded yet."""
    shared, own = picture(), picture(size=(8, 8))
    blobs, files, clock = services.blobs, services.files, services.clock
    replica_a = services.inputs
    replica_b = InputImages(blobs, files, max_bytes=100_000, max_pixels=256 * 256)

    with replica_a.kept_if_accepted():  # stored, its job not recorded yet
        held = replica_a.accept(CALLER, ImageUpload("image", shared)).blob_key
        with pytest.raises(BudgetExceeded), replica_b.kept_if_accepted():
            assert replica_b.accept(CALLER, ImageUpload("image", shared)).blob_key == held
            only_its_own = replica_b.accept(CALLER, ImageUpload("mask", own)).blob_key
            raise BudgetExceeded("over budget")
        assert blobs.exists(held) and blobs.exists(only_its_own)  # nothing deleted at once
    job = services.jobs.submit(  # replica A's job, recorded with the shared bytes
        CALLER,
        ImageCommand(
            task="edit", model="test/fixture", options={"prompt": "x"},
            image=ImageUpload("image", shared),
        ),
    )  # fmt: skip
    assert job.inputs is not None and job.inputs.image is not None
    assert job.inputs.image.blob_key == held

    clock.advance(REFUSED_INPUTS_KEPT.total_seconds() - 1)
    assert files.delete_due_blobs() == 0  # not due yet
    assert blobs.exists(only_its_own)

    clock.advance(1)
    assert services.retention.sweep() == (0, 0)  # housekeeping's sweep deletes what is due
    assert not blobs.exists(only_its_own)
    assert blobs.exists(held)  # the recorded job's
    with services.db.session() as session:
        assert session.scalars(select(BlobDeletion)).all() == []  # nothing left waiting

    with replica_a.kept_if_accepted():  # accepted: its inputs are not scheduled at all
        accepted = replica_a.accept(CALLER, ImageUpload("image", own)).blob_key
    clock.advance(REFUSED_INPUTS_KEPT.total_seconds())
    assert files.delete_due_blobs() == 0
    assert blobs.exists(accepted)


def test_a_blob_refused_again_waits_from_the_later_refusal(services: Services) -> None:
    inputs, blobs, clock = services.inputs, services.blobs, services.clock
    upload = ImageUpload("image", picture())
    for _ in range(2):
        with pytest.raises(BudgetExceeded), inputs.kept_if_accepted():
            key = inputs.accept(CALLER, upload).blob_key
            raise BudgetExceeded("over budget")
        clock.advance(REFUSED_INPUTS_KEPT.total_seconds() / 2)
    assert services.files.delete_due_blobs() == 0 and blobs.exists(key)
    clock.advance(REFUSED_INPUTS_KEPT.total_seconds() / 2)
    assert services.files.delete_due_blobs() == 1 and not blobs.exists(key)
