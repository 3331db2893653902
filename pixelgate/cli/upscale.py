"""`pixelgate upscale`: enlarge a picture 2 or 4 times, with progress."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from pixelgate.cli.common import connection_options, open_client, print_json
from pixelgate.cli.results import await_result


@click.command("upscale")
@click.argument("image", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--factor",
    "-f",
    type=click.Choice(["2", "4"]),
    default=None,
    help="How many times wider and taller [default: the model's first factor].",
)
@click.option("--model", "-m", default=None, help="An upscaler [default: pixelgate/lanczos].")
@click.option(
    "--prompt", "-p", default=None, help="What the picture shows, for upscalers that take one."
)
@click.option("--seed", type=int, default=None, help="For upscalers that take one.")
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Where to write it [default: <image>-x<factor>.png beside the input].",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON, no progress bar.")
@connection_options
def upscale(
    image: Path,
    factor: str | None,
    model: str | None,
    prompt: str | None,
    seed: int | None,
    output: Path | None,
    as_json: bool,
    url: str | None,
    api_key: str | None,
) -> None:
    """Upscale IMAGE (PNG, JPEG or WebP) and save the larger picture as a PNG."""
    options: dict[str, Any] = {"seed": seed} if seed is not None else {}
    with open_client(url, api_key) as client:
        job = client.images.submit_upscale(
            image,
            factor=int(factor) if factor else None,
            model=model,
            prompt=prompt,
            **options,
        )
        result = await_result(client, job, show_progress=not as_json)
        path = output or image.with_name(f"{image.stem}-x{factor or 'up'}.png")
        result.data[0].save(path)
    if as_json:
        print_json(result)
    else:
        click.echo(f"{path}  {result.data[0].url or ''}".rstrip())
