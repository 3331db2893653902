"""Images callers send (to edit, vary or cut out): checked once, stored as blobs.

An input is bytes (base64 in JSON or a multipart upload) or the id of a result already stored
(editing by reference). Its format is read from its header and its size is checked before
any pixel is decoded, so a decompression bomb is refused cheaply.
"""

from __future__ import annotations

import io
import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import timedelta

from PIL import Image

from pixelgate.db.job_records import StoredInput
from pixelgate.errors import MustProvideFile, PayloadTooLarge, ValidationError
from pixelgate.providers import ImageInput
from pixelgate.providers.masks import has_transparency, read_mask
from pixelgate.service.access import Principal
from pixelgate.service.files import FileService, put_blob
from pixelgate.storage import BlobStore

log = logging.getLogger(__name__)

FORMATS = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}

_REQUEST: ContextVar[list[str] | None] = ContextVar("pixelgate_request_inputs", default=None)
"""The blob keys of the inputs stored for the request being accepted (`kept_if_accepted`)."""
REFUSED_INPUTS_KEPT = timedelta(minutes=10)
"""How long the inputs of a refused request are kept, then deleted unless something uses them:
far longer than any request takes from storing its inputs to recording its job."""


@dataclass(frozen=True)
class ImageUpload:
    """One input image as a surface received it. `field` names it in errors."""

    field: str
    data: bytes | None = None
    file_id: str | None = None


class InputImages:
    def __init__(
        self, blobs: BlobStore, files: FileService, *, max_bytes: int, max_pixels: int
    ) -> None:
        self._blobs = blobs
        self._files = files
        self.max_bytes = max_bytes
        self.max_pixels = max_pixels

    @contextmanager
    def kept_if_accepted(self) -> Iterator[None]:
        """The inputs stored within the block are one request's: when it raises (the request
        refused once they were stored: a budget, a concurrency limit, a resize it cannot take),
        they are deleted `REFUSED_INPUTS_KEPT` later, those that nothing uses by then
        (`FileService.delete_unused_blobs_later`). Not at once: blobs are content-addressed,
        and another request, of this process or of another replica, may have stored the same
        bytes and not recorded the job that uses them yet."""
        stored: list[str] = []
        token = _REQUEST.set(stored)
        try:
            yield
        except BaseException:
            if stored:
                self._delete_later(stored)
            raise
        finally:
            _REQUEST.reset(token)

    def _delete_later(self, stored: list[str]) -> None:
        try:
            self._files.delete_unused_blobs_later(set(stored), after=REFUSED_INPUTS_KEPT)
        except Exception as exc:  # the refusal is the caller's answer, not this
            log.warning("could not schedule the deletion of a refused request's inputs: %s", exc)

    def _put(self, data: bytes, *, what: str) -> str:
        """Store one input's bytes, as the request being accepted's (`kept_if_accepted`)."""
        key = put_blob(self._blobs, data, what=what)
        stored = _REQUEST.get()
        if stored is not None:
            stored.append(key)
        return key

    def accept(self, principal: Principal, upload: ImageUpload) -> StoredInput:
        """Check and store one input; returns the record kept with the job."""
        image = self.read(principal, upload)
        return StoredInput(
            blob_key=self._put(image.data, what=f"the {upload.field}"),
            content_type=image.content_type,
            width=image.width,
            height=image.height,
        )

    def read(self, principal: Principal, upload: ImageUpload) -> ImageInput:
        """One input's bytes (sent, or the caller's stored file), checked; nothing stored."""
        if upload.file_id is not None:
            record = self._files.get(principal.tenant_id, upload.file_id)
            data = self._files.read(record)
        elif upload.data is not None:
            data = upload.data
        else:
            raise ValidationError(
                f"Provide {upload.field} as bytes or a file id", param=upload.field
            )
        return self.inspect(data, upload.field)

    def transparent(self, principal: Principal, upload: ImageUpload) -> bool:
        """Whether some pixel of an input is not fully opaque (checked first, as `accept`
        checks it; nothing stored)."""
        image = self.read(principal, upload)
        with Image.open(io.BytesIO(image.data)) as decoded:
            return has_transparency(decoded)

    def inspect(self, data: bytes, field: str) -> ImageInput:
        """The format and size of an image, refusing what is too big, corrupt or not an image."""
        if len(data) > self.max_bytes:
            raise PayloadTooLarge(
                f"{field} is {len(data)} bytes; the limit is {self.max_bytes}", param=field
            )
        if not data:
            raise MustProvideFile(f"{field} is empty; send the picture's bytes", param=field)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                image = Image.open(io.BytesIO(data))  # reads the header only
                if image.format not in FORMATS:
                    raise ValidationError(
                        f"{field} must be a PNG, JPEG or WebP image, not {image.format}",
                        param=field,
                    )
                width, height = image.size
                if width * height > self.max_pixels:
                    raise PayloadTooLarge(
                        f"{field} is {width}x{height} pixels; the limit is {self.max_pixels} "
                        "pixels",
                        param=field,
                    )
                image.load()  # now decode, to catch truncated or corrupt data
        except (ValidationError, PayloadTooLarge):
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise PayloadTooLarge(f"{field} decodes to too many pixels", param=field) from None
        except Exception:
            raise ValidationError(
                f"{field} is not a readable image (PNG, JPEG or WebP)", param=field
            ) from None
        return ImageInput(data=data, content_type=FORMATS[image.format], width=width, height=height)

    def resized(
        self,
        stored: StoredInput,
        size: tuple[int, int],
        *,
        resample: Image.Resampling = Image.Resampling.NEAREST,
    ) -> StoredInput:
        """A stored input resized to `size` (a mask to its image's size), stored as a PNG in the
        same mode; the record of the new one."""
        with Image.open(io.BytesIO(self._blobs.get(stored.blob_key))) as image:
            image.load()
            return self._stored_png(image.resize(size, resample))

    def as_mask(self, stored: StoredInput) -> StoredInput:
        """A caller's mask in pixelgate's convention, a greyscale PNG where white repaints: read
        by its alpha channel when it uses one (transparent repaints, as OpenAI's masks and the
        `openai` SDK's mean), else by its brightness (`providers/masks.py`)."""
        with Image.open(io.BytesIO(self._blobs.get(stored.blob_key))) as image:
            image.load()
            return self._stored_png(read_mask(image))

    def _stored_png(self, image: Image.Image) -> StoredInput:
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        return StoredInput(
            blob_key=self._put(buffer.getvalue(), what="an input image"),
            content_type="image/png",
            width=image.width,
            height=image.height,
        )

    def load(self, stored: StoredInput) -> ImageInput:
        """The input as a provider gets it, from the record kept with the job."""
        return ImageInput(
            data=self._blobs.get(stored.blob_key),
            content_type=stored.content_type,
            width=stored.width,
            height=stored.height,
        )
