"""A fake Stability AI v2beta Stable Image API: generate/core, the edits (inpaint, outpaint,
search-and-replace, erase), remove-background and the upscalers (fast, conservative, and
creative, which answers an id to poll at /v2beta/results/{id}). Multipart in; raw image
(`accept: image/*`) or JSON out. Each endpoint checks its required fields as Stability documents
them."""

from __future__ import annotations

import base64
import itertools
import json
import uuid

from tests.providers.upstreams.images import image_bytes, size_of
from tests.providers.upstreams.server import FakeUpstream, Received, Reply

CORE = "/v2beta/stable-image/generate/core"
INPAINT = "/v2beta/stable-image/edit/inpaint"
OUTPAINT = "/v2beta/stable-image/edit/outpaint"
SEARCH_AND_REPLACE = "/v2beta/stable-image/edit/search-and-replace"
ERASE = "/v2beta/stable-image/edit/erase"
EDITS = (INPAINT, OUTPAINT, SEARCH_AND_REPLACE, ERASE)
REQUIRED_TEXT = {INPAINT: ("prompt",), SEARCH_AND_REPLACE: ("prompt", "search_prompt")}
SIDES = ("left", "right", "up", "down")
REMOVE_BACKGROUND = "/v2beta/stable-image/edit/remove-background"
UPSCALE_FAST = "/v2beta/stable-image/upscale/fast"
UPSCALE_CONSERVATIVE = "/v2beta/stable-image/upscale/conservative"
UPSCALE_CREATIVE = "/v2beta/stable-image/upscale/creative"
UPSCALES = (UPSCALE_FAST, UPSCALE_CONSERVATIVE, UPSCALE_CREATIVE)
RESULTS = "/v2beta/results/"
FOUR_MEGAPIXELS = 4 * 1024 * 1024
ASPECT_SIZES = {"1:1": (1024, 1024), "16:9": (1344, 768), "9:16": (768, 1344), "3:2": (1216, 832)}


def stability_error(status: int, name: str, *errors: str, **headers: str) -> Reply:
    """Stability's documented error shape."""
    return Reply.json(
        {"id": uuid.uuid4().hex, "name": name, "errors": list(errors)}, status, **headers
    )


class FakeStability(FakeUpstream):
    def __init__(self, key: str) -> None:
        super().__init__()
        self.key = key
        self.made: list[bytes] = []
        self.finish_reason = "SUCCESS"
        self._seeds = itertools.count(1000)
        self.polls_before_ready = 2
        """How many polls of a creative upscale's result answer 202 first."""
        self._pending: dict[str, tuple[int, bytes, str, int]] = {}
        """Creative upscales by id: polls left before ready, the image, its format, seed."""

    def handle(self, request: Received) -> Reply:
        if request.headers.get("authorization") != f"Bearer {self.key}":
            return stability_error(401, "unauthorized", "authorization: invalid or missing")
        if request.method == "GET" and request.path.startswith(RESULTS):
            return self._result(request.path.removeprefix(RESULTS), request)
        if request.method != "POST" or request.path not in (
            CORE, *EDITS, REMOVE_BACKGROUND, *UPSCALES
        ):  # fmt: skip
            return stability_error(404, "not_found", "not found")
        if request.content_type != "multipart/form-data":
            return stability_error(400, "bad_request", "content-type: must be multipart/form-data")
        accept = str(request.headers.get("accept", ""))
        if accept not in ("image/*", "application/json"):
            return stability_error(
                400, "bad_request", "accept: must be image/* or application/json"
            )
        fields = {n: p.text for n, p in request.parts.items() if p.filename is None}
        fmt = fields.get("output_format", "png")
        if request.path == REMOVE_BACKGROUND:
            if "image" not in request.parts:
                return stability_error(400, "bad_request", "image: required")
            if fmt not in ("png", "webp"):
                return stability_error(400, "bad_request", "output_format: must be png or webp")
            width, height = size_of(request.parts["image"].data)
            raw = image_bytes(width, height, fmt, color=(0, 0, 0, 0))
            return self._answer(raw, fmt, None, accept)
        if request.path in UPSCALES:
            return self._upscale(request, fields, fmt, accept)
        if request.path in EDITS:
            if "image" not in request.parts:
                return stability_error(400, "bad_request", "image: required")
            for name in REQUIRED_TEXT.get(request.path, ()):
                if not fields.get(name):
                    return stability_error(400, "bad_request", f"{name}: cannot be empty")
            width, height = size_of(request.parts["image"].data)
            if request.path == OUTPAINT:
                left, right, up, down = (int(fields.get(side, "0")) for side in SIDES)
                if not left + right + up + down:
                    return stability_error(
                        400, "bad_request", "left, right, up, down: at least one must be above 0"
                    )
                width, height = width + left + right, height + up + down
        elif not fields.get("prompt"):
            return stability_error(400, "bad_request", "prompt: cannot be empty")
        else:
            width, height = ASPECT_SIZES.get(fields.get("aspect_ratio", "1:1"), (1024, 1024))
        seed = int(fields["seed"]) if fields.get("seed") else next(self._seeds)
        raw = image_bytes(width, height, fmt, color=(seed % 256, 100, 50))
        return self._answer(raw, fmt, seed, accept)

    def _upscale(self, request: Received, fields: dict[str, str], fmt: str, accept: str) -> Reply:
        """fast: 4x, inputs of 32 to 1536 px a side; conservative and creative: about 4
        megapixels, a prompt required; creative answers an id to poll."""
        if "image" not in request.parts:
            return stability_error(400, "bad_request", "image: required")
        if fmt not in ("png", "jpeg", "webp"):
            return stability_error(400, "bad_request", "output_format: must be png, jpeg or webp")
        width, height = size_of(request.parts["image"].data)
        if request.path == UPSCALE_FAST:
            if not (min(width, height) >= 32 and max(width, height) <= 1536):
                return stability_error(400, "bad_request", "image: must be 32 to 1536 px a side")
            raw = image_bytes(width * 4, height * 4, fmt, color=(10, 200, 10))
            return self._answer(raw, fmt, None, accept)
        if not fields.get("prompt"):
            return stability_error(400, "bad_request", "prompt: cannot be empty")
        scale = (FOUR_MEGAPIXELS / (width * height)) ** 0.5
        out = (round(width * scale), round(height * scale))
        seed = int(fields["seed"]) if fields.get("seed") else next(self._seeds)
        raw = image_bytes(*out, fmt, color=(seed % 256, 10, 200))
        if request.path == UPSCALE_CONSERVATIVE:
            return self._answer(raw, fmt, seed, accept)
        result_id = uuid.uuid4().hex
        self._pending[result_id] = (self.polls_before_ready, raw, fmt, seed)
        return Reply.json({"id": result_id})

    def _result(self, result_id: str, request: Received) -> Reply:
        pending = self._pending.get(result_id)
        if pending is None:
            return stability_error(404, "not_found", f"id: no generation {result_id}")
        polls_left, raw, fmt, seed = pending
        if polls_left > 0:
            self._pending[result_id] = (polls_left - 1, raw, fmt, seed)
            return Reply.json({"id": result_id, "status": "in-progress"}, 202)
        accept = str(request.headers.get("accept", ""))
        if accept == "application/json":
            self.made.append(raw)
            payload = {
                "result": base64.b64encode(raw).decode(),
                "finish_reason": self.finish_reason,
                "seed": seed,
            }
            return Reply(200, json.dumps(payload).encode(), {"content-type": "application/json"})
        return self._answer(raw, fmt, seed, accept)

    def _answer(self, raw: bytes, fmt: str, seed: int | None, accept: str) -> Reply:
        self.made.append(raw)
        if accept == "application/json":
            payload = {
                "image": base64.b64encode(raw).decode(),
                "finish_reason": self.finish_reason,
                "seed": seed if seed is not None else 0,
            }
            return Reply(200, json.dumps(payload).encode(), {"content-type": "application/json"})
        headers = {"content-type": f"image/{fmt}", "finish-reason": self.finish_reason}
        if seed is not None:
            headers["seed"] = str(seed)
        return Reply(200, raw, headers)
