"""`pixelgate mcp`: pixelgate's agent tools over stdio, for desktop agents, against a configured
pixelgate server (its URL and key as every command takes them)."""

from __future__ import annotations

import anyio
import click

from pixelgate.cli.common import connection_options
from pixelgate.extras import missing_extra
from pixelgate.sdk import AsyncClient


@click.command("mcp")
@connection_options
def mcp(url: str | None, api_key: str | None) -> None:
    """Serve the MCP tools (generate, edit, remove background, jobs, models) over stdio.

    Add it to a desktop agent's MCP servers as the command `pixelgate mcp`, with
    PIXELGATE_URL and PIXELGATE_API_KEY in its environment."""
    problem = missing_extra("pixelgate mcp", "mcp")
    if problem is not None:
        raise click.ClickException(problem)
    from pixelgate.agent_tools import build_server
    from pixelgate.cli.mcp_tools import ClientTools

    async def serve() -> None:
        # the SDK client's timeout covers a synchronous generation: the server's own limit
        async with AsyncClient(base_url=url, api_key=api_key, timeout=600) as client:
            tools = ClientTools(client)
            await build_server(lambda ctx: tools).run_stdio_async()

    anyio.run(serve)
