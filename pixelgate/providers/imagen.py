"""Google's Imagen (3 and 4, and Imagen 3 editing) behind the one provider interface, through
the Gemini API or through Vertex AI.

The protocol as this module speaks it (ai.google.dev/api/generate-images and
cloud.google.com/vertex-ai/generative-ai/docs/model-reference/imagen-api, -edit), with the
assumptions written down:

- Gemini API: `POST {base}/v1beta/models/{model}:predict` with header `x-goog-api-key: <key>`.
  Vertex AI: `POST https://{region}-aiplatform.googleapis.com/v1/projects/{project}/locations/
  {region}/publishers/google/models/{model}:predict` with `Authorization: Bearer <token>`: a
  configured access token, or one fetched for a service account's key file (`google_auth`).
  Vertex AI is used whenever a project is configured; editing exists only there.
- The body is `{"instances": [{"prompt", "referenceImages"?}], "parameters": {...}}`:
  `sampleCount` (pixelgate's `n`, one request for all), `aspectRatio`, `personGeneration`,
  `safetySetting`, `outputOptions.mimeType`, `includeRaiReason: true`, and on Vertex AI
  `addWatermark` and `seed` (a seed only without the watermark) and, for edits,
  `negativePrompt` and `baseSteps`. The Gemini API takes neither a seed nor `addWatermark`.
- Editing (imagen-3.0-capability-001): `parameters.editMode` is `EDIT_MODE_INPAINT_INSERTION`,
  `EDIT_MODE_INPAINT_REMOVAL`, `EDIT_MODE_OUTPAINT` or `EDIT_MODE_BGSWAP`; the instance's
  `referenceImages` hold the image (`REFERENCE_TYPE_RAW`, id 1) and the mask
  (`REFERENCE_TYPE_MASK`, id 2) with `maskImageConfig.maskMode`: `MASK_MODE_USER_PROVIDED` with
  the mask's bytes (non-zero repaints, pixelgate's own convention), or `MASK_MODE_BACKGROUND` /
  `MASK_MODE_FOREGROUND` for a mask Imagen computes, with no bytes. `dilation` grows it.
- Success: `{"predictions": [{"bytesBase64Encoded", "mimeType"} | {"raiFilteredReason"}]}`; an
  image the safety filter withheld is a prediction with only `raiFilteredReason`, and a request
  whose every image was withheld may answer no predictions at all.
- Errors: `{"error": {"code", "message", "status"}}`. 400 `INVALID_ARGUMENT` is the caller's
  input, unless its message is the Responsible AI filter refusing the prompt; 401/403 a refused
  key or token; 429 `RESOURCE_EXHAUSTED` and 5xx are retried by the HTTP policy.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr

from pixelgate.catalog import ModelSpec
from pixelgate.catalog.options import ImagenCommonOptions, ImagenEditOptions, ImagenOptions
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
from pixelgate.providers.google_auth import ServiceAccount, ServiceAccountTokens
from pixelgate.providers.keys import ProviderKey, key_refused
from pixelgate.providers.registry import Backend
from pixelgate.providers.results import malformed, read_image
from pixelgate.providers.upstream import UpstreamClient, UpstreamResponse, send_once
from pixelgate.settings import ProviderSettings, Settings

PROVIDER = "google"
GEMINI_PATH = "/v1beta/models/{model}:predict"
VERTEX_PATH = "/v1/projects/{project}/locations/{region}/publishers/google/models/{model}:predict"
EDIT_MODES = {
    "inpaint-insertion": "EDIT_MODE_INPAINT_INSERTION",
    "inpaint-removal": "EDIT_MODE_INPAINT_REMOVAL",
    "outpaint": "EDIT_MODE_OUTPAINT",
    "background-swap": "EDIT_MODE_BGSWAP",
}
MASK_MODES = {
    "user-provided": "MASK_MODE_USER_PROVIDED",
    "background": "MASK_MODE_BACKGROUND",
    "foreground": "MASK_MODE_FOREGROUND",
}
SAFETY_FILTER_WORDS = ("responsible ai", "sensitive words", "safety")


class GoogleSettings(ProviderSettings):
    api_key: SecretStr | None = None
    """A Gemini API key (aistudio.google.com)."""
    base_url: str = "https://generativelanguage.googleapis.com"
    vertex_project: str | None = None
    """A Google Cloud project: with it, Imagen is called through Vertex AI."""
    vertex_region: str = "us-central1"
    vertex_access_token: SecretStr | None = None
    """An OAuth access token for Vertex AI (an hour's life: for short runs and tests)."""
    vertex_credentials_file: Path | None = None
    """A service account's JSON key file; access tokens are fetched with it as needed."""
    vertex_base_url: str | None = None
    """Vertex AI's root; `https://{region}-aiplatform.googleapis.com` when unset."""


@dataclass(frozen=True)
class Vertex:
    project: str
    region: str
    base_url: str
    token: SecretStr | ServiceAccountTokens


class ImagenProvider:
    name = PROVIDER
    takes_own_keys = True
    """A tenant's own Gemini API key may replace the operator's credentials: its requests go
    to the Gemini API, even where the operator's go to Vertex AI."""
    sends_one_request = True
    """A job's `n` images come from one request (`sampleCount`)."""

    def __init__(
        self,
        *,
        http: UpstreamClient,
        api_key: SecretStr | None = None,
        base_url: str = "https://generativelanguage.googleapis.com",
        vertex: Vertex | None = None,
        vertex_problem: str | None = None,
    ) -> None:
        self._key = ProviderKey(self.name, api_key, BACKEND.variable("api_key"))
        self._base_url = base_url.rstrip("/")
        self._vertex = vertex
        self._vertex_problem = vertex_problem
        self._http = http

    @classmethod
    def from_settings(cls, settings: Settings) -> ImagenProvider:
        own = BACKEND.settings_of(settings)
        vertex_base = (
            own.vertex_base_url or f"https://{own.vertex_region}-aiplatform.googleapis.com"
        ).rstrip("/")
        http = UpstreamClient.from_settings(PROVIDER, settings, base_url=own.base_url)
        vertex, problem = None, None
        if own.vertex_project is not None:
            token: SecretStr | ServiceAccountTokens | None = own.vertex_access_token
            if own.vertex_credentials_file is not None:
                try:
                    account = ServiceAccount.from_file(own.vertex_credentials_file)
                except ValueError as exc:
                    problem = str(exc)
                else:
                    token = ServiceAccountTokens(account, http)
            if token is not None:
                vertex = Vertex(own.vertex_project, own.vertex_region, vertex_base, token)
            elif problem is None:
                problem = (
                    f"Vertex AI needs credentials (set {BACKEND.variable('vertex_access_token')}"
                    f" or {BACKEND.variable('vertex_credentials_file')})"
                )
        return cls(
            http=http,
            api_key=own.api_key,
            base_url=own.base_url,
            vertex=vertex,
            vertex_problem=problem,
        )

    def unavailable_reason(self, spec: ModelSpec) -> str | None:
        if self._vertex is not None:
            return None
        if self._vertex_problem is not None:
            return self._vertex_problem
        if "edit" in spec.capabilities:
            return (
                "Imagen editing runs on Vertex AI only (set "
                f"{BACKEND.variable('vertex_project')} and "
                f"{BACKEND.variable('vertex_credentials_file')} or "
                f"{BACKEND.variable('vertex_access_token')})"
            )
        missing = self._key.missing()
        if missing is not None:
            return f"{missing}, or {BACKEND.variable('vertex_project')} for Vertex AI"
        return None

    def own_key_problem(self, spec: ModelSpec) -> str | None:
        if "edit" in spec.capabilities:
            return "Imagen editing runs on Vertex AI only, which a Gemini API key cannot reach"
        return None

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
        own = task.own_key is not None
        reason = self.own_key_problem(spec) if own else self.unavailable_reason(spec)
        require_available(spec, reason)
        model = spec.source or spec.id.rsplit("/", 1)[-1]
        vertex = self._vertex is not None and task.own_key is None
        body = request_body(task, vertex=vertex)
        progress(0, 1)
        # 2. the upstream call: one request for every image
        if vertex:
            assert self._vertex is not None
            url = self._vertex.base_url + VERTEX_PATH.format(
                project=self._vertex.project, region=self._vertex.region, model=model
            )
            headers = {"Authorization": f"Bearer {self._vertex_token(cancel)}"}
        else:
            url = self._base_url + GEMINI_PATH.format(model=model)
            headers = {"x-goog-api-key": self._key.require(spec, task.own_key)}
        response = send_once(
            PROVIDER,
            task,
            lambda: self._http.send("POST", url, cancel=cancel, headers=headers, json_body=body),
        )
        # 3. the images, as bytes
        images = read_predictions(response, seed=sent_seed(task))
        progress(1, 1)
        return images

    def _vertex_token(self, cancel: CancelToken) -> str:
        assert self._vertex is not None
        token = self._vertex.token
        if isinstance(token, SecretStr):
            return token.get_secret_value()
        return token.token(cancel)


def sent_seed(task: ImageTask) -> int | None:
    """The seed the request carries: Imagen takes one only without the watermark."""
    options = task.options
    if isinstance(options, ImagenCommonOptions) and not options.add_watermark:
        return options.seed
    return None


def request_body(task: ImageTask, *, vertex: bool) -> dict[str, Any]:
    """The `:predict` body for a generation or an edit."""
    options = task.options
    if not isinstance(options, ImagenCommonOptions):
        raise TypeError(f"the google provider cannot send {type(options).__name__}")
    parameters: dict[str, Any] = {
        "sampleCount": options.n,
        "personGeneration": options.person_generation,
        "safetySetting": options.safety_setting,
        "outputOptions": {"mimeType": f"image/{options.output_format}"},
        "includeRaiReason": True,
    }
    if vertex:
        parameters["addWatermark"] = options.add_watermark
        if sent_seed(task) is not None:
            parameters["seed"] = options.seed
    elif not options.add_watermark:
        raise ValidationError(
            "Invalid add_watermark: the Gemini API always watermarks Imagen images (and takes "
            "no seed); add_watermark=false and a seed need Vertex AI",
            param="add_watermark",
        )
    instance: dict[str, Any] = {"prompt": options.prompt}
    if task.kind == "generate" and isinstance(options, ImagenOptions):
        parameters["aspectRatio"] = options.aspect_ratio
    elif task.kind == "edit" and isinstance(options, ImagenEditOptions):
        instance["referenceImages"] = reference_images(task, options)
        parameters["editMode"] = EDIT_MODES[options.edit_mode]
        if options.negative_prompt is not None:
            parameters["negativePrompt"] = options.negative_prompt
        if options.base_steps is not None:
            parameters["baseSteps"] = options.base_steps
    else:
        raise ValidationError(f"Imagen cannot do {task.kind} with these options", param="model")
    return {"instances": [instance], "parameters": parameters}


def reference_images(task: ImageTask, options: ImagenEditOptions) -> list[dict[str, Any]]:
    """The image to edit and its mask (the caller's, or one Imagen computes)."""
    if task.image is None:
        raise MustProvideFile("Imagen editing needs an input image", param="image")
    mask_mode = options.mask_mode or (
        "background" if options.edit_mode == "background-swap" else "user-provided"
    )
    mask_config: dict[str, Any] = {"maskMode": MASK_MODES[mask_mode]}
    if options.mask_dilation is not None:
        mask_config["dilation"] = options.mask_dilation
    mask: dict[str, Any] = {
        "referenceType": "REFERENCE_TYPE_MASK",
        "referenceId": 2,
        "maskImageConfig": mask_config,
    }
    if mask_mode == "user-provided":
        if task.mask is None:
            raise MustProvideFile(
                f"Imagen's {options.edit_mode} needs a mask (white repaints), or a mask_mode "
                "Imagen computes itself: background or foreground",
                param="mask",
            )
        mask["referenceImage"] = encoded(task.mask)
    elif task.mask is not None:
        raise ValidationError(
            f"Invalid mask_mode: {mask_mode} computes the mask, and a mask was sent; send "
            "mask_mode user-provided to use it, or no mask",
            param="mask_mode",
        )
    raw = {"referenceType": "REFERENCE_TYPE_RAW", "referenceId": 1}
    return [raw | {"referenceImage": encoded(task.image)}, mask]


def encoded(image: ImageInput) -> dict[str, str]:
    return {
        "bytesBase64Encoded": base64.b64encode(image.data).decode(),
        "mimeType": image.content_type,
    }


def read_predictions(response: UpstreamResponse, *, seed: int | None) -> list[GeneratedImage]:
    """The images of a success answer; an error answer, or one whose every image the safety
    filter withheld, raised."""
    body = response.json_body()
    if not response.ok:
        raise error_from_response(response.status, body)
    if not isinstance(body, dict):
        raise malformed(PROVIDER, "the answer is not a JSON object")
    predictions = body.get("predictions", [])
    if not isinstance(predictions, list):
        raise malformed(PROVIDER, "`predictions` is not a list")
    images: list[GeneratedImage] = []
    withheld: list[str] = []
    for prediction in predictions:
        if not isinstance(prediction, dict):
            raise malformed(PROVIDER, "a prediction is not an object")
        data = prediction.get("bytesBase64Encoded")
        if isinstance(data, str):
            try:
                raw = base64.b64decode(data, validate=True)
            except (binascii.Error, ValueError):
                raise malformed(PROVIDER, "`bytesBase64Encoded` is not base64") from None
            images.append(read_image(raw, provider=PROVIDER, seed=seed))
        elif isinstance(prediction.get("raiFilteredReason"), str):
            withheld.append(prediction["raiFilteredReason"])
    if not images:
        reason = "; ".join(withheld) or "no image came back"
        raise BackendError(f"Google's safety filter withheld every image: {reason}")
    return images


def error_from_response(status: int, body: Any) -> Error:
    """A pixelgate error for a Google API error answer, read from its documented fields."""
    error = body.get("error") if isinstance(body, dict) else None
    fields = error if isinstance(error, dict) else {}
    message = fields.get("message") if isinstance(fields.get("message"), str) else None
    if status in (401, 403):
        return key_refused(PROVIDER, status)
    if message is not None and any(word in message.lower() for word in SAFETY_FILTER_WORDS):
        return BackendError(f"Google's safety filter refused the request: {message}")
    if status == 400:
        return ValidationError(message or "The google provider refused the request (HTTP 400)")
    reason = message or httpx.codes.get_reason_phrase(status) or "no message"
    return BackendError(f"The google provider answered HTTP {status}: {reason}")


BACKEND = Backend(PROVIDER, GoogleSettings, ImagenProvider.from_settings)
