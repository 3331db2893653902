"""`pixelgate remove-bg`: cut the subject out of a picture, with progress, into a PNG."""

from __future__ import annotations

from pathlib import Path

import click

from pixelgate.cli.common import connection_options, open_client, print_json
from pixelgate.cli.results import await_result


@click.command("remove-bg")
@click.argument("image", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Where to write the cut-out [default: <image>-nobg.<format> beside the input].",
)
@click.option(
    "--model", "-m", default=None, help="A background-removal model [default: rembg/u2netp]."
)
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["png", "webp"]),
    default=None,
    help="Output format; both keep transparency [default: png].",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON, no progress bar.")
@connection_options
def remove_bg(
    image: Path,
    output: Path | None,
    model: str | None,
    output_format: str | None,
    as_json: bool,
    url: str | None,
    api_key: str | None,
) -> None:
    """Remove the background of IMAGE (PNG, JPEG or WebP) and save a transparent image."""
    fmt = "webp" if output_format == "webp" else "png"
    with open_client(url, api_key) as client:
        job = client.images.submit_remove_background(
            image,
            model=model,
            output_format="webp" if output_format == "webp" else None,
        )
        result = await_result(client, job, show_progress=not as_json)
        path = output or image.with_name(f"{image.stem}-nobg.{fmt}")
        result.data[0].save(path)
    if as_json:
        print_json(result)
    else:
        click.echo(f"{path}  {result.data[0].url or ''}".rstrip())
