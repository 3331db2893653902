"""What models exist, what they can do, and which options each accepts."""

from pixelgate.catalog.catalog import Catalog
from pixelgate.catalog.options import (
    OPTION_FAMILIES,
    BackgroundRemovalOptions,
    DiffusionOptions,
    ImageOptions,
    PromptOptions,
)
from pixelgate.catalog.spec import TASK_NAMES, Limits, ModelSpec, TaskKind

__all__ = [
    "OPTION_FAMILIES",
    "TASK_NAMES",
    "BackgroundRemovalOptions",
    "Catalog",
    "DiffusionOptions",
    "ImageOptions",
    "Limits",
    "ModelSpec",
    "PromptOptions",
    "TaskKind",
]
