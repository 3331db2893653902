"""A fake ComfyUI server on loopback: its HTTP routes and its websocket on one port, as
ComfyUI serves them (starlette under uvicorn, in a thread).

It runs one prompt at a time from its queue, as ComfyUI does: each run announces itself on the
websocket of its `client_id` (`execution_start`, `executing`, `progress` per step with a binary
preview frame, `executed`, `executing` with `node` null, `execution_success`), then its history
holds the outputs, a PNG per SaveImage node, of the size the workflow asks (or of its input
image), read back from `/view`. Every HTTP request and websocket handshake is recorded."""

from __future__ import annotations

import asyncio
import io
import itertools
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Self

import uvicorn
from PIL import Image
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from tests.providers.upstreams.images import image_bytes

SHRINK = 16
"""Outputs are this many times smaller than asked, to stay fast."""


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    json: Any = None
    form: dict[str, Any] = field(default_factory=dict)


@dataclass
class Plan:
    """How the next runs go."""

    step_seconds: float = 0.0
    hold: bool = False
    """Runs wait (running, or queued behind one) until `release()`."""
    fail: str | None = None
    """Fail at the sampler with this exception message."""
    websocket: bool = True
    """Accept websockets; otherwise refuse the handshake (clients must poll /history)."""
    drop_socket_after_start: bool = False


@dataclass
class Run:
    prompt_id: str
    graph: dict[str, Any]
    client_id: str | None
    number: int
    interrupted: bool = False


class FakeComfyUI:
    def __init__(self, *, auth: tuple[str, str] | None = None) -> None:
        self.auth = auth
        self.plan = Plan()
        self.seen: list[Seen] = []
        self.uploads: dict[str, bytes] = {}
        self.outputs: dict[str, bytes] = {}
        self.history: dict[str, dict[str, Any]] = {}
        self.running: Run | None = None
        self.pending: list[Run] = []
        self.interrupts: list[Any] = []
        self._sockets: dict[str, WebSocket] = {}
        self._numbers = itertools.count(1)
        self._files = itertools.count(1)
        self._released = threading.Event()
        self._wake: asyncio.Event | None = None
        self._worker: asyncio.Task[None] | None = None
        app = Starlette(
            routes=[
                Route("/prompt", self._prompt, methods=["POST"]),
                Route("/queue", self._queue_get, methods=["GET"]),
                Route("/queue", self._queue_post, methods=["POST"]),
                Route("/interrupt", self._interrupt, methods=["POST"]),
                Route("/history/{prompt_id}", self._history, methods=["GET"]),
                Route("/upload/image", self._upload, methods=["POST"]),
                Route("/view", self._view, methods=["GET"]),
                WebSocketRoute("/ws", self._websocket),
            ]
        )
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind(("127.0.0.1", 0))
        config = uvicorn.Config(app, log_level="warning", lifespan="off", ws="websockets-sansio")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._socket.getsockname()[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> Self:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started and time.monotonic() < deadline:
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self._released.set()
        self._server.should_exit = True
        self._thread.join(timeout=10)

    def release(self) -> None:
        self._released.set()

    def requests_to(self, path: str, method: str | None = None) -> list[Seen]:
        return [r for r in self.seen if r.path == path and method in (None, r.method)]

    @property
    def prompts(self) -> list[dict[str, Any]]:
        """The bodies POSTed to /prompt."""
        return [r.json for r in self.requests_to("/prompt", "POST")]

    # -- HTTP -------------------------------------------------------------------------------

    async def _record(self, request: Request) -> Response | None:
        """Record the request; an answer when it is refused (authentication)."""
        body: Any = None
        form: dict[str, Any] = {}
        if request.headers.get("content-type", "").startswith("application/json"):
            body = await request.json()
        elif request.headers.get("content-type", "").startswith("multipart/form-data"):
            async with request.form() as parsed:
                for name, value in parsed.items():
                    form[name] = (
                        value if isinstance(value, str) else (value.filename, await value.read())
                    )
        self.seen.append(
            Seen(
                request.method,
                request.url.path,
                dict(request.query_params),
                dict(request.headers),
                body,
                form,
            )
        )
        if self.auth is not None and request.headers.get(self.auth[0]) != self.auth[1]:
            return JSONResponse({"error": "unauthorized"}, 401)
        return None

    async def _prompt(self, request: Request) -> Response:
        refused = await self._record(request)
        if refused is not None:
            return refused
        body = self.seen[-1].json
        graph = body.get("prompt") if isinstance(body, dict) else None
        if not isinstance(graph, dict):
            return JSONResponse({"error": "no prompt", "node_errors": []}, 400)
        node_errors = self._validate(graph)
        if node_errors:
            error = {
                "type": "prompt_outputs_failed_validation",
                "message": "Prompt outputs failed validation",
                "details": "",
                "extra_info": {},
            }
            return JSONResponse({"error": error, "node_errors": node_errors}, 400)
        run = Run(str(uuid.uuid4()), graph, body.get("client_id"), next(self._numbers))
        self.pending.append(run)
        self._start_worker()
        assert self._wake is not None
        self._wake.set()
        return JSONResponse({"prompt_id": run.prompt_id, "number": run.number, "node_errors": {}})

    def _validate(self, graph: dict[str, Any]) -> dict[str, Any]:
        errors: dict[str, Any] = {}
        for node_id, node in graph.items():
            if node.get("class_type") in ("LoadImage", "LoadImageMask"):
                name = node["inputs"].get("image")
                if name not in self.uploads:
                    errors[node_id] = {
                        "errors": [
                            {
                                "type": "custom_validation_failed",
                                "message": "Custom validation failed for node",
                                "details": f"image - Invalid image file: {name}",
                                "extra_info": {},
                            }
                        ],
                        "dependent_outputs": [],
                        "class_type": node["class_type"],
                    }
        return errors

    async def _queue_get(self, request: Request) -> Response:
        refused = await self._record(request)
        if refused is not None:
            return refused

        def item(run: Run) -> list[Any]:
            return [run.number, run.prompt_id, run.graph, {"client_id": run.client_id}, []]

        running = [item(self.running)] if self.running is not None else []
        return JSONResponse(
            {"queue_running": running, "queue_pending": [item(run) for run in self.pending]}
        )

    async def _queue_post(self, request: Request) -> Response:
        refused = await self._record(request)
        if refused is not None:
            return refused
        deleting = set((self.seen[-1].json or {}).get("delete", []))
        self.pending = [run for run in self.pending if run.prompt_id not in deleting]
        return Response(status_code=200)

    async def _interrupt(self, request: Request) -> Response:
        refused = await self._record(request)
        if refused is not None:
            return refused
        body = self.seen[-1].json
        self.interrupts.append(body)
        wanted = body.get("prompt_id") if isinstance(body, dict) else None
        if self.running is not None and wanted in (None, self.running.prompt_id):
            self.running.interrupted = True
        return Response(status_code=200)

    async def _history(self, request: Request) -> Response:
        refused = await self._record(request)
        if refused is not None:
            return refused
        prompt_id = request.path_params["prompt_id"]
        entry = self.history.get(prompt_id)
        return JSONResponse({prompt_id: entry} if entry is not None else {})

    async def _upload(self, request: Request) -> Response:
        refused = await self._record(request)
        if refused is not None:
            return refused
        form = self.seen[-1].form
        image = form.get("image")
        if not isinstance(image, tuple) or not image[0]:
            return Response(status_code=400)
        subfolder = str(form.get("subfolder", ""))
        name = str(image[0])
        self.uploads[f"{subfolder}/{name}" if subfolder else name] = image[1]
        return JSONResponse({"name": name, "subfolder": subfolder, "type": "input"})

    async def _view(self, request: Request) -> Response:
        refused = await self._record(request)
        if refused is not None:
            return refused
        query = request.query_params
        data = self.outputs.get(query.get("filename", ""))
        if data is None or query.get("type") != "output" or query.get("subfolder", "") != "":
            return Response(status_code=404)
        return Response(data, media_type="image/png")

    # -- the websocket ----------------------------------------------------------------------

    async def _websocket(self, websocket: WebSocket) -> None:
        client_id = websocket.query_params.get("clientId") or uuid.uuid4().hex
        self.seen.append(Seen("WS", "/ws", dict(websocket.query_params), dict(websocket.headers)))
        authorized = self.auth is None or websocket.headers.get(self.auth[0]) == self.auth[1]
        if not self.plan.websocket or not authorized:
            await websocket.close(code=1008)
            return
        await websocket.accept()
        self._sockets[client_id] = websocket
        remaining = len(self.pending) + (self.running is not None)
        await websocket.send_json(
            {"type": "status", "data": {"status": {"exec_info": {"queue_remaining": remaining}},
                                        "sid": client_id}}
        )  # fmt: skip
        try:
            while True:
                await websocket.receive_text()
        except WebSocketDisconnect:
            self._sockets.pop(client_id, None)

    async def _send(self, run: Run, kind: str, data: dict[str, Any]) -> None:
        websocket = self._sockets.get(run.client_id or "")
        if websocket is None:
            return
        try:
            await websocket.send_json({"type": kind, "data": {**data, "prompt_id": run.prompt_id}})
        except Exception:  # the client went away
            self._sockets.pop(run.client_id or "", None)

    async def _drop(self, run: Run) -> None:
        websocket = self._sockets.pop(run.client_id or "", None)
        if websocket is not None:
            await websocket.close()

    # -- running prompts, one at a time -------------------------------------------------------

    def _start_worker(self) -> None:
        if self._worker is None:
            self._wake = asyncio.Event()
            self._worker = asyncio.get_running_loop().create_task(self._work())

    async def _work(self) -> None:
        assert self._wake is not None
        while True:
            if not self.pending:
                self._wake.clear()
                await self._wake.wait()
                continue
            if self.plan.hold and not self._released.is_set():
                self.running = self.pending.pop(0)
                while not self._released.is_set() and not self.running.interrupted:
                    await asyncio.sleep(0.01)
            else:
                self.running = self.pending.pop(0)
            await self._execute(self.running)
            self.running = None

    async def _execute(self, run: Run) -> None:
        messages: list[list[Any]] = [["execution_start", {"prompt_id": run.prompt_id}]]
        await self._send(run, "execution_start", {})
        if self.plan.drop_socket_after_start:
            await self._drop(run)
        sampler = next(
            (node_id for node_id, node in run.graph.items() if "steps" in node["inputs"]), None
        )
        steps = int(run.graph[sampler]["inputs"]["steps"]) if sampler else 1
        await self._send(run, "executing", {"node": sampler, "display_node": sampler})
        for value in range(1, steps + 1):
            if run.interrupted:
                break
            await asyncio.sleep(self.plan.step_seconds)
            await self._send(run, "progress", {"value": value, "max": steps, "node": sampler})
            websocket = self._sockets.get(run.client_id or "")
            if websocket is not None:
                await websocket.send_bytes(b"\x00\x00\x00\x01\x00\x00\x00\x02preview")
        if run.interrupted:
            data = {"prompt_id": run.prompt_id, "node_id": sampler, "node_type": "KSampler"}
            messages.append(["execution_interrupted", data])
            await self._send(run, "execution_interrupted", data)
            self._record_history(run, "error", {}, messages)
            return
        if self.plan.fail is not None:
            data = {
                "prompt_id": run.prompt_id,
                "node_id": sampler,
                "node_type": "KSampler",
                "exception_message": self.plan.fail,
                "exception_type": "torch.OutOfMemoryError",
            }
            messages.append(["execution_error", data])
            self._record_history(run, "error", {}, messages)
            await self._send(run, "execution_error", data)
            return
        outputs: dict[str, Any] = {}
        for node_id, node in run.graph.items():
            if node["class_type"] == "SaveImage":
                name = f"pixelgate_{next(self._files):05}_.png"
                self.outputs[name] = self._render(run.graph)
                images = [{"filename": name, "subfolder": "", "type": "output"}]
                outputs[node_id] = {"images": images}
                await self._send(run, "executed", {"node": node_id, "output": outputs[node_id]})
        outputs["preview"] = {"images": [{"filename": "x.png", "subfolder": "", "type": "temp"}]}
        messages.append(["execution_success", {"prompt_id": run.prompt_id}])
        self._record_history(run, "success", outputs, messages)
        await self._send(run, "executing", {"node": None})
        await self._send(run, "execution_success", {})

    def _record_history(
        self, run: Run, status: str, outputs: dict[str, Any], messages: list[list[Any]]
    ) -> None:
        self.history[run.prompt_id] = {
            "prompt": [run.number, run.prompt_id, run.graph, {"client_id": run.client_id}, []],
            "outputs": outputs,
            "status": {
                "status_str": status,
                "completed": status == "success",
                "messages": messages,
            },
        }

    def _render(self, graph: dict[str, Any]) -> bytes:
        """The run's image: the size its latent asks, or its input image's."""
        for node in graph.values():
            inputs = node["inputs"]
            if "width" in inputs and "height" in inputs:
                return image_bytes(inputs["width"] // SHRINK, inputs["height"] // SHRINK, "png")
            if node["class_type"] == "LoadImage":
                with Image.open(io.BytesIO(self.uploads[inputs["image"]])) as source:
                    return image_bytes(*source.size, "png", (10, 200, 10))
        return image_bytes(8, 8, "png")
