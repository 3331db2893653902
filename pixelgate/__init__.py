"""pixelgate: one API for every image model, local or hosted."""

__version__ = "0.1.0"
