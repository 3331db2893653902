"""Stability AI's v2beta Stable Image API behind the one provider interface.

The protocol as this module speaks it (platform.stability.ai/docs/api-reference), with the
assumptions written down:

- Every call is `POST` multipart/form-data with `Authorization: Bearer <key>`, even when no
  file is sent (the API refuses url-encoded forms).
- `generate`: `/v2beta/stable-image/generate/{source}` (`core` in the catalog), fields
  `prompt`, `aspect_ratio`, `negative_prompt`, `seed`, `style_preset`, `output_format`; unset
  options are left out (a seed of 0 would mean "random" there). One image per call: `n` images
  are `n` calls, the i-th with seed + i (`fan_out`). Each call is billed, so each is sent at
  most once per job (`send_once`, noted as the image's request): a later attempt of the job
  sends only the images no attempt sent, and the others are refunded.
- `edit`: `/v2beta/stable-image/edit/{source}` (`inpaint`, `outpaint`, `search-and-replace`,
  `erase` in the catalog), file `image`, and each option of the model's family as the form
  field of its own name (`prompt`, `negative_prompt`, `grow_mask`, `search_prompt`, `left`,
  `right`, `up`, `down`, `creativity`, `style_preset`, `seed`, `output_format`; unset ones left
  out). `inpaint` and `erase` take the file `mask` (white repaints, black keeps: pixelgate's
  convention too); without one they read the image's alpha channel, so an image with no
  transparent pixel is refused when the job is submitted (the catalog's
  `transparency_as_mask`). `outpaint` and `search-and-replace` take no mask. Outpainting
  answers an image larger than the input, read at its own size.
- `remove-background`: `/v2beta/stable-image/edit/remove-background`, file `image`, field
  `output_format` (`png` or `webp` only; anything else asks for `png`).
- `upscale`: `/v2beta/stable-image/upscale/{source}` (`fast`, `conservative`, `creative` in the
  catalog), file `image`, and the family's options as fields of their own names (`prompt`,
  `negative_prompt`, `seed`, `creativity`, `style_preset`, `output_format`; unset ones left out;
  pixelgate's `factor` is not sent: fast makes 4x, the others about 4 megapixels). `fast` and
  `conservative` answer the image like the other calls. `creative` answers `{"id"}` at once;
  `GET /v2beta/results/{id}` answers 202 (`{"id", "status": "in-progress"}`) until the image is
  ready, then the image, raw or as JSON `{"result": <base64>, "seed", "finish_reason"}`. The id
  is noted with the job as soon as it is known: a later attempt polls it again instead of
  starting (and paying for) another upscale. Results are kept 24 hours there.
- `accept: image/*` answers the raw image with headers `seed` and `finish-reason`;
  `accept: application/json` answers `{"image": <base64>, "seed", "finish_reason"}`. The answer
  is read by its own content type, so either works. A finish reason of `CONTENT_FILTERED` is
  the safety filter (the image is blurred) and is refused.
- Errors are `{"id", "name", "errors": [<message>, ...]}`: 400 `bad_request` and 422 are the
  caller's input, 403 with name `content_moderation` is moderation, 413 is an input too large,
  other 401/403 a refused key.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any, Literal

import httpx
from pydantic import Field, SecretStr

from pixelgate.catalog import ModelSpec
from pixelgate.catalog.options import StabilityCoreOptions
from pixelgate.errors import (
    BackendError,
    Error,
    MustProvideFile,
    PayloadTooLarge,
    ValidationError,
)
from pixelgate.providers.base import (
    CancelToken,
    GeneratedImage,
    ImageInput,
    ImageTask,
    ProgressCallback,
    UpstreamTask,
)
from pixelgate.providers.keys import key_refused
from pixelgate.providers.polling import PollingProvider
from pixelgate.providers.registry import Backend
from pixelgate.providers.results import (
    FileField,
    fan_out,
    image_part,
    malformed,
    read_image,
    seed_for,
)
from pixelgate.providers.upstream import UpstreamClient, UpstreamResponse, send_once
from pixelgate.settings import ProviderSettings

PROVIDER = "stability"
GENERATE_PATH = "/v2beta/stable-image/generate/{source}"
EDIT_PATH = "/v2beta/stable-image/edit/{source}"
MASKED_EDITS = frozenset({"inpaint", "erase"})
"""Edits of a masked area: the mask sent, else the input image's transparent pixels."""
REMOVE_BACKGROUND_PATH = "/v2beta/stable-image/edit/remove-background"
UPSCALE_PATH = "/v2beta/stable-image/upscale/{source}"
RESULTS_PATH = "/v2beta/results/{id}"
ASYNC_UPSCALES = frozenset({"creative"})
"""Upscales that answer an id to poll for the image."""
RESULT_ID = re.compile(r"[A-Za-z0-9_-]{1,200}")
CONTENT_FILTERED = "CONTENT_FILTERED"
MODERATION_NAME = "content_moderation"

Accept = Literal["image/*", "application/json"]


class StabilitySettings(ProviderSettings):
    api_key: SecretStr | None = None
    base_url: str = "https://api.stability.ai"
    poll_interval_seconds: float = Field(default=5.0, gt=0)
    """How often an asynchronous result (the creative upscale) is asked for."""
    poll_timeout_seconds: float = Field(default=600.0, gt=0)
    """How long one is waited for after it was started."""


class StabilityProvider(PollingProvider):
    """Stability AI's Stable Image API; a tenant's own Stability AI key may replace the
    operator's."""

    name = PROVIDER

    def __init__(
        self,
        *,
        api_key: SecretStr | None,
        base_url: str,
        http: UpstreamClient,
        accept: Accept = "image/*",
        poll_interval_seconds: float = 5.0,
        poll_timeout_seconds: float = 600.0,
    ) -> None:
        super().__init__(
            api_key=api_key,
            base_url=base_url,
            http=http,
            poll_interval_seconds=poll_interval_seconds,
            poll_timeout_seconds=poll_timeout_seconds,
        )
        self._accept = accept

    @classmethod
    def backend(cls) -> Backend[Any]:
        return BACKEND

    def run(
        self,
        spec: ModelSpec,
        task: ImageTask,
        *,
        progress: ProgressCallback,
        cancel: CancelToken,
    ) -> list[GeneratedImage]:
        # 1. the endpoint and its parts, checked before any upstream call
        task.require_support(spec)
        self._request(spec, task, 0)
        key = self._key.require(spec, task.own_key)
        headers = {
            "Authorization": f"Bearer {key}",
            "accept": self._accept,
        }
        if task.kind == "upscale" and spec.source in ASYNC_UPSCALES:
            progress(0, 1)
            image = self._started_and_polled(spec, task, headers, cancel)
            progress(1, 1)
            return [image]

        def one(index: int) -> GeneratedImage:
            # 2. the upstream call: one image each, the index-th seed
            # (sent once per job: a later attempt sends only the images no attempt sent)
            path, parts = self._request(spec, task, index)
            response = send_once(
                PROVIDER,
                task,
                lambda: self._http.send(
                    "POST", self._base_url + path, cancel=cancel, headers=headers, multipart=parts
                ),
                index=index,
            )
            # 3. the image
            return read_result(response)

        return fan_out(task.options.n, one, provider=PROVIDER, progress=progress, cancel=cancel)

    def _request(
        self, spec: ModelSpec, task: ImageTask, index: int
    ) -> tuple[str, dict[str, str | FileField]]:
        options = task.options
        if task.kind == "remove-background":
            image = _required_image(task)
            fmt = options.output_format_value
            return REMOVE_BACKGROUND_PATH, {
                "image": image_part("image", image),
                "output_format": fmt if fmt in ("png", "webp") else "png",
            }
        if task.kind == "edit":
            return _edit_request(spec, task, index)
        if task.kind == "upscale":
            return _upscale_request(spec, task)
        if task.kind != "generate":
            raise ValidationError(f"Model {spec.id!r} does not support {task.kind}", param="model")
        if not isinstance(options, StabilityCoreOptions):
            raise TypeError(f"the stability provider cannot send {type(options).__name__}")
        fields = {
            "prompt": options.prompt,
            "negative_prompt": options.negative_prompt,
            "seed": _text(seed_for(options.seed, index)),
            "style_preset": options.style_preset,
            "output_format": options.output_format,
        }
        parts: dict[str, str | FileField] = {k: v for k, v in fields.items() if v is not None}
        parts["aspect_ratio"] = options.aspect_ratio
        return GENERATE_PATH.format(source=spec.source or "core"), parts

    def _started_and_polled(
        self, spec: ModelSpec, task: ImageTask, headers: dict[str, str], cancel: CancelToken
    ) -> GeneratedImage:
        """An asynchronous upscale: started once per job (its id noted with the job), then
        polled until its image is ready, the job is canceled, or the window closes."""

        def start() -> UpstreamResponse:
            path, parts = self._request(spec, task, 0)
            return self._http.send(
                "POST",
                self._base_url + path,
                cancel=cancel,
                headers={**headers, "accept": "application/json"},
                multipart=parts,
            )

        result_id, deadline = self._polling.start(
            PROVIDER,
            task,
            send=start,
            accept=_accepted,
            resume=lambda earlier: earlier.task_id,
        )
        url = self._base_url + RESULTS_PATH.format(id=result_id)

        def ready() -> UpstreamResponse | None:
            polled = self._http.send("GET", url, cancel=cancel, headers=headers)
            return None if polled.status == 202 else polled

        # the upscale is Stability's once started (and billed): waited for, never started again
        done = self._polling.until(
            ready, deadline=deadline, cancel=cancel, timeout_message="Upscaling timed out"
        )
        return read_result(done)


def _accepted(response: UpstreamResponse) -> tuple[str, UpstreamTask]:
    """The started upscale's result id, and its note."""
    result_id = _result_id(response)
    return result_id, UpstreamTask(PROVIDER, task_id=result_id)


def _result_id(response: UpstreamResponse) -> str:
    """The id an asynchronous call answered, or the error it answered instead."""
    if not response.ok:
        raise error_from_response(response.status, response.json_body())
    body = response.json_body()
    result_id = body.get("id") if isinstance(body, dict) else None
    if not isinstance(result_id, str) or not RESULT_ID.fullmatch(result_id):
        raise malformed(PROVIDER, "no usable `id` in the answer that started the upscale")
    return result_id


def _upscale_request(spec: ModelSpec, task: ImageTask) -> tuple[str, dict[str, str | FileField]]:
    """The path and form of an upscale: the family's options as fields of their own names
    (pixelgate's `factor` is its own: Stability's upscalers choose their output size)."""
    image = _required_image(task)
    sent = task.options.model_dump(mode="json", exclude={"n", "user", "factor"}, exclude_none=True)
    parts: dict[str, str | FileField] = {name: str(value) for name, value in sent.items()}
    parts["image"] = image_part("image", image)
    return UPSCALE_PATH.format(source=spec.source or "fast"), parts


def _edit_request(
    spec: ModelSpec, task: ImageTask, index: int
) -> tuple[str, dict[str, str | FileField]]:
    """The path and form of one edit call: the family's options as fields of their own names,
    the `index`-th seed, the image and (for a masked edit) the mask."""
    source = spec.source or "inpaint"
    image = _required_image(task)
    options = task.options
    sent = options.model_dump(mode="json", exclude={"n", "user", "seed"}, exclude_none=True)
    sent["seed"] = seed_for(options.seed_value, index)
    parts: dict[str, str | FileField] = {
        name: str(value) for name, value in sent.items() if value is not None
    }
    parts["image"] = image_part("image", image)
    # a mask for an edit that finds its own area is refused at submit (`takes_mask = false`)
    if source in MASKED_EDITS and task.mask is not None:
        parts["mask"] = image_part("mask", task.mask)
    # else: the image's transparent pixels are the mask (the catalog's `transparency_as_mask`:
    # an opaque image without a mask is refused when the job is submitted)
    return EDIT_PATH.format(source=source), parts


def read_result(response: UpstreamResponse) -> GeneratedImage:
    """The image of a success answer, raw (`image/*`) or JSON; an error answer raised."""
    if not response.ok:
        raise error_from_response(response.status, response.json_body())
    if response.content_type == "application/json":
        body = response.json_body()
        # `image` from the synchronous calls, `result` from /v2beta/results
        encoded = body.get("image", body.get("result")) if isinstance(body, dict) else None
        if not isinstance(body, dict) or not isinstance(encoded, str):
            raise malformed(PROVIDER, "no `image` in the JSON answer")
        try:
            data = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise malformed(PROVIDER, "`image` is not base64") from None
        finish_reason, seed = body.get("finish_reason"), body.get("seed")
    elif response.content_type.startswith("image/"):
        data = response.content
        finish_reason = response.headers.get("finish-reason")
        seed = response.headers.get("seed")
    else:
        raise malformed(PROVIDER, f"unexpected content type {response.content_type or 'none'!r}")
    if finish_reason == CONTENT_FILTERED:
        raise BackendError(
            "Stability AI's safety filter refused the result (finish_reason CONTENT_FILTERED)"
        )
    return read_image(data, provider=PROVIDER, seed=_seed(seed))


def _text(value: int | None) -> str | None:
    return None if value is None else str(value)


def _seed(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def _required_image(task: ImageTask) -> ImageInput:
    if task.image is None:
        raise MustProvideFile(f"{task.kind} needs an input image", param="image")
    return task.image


def error_from_response(status: int, body: Any) -> Error:
    """A pixelgate error for a Stability error answer, read from its documented fields."""
    fields = body if isinstance(body, dict) else {}
    name = fields.get("name")
    errors = fields.get("errors")
    messages = [e for e in errors if isinstance(e, str)] if isinstance(errors, list) else []
    message = "; ".join(messages) or None
    if name == MODERATION_NAME:
        return BackendError(
            f"Stability AI's content moderation refused the request: {message or name}"
        )
    if status in (401, 403):
        return key_refused(PROVIDER, status)
    if status in (400, 422):
        return ValidationError(
            message or f"The stability provider refused the request (HTTP {status})"
        )
    if status == 413:
        return PayloadTooLarge(message or "The input is too large for the stability provider")
    reason = message or httpx.codes.get_reason_phrase(status) or "no message"
    return BackendError(f"The stability provider answered HTTP {status}: {reason}")


BACKEND = Backend(PROVIDER, StabilitySettings, StabilityProvider.from_settings)
