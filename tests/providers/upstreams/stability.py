"""A fake Stability AI v2beta Stable Image API: generate/core, the edits (inpaint, outpaint,
search-and-replace, erase) and remove-background. Multipart in; raw image (`accept: image/*`)
or JSON out. Each endpoint checks its required fields as Stability documents them."""

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

    def handle(self, request: Received) -> Reply:
        if request.headers.get("authorization") != f"Bearer {self.key}":
            return stability_error(401, "unauthorized", "authorization: invalid or missing")
        if request.method != "POST" or request.path not in (CORE, *EDITS, REMOVE_BACKGROUND):
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
