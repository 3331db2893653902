"""fal.ai's FLUX endpoints behind the one provider interface, through fal's queue API: submit a
request, follow its status, read its result, fetch the images.

The protocol as this module speaks it (fal.ai/docs, "Queue"):

- Submit: `POST {base}/{endpoint}` (base `https://queue.fal.run`, endpoint such as
  `fal-ai/flux-pro/v1.1`) with `Authorization: Key <key>` and the model's JSON input. The answer
  is `{"request_id", "status_url", "response_url", "cancel_url", "queue_position"?}`.
- Status: `GET <status_url>?logs=1` answers `{"status": "IN_QUEUE", "queue_position"}`,
  `{"status": "IN_PROGRESS", "logs"}` or `{"status": "COMPLETED", "logs", "metrics"}`; a
  completed request that failed carries `error` (and `error_type`). Progress is reported from
  it: 0 of 2 while queued, 1 of 2 while running, 2 of 2 once its images are here.
- Result: `GET <response_url>` answers the model's output: `{"images": [{"url", "width",
  "height", "content_type"}], "seed", "has_nsfw_concepts": [bool], ...}`. Each image URL is
  fetched without the key, through the egress guard like every result URL a provider returns.
  An image fal's safety checker flagged (`has_nsfw_concepts`, a black image) is dropped; the
  job keeps the others and the dropped ones are refunded.
- Cancel: `PUT <cancel_url>`; fal answers 202 (`CANCELLATION_REQUESTED`) or 400
  (`ALREADY_COMPLETED`). A canceled pixelgate job cancels its request, and so does one that
  ran past its window (`PIXELGATE_FAL_POLL_TIMEOUT_SECONDS`).
- The answer's URLs are used as given; without them they are built the documented way, on the
  endpoint's `owner/app` only (`fal-ai/flux-pro/requests/<id>`: a subpath such as `/v1.1` is
  part of the submit URL, not of the request's). The key goes with every status, result and
  cancel call, so those URLs must be on the configured base URL's origin or https hosts under
  fal's own domains (`egress.key_may_go_to`); any other is refused before it is called.
- All `n` images come from one request (`num_images`), which shares one seed: each image is
  returned with the request's seed. The request is sent once per job and noted with it (its
  id, its `response_url` and its window), so a later attempt (a retry, a restart) follows it
  again instead of sending (and paying for) another.
- Kontext (`fal-ai/flux-pro/kontext`) edits an image given by `image_url`: the input image is
  sent inline as a `data:` URI (fal takes one wherever it takes a URL), so nothing is uploaded
  to fal's storage and no pixelgate URL needs to be reachable from fal; the price is a larger
  submit body (base64, a third more than the image). Without an input image the request goes
  to its `/text-to-image` subpath.
- Errors: `{"detail": [{"loc", "msg", "type"}]}` with 422 is the caller's input; 401 and 403
  pixelgate's key; others (and `error` on a completed request) the provider's failure.
"""

from __future__ import annotations

import base64
import logging
from dataclasses import dataclass
from typing import Any

import httpx
from pydantic import Field, SecretStr

from pixelgate.catalog import ImageOptions, ModelSpec
from pixelgate.catalog.options import (
    FAL_DEFAULT_IMAGE_SIZE,
    FalFluxDevOptions,
    FalFluxKontextOptions,
    FalFluxProOptions,
    FalFluxSchnellOptions,
    FalFluxUltraOptions,
    FalSizedOptions,
)
from pixelgate.errors import (
    BackendError,
    Canceled,
    Error,
    MustProvideFile,
    ProviderTimeout,
)
from pixelgate.providers.base import (
    CancelToken,
    GeneratedImage,
    ImageTask,
    ProgressCallback,
    UpstreamTask,
)
from pixelgate.providers.egress import key_may_go_to
from pixelgate.providers.polling import PollingProvider
from pixelgate.providers.registry import Backend
from pixelgate.providers.results import detail_error, malformed, read_image
from pixelgate.providers.upstream import UpstreamResponse
from pixelgate.settings import ProviderSettings

log = logging.getLogger(__name__)

PROVIDER = "fal"
PROVIDER_DOMAINS = ("fal.run", "fal.ai", "falrun.com")
QUEUED, RUNNING, COMPLETED = "IN_QUEUE", "IN_PROGRESS", "COMPLETED"
STAGES = 2
"""Progress is reported in stages: queued (0), running (1), done (2)."""


class FalSettings(ProviderSettings):
    api_key: SecretStr | None = None
    base_url: str = "https://queue.fal.run"
    """fal's queue API."""
    poll_interval_seconds: float = Field(default=0.5, gt=0)
    poll_timeout_seconds: float = Field(default=300.0, gt=0)
    """Give up on (and cancel) a request that has not completed after this long."""


@dataclass(frozen=True)
class QueuedRequest:
    """Where one request lives in fal's queue."""

    request_id: str | None
    response_url: str
    status_url: str
    cancel_url: str

    @classmethod
    def at(cls, response_url: str, request_id: str | None = None) -> QueuedRequest:
        """The request at `response_url`, its other URLs made the documented way."""
        return cls(request_id, response_url, f"{response_url}/status", f"{response_url}/cancel")


class FalProvider(PollingProvider):
    """fal.ai's queue API; a tenant's own fal.ai key may replace the operator's."""

    name = PROVIDER
    sends_one_request = True
    """A job's `n` images come from one request (see `providers.base.sends_one_request`)."""

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
        # 1. checks that need no upstream call
        task.require_support(spec)
        body = request_body(task)
        headers = {"Authorization": f"Key {self._key.require(spec, task.own_key)}"}
        endpoint = endpoint_of(spec, task)
        progress(0, STAGES)
        # 2. submit, once per job: a request an earlier attempt submitted is followed again
        request, deadline = self._submit_json(
            task,
            f"{self._base_url}/{endpoint}",
            body,
            headers=headers,
            cancel=cancel,
            accept=lambda submitted: self._accepted(submitted, endpoint),
            resume=_resumed,
        )
        # 3. follow it until it completes; a cancel or the window's end cancels it upstream
        try:
            self._follow(request, headers, progress, cancel, deadline)
        except (Canceled, ProviderTimeout):
            self._cancel_upstream(request, headers)
            raise
        # 4. its result, and the images, fetched without the key
        result = _answer(
            self._http.send(
                "GET", request.response_url, cancel=cancel, headers=headers, on_providers_word=True
            )
        )
        images = self._images(result, cancel)
        progress(STAGES, STAGES)
        return images

    def _accepted(
        self, submitted: UpstreamResponse, endpoint: str
    ) -> tuple[QueuedRequest, UpstreamTask]:
        """The submitted request, and its note."""
        request = self._queued(_answer(submitted), endpoint)
        return request, UpstreamTask(
            PROVIDER, task_id=request.request_id, polling_url=request.response_url
        )

    def _queued(self, answer: dict[str, Any], endpoint: str) -> QueuedRequest:
        """The submitted request's URLs, from the answer, each checked before the key goes
        there."""
        request_id = answer.get("request_id")
        if not isinstance(request_id, str) or not request_id:
            raise malformed(PROVIDER, "no `request_id` in the submit answer")
        owner_app = "/".join(endpoint.split("/")[:2])
        made = QueuedRequest.at(f"{self._base_url}/{owner_app}/requests/{request_id}", request_id)
        request = QueuedRequest(
            request_id,
            response_url=_string(answer.get("response_url")) or made.response_url,
            status_url=_string(answer.get("status_url")) or made.status_url,
            cancel_url=_string(answer.get("cancel_url")) or made.cancel_url,
        )
        for url in (request.response_url, request.status_url, request.cancel_url):
            if not key_may_go_to(url, self._base_url, PROVIDER_DOMAINS):
                raise BackendError(
                    "The fal provider returned a request URL outside its own hosts; refused"
                )
        return request

    def _follow(
        self,
        request: QueuedRequest,
        headers: dict[str, str],
        progress: ProgressCallback,
        cancel: CancelToken,
        deadline: float,
    ) -> None:
        """Poll the request's status until it is completed; `deadline` (seconds since the
        epoch) is when the window that began at its submission closes."""
        status_url = str(httpx.URL(request.status_url).copy_merge_params({"logs": "1"}))
        running = False

        def completed() -> bool | None:
            nonlocal running
            answer = _answer(
                self._http.send(
                    "GET", status_url, cancel=cancel, headers=headers, on_providers_word=True
                )
            )
            status = answer.get("status")
            if status == COMPLETED:
                error = answer.get("error")
                if error:
                    kind = answer.get("error_type")
                    raise BackendError(
                        f"fal failed the request: {error}" + (f" ({kind})" if kind else "")
                    )
                return True
            if status not in (QUEUED, RUNNING):
                raise BackendError(f"fal answered an unknown request status: {status!r}")
            if status == RUNNING and not running:
                running = True
                progress(1, STAGES)
            return None

        self._polling.until(completed, deadline=deadline, cancel=cancel)

    def _cancel_upstream(self, request: QueuedRequest, headers: dict[str, str]) -> None:
        """Ask fal to drop the request; the job ends either way, so a failure is only logged."""
        try:
            response = self._http.send(
                "PUT",
                request.cancel_url,
                cancel=CancelToken(),  # the job's own token is set by now
                headers=headers,
                on_providers_word=True,
            )
        except Error as exc:
            log.warning("fal: canceling request %s failed: %s", request.request_id, exc.message)
            return
        answer = response.json_body()
        said = answer.get("status") if isinstance(answer, dict) else None
        log.info("fal: cancel of request %s: HTTP %d %s", request.request_id, response.status, said)

    def _images(self, result: dict[str, Any], cancel: CancelToken) -> list[GeneratedImage]:
        listed = result.get("images")
        if not isinstance(listed, list) or not listed:
            raise malformed(PROVIDER, "a result without `images`")
        flagged = result.get("has_nsfw_concepts")
        seed = result.get("seed")
        if not isinstance(seed, int) or isinstance(seed, bool):
            seed = None
        images: list[GeneratedImage] = []
        for index, entry in enumerate(listed):
            url = entry.get("url") if isinstance(entry, dict) else None
            if not isinstance(url, str):
                raise malformed(PROVIDER, "an image without `url`")
            if isinstance(flagged, list) and index < len(flagged) and flagged[index] is True:
                log.warning("fal: image %d withheld by fal's safety checker", index + 1)
                continue
            data = self._http.fetch_result(url, cancel=cancel)
            images.append(read_image(data, provider=PROVIDER, seed=seed))
        if not images:
            raise BackendError("fal's safety checker withheld every image of the request")
        return images


def _resumed(earlier: UpstreamTask) -> QueuedRequest | None:
    """The request an earlier attempt of the job submitted, once fal had answered it."""
    if earlier.polling_url is None:
        return None
    return QueuedRequest.at(earlier.polling_url, earlier.task_id)


def endpoint_of(spec: ModelSpec, task: ImageTask) -> str:
    """The fal endpoint a task goes to: the catalog's `source`; Kontext without an input
    image at its text-to-image subpath."""
    endpoint = spec.source or spec.id
    if isinstance(task.options, FalFluxKontextOptions) and task.image is None:
        return f"{endpoint}/text-to-image"
    return endpoint


def request_body(task: ImageTask) -> dict[str, Any]:
    """The model's input, named as fal names it, for the task's option family."""
    options: ImageOptions = task.options
    body: dict[str, Any]
    if isinstance(options, FalSizedOptions):
        body = {"prompt": options.prompt, "image_size": _image_size(options)}
        if isinstance(options, FalFluxProOptions):
            body |= {
                "safety_tolerance": str(options.safety_tolerance),
                "enhance_prompt": options.enhance_prompt,
            }
        elif isinstance(options, FalFluxSchnellOptions):
            body |= {
                "num_inference_steps": options.num_steps,
                "enable_safety_checker": options.enable_safety_checker,
            }
            if isinstance(options, FalFluxDevOptions):
                body["guidance_scale"] = options.guidance_scale
    elif isinstance(options, FalFluxUltraOptions):
        body = {
            "prompt": options.prompt,
            "aspect_ratio": options.aspect_ratio,
            "raw": options.raw,
            "safety_tolerance": str(options.safety_tolerance),
            "enhance_prompt": options.enhance_prompt,
        }
    elif isinstance(options, FalFluxKontextOptions):
        body = {
            "prompt": options.prompt,
            "guidance_scale": options.guidance_scale,
            "safety_tolerance": str(options.safety_tolerance),
            "enhance_prompt": options.enhance_prompt,
        }
        if options.aspect_ratio is not None:
            body["aspect_ratio"] = options.aspect_ratio
        if task.kind == "edit":
            if task.image is None:
                raise MustProvideFile("edit needs an input image", param="image")
            encoded = base64.b64encode(task.image.data).decode()
            body["image_url"] = f"data:{task.image.content_type};base64,{encoded}"
    else:
        raise TypeError(f"the fal provider cannot send {type(options).__name__}")
    body |= {"num_images": options.n, "output_format": options.output_format_value}
    seed = options.seed_value
    if seed is not None:
        body["seed"] = seed
    return body


def _image_size(options: FalSizedOptions) -> str | dict[str, int]:
    if options.width is not None and options.height is not None:
        return {"width": options.width, "height": options.height}
    return options.image_size or FAL_DEFAULT_IMAGE_SIZE


def _string(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _answer(response: UpstreamResponse) -> dict[str, Any]:
    """A success answer's JSON object; an error answer raised as a pixelgate error."""
    body = response.json_body()
    if not response.ok:
        raise detail_error(PROVIDER, response.status, body)
    if not isinstance(body, dict):
        raise malformed(PROVIDER, "the answer is not a JSON object")
    return body


BACKEND = Backend(PROVIDER, FalSettings, FalProvider.from_settings)
