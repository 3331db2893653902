"""Which parts of pixelgate this installation has: `pip install pixelgate` is the client (SDK
and CLI); the server, the local diffusers engine and the cluster backends are extras
(`pixelgate[server]`, `[local]`, `[cluster]`, `[all]`; `[mcp]` for `pixelgate mcp` alone).
Standard library only."""

from __future__ import annotations

import functools
import importlib.util
from typing import Literal

Extra = Literal["server", "local", "cluster", "mcp"]

MODULES: dict[Extra, tuple[str, ...]] = {
    "server": ("fastapi", "uvicorn", "pydantic_settings", "sqlalchemy", "alembic", "PIL", "mcp"),
    "local": ("torch", "diffusers", "transformers", "huggingface_hub"),
    "cluster": ("celery", "redis", "psycopg", "boto3"),
    "mcp": ("mcp",),
}
"""A module each extra installs, per extra: one missing means the extra is not installed."""


@functools.cache
def installed(extra: Extra) -> bool:
    return all(_found(module) for module in MODULES[extra])


def _found(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:  # a finder that refuses the name
        return False


def missing_extra(what: str, *extras: Extra) -> str | None:
    """None when every extra is installed; else the message that says which one `what` needs,
    e.g. "pixelgate serve needs the server extra: pip install 'pixelgate[server]'"."""
    absent = [extra for extra in extras if not installed(extra)]
    if not absent:
        return None
    names = " and ".join(absent)
    noun = "extra" if len(absent) == 1 else "extras"
    return f"{what} needs the {names} {noun}: pip install 'pixelgate[{','.join(absent)}]'"
