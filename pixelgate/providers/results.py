"""What comes back from a hosted provider, made into pixelgate's images: result bytes read
and checked, input images as multipart parts, and `n` images from an upstream that makes one a
call."""

from __future__ import annotations

import io
import logging
from collections.abc import Callable
from typing import Any

import httpx
from PIL import Image, UnidentifiedImageError

from pixelgate.errors import BackendError, Canceled, Error, ValidationError
from pixelgate.providers.base import CancelToken, GeneratedImage, ImageInput, ProgressCallback
from pixelgate.providers.keys import key_refused

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp"}

FileField = tuple[str | None, bytes, str | None]
"""A multipart file part: (file name, bytes, content type)."""


def read_image(
    data: bytes, *, provider: str, seed: int | None = None, revised_prompt: str | None = None
) -> GeneratedImage:
    """A result image from its bytes: its format and size are read from the bytes themselves,
    so a body that is not an image is refused here rather than stored."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            fmt = (image.format or "").lower()
            width, height = image.size
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError) as exc:
        raise BackendError(f"The {provider} provider returned data that is not an image") from exc
    content_type = Image.MIME.get(fmt.upper(), f"image/{fmt}")
    return GeneratedImage(
        data=data,
        content_type=content_type,
        width=width,
        height=height,
        seed=seed,
        revised_prompt=revised_prompt,
    )


def image_part(name: str, image: ImageInput) -> FileField:
    """A multipart file part for an input image, with a file name that matches its type."""
    extension = IMAGE_EXTENSIONS.get(image.content_type, "png")
    return (f"{name}.{extension}", image.data, image.content_type)


def malformed(provider: str, what: str) -> BackendError:
    return BackendError(f"The {provider} provider sent a malformed response: {what}")


def detail_error(provider: str, status: int, body: Any) -> Error:
    """A pixelgate error for an error answer in FastAPI's shape, `{"detail": "message"}` or
    `{"detail": [{"loc", "msg", "type"}]}` (Black Forest Labs, fal): 400 and 422 are the
    caller's input (the parameter from `loc`), 401 and 403 pixelgate's key, others the
    provider's failure."""
    detail = body.get("detail") if isinstance(body, dict) else None
    message: str | None = None
    param: str | None = None
    if isinstance(detail, list) and detail and isinstance(detail[0], dict):
        first = detail[0]
        message = first.get("msg") if isinstance(first.get("msg"), str) else None
        loc = first.get("loc")
        if isinstance(loc, list) and loc and isinstance(loc[-1], str) and loc[-1] != "body":
            param = loc[-1]
    elif isinstance(detail, str):
        message = detail
    if status in (401, 403):
        return key_refused(provider, status)
    if status in (400, 422):
        return ValidationError(
            message or f"The {provider} provider refused the request (HTTP {status})", param=param
        )
    reason = message or httpx.codes.get_reason_phrase(status) or "no message"
    return BackendError(f"The {provider} provider answered HTTP {status}: {reason}")


def fan_out(
    n: int,
    make_one: Callable[[int], GeneratedImage],
    *,
    provider: str,
    progress: ProgressCallback,
    cancel: CancelToken,
) -> list[GeneratedImage]:
    """`n` images from an upstream that makes one per call: `make_one(index)` called `n` times,
    so `n` means the same on every model. A call that fails does not stop the others; the job
    keeps the images made (each billed) and the failed ones are refunded, as for any job that
    made fewer than asked. Only when every call failed is the first failure raised (at once
    when the upstream refused the request itself); a cancel stops at once. Each call is its own
    billed request: `make_one` sends it with `send_once(..., index=index)`, so a later attempt
    of the job resumes or skips the images an earlier one sent, and sends only the others."""
    images: list[GeneratedImage] = []
    failures: list[Error] = []
    progress(0, n)
    for index in range(n):
        if cancel.canceled:
            raise Canceled("Job canceled")
        try:
            images.append(make_one(index))
        except Canceled:
            raise
        except Error as exc:
            if n == 1 or (isinstance(exc, ValidationError) and not images):
                raise  # the request itself was refused: the next calls would be too
            log.warning("%s: image %d of %d failed: %s", provider, index + 1, n, exc.message)
            failures.append(exc)
        progress(index + 1, n)
    if not images:
        raise failures[0]
    return images


def seed_for(seed: int | None, index: int) -> int | None:
    """The seed of the `index`-th image of a request: consecutive, as local models draw them,
    so each image can be made again alone."""
    return None if seed is None else (seed + index) % 2**32
