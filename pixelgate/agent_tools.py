"""pixelgate's tools for AI agents, over the Model Context Protocol (the `mcp` SDK).

One set of tools, two ways to serve it: the server's `/mcp` (`pixelgate.api.mcp`, acting
through the service layer for the caller's API key) and `pixelgate mcp` over stdio
(`pixelgate.cli.mcp`, acting through the SDK against a configured server). Each tool builds the
native request body here, hands it to an `ImageTools` backend, and turns what comes back into
MCP content: every image as image content (base64) and a link to it, with the result as JSON.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, Protocol

from mcp.server.mcpserver import Context, MCPServer
from mcp.types import CallToolResult, ContentBlock, ImageContent, ResourceLink, TextContent
from pydantic import Field

from pixelgate import __version__
from pixelgate.errors import Error, ValidationError
from pixelgate.sdk.types import media_type_of

__all__ = [
    "MEDIA_PATH",
    "ImageTools",
    "MadeImage",
    "ToolAnswer",
    "build_server",
    "image_fields",
]

MEDIA_PATH = "/v1/media/"
"""Where pixelgate's own signed links point (an `image_url` there is a stored result)."""

INSTRUCTIONS = (
    "pixelgate makes and edits images with many models, local and hosted. Call list_models "
    "first to see which models this key may use and each model's options (width, height, "
    "num_steps, seed, size, quality, ...); pass them in `options`. Images come back as image "
    "content plus a link that works for a limited time."
)


@dataclass(frozen=True)
class MadeImage:
    """One image of a result: its bytes and where it is linked."""

    data: bytes
    file_id: str
    url: str | None


@dataclass(frozen=True)
class ToolAnswer:
    """What a backend returns: the result or job as the HTTP API shows it, and its images."""

    body: dict[str, Any]
    images: list[MadeImage] = field(default_factory=list)


class ImageTools(Protocol):
    """What a tool asks of its backend; bodies are the native HTTP API's (model options at the
    top level, images as base64 or stored file ids). Failures raise `pixelgate.errors.Error`."""

    async def generate(self, body: dict[str, Any]) -> ToolAnswer: ...

    async def edit(self, body: dict[str, Any]) -> ToolAnswer: ...

    async def remove_background(self, body: dict[str, Any]) -> ToolAnswer: ...

    async def upscale(self, body: dict[str, Any]) -> ToolAnswer: ...

    async def get_job(self, job_id: str) -> ToolAnswer: ...

    async def list_models(self) -> list[dict[str, Any]]: ...

    async def image_at(self, url: str, name: str) -> dict[str, Any]:
        """The body fields (`name` in base64, or `name`_file_id) of the image at `url`; which
        URLs a backend may fetch is its own rule."""
        ...


Backend = Callable[[Context], ImageTools]
"""The backend acting for the caller of one tool call."""

Options = Annotated[
    dict[str, Any] | None,
    Field(
        description="The model's own options, as list_models shows them "
        '(e.g. {"width": 512, "height": 512, "seed": 7, "num_steps": 4}).'
    ),
]
ImageUrl = Annotated[
    str | None, Field(description="The input image at a URL (a pixelgate link works).")
]
ImageFileId = Annotated[str | None, Field(description="Or the file id of a stored result.")]
ImageBase64 = Annotated[str | None, Field(description="Or the image itself, base64.")]


def build_server(backend: Backend) -> MCPServer:
    """The MCP server with pixelgate's tools over `backend`."""
    server = MCPServer("pixelgate", version=__version__, instructions=INSTRUCTIONS)

    @server.tool()
    async def generate_image(
        model: Annotated[str, Field(description="A model id or alias from list_models.")],
        prompt: Annotated[str, Field(description="What to draw.")],
        ctx: Context,
        options: Options = None,
    ) -> CallToolResult:
        """Make images from a text prompt; waits for them."""

        async def run(tools: ImageTools) -> ToolAnswer:
            return await tools.generate({**(options or {}), "model": model, "prompt": prompt})

        return await _answer(backend(ctx), run)

    @server.tool()
    async def edit_image(
        model: Annotated[str, Field(description="A model id or alias that edits images.")],
        prompt: Annotated[str, Field(description="What the result should show.")],
        ctx: Context,
        image_url: ImageUrl = None,
        image_file_id: ImageFileId = None,
        image_base64: ImageBase64 = None,
        mask_url: Annotated[
            str | None, Field(description="Inpainting mask (white repaints, black keeps), URL.")
        ] = None,
        mask_file_id: Annotated[str | None, Field(description="Or a stored mask's id.")] = None,
        mask_base64: Annotated[str | None, Field(description="Or the mask, base64.")] = None,
        options: Options = None,
    ) -> CallToolResult:
        """Image-to-image, or inpainting with a mask; waits for the images."""

        async def run(tools: ImageTools) -> ToolAnswer:
            body: dict[str, Any] = {**(options or {}), "model": model, "prompt": prompt}
            body |= await image_fields(
                tools, "input_image", url=image_url, file_id=image_file_id, b64=image_base64
            )
            body |= await image_fields(
                tools, "mask_image", url=mask_url, file_id=mask_file_id, b64=mask_base64
            )
            return await tools.edit(body)

        return await _answer(backend(ctx), run)

    @server.tool()
    async def remove_background(
        ctx: Context,
        image_url: ImageUrl = None,
        image_file_id: ImageFileId = None,
        image_base64: ImageBase64 = None,
        model: Annotated[
            str | None, Field(description="A background-removal model; the default if none.")
        ] = None,
    ) -> CallToolResult:
        """Cut the subject out of a picture: a transparent PNG."""

        async def run(tools: ImageTools) -> ToolAnswer:
            body = await picture_fields(
                tools, url=image_url, file_id=image_file_id, b64=image_base64
            )
            if model is not None:
                body["model"] = model
            return await tools.remove_background(body)

        return await _answer(backend(ctx), run)

    @server.tool()
    async def upscale_image(
        ctx: Context,
        image_url: ImageUrl = None,
        image_file_id: ImageFileId = None,
        image_base64: ImageBase64 = None,
        factor: Annotated[
            int | None, Field(description="2 or 4, as the model allows; its first if none.")
        ] = None,
        model: Annotated[
            str | None, Field(description="An upscaler; pixelgate/lanczos if none.")
        ] = None,
        prompt: Annotated[
            str | None, Field(description="What the picture shows, for upscalers that take one.")
        ] = None,
        options: Options = None,
    ) -> CallToolResult:
        """Enlarge a picture 2 or 4 times; waits for it."""

        async def run(tools: ImageTools) -> ToolAnswer:
            body = await picture_fields(
                tools, url=image_url, file_id=image_file_id, b64=image_base64
            )
            sent = {"factor": factor, "model": model, "prompt": prompt}
            body |= {name: value for name, value in sent.items() if value is not None}
            return await tools.upscale({**(options or {}), **body})

        return await _answer(backend(ctx), run)

    @server.tool()
    async def get_job(
        job_id: Annotated[str, Field(description="A job id, as a result names it.")],
        ctx: Context,
    ) -> CallToolResult:
        """A job's status (queued, running, succeeded, failed, canceled), with its images once
        it succeeded."""

        async def run(tools: ImageTools) -> ToolAnswer:
            return await tools.get_job(job_id)

        return await _answer(backend(ctx), run)

    @server.tool()
    async def list_models(ctx: Context) -> CallToolResult:
        """The image models this key may use, with what each can do and its options."""

        async def run(tools: ImageTools) -> ToolAnswer:
            return ToolAnswer({"models": await tools.list_models()})

        return await _answer(backend(ctx), run)

    return server


async def image_fields(
    tools: ImageTools, name: str, *, url: str | None, file_id: str | None, b64: str | None
) -> dict[str, Any]:
    """An input image's fields of the native body (`name` base64, or `name`_file_id) from one
    of its three forms; none sent is no fields."""
    sent = [
        label
        for label, value in (("url", url), ("file_id", file_id), ("base64", b64))
        if value is not None
    ]
    prefix = "image" if name in ("image", "input_image") else "mask"
    if len(sent) > 1:
        raise ValidationError(
            f"Send the {prefix} once; got {prefix}_{sent[0]} and {prefix}_{sent[1]}",
            param=f"{prefix}_{sent[1]}",
        )
    if file_id is not None:
        return {f"{name}_file_id": file_id}
    if url is not None:
        return await tools.image_at(url, name)
    if b64 is not None:
        return {name: b64}
    return {}


async def picture_fields(
    tools: ImageTools, *, url: str | None, file_id: str | None, b64: str | None
) -> dict[str, Any]:
    """The one picture of a tool that needs one (background removal, upscaling) as `image`
    fields; none sent is refused naming `image`."""
    body = await image_fields(tools, "image", url=url, file_id=file_id, b64=b64)
    if not body:
        raise ValidationError(
            "Send the picture as image_url, image_file_id or image_base64", param="image"
        )
    return body


async def _answer(
    tools: ImageTools, run: Callable[[ImageTools], Awaitable[ToolAnswer]]
) -> CallToolResult:
    """The tool's result; a pixelgate error is a tool error naming its code and parameter,
    which the agent can read and act on."""
    try:
        answer = await run(tools)
    except Error as exc:
        error = exc.to_dict()
        return CallToolResult(
            content=[TextContent(type="text", text=json.dumps({"error": error}))],
            structured_content={"error": error},
            is_error=True,
        )
    content: list[ContentBlock] = []
    for image in answer.images:
        mime_type = media_type_of(image.data)
        content.append(
            ImageContent(
                type="image", data=base64.b64encode(image.data).decode(), mime_type=mime_type
            )
        )
        if image.url is not None:
            content.append(
                ResourceLink(
                    type="resource_link", uri=image.url, name=image.file_id, mime_type=mime_type
                )
            )
    content.append(TextContent(type="text", text=json.dumps(answer.body)))
    return CallToolResult(content=content, structured_content=answer.body)
