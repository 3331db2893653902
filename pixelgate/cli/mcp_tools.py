"""The agent tools' backend in `pixelgate mcp`: pixelgate's SDK, against a configured server."""

from __future__ import annotations

import base64
from typing import Any

import httpx

from pixelgate.agent_tools import ImageTools, MadeImage, ToolAnswer
from pixelgate.errors import ValidationError
from pixelgate.sdk import AsyncClient
from pixelgate.sdk.types import ImagesResponse, to_jsonable


class ClientTools(ImageTools):
    """The tools' backend in `pixelgate mcp`: pixelgate's SDK, against the configured server."""

    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    async def generate(self, body: dict[str, Any]) -> ToolAnswer:
        options = dict(body)
        model, prompt = options.pop("model"), options.pop("prompt")
        return await _answer(
            await self._client.images.generate(model=model, prompt=prompt, **options)
        )

    async def edit(self, body: dict[str, Any]) -> ToolAnswer:
        options = dict(body)
        model, prompt = options.pop("model"), options.pop("prompt")
        image = await self._image(options, "input_image")
        if image is None:
            raise ValidationError(
                "Send the image as image_url, image_file_id or image_base64", param="image"
            )
        mask = await self._image(options, "mask_image")
        result = await self._client.images.edit(
            image, model=model, prompt=prompt, mask=mask, **options
        )
        return await _answer(result)

    async def remove_background(self, body: dict[str, Any]) -> ToolAnswer:
        options = dict(body)
        image = await self._image(options, "image")
        assert image is not None  # the tool refuses a call without one
        result = await self._client.images.remove_background(image, model=options.get("model"))
        return await _answer(result)

    async def upscale(self, body: dict[str, Any]) -> ToolAnswer:
        options = dict(body)
        file_id = options.pop("image_file_id", None)
        image = await self._image(options, "image")
        result = await self._client.images.upscale(image, file_id=file_id, **options)
        return await _answer(result)

    async def get_job(self, job_id: str) -> ToolAnswer:
        job = await self._client.jobs.get(job_id)
        if job.result is None:
            return ToolAnswer(to_jsonable(job))
        answer = await _answer(job.result)
        return ToolAnswer(to_jsonable(job), answer.images)

    async def list_models(self) -> list[dict[str, Any]]:
        return [to_jsonable(model) for model in await self._client.models.list()]

    async def image_at(self, url: str, name: str) -> dict[str, Any]:
        """Fetched from here, the user's own machine, as the user could fetch it."""
        try:
            async with httpx.AsyncClient(follow_redirects=True, timeout=60) as http:
                response = await http.get(url)
                response.raise_for_status()
        except httpx.HTTPError as exc:
            raise ValidationError(f"Could not fetch {name} from {url}: {exc}", param=name) from exc
        return {name: base64.b64encode(response.content).decode()}

    async def _image(self, options: dict[str, Any], name: str) -> bytes | None:
        """The input `name` out of `options`, as bytes (a stored file is downloaded)."""
        file_id = options.pop(f"{name}_file_id", None)
        if file_id is not None:
            return await self._client.files.content(file_id)
        b64 = options.pop(name, None)
        if b64 is None:
            return None
        try:
            return base64.b64decode(b64.rpartition(",")[2], validate=True)
        except ValueError:
            raise ValidationError(f"{name} is not valid base64", param=name) from None


async def _answer(result: ImagesResponse) -> ToolAnswer:
    images = [MadeImage(await image.acontent(), image.file_id, image.url) for image in result.data]
    return ToolAnswer(to_jsonable(result), images)
