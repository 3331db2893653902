"""OpenAI's Images API (dall-e-2, dall-e-3, gpt-image-*) behind the one provider interface.

The protocol as this module speaks it (platform.openai.com/docs/api-reference/images):

- `POST {base}/v1/images/generations`, JSON: `model`, `prompt`, `n`, `size`, and `user` when
  the caller named one; dall-e-3 adds `quality` and `style`; gpt-image adds `quality`,
  `background`, `output_format`.
- `POST {base}/v1/images/edits`, multipart: files `image` and `mask`, fields `prompt`,
  `model`, `n`, `size` and the family's other options. The image goes as an RGBA PNG and the
  mask in OpenAI's convention, an RGBA PNG of the image's size whose transparent pixels may be
  edited (`providers/masks.py`); pixelgate's own masks are white where they repaint. dall-e-2
  takes square images only: the catalog says so (`square_inputs`) and the service makes them
  square before they get here.
- `POST {base}/v1/images/variations`, multipart: file `image`, fields `model`, `n`, `size`.
- dall-e models are asked for `response_format=b64_json`; gpt-image models always answer in
  base64 and refuse the field. An answer that still carries a `url` is fetched here, so no
  provider URL ever reaches the caller.
- `Authorization: Bearer <key>`. Success: `{"created", "data": [{"b64_json" | "url",
  "revised_prompt"?}]}`. Errors: `{"error": {"message", "type", "param", "code"}}`; the codes
  `content_policy_violation` (dall-e) and `moderation_blocked` (gpt-image) are its safety system.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from typing import Any

import httpx
from pydantic import SecretStr

from pixelgate.catalog import ImageOptions, ModelSpec, PromptOptions
from pixelgate.catalog.options import (
    DallE2Options,
    DallE2VariationOptions,
    DallE3Options,
    GptImageOptions,
    OpenAICompatibleOptions,
)
from pixelgate.errors import (
    BackendError,
    Error,
    MustProvideFile,
    ValidationError,
)
from pixelgate.providers.base import (
    CancelToken,
    GeneratedImage,
    ImageInput,
    ImageTask,
    ProgressCallback,
    require_available,
)
from pixelgate.providers.keys import ProviderKey, key_refused
from pixelgate.providers.masks import to_openai_image, to_openai_mask
from pixelgate.providers.registry import Backend
from pixelgate.providers.results import FileField, image_part, malformed, read_image
from pixelgate.providers.upstream import UpstreamClient, UpstreamResponse, send_once
from pixelgate.settings import ProviderSettings, Settings

PROVIDER = "openai"
PATHS = {
    "generate": "/v1/images/generations",
    "edit": "/v1/images/edits",
    "variation": "/v1/images/variations",
}
MODERATION_CODES = frozenset({"content_policy_violation", "moderation_blocked", "content_filter"})
"""Its safety system's codes: dall-e's, gpt-image's, and Azure OpenAI's content filter."""


class OpenAISettings(ProviderSettings):
    api_key: SecretStr | None = None
    base_url: str = "https://api.openai.com"
    """The API's root, without `/v1`."""


class OpenAIProvider:
    name = PROVIDER
    takes_own_keys = True
    """A tenant's own OpenAI key may replace the operator's (`providers.keys.TakesOwnKeys`)."""
    sends_one_request = True
    """A job's `n` images come from one request (see `providers.base.sends_one_request`)."""

    def __init__(self, *, api_key: SecretStr | None, base_url: str, http: UpstreamClient) -> None:
        self._key = ProviderKey(self.name, api_key, BACKEND.variable("api_key"))
        self._base_url = base_url.rstrip("/")
        self._http = http

    @classmethod
    def from_settings(cls, settings: Settings) -> OpenAIProvider:
        own = BACKEND.settings_of(settings)
        return cls(
            api_key=own.api_key,
            base_url=own.base_url,
            http=UpstreamClient.from_settings(cls.name, settings, base_url=own.base_url),
        )

    def unavailable_reason(self, spec: ModelSpec) -> str | None:
        return self._key.missing()

    def own_key_problem(self, spec: ModelSpec) -> str | None:
        return None  # a key is all a request needs

    def url(self, spec: ModelSpec, kind: str) -> str:
        """Where a task of `kind` for `spec` is sent."""
        return self._base_url + PATHS[kind]

    def auth_headers(self, spec: ModelSpec, own_key: SecretStr | None = None) -> dict[str, str]:
        """The request's credentials: the tenant's `own_key` when the task has one."""
        return {"Authorization": f"Bearer {self._key.require(spec, own_key)}"}

    def fields(self, spec: ModelSpec, task: ImageTask) -> dict[str, Any]:
        """The request's fields, JSON or multipart."""
        model = spec.source or spec.id
        return request_fields(model, task.options, with_prompt=task.kind != "variation")

    def run(
        self,
        spec: ModelSpec,
        task: ImageTask,
        *,
        progress: ProgressCallback,
        cancel: CancelToken,
    ) -> list[GeneratedImage]:
        # 1. checks that need no upstream call
        task.require_support(spec)
        if task.kind not in PATHS:
            raise ValidationError(f"Model {spec.id!r} does not support {task.kind}", param="model")
        if task.kind != "generate" and task.image is None:
            raise MustProvideFile(f"{task.kind} needs an input image", param="image")
        own = task.own_key is not None
        reason = self.own_key_problem(spec) if own else self.unavailable_reason(spec)
        require_available(spec, reason)
        headers = self.auth_headers(spec, task.own_key)
        fields = self.fields(spec, task)
        progress(0, 1)
        # 2. the upstream call: JSON for generations, multipart for edits and variations
        url = self.url(spec, task.kind)
        if task.image is None:
            response = send_once(
                self.name,
                task,
                lambda: self._http.send(
                    "POST", url, cancel=cancel, headers=headers, json_body=fields
                ),
            )
        else:
            parts: dict[str, str | FileField] = {
                name: form_value(value) for name, value in fields.items()
            }
            parts["image"] = image_part("image", as_png(task.image, to_openai_image))
            if task.mask is not None:
                parts["mask"] = image_part("mask", as_png(task.mask, to_openai_mask))
            response = send_once(
                self.name,
                task,
                lambda: self._http.send(
                    "POST", url, cancel=cancel, headers=headers, multipart=parts
                ),
            )
        # 3. the images, as bytes
        images = self._images(response, cancel)
        progress(1, 1)
        return images

    def _images(self, response: UpstreamResponse, cancel: CancelToken) -> list[GeneratedImage]:
        body = response.json_body()
        if not response.ok:
            raise error_from_response(response.status, body, provider=self.name)
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, list) or not data:
            raise malformed(self.name, "no `data` list")
        images: list[GeneratedImage] = []
        for item in data:
            if not isinstance(item, dict):
                raise malformed(self.name, "an item of `data` is not an object")
            revised = item.get("revised_prompt")
            revised_prompt = revised if isinstance(revised, str) else None
            encoded, url = item.get("b64_json"), item.get("url")
            if isinstance(encoded, str):
                try:
                    raw = base64.b64decode(encoded, validate=True)
                except (binascii.Error, ValueError):
                    raise malformed(self.name, "`b64_json` is not base64") from None
            elif isinstance(url, str):
                raw = self._http.fetch_result(url, cancel=cancel)
            else:
                raise malformed(self.name, "an image has neither `b64_json` nor `url`")
            images.append(read_image(raw, provider=self.name, revised_prompt=revised_prompt))
        return images


def as_png(image: ImageInput, convert: Callable[[bytes], bytes]) -> ImageInput:
    """An input converted to the PNG OpenAI takes (same size)."""
    return ImageInput(convert(image.data), "image/png", image.width, image.height)


def request_fields(model: str, options: ImageOptions, *, with_prompt: bool) -> dict[str, Any]:
    """The request fields of one option family, named as OpenAI names them."""
    fields: dict[str, Any] = {"model": model, "n": options.n}
    if with_prompt and isinstance(options, PromptOptions):
        fields["prompt"] = options.prompt
    if isinstance(options, DallE3Options):
        fields |= {"size": options.size, "quality": options.quality, "style": options.style}
        fields["response_format"] = "b64_json"
    elif isinstance(options, DallE2Options | DallE2VariationOptions):
        fields |= {"size": options.size, "response_format": "b64_json"}
    elif isinstance(options, OpenAICompatibleOptions):
        fields["response_format"] = "b64_json"
        if options.size is not None:
            fields["size"] = options.size
        if options.quality is not None:
            fields["quality"] = options.quality
    elif isinstance(options, GptImageOptions):
        fields |= {
            "size": options.size,
            "quality": options.quality,
            "background": options.background,
            "output_format": options.output_format,
        }
    else:
        raise TypeError(f"the openai provider cannot send {type(options).__name__}")
    if options.user is not None:
        fields["user"] = options.user
    return fields


def form_value(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def error_from_response(status: int, body: Any, *, provider: str = PROVIDER) -> Error:
    """A pixelgate error for an OpenAI error answer, read from its documented fields (Azure
    OpenAI answers in the same shape)."""
    error = body.get("error") if isinstance(body, dict) else None
    fields = error if isinstance(error, dict) else {}
    message = fields.get("message") if isinstance(fields.get("message"), str) else None
    code = fields.get("code") if isinstance(fields.get("code"), str) else None
    param = fields.get("param") if isinstance(fields.get("param"), str) else None
    if code in MODERATION_CODES:
        return BackendError(f"OpenAI's safety system refused the request: {message or code}")
    if status in (401, 403):
        return key_refused(provider, status)
    if status in (400, 422):
        return ValidationError(
            message or f"The {provider} provider refused the request (HTTP {status})", param=param
        )
    reason = message or httpx.codes.get_reason_phrase(status) or "no message"
    return BackendError(f"The {provider} provider answered HTTP {status}: {reason}")


BACKEND = Backend(PROVIDER, OpenAISettings, OpenAIProvider.from_settings)
