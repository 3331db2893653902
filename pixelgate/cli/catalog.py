"""`pixelgate models`: the catalog as the caller may use it."""

from __future__ import annotations

import click
from rich.console import Console
from rich.table import Table

from pixelgate.cli.common import connection_options, open_client, print_json


@click.command()
@click.option("--modality", default="image", show_default=True, help="Which models to list.")
@click.option("--json", "as_json", is_flag=True, help="Print the models as JSON.")
@connection_options
def models(modality: str, as_json: bool, url: str | None, api_key: str | None) -> None:
    """List the models this key may use."""
    with open_client(url, api_key) as client:
        found = client.models.list(modality=modality)
    if as_json:
        print_json(found)
        return
    table = Table()
    table.add_column("id", no_wrap=True)
    table.add_column("provider")
    table.add_column("available")
    table.add_column("capabilities")
    table.add_column("note", style="dim", overflow="fold")
    for model in found:
        table.add_row(
            model.id,
            model.provider,
            "yes" if model.available else "no",
            ", ".join(model.capabilities),
            model.unavailable_reason or "",
        )
    Console(highlight=False).print(table)
