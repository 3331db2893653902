"""Backends behind the one provider interface: one module per backend."""

from pixelgate.providers.base import (
    CancelToken,
    GeneratedImage,
    ImageInput,
    ImageTask,
    ProgressCallback,
    Provider,
    UpstreamState,
    UpstreamTask,
)
from pixelgate.providers.registry import ProviderRegistry

__all__ = [
    "CancelToken",
    "GeneratedImage",
    "ImageInput",
    "ImageTask",
    "ProgressCallback",
    "Provider",
    "ProviderRegistry",
    "UpstreamState",
    "UpstreamTask",
]
