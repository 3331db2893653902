"""A fake fal.ai queue API: submit (`POST /<owner>/<app>[/<subpath>]`), status
(`GET .../requests/<id>/status`), result (`GET .../requests/<id>`), cancel
(`PUT .../requests/<id>/cancel`), and the image files the result links to."""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass, field
from typing import Any

from tests.providers.upstreams.images import image_bytes
from tests.providers.upstreams.server import FakeUpstream, Received, Reply

PRESETS = {
    "square_hd": (1024, 1024),
    "square": (512, 512),
    "portrait_4_3": (768, 1024),
    "portrait_16_9": (576, 1024),
    "landscape_4_3": (1024, 768),
    "landscape_16_9": (1024, 576),
}
SHRINK = 16
"""The fake's images are this many times smaller than asked, to stay fast."""


@dataclass
class Plan:
    """How the next submitted request goes."""

    queued_polls: int = 1
    running_polls: int = 1
    error: str | None = None
    """Completed with this `error` (a failed request)."""
    nsfw: list[bool] = field(default_factory=list)
    """`has_nsfw_concepts`, by image."""
    url_base: str | None = None
    """Where the answer's request URLs point; this server when None."""


@dataclass
class Request:
    endpoint: str
    body: dict[str, Any]
    plan: Plan
    polls: int = 0
    canceled: bool = False
    result: dict[str, Any] | None = None

    @property
    def done(self) -> bool:
        return self.polls > self.plan.queued_polls + self.plan.running_polls


def unprocessable(param: str, message: str) -> Reply:
    return Reply.json(
        {"detail": [{"loc": ["body", param], "msg": message, "type": "value_error"}]}, 422
    )


class FakeFal(FakeUpstream):
    def __init__(self, key: str, endpoints: tuple[str, ...]) -> None:
        super().__init__()
        self.key = key
        self.endpoints = endpoints
        self.plan = Plan()
        self.requests: dict[str, Request] = {}
        self.made: list[bytes] = []
        self._requests_lock = threading.Lock()

    def handle(self, request: Received) -> Reply:
        if request.headers.get("authorization") != f"Key {self.key}":
            return Reply.json({"detail": "Unauthorized"}, 401)
        path = request.path.strip("/")
        if request.method == "POST" and path in self.endpoints:
            return self._submit(path, request)
        parts = path.split("/")
        if len(parts) in (4, 5) and parts[2] == "requests":
            owner_app, request_id = "/".join(parts[:2]), parts[3]
            action = parts[4] if len(parts) == 5 else ""
            with self._requests_lock:
                queued = self.requests.get(request_id)
                if queued is None or not queued.endpoint.startswith(owner_app):
                    return Reply.json({"detail": "Request not found"}, 404)
                if request.method == "GET" and action == "status":
                    return self._status(request_id, queued)
                if request.method == "GET" and action == "":
                    return self._result(request_id, queued)
                if request.method == "PUT" and action == "cancel":
                    if queued.done:
                        return Reply.json({"status": "ALREADY_COMPLETED"}, 400)
                    queued.canceled = True
                    return Reply.json({"status": "CANCELLATION_REQUESTED"}, 202)
        return Reply.json({"detail": "Not Found"}, 404)

    def _submit(self, endpoint: str, request: Received) -> Reply:
        body = request.json
        if not isinstance(body, dict):
            return unprocessable("body", "Input should be a valid dictionary")
        if not body.get("prompt"):
            return unprocessable("prompt", "Field required")
        if not 1 <= body.get("num_images", 1) <= 4:
            return unprocessable("num_images", "Input should be less than or equal to 4")
        request_id = str(uuid.uuid4())
        with self._requests_lock:
            self.requests[request_id] = Request(endpoint, body, self.plan)
        owner_app = "/".join(endpoint.split("/")[:2])
        base = f"{self.plan.url_base or self.url}/{owner_app}/requests/{request_id}"
        return Reply.json(
            {
                "request_id": request_id,
                "response_url": base,
                "status_url": f"{base}/status",
                "cancel_url": f"{base}/cancel",
                "queue_position": 0,
            }
        )

    def _status(self, request_id: str, queued: Request) -> Reply:
        queued.polls += 1
        plan = queued.plan
        base = f"{self.url}/{'/'.join(queued.endpoint.split('/')[:2])}/requests/{request_id}"
        urls = {"response_url": base, "status_url": f"{base}/status"}
        if queued.canceled:
            return Reply.json({"status": "COMPLETED", "error": "Request was cancelled", **urls})
        if queued.polls <= plan.queued_polls:
            position = plan.queued_polls - queued.polls
            return Reply.json({"status": "IN_QUEUE", "queue_position": position, **urls})
        if queued.polls <= plan.queued_polls + plan.running_polls:
            logs = [{"message": "step 1", "level": "INFO", "timestamp": "2026-12-07T12:00:00"}]
            return Reply.json({"status": "IN_PROGRESS", "logs": logs, **urls})
        answer: dict[str, Any] = {"status": "COMPLETED", "logs": [], **urls}
        if plan.error is not None:
            answer |= {"error": plan.error, "error_type": "runner_error"}
        else:
            answer["metrics"] = {"inference_time": 0.5}
        return Reply.json(answer)

    def _result(self, request_id: str, queued: Request) -> Reply:
        if not queued.done:
            return Reply.json({"detail": "Request is still in progress"}, 400)
        if queued.plan.error is not None:
            return Reply.json({"detail": queued.plan.error}, 500)
        if queued.result is None:
            body = queued.body
            fmt = str(body.get("output_format", "jpeg"))
            width, height = self._size(body)
            images = []
            for index in range(int(body.get("num_images", 1))):
                raw = image_bytes(width // SHRINK, height // SHRINK, fmt, (20 * index, 90, 160))
                self.made.append(raw)
                url = self.host_file(f"/files/{request_id}/{index}.{fmt}", raw, f"image/{fmt}")
                images.append(
                    {"url": url, "width": width, "height": height, "content_type": f"image/{fmt}"}
                )
            count = len(images)
            queued.result = {
                "images": images,
                "seed": int(body.get("seed", 4242)),
                "has_nsfw_concepts": (queued.plan.nsfw or [False] * count)[:count],
                "prompt": body["prompt"],
                "timings": {"inference": 0.5},
            }
        return Reply.json(queued.result)

    @staticmethod
    def _size(body: dict[str, Any]) -> tuple[int, int]:
        size = body.get("image_size")
        if isinstance(size, dict):
            return int(size["width"]), int(size["height"])
        if isinstance(size, str):
            return PRESETS[size]
        ratio = str(body.get("aspect_ratio", "1:1")).split(":")
        return 256 * int(ratio[0]), 256 * int(ratio[1])
