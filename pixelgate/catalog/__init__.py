"""What models exist, what they can do, and which options each accepts."""

from pixelgate.catalog.catalog import Catalog
from pixelgate.catalog.options import OPTION_FAMILIES, DiffusionOptions, ImageOptions
from pixelgate.catalog.spec import Limits, ModelSpec

__all__ = ["OPTION_FAMILIES", "Catalog", "DiffusionOptions", "ImageOptions", "Limits", "ModelSpec"]
