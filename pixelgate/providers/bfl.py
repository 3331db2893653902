"""Black Forest Labs' FLUX API (flux-pro-1.1, flux-kontext-pro) behind the one provider
interface: submit a task, then poll it until it is ready.

The protocol as this module speaks it (docs.bfl.ai), with the assumptions written down:

- Submit: `POST {base}/v1/{source}` with header `x-key: <key>` and a JSON body. flux-pro-1.1:
  `prompt`, `width`, `height`, `prompt_upsampling`, `safety_tolerance`, `seed` (left out when
  unset), `output_format`. flux-kontext-pro: `prompt`, `aspect_ratio`, `prompt_upsampling`,
  `safety_tolerance`, `seed`, `output_format`, and for an edit `input_image`, the input image's
  bytes in base64. The answer is `{"id", "polling_url"}`; without a `polling_url` the task is
  polled at `{base}/v1/get_result?id=<id>`.
- Poll: `GET <polling_url>` with `x-key`; the answer is `{"id", "status", "result",
  "details"}`. `Ready`: `result.sample` is a signed URL to fetch (without the key) and
  `result.seed` the seed used. `Error` and `Failed` are failures, `Request Moderated` and
  `Content Moderated` moderation (reasons in `details`), `Task not found` a lost task; any other
  status (`Pending`, ...) means "not yet".
- The key travels with every poll, so a `polling_url` must point at the configured base URL's
  host (same scheme and port) or at an https host under the provider's own domains (regional
  hosts such as `api.eu1.bfl.ai`); any other is refused before it is called (SSRF).
- A task makes one image: `n` images are `n` tasks, the i-th with seed + i (`fan_out`).
- A task is submitted once per job: its id, polling URL and give-up time are noted with the job
  (`ImageTask.upstream`, one record per image) as soon as it is accepted, and a later attempt
  of the job (a retry, a restart) polls each task it finds again instead of submitting another
  (billed) one; only images without a task are submitted. Past its window a task is a
  `ProviderTimeout`: its image fails, refunded, and is not retried.
- Errors: 422 `{"detail": [{"loc", "msg", "type"}]}` is the caller's input; 402 (no credits)
  and others are backend failures; 429 (too many active tasks) is retried by the HTTP policy.
"""

from __future__ import annotations

import base64
from typing import Any

import httpx
from pydantic import Field, SecretStr

from pixelgate.catalog import ImageOptions, ModelSpec
from pixelgate.catalog.options import FluxKontextOptions, FluxOptions
from pixelgate.errors import (
    BackendError,
    Error,
    MustProvideFile,
    ValidationError,
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
from pixelgate.providers.results import detail_error, fan_out, malformed, read_image, seed_for
from pixelgate.providers.upstream import UpstreamResponse
from pixelgate.settings import ProviderSettings

PROVIDER = "bfl"
PROVIDER_DOMAINS = ("bfl.ai", "bfl.ml")
READY = "Ready"
FAILED = frozenset({"Error", "Failed"})
MODERATED = frozenset({"Request Moderated", "Content Moderated"})
NOT_FOUND = "Task not found"


class BlackForestLabsSettings(ProviderSettings):
    api_key: SecretStr | None = None
    base_url: str = "https://api.bfl.ai"
    poll_interval_seconds: float = Field(default=0.5, gt=0)
    poll_timeout_seconds: float = Field(default=300.0, gt=0)
    """Give up on a task that is not ready after this long."""


class BlackForestLabsProvider(PollingProvider):
    """Black Forest Labs' FLUX API; a tenant's own Black Forest Labs key may replace the
    operator's."""

    name = PROVIDER

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
        request_body(task, 0)
        key = self._key.require(spec, task.own_key)
        headers = {"x-key": key, "accept": "application/json"}
        source = spec.source or spec.id.rsplit("/", 1)[-1]

        def one(index: int) -> GeneratedImage:
            return self._one(source, task, index, headers, cancel)

        return fan_out(task.options.n, one, provider=PROVIDER, progress=progress, cancel=cancel)

    def _one(
        self,
        source: str,
        task: ImageTask,
        index: int,
        headers: dict[str, str],
        cancel: CancelToken,
    ) -> GeneratedImage:
        """One task: one image (`n` images are `n` tasks, the i-th with seed + i), noted with
        the job as request `index`."""
        body = request_body(task, index)
        # 2. submit, once per job: a task an earlier attempt submitted is polled again
        polling_url, deadline = self._submit_json(
            task,
            f"{self._base_url}/v1/{source}",
            body,
            headers=headers,
            cancel=cancel,
            accept=self._accepted,
            resume=lambda earlier: earlier.polling_url,
            index=index,
        )
        # 3. poll until the task is finished, canceled, or its window closes
        result = self._polling.until(
            lambda: self._result(polling_url, headers, cancel), deadline=deadline, cancel=cancel
        )
        # 4. the image, fetched without the key
        sample = result.get("sample")
        if not isinstance(sample, str):
            raise malformed(PROVIDER, "a ready task without `result.sample`")
        data = self._http.fetch_result(sample, cancel=cancel)
        seed = result.get("seed")
        if not isinstance(seed, int) or isinstance(seed, bool):
            seed = body.get("seed")
        return read_image(data, provider=PROVIDER, seed=seed)

    def _accepted(self, submitted: UpstreamResponse) -> tuple[str, UpstreamTask]:
        """The submitted task's polling URL, and its note."""
        answer = _answer(submitted)
        polling_url = self._polling_url(answer)
        task_id = answer.get("id")
        return polling_url, UpstreamTask(
            PROVIDER, task_id=task_id if isinstance(task_id, str) else None, polling_url=polling_url
        )

    def _polling_url(self, answer: dict[str, Any]) -> str:
        polling_url, task_id = answer.get("polling_url"), answer.get("id")
        if isinstance(polling_url, str):
            if not polling_url_allowed(polling_url, self._base_url):
                raise BackendError(
                    "The bfl provider returned a polling URL outside its own hosts; refused"
                )
            return polling_url
        if isinstance(task_id, str):
            return str(httpx.URL(f"{self._base_url}/v1/get_result", params={"id": task_id}))
        raise malformed(PROVIDER, "no `polling_url` or `id` in the submit answer")

    def _result(
        self, url: str, headers: dict[str, str], cancel: CancelToken
    ) -> dict[str, Any] | None:
        """One poll: the task's `result` once it is `Ready`, None while it is not finished;
        a failed, moderated or lost task raised."""
        answer = _answer(
            self._http.send("GET", url, cancel=cancel, headers=headers, on_providers_word=True)
        )
        status = answer.get("status")
        if not isinstance(status, str):
            raise malformed(PROVIDER, "a poll answer without `status`")
        if status == READY:
            result = answer.get("result")
            if not isinstance(result, dict):
                raise malformed(PROVIDER, "a ready task without `result`")
            return result
        details = _details(answer.get("details"))
        if status in MODERATED:
            raise BackendError(f"Black Forest Labs moderated the request: {status}{details}")
        if status in FAILED:
            raise BackendError(f"Black Forest Labs failed the task: {status}{details}")
        if status == NOT_FOUND:
            raise BackendError("Black Forest Labs lost the task: Task not found")
        return None  # anything else (Pending, ...) is not finished yet


def request_body(task: ImageTask, index: int = 0) -> dict[str, Any]:
    """The submit body of the task's `index`-th image for its option family, named as Black
    Forest Labs names them."""
    options: ImageOptions = task.options
    if isinstance(options, FluxOptions):
        if task.kind != "generate":
            raise ValidationError(f"flux-pro-1.1 does not support {task.kind}", param="model")
        body: dict[str, Any] = {
            "prompt": options.prompt,
            "width": options.width,
            "height": options.height,
        }
    elif isinstance(options, FluxKontextOptions):
        body = {"prompt": options.prompt, "aspect_ratio": options.aspect_ratio}
        if task.kind == "edit":
            if task.image is None:
                raise MustProvideFile("edit needs an input image", param="image")
            body["input_image"] = base64.b64encode(task.image.data).decode()
    else:
        raise TypeError(f"the bfl provider cannot send {type(options).__name__}")
    body |= {
        "prompt_upsampling": options.prompt_upsampling,
        "safety_tolerance": options.safety_tolerance,
        "output_format": options.output_format,
    }
    if options.seed is not None:
        body["seed"] = seed_for(options.seed, index)
    return body


def polling_url_allowed(url: str, base_url: str) -> bool:
    """Whether the key may be sent to `url` (see `egress.key_may_go_to`)."""
    return key_may_go_to(url, base_url, PROVIDER_DOMAINS)


def _answer(response: UpstreamResponse) -> dict[str, Any]:
    """A success answer's JSON object; an error answer raised as a pixelgate error."""
    body = response.json_body()
    if not response.ok:
        raise error_from_response(response.status, body)
    if not isinstance(body, dict):
        raise malformed(PROVIDER, "the answer is not a JSON object")
    return body


def _details(details: Any) -> str:
    if isinstance(details, dict):
        parts = [
            f"{key}: {', '.join(map(str, value)) if isinstance(value, list) else value}"
            for key, value in details.items()
        ]
        return f" ({'; '.join(parts)})" if parts else ""
    if isinstance(details, str) and details:
        return f" ({details})"
    return ""


def error_from_response(status: int, body: Any) -> Error:
    """A pixelgate error for a Black Forest Labs error answer, read from its documented fields."""
    return detail_error(PROVIDER, status, body)


BACKEND = Backend(PROVIDER, BlackForestLabsSettings, BlackForestLabsProvider.from_settings)
