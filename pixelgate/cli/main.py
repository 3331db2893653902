"""The `pixelgate` command."""

from __future__ import annotations

import click


@click.group()
@click.version_option(package_name="pixelgate")
def main() -> None:
    """pixelgate: one API for every image model, local or hosted."""
