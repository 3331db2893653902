"""A ComfyUI server as a backend: catalog models are workflow templates run on it.

Templates are ComfyUI workflows in API format (the editor's "Export (API)"), shipped in
`pixelgate/catalog/comfyui/` and named by a catalog entry's `source` (a file name there, or an
absolute path for an operator's own). A template says where pixelgate's inputs go by node
titles (`_meta.title`, the title given in the editor): `pixelgate: <role>[, <role>...]`, and
each role sets fixed inputs of its node:

    prompt, negative_prompt   text                (CLIPTextEncode)
    seed                      seed or noise_seed  (KSampler, KSamplerAdvanced, RandomNoise)
    steps                     steps               (KSampler, BasicScheduler)
    size                      width, height       (EmptyLatentImage, EmptySD3LatentImage)
    guidance                  guidance            (FluxGuidance)
    image                     image               (LoadImage)
    mask                      image               (LoadImageMask, channel red: white repaints)

A text-to-image model (family `comfyui`) needs every role but image and mask; an inpainting
model (`comfyui-inpaint`) every role but size, the size being the input image's. A template
that lacks one, or names an unknown role, makes its model unavailable, with the reason.

The protocol as this module speaks it (ComfyUI's `server.py` and its websocket API example):

- Inputs: `POST /upload/image`, multipart `image` (the file), `type=input`,
  `subfolder=pixelgate`, `overwrite=true`; the answer `{"name", "subfolder", "type"}` names it
  for `LoadImage` as `<subfolder>/<name>`. The mask goes the same way, as the greyscale image
  pixelgate keeps it in (white repaints), read by `LoadImageMask` from its red channel;
  `/upload/mask` is not used, as it only paints an alpha channel into an already uploaded image.
- Run: the websocket `GET /ws?clientId=<id>` is opened first, then `POST /prompt` with
  `{"prompt": <workflow>, "client_id": <id>}` answers `{"prompt_id", "number", "node_errors"}`;
  a 400 answers `{"error": {"message", "details"}, "node_errors"}` (a template or server
  problem, such as a missing model file: a backend error).
- Progress: websocket messages `{"type", "data"}` for our `prompt_id`: `progress` (`value`,
  `max`) becomes the job's progress in steps (each image `num_steps` of `n * num_steps`);
  `executing` with `node` null, or `execution_success`, ends the run; `execution_error`
  (`node_id`, `node_type`, `exception_message`) fails it; `execution_interrupted` fails it when
  pixelgate did not ask for it. Binary frames (previews) are ignored. While the socket is quiet
  or down (it cannot be opened, or it drops), `GET /history/<prompt_id>` is read every
  `PIXELGATE_COMFYUI_POLL_INTERVAL_SECONDS`: `{}` until the run is over, then `{prompt_id:
  {"outputs", "status": {"status_str", "completed", "messages"}}}`.
- Outputs: each image of `outputs[node].images` with `type` `output` (previews are `temp`)
  is read from `GET /view?filename=&subfolder=&type=`.
- Cancel (a canceled job, or a run past `PIXELGATE_COMFYUI_TIMEOUT_SECONDS`): `GET /queue`
  says where the prompt is: running, `POST /interrupt` with `{"prompt_id"}` (servers that
  predate the field interrupt whatever runs, which was ours when the queue was read); pending,
  `POST /queue` with `{"delete": [prompt_id]}`.
- `n` images are `n` runs, the i-th with seed + i (`results.fan_out`). Runs cost nothing here,
  so they are not noted with the job: a retried job runs its workflow again.
- Every call carries the configured header (`PIXELGATE_COMFYUI_AUTH_HEADER`, `Name: value`),
  the websocket's handshake included; ComfyUI itself has no authentication, a proxy before it
  may.
"""

from __future__ import annotations

import copy
import json
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import httpx
from pydantic import Field, SecretStr
from websockets.exceptions import WebSocketException
from websockets.sync.client import ClientConnection, connect

from pixelgate.catalog import ModelSpec
from pixelgate.catalog.options import ComfyUIInpaintOptions, ComfyUIOptions
from pixelgate.errors import (
    BackendError,
    Canceled,
    Error,
    ModelUnavailable,
    MustProvideFile,
    ProviderTimeout,
)
from pixelgate.providers.base import (
    CancelToken,
    GeneratedImage,
    ImageInput,
    ImageTask,
    ProgressCallback,
)
from pixelgate.providers.keys import key_refused
from pixelgate.providers.registry import Backend
from pixelgate.providers.results import (
    FileField,
    fan_out,
    image_part,
    malformed,
    read_image,
    seed_for,
)
from pixelgate.providers.retries import wait
from pixelgate.providers.upstream import UpstreamClient, UpstreamResponse
from pixelgate.settings import ProviderSettings, Settings

log = logging.getLogger(__name__)

PROVIDER = "comfyui"
TITLE_PREFIX = "pixelgate:"
ROLE_INPUTS: dict[str, tuple[str, ...]] = {
    "prompt": ("text",),
    "negative_prompt": ("text",),
    "seed": ("seed", "noise_seed"),
    "steps": ("steps",),
    "size": ("width", "height"),
    "guidance": ("guidance",),
    "image": ("image",),
    "mask": ("image",),
}
"""The inputs each role sets; for `seed`, whichever of them its node has."""
GENERATE_ROLES = frozenset({"prompt", "negative_prompt", "seed", "steps", "size", "guidance"})
INPAINT_ROLES = GENERATE_ROLES - {"size"} | {"image", "mask"}
UPLOAD_SUBFOLDER = "pixelgate"
MAX_WEBSOCKET_MESSAGE = 32 * 1024 * 1024
"""Preview frames are the largest messages; larger ones close the socket (then polling)."""


class ComfyUISettings(ProviderSettings):
    base_url: str | None = None
    """The ComfyUI server (`http://host:8188`); its models are unavailable while unset."""
    auth_header: SecretStr | None = None
    """`Name: value`, sent with every call (e.g. a reverse proxy's `Authorization: Bearer
    ...`)."""
    poll_interval_seconds: float = Field(default=1.0, gt=0)
    """How often a run's `/history` is read while its websocket is quiet or down."""
    timeout_seconds: float = Field(default=600.0, gt=0)
    """Give up on (and interrupt) a run that has not finished after this long."""


StepCallback = Callable[[int], None]
"""Called with the steps of the current image done so far."""


class TemplateError(ValueError):
    """A workflow template pixelgate cannot fill."""


@dataclass(frozen=True)
class Workflow:
    """An API-format workflow, and the node that holds each of pixelgate's roles."""

    graph: dict[str, Any]
    nodes: dict[str, str]
    """Role → node id."""

    @classmethod
    def parse(cls, graph: Any) -> Workflow:
        if not isinstance(graph, dict) or not graph:
            raise TemplateError("it is not an API-format workflow (an object of nodes)")
        nodes: dict[str, str] = {}
        for node_id, node in graph.items():
            if not isinstance(node, dict) or not isinstance(node.get("inputs"), dict):
                raise TemplateError(f"node {node_id} has no inputs: not API format")
            title = str((node.get("_meta") or {}).get("title", ""))
            if not title.lower().startswith(TITLE_PREFIX):
                continue
            for role in (part.strip() for part in title[len(TITLE_PREFIX) :].split(",")):
                if role not in ROLE_INPUTS:
                    known = ", ".join(ROLE_INPUTS)
                    raise TemplateError(f"node {node_id} names role {role!r}; known: {known}")
                if role in nodes:
                    raise TemplateError(
                        f"role {role!r} is named by nodes {nodes[role]} and {node_id}"
                    )
                inputs = ROLE_INPUTS[role]
                present = [name for name in inputs if name in node["inputs"]]
                if not present or (role != "seed" and len(present) != len(inputs)):
                    raise TemplateError(
                        f"node {node_id} ({role}) has no input {' or '.join(inputs)}"
                    )
                nodes[role] = str(node_id)
        return cls(graph, nodes)

    def require(self, roles: frozenset[str]) -> None:
        missing = sorted(roles - set(self.nodes))
        if missing:
            raise TemplateError(f"no node titled for {', '.join(missing)}")

    def filled(self, values: dict[str, dict[str, Any] | Any]) -> dict[str, Any]:
        """A copy of the workflow with each role's inputs set: a role's value is its one
        input's, or a mapping of its inputs."""
        graph = copy.deepcopy(self.graph)
        for role, value in values.items():
            inputs = graph[self.nodes[role]]["inputs"]
            if isinstance(value, dict):
                inputs.update(value)
            else:
                name = next(name for name in ROLE_INPUTS[role] if name in inputs)
                inputs[name] = value
        return graph


def template_path(source: str) -> Path:
    """A catalog entry's template: a file shipped in `pixelgate/catalog/comfyui/`, or an
    absolute path."""
    path = Path(source)
    if path.is_absolute():
        return path
    return Path(str(resources.files("pixelgate.catalog").joinpath("comfyui", source)))


def load_workflow(spec: ModelSpec) -> Workflow:
    """The model's template, checked for the roles its family needs."""
    source = spec.source or ""
    try:
        graph = json.loads(template_path(source).read_text())
    except (OSError, ValueError) as exc:
        raise TemplateError(f"cannot read {source!r} ({type(exc).__name__})") from exc
    workflow = Workflow.parse(graph)
    workflow.require(INPAINT_ROLES if spec.family == "comfyui-inpaint" else GENERATE_ROLES)
    return workflow


class ComfyUIProvider:
    name = PROVIDER

    def __init__(
        self,
        *,
        base_url: str | None,
        auth_header: SecretStr | None,
        http: UpstreamClient,
        poll_interval_seconds: float,
        timeout_seconds: float,
    ) -> None:
        self._base_url = base_url.rstrip("/") if base_url else None
        self._headers: dict[str, str] = {}
        if auth_header is not None:
            name, _, value = auth_header.get_secret_value().partition(":")
            if not name.strip() or not value.strip():
                raise ValueError(f"{BACKEND.variable('auth_header')} must read `Name: value`")
            self._headers[name.strip()] = value.strip()
        self._http = http
        self._poll_interval = poll_interval_seconds
        self._timeout = timeout_seconds

    @classmethod
    def from_settings(cls, settings: Settings) -> ComfyUIProvider:
        own = BACKEND.settings_of(settings)
        return cls(
            base_url=own.base_url,
            auth_header=own.auth_header,
            http=UpstreamClient.from_settings(PROVIDER, settings, base_url=own.base_url),
            poll_interval_seconds=own.poll_interval_seconds,
            timeout_seconds=own.timeout_seconds,
        )

    def unavailable_reason(self, spec: ModelSpec) -> str | None:
        if self._base_url is None:
            return f"provider 'comfyui' has no server (set {BACKEND.variable('base_url')})"
        try:
            load_workflow(spec)
        except TemplateError as exc:
            return f"its ComfyUI workflow template {spec.source!r} is unusable: {exc}"
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
        reason = self.unavailable_reason(spec)
        if reason is not None:
            raise ModelUnavailable(f"Model {spec.id!r} is unavailable: {reason}", param="model")
        options = task.options
        if not isinstance(options, ComfyUIInpaintOptions):
            raise TypeError(f"the comfyui provider cannot send {type(options).__name__}")
        inpainting = not isinstance(options, ComfyUIOptions)
        if inpainting and task.image is None:
            raise MustProvideFile("Inpainting needs an input image", param="image")
        if inpainting and task.mask is None:
            raise MustProvideFile("Inpainting needs a mask (white repaints)", param="mask")
        workflow = load_workflow(spec)
        steps = options.num_steps
        reported: list[int] = []  # the last step reported: each is reported once

        def report(done: int, total: int) -> None:
            if reported != [done]:
                reported[:] = [done]
                progress(done, total)

        def in_steps(done: int, total: int) -> None:
            report(done * steps, total * steps)

        shared: dict[str, Any] = {
            "prompt": options.prompt,
            "negative_prompt": options.negative_prompt,
            "steps": steps,
            "guidance": options.guidance_scale,
        }
        if isinstance(options, ComfyUIOptions):
            shared["size"] = {"width": options.width, "height": options.height}
        else:  # uploaded once, for every run
            assert task.image is not None and task.mask is not None
            shared["image"] = self._upload(task.image, "image", cancel)
            shared["mask"] = self._upload(task.mask, "mask", cancel)

        def one(index: int) -> GeneratedImage:
            values = shared | {"seed": seed_for(options.seed, index) or 0}

            def step(done: int) -> None:
                report(index * steps + done, options.n * steps)

            image = self._run_once(workflow.filled(values), step, steps, cancel)
            return GeneratedImage(
                image.data, image.content_type, image.width, image.height, values["seed"]
            )

        return fan_out(options.n, one, provider=PROVIDER, progress=in_steps, cancel=cancel)

    # -- one run of the workflow ------------------------------------------------------------

    def _run_once(
        self,
        graph: dict[str, Any],
        step: StepCallback,
        steps: int,
        cancel: CancelToken,
    ) -> GeneratedImage:
        client_id = uuid.uuid4().hex
        socket = self._open_socket(client_id)
        try:
            answer = self._json(
                self._send(
                    "POST", "/prompt", cancel, json_body={"prompt": graph, "client_id": client_id}
                ),
                refused="ComfyUI refused the workflow",
            )
            prompt_id = answer.get("prompt_id")
            if not isinstance(prompt_id, str):
                raise malformed(PROVIDER, "no `prompt_id` in the answer to /prompt")
            deadline = time.monotonic() + self._timeout
            try:
                entry = self._wait(prompt_id, socket, step, steps, cancel, deadline)
            except (Canceled, ProviderTimeout):
                self._stop(prompt_id)
                raise
        finally:
            if socket is not None:
                socket.close()
        return self._output(entry, cancel)

    def _open_socket(self, client_id: str) -> ClientConnection | None:
        """The websocket for the run's messages; None (then `/history` is polled) when it
        cannot be opened."""
        assert self._base_url is not None
        url = httpx.URL(self._base_url)
        scheme = "wss" if url.scheme == "https" else "ws"
        ws_url = str(url.copy_with(scheme=scheme, path=url.path.rstrip("/") + "/ws",
                                   params={"clientId": client_id}))  # fmt: skip
        try:
            return connect(
                ws_url,
                additional_headers=self._headers,
                open_timeout=min(self._http.timeout_seconds, 10.0),
                max_size=MAX_WEBSOCKET_MESSAGE,
                proxy=None,
                compression=None,
            )
        except (OSError, WebSocketException, TimeoutError) as exc:
            log.warning("comfyui: websocket unavailable (%s); polling /history", exc)
            return None

    def _wait(
        self,
        prompt_id: str,
        socket: ClientConnection | None,
        step: StepCallback,
        steps: int,
        cancel: CancelToken,
        deadline: float,
    ) -> dict[str, Any]:
        """The run's `/history` entry once it is over; its messages report progress."""
        done_steps = 0
        while True:
            if cancel.canceled:
                raise Canceled("Job canceled")
            left = deadline - time.monotonic()
            if left <= 0:
                raise ProviderTimeout("Image generation timed out")
            message: Any = None
            if socket is not None:
                try:
                    message = socket.recv(timeout=min(self._poll_interval, left))
                except TimeoutError:
                    message = None
                except (OSError, WebSocketException) as exc:
                    log.warning("comfyui: websocket lost (%s); polling /history", exc)
                    socket = None
            else:
                wait(min(self._poll_interval, left), cancel)
            if isinstance(message, str):
                finished, done_steps = self._read_message(
                    message, prompt_id, step, steps, done_steps
                )
                if not finished:
                    continue
                socket = None  # over: the history has it, or (polled from now on) will soon
            elif isinstance(message, bytes):
                continue  # a preview frame
            entry = self._history(prompt_id, cancel)
            if entry is not None:
                return entry

    def _read_message(
        self, text: str, prompt_id: str, step: StepCallback, steps: int, done_steps: int
    ) -> tuple[bool, int]:
        """Whether the message ends our run, and the steps done so far."""
        try:
            message = json.loads(text)
        except ValueError:
            return False, done_steps
        data = message.get("data") if isinstance(message, dict) else None
        if not isinstance(data, dict) or data.get("prompt_id") != prompt_id:
            return False, done_steps
        kind = message.get("type")
        if kind == "progress":
            value, most = data.get("value"), data.get("max")
            if isinstance(value, int) and isinstance(most, int) and most > 0:
                reached = min(steps, value * steps // most)
                if reached > done_steps:
                    done_steps = reached
                    step(done_steps)
        elif kind == "execution_error":
            raise _execution_error(data)
        elif kind == "execution_interrupted":
            raise BackendError("ComfyUI interrupted the workflow (not at pixelgate's request)")
        elif kind == "execution_success" or (kind == "executing" and data.get("node") is None):
            return True, done_steps
        return False, done_steps

    def _history(self, prompt_id: str, cancel: CancelToken) -> dict[str, Any] | None:
        """The run's history entry once it is over; None while it is queued or running."""
        answer = self._json(self._send("GET", f"/history/{prompt_id}", cancel))
        entry = answer.get(prompt_id)
        if not isinstance(entry, dict):
            return None
        status = entry.get("status")
        if isinstance(status, dict):
            if status.get("status_str") == "error":
                for name, data in status.get("messages") or []:
                    if name == "execution_error" and isinstance(data, dict):
                        raise _execution_error(data)
                raise BackendError("ComfyUI failed the workflow (its history says error)")
            if status.get("completed") is False:
                return None
        return entry

    def _output(self, entry: dict[str, Any], cancel: CancelToken) -> GeneratedImage:
        outputs = entry.get("outputs")
        if not isinstance(outputs, dict):
            raise malformed(PROVIDER, "a history entry without `outputs`")
        for output in outputs.values():
            for image in (output or {}).get("images") or []:
                if not isinstance(image, dict) or image.get("type") != "output":
                    continue
                params = {
                    "filename": str(image.get("filename", "")),
                    "subfolder": str(image.get("subfolder", "")),
                    "type": "output",
                }
                response = self._send("GET", "/view", cancel, params=params)
                if not response.ok:
                    raise BackendError(
                        f"Reading an output from ComfyUI failed with HTTP {response.status}"
                    )
                return read_image(response.content, provider=PROVIDER)
        raise BackendError("The ComfyUI workflow saved no image (it needs a SaveImage node)")

    def _upload(self, image: ImageInput, role: str, cancel: CancelToken) -> str:
        """Upload an input image; its name for `LoadImage`."""
        name, data, content_type = image_part(f"{role}-{uuid.uuid4().hex}", image)
        answer = self._json(
            self._send(
                "POST",
                "/upload/image",
                cancel,
                multipart={
                    "image": (name, data, content_type),
                    "type": "input",
                    "subfolder": UPLOAD_SUBFOLDER,
                    "overwrite": "true",
                },
            ),
            refused=f"ComfyUI refused the {role} upload",
        )
        stored = answer.get("name")
        if not isinstance(stored, str) or not stored:
            raise malformed(PROVIDER, "no `name` in the answer to /upload/image")
        subfolder = answer.get("subfolder")
        return f"{subfolder}/{stored}" if isinstance(subfolder, str) and subfolder else stored

    def _stop(self, prompt_id: str) -> None:
        """Interrupt the run if it is running, or take it off the queue if it waits; the job
        ends either way, so a failure is only logged."""
        untied = CancelToken()  # the job's own token is set by now
        try:
            queue = self._json(self._send("GET", "/queue", untied))
            if _listed(queue.get("queue_running"), prompt_id):
                self._send("POST", "/interrupt", untied, json_body={"prompt_id": prompt_id})
            elif _listed(queue.get("queue_pending"), prompt_id):
                self._send("POST", "/queue", untied, json_body={"delete": [prompt_id]})
        except Error as exc:
            log.warning("comfyui: stopping prompt %s failed: %s", prompt_id, exc.message)

    # -- HTTP -------------------------------------------------------------------------------

    def _send(
        self,
        method: str,
        path: str,
        cancel: CancelToken,
        *,
        params: dict[str, str] | None = None,
        json_body: Any = None,
        multipart: Mapping[str, str | FileField] | None = None,
    ) -> UpstreamResponse:
        assert self._base_url is not None
        url = self._base_url + path
        if params is not None:
            url = str(httpx.URL(url, params=params))
        return self._http.send(
            method, url, cancel=cancel, headers=self._headers, json_body=json_body,
            multipart=multipart,
        )  # fmt: skip

    def _json(self, response: UpstreamResponse, *, refused: str | None = None) -> dict[str, Any]:
        body = response.json_body()
        if response.status in (401, 403):
            raise key_refused(PROVIDER, response.status)
        if not response.ok:
            raise BackendError(_refusal(refused, response.status, body))
        if not isinstance(body, dict):
            raise malformed(PROVIDER, "the answer is not a JSON object")
        return body


def _refusal(what: str | None, status: int, body: Any) -> str:
    """A ComfyUI error answer in words: `{"error": {"message", "details"}, "node_errors":
    {node: {"class_type", "errors": [{"message", "details"}]}}}` where it has one."""
    lead = what or f"The comfyui provider answered HTTP {status}"
    if not isinstance(body, dict):
        return f"{lead} (HTTP {status})"
    error = body.get("error")
    parts: list[str] = []
    if isinstance(error, dict):
        parts.append(str(error.get("message") or error.get("type") or "error"))
        if error.get("details"):
            parts[-1] += f": {error['details']}"
    elif isinstance(error, str):
        parts.append(error)
    for node_id, node in (body.get("node_errors") or {}).items():
        for node_error in (node or {}).get("errors") or []:
            detail = node_error.get("details") or ""
            parts.append(
                f"node {node_id} ({node.get('class_type', '?')}): "
                f"{node_error.get('message', 'error')}" + (f" ({detail})" if detail else "")
            )
    return f"{lead}: {'; '.join(parts)}" if parts else f"{lead} (HTTP {status})"


def _execution_error(data: dict[str, Any]) -> BackendError:
    return BackendError(
        f"ComfyUI failed the workflow at node {data.get('node_id')} ({data.get('node_type')}): "
        f"{data.get('exception_message', 'no message')}".strip()
    )


def _listed(items: Any, prompt_id: str) -> bool:
    """Whether a `/queue` list (items `[number, prompt_id, prompt, extra, outputs]`) holds
    the prompt."""
    return isinstance(items, list) and any(
        isinstance(item, list) and len(item) > 1 and item[1] == prompt_id for item in items
    )


BACKEND = Backend(PROVIDER, ComfyUISettings, ComfyUIProvider.from_settings)
