"""A fake Black Forest Labs API: submit a task (`POST /v1/<model>`), poll it
(`GET /v1/get_result?id=`), fetch the signed sample URL."""

from __future__ import annotations

import itertools
import threading
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from tests.providers.upstreams.images import image_bytes
from tests.providers.upstreams.server import FakeUpstream, Received, Reply

MODELS = ("/v1/flux-pro-1.1", "/v1/flux-kontext-pro")
GET_RESULT = "/v1/get_result"


@dataclass
class Task:
    body: dict[str, Any]
    pending_polls: int
    outcome: str
    details: dict[str, Any] | None
    polls: int = 0
    sample: str | None = None
    seed: int = 0


@dataclass
class Plan:
    """How the next submitted task ends."""

    pending_polls: int = 1
    outcome: str = "Ready"
    details: dict[str, Any] | None = None
    polling_base: str | None = None
    """Where the polling_url points; this server when None."""


def unprocessable(param: str, message: str) -> Reply:
    """FastAPI-style 422, as BFL documents it."""
    return Reply.json(
        {"detail": [{"loc": ["body", param], "msg": message, "type": "value_error"}]}, 422
    )


class FakeBFL(FakeUpstream):
    def __init__(self, key: str) -> None:
        super().__init__()
        self.key = key
        self.plan = Plan()
        self.tasks: dict[str, Task] = {}
        self.made: list[bytes] = []
        self._seeds = itertools.count(7000)
        self._tasks_lock = threading.Lock()

    def handle(self, request: Received) -> Reply:
        if request.headers.get("x-key") != self.key:
            return Reply.json({"detail": "Not authenticated"}, 403)
        if request.method == "POST" and request.path in MODELS:
            return self._submit(request)
        if request.method == "GET" and request.path == GET_RESULT:
            return self._poll(request)
        return Reply.json({"detail": "Not Found"}, 404)

    def _submit(self, request: Received) -> Reply:
        if request.content_type != "application/json" or not isinstance(request.json, dict):
            return unprocessable("body", "Input should be a valid dictionary")
        body = request.json
        if not body.get("prompt") and "input_image" not in body:
            return unprocessable("prompt", "Field required")
        for name in ("width", "height"):
            value = body.get(name, 1024)
            if not isinstance(value, int) or value % 32 or not 256 <= value <= 1440:
                return unprocessable(name, f"{name} must be a multiple of 32 in [256, 1440]")
        task_id = str(uuid.uuid4())
        with self._tasks_lock:
            self.tasks[task_id] = Task(
                body, self.plan.pending_polls, self.plan.outcome, self.plan.details
            )
        base = self.plan.polling_base or self.url
        return Reply.json({"id": task_id, "polling_url": f"{base}{GET_RESULT}?id={task_id}"})

    def _poll(self, request: Received) -> Reply:
        task_id = parse_qs(request.query).get("id", [""])[0]
        with self._tasks_lock:
            task = self.tasks.get(task_id)
            if task is None:
                return Reply.json({"id": task_id, "status": "Task not found"})
            task.polls += 1
            if task.polls <= task.pending_polls:
                return Reply.json({"id": task_id, "status": "Pending", "progress": 0.5})
            if task.outcome != "Ready":
                return Reply.json({"id": task_id, "status": task.outcome, "details": task.details})
            if task.sample is None:
                fmt = str(task.body.get("output_format", "jpeg"))
                width, height = int(task.body.get("width", 1024)), int(task.body.get("height", 768))
                raw = image_bytes(width // 4, height // 4, fmt)
                self.made.append(raw)
                task.seed = int(task.body.get("seed", next(self._seeds)))
                task.sample = self.host_file(
                    f"/results/{task_id}/sample.{fmt}", raw, f"image/{fmt}"
                )
        return Reply.json(
            {
                "id": task_id,
                "status": "Ready",
                "result": {
                    "sample": task.sample,
                    "prompt": task.body.get("prompt"),
                    "seed": task.seed,
                },
            }
        )
