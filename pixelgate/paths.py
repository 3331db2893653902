"""Where pixelgate keeps its files on a machine when the settings do not say.

Two places, apart: the data directory (records, results, keys: one per server) and the models
cache (weights: shared by every data directory, like Hugging Face's own cache). Standard
library only, so the client reads it without the server's packages.
"""

from __future__ import annotations

import os
from pathlib import Path


def default_data_dir() -> Path:
    """`$XDG_DATA_HOME/pixelgate`, else `~/.local/share/pixelgate`."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "pixelgate"


def default_models_dir() -> Path:
    """`$XDG_CACHE_HOME/pixelgate/models`, else `~/.cache/pixelgate/models`."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "pixelgate" / "models"


def legacy_models_dir(data_dir: Path) -> Path | None:
    """`<data_dir>/models` when it holds a file: where releases before the shared cache kept
    weights. It stays in use, so nothing pulled there is lost; moving its contents into the
    cache (and deleting it) shares them with every data directory."""
    folder = data_dir / "models"
    try:
        holds_a_file = any(path.is_file() for path in folder.rglob("*"))
    except OSError:
        return None
    return folder if holds_a_file else None
