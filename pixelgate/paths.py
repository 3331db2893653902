"""Where pixelgate keeps its files on a machine when the settings do not say.

Two places, apart: the data directory (records, results, keys: one per server) and the models
cache (weights: shared by every data directory, like Hugging Face's own cache). Standard
library only, so the client reads it without the server's packages.
"""

from __future__ import annotations

import os
from collections.abc import Callable
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


def kept_secret(path: Path, make: Callable[[], str]) -> str:
    """The secret kept in `path` (in the data directory), made with `make` and written,
    readable by its owner only, the first time; every later start reads the same one."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "w") as handle:
            handle.write(make() + "\n")
    return path.read_text().strip()
