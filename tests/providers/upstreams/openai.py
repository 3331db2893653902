"""A fake OpenAI Images API: generations (JSON), edits and variations (multipart)."""

from __future__ import annotations

import base64
import itertools
import json
from typing import Any

from tests.providers.upstreams.images import image_bytes
from tests.providers.upstreams.server import FakeUpstream, Received, Reply

GENERATIONS = "/v1/images/generations"
EDITS = "/v1/images/edits"
VARIATIONS = "/v1/images/variations"


def openai_error(
    status: int,
    message: str,
    *,
    type: str,
    param: str | None = None,
    code: str | None = None,
    **headers: str,
) -> Reply:
    """OpenAI's documented error shape."""
    return Reply.json(
        {"error": {"message": message, "type": type, "param": param, "code": code}},
        status,
        **headers,
    )


class FakeOpenAI(FakeUpstream):
    def __init__(self, key: str, *more_keys: str) -> None:
        """Accepts `key` and `more_keys` (tenants' own keys), and no other."""
        super().__init__()
        self.key = key
        self.keys = {key, *more_keys}
        self.made: list[bytes] = []
        """Every image handed out, in order: what the caller must end up storing."""
        self._counter = itertools.count()

    def handle(self, request: Received) -> Reply:
        if request.headers.get("authorization") not in {f"Bearer {key}" for key in self.keys}:
            return openai_error(
                401,
                "Incorrect API key provided. You can find your API key at "
                "https://platform.openai.com/account/api-keys.",
                type="invalid_request_error",
                code="invalid_api_key",
            )
        if request.method != "POST" or request.path not in (GENERATIONS, EDITS, VARIATIONS):
            return openai_error(404, "Invalid URL", type="invalid_request_error")
        if request.path == GENERATIONS:
            if request.content_type != "application/json":
                return openai_error(400, "Expected JSON", type="invalid_request_error")
            fields: dict[str, Any] = dict(request.json)
        else:
            if request.content_type != "multipart/form-data":
                return openai_error(400, "Expected multipart", type="invalid_request_error")
            if "image" not in request.parts or request.parts["image"].filename is None:
                return openai_error(
                    400,
                    "Missing required parameter: 'image'.",
                    type="invalid_request_error",
                    param="image",
                    code="missing_required_parameter",
                )
            fields = {
                name: part.text for name, part in request.parts.items() if part.filename is None
            }
        model = str(fields.get("model", "dall-e-2"))
        if request.path != VARIATIONS and not fields.get("prompt"):
            return openai_error(
                400,
                "Missing required parameter: 'prompt'.",
                type="invalid_request_error",
                param="prompt",
                code="missing_required_parameter",
            )
        if model.startswith("gpt-image") and "response_format" in fields:
            return openai_error(
                400,
                "Unknown parameter: 'response_format'.",
                type="invalid_request_error",
                param="response_format",
                code="unknown_parameter",
            )
        size = str(fields.get("size", "1024x1024"))
        width, height = (1024, 1024) if size == "auto" else map(int, size.split("x"))
        fmt = str(fields.get("output_format", "png"))
        as_url = not model.startswith("gpt-image") and fields.get("response_format") != "b64_json"
        data = []
        for _ in range(int(fields.get("n", 1))):
            index = next(self._counter)
            raw = image_bytes(width, height, fmt, color=(index % 256, 90, 160))
            self.made.append(raw)
            item: dict[str, Any] = {}
            if as_url:
                item["url"] = self.host_file(f"/files/img-{index}.{fmt}", raw, f"image/{fmt}")
            else:
                item["b64_json"] = base64.b64encode(raw).decode()
            if model == "dall-e-3":
                item["revised_prompt"] = f"A detailed rendering of {fields['prompt']}"
            data.append(item)
        body: dict[str, Any] = {"created": 1_700_000_000, "data": data}
        if model.startswith("gpt-image"):
            body |= {"output_format": fmt, "size": size, "usage": {"total_tokens": 100}}
        return Reply(200, json.dumps(body).encode(), {"content-type": "application/json"})
