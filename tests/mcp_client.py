"""What the MCP tests share: a tool call through the `mcp` SDK's client, and its JSON."""

from __future__ import annotations

import json
from typing import Any

from mcp import ClientSession
from mcp.types import CallToolResult, TextContent


async def call(session: ClientSession, tool: str, arguments: dict[str, Any]) -> CallToolResult:
    result = await session.call_tool(tool, arguments, allow_input_required=False)
    assert isinstance(result, CallToolResult)
    return result


def body_of(result: CallToolResult) -> dict[str, Any]:
    """The result's JSON text (the last content block, after any images and links)."""
    text = [block.text for block in result.content if isinstance(block, TextContent)]
    assert len(text) == 1, result.content
    body: dict[str, Any] = json.loads(text[0])
    return body
