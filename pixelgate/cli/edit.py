"""`pixelgate edit`: image-to-image or inpainting of a local picture, with progress."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from pixelgate.cli.common import (
    connection_options,
    fallback_option,
    open_client,
    print_json,
    say_who_served,
)
from pixelgate.cli.generate import parse_option
from pixelgate.cli.results import await_result, output_paths


@click.command()
@click.argument("image", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--prompt", "-p", required=True, help="What the edited picture shows.")
@click.option("--model", "-m", default="local/tiny", show_default=True, help="A model id or alias.")
@click.option(
    "--mask",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Inpainting mask: white repaints, black keeps. Without it: image-to-image.",
)
@click.option(
    "--strength", type=float, default=None, help="0 < s <= 1: how far to move from IMAGE."
)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Where to write the image [default: <job id>.png]; several: out-1.png, ...",
)
@click.option("--seed", type=int, default=None, help="Seed, for a reproducible image.")
@click.option("--steps", type=int, default=None, help="Denoising steps (num_steps).")
@click.option("--guidance", type=float, default=None, help="Guidance scale.")
@click.option("--n", "count", type=int, default=None, help="Number of images.")
@click.option(
    "--option",
    "extra_options",
    multiple=True,
    metavar="KEY=VALUE",
    help="Any other model option; the value is read as JSON when it is JSON. Repeatable.",
)
@fallback_option
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON, no progress bar.")
@connection_options
def edit(
    image: Path,
    prompt: str,
    model: str,
    mask: Path | None,
    strength: float | None,
    output: Path | None,
    seed: int | None,
    steps: int | None,
    guidance: float | None,
    count: int | None,
    extra_options: tuple[str, ...],
    fallbacks: tuple[str, ...],
    as_json: bool,
    url: str | None,
    api_key: str | None,
) -> None:
    """Edit IMAGE (PNG, JPEG or WebP) following PROMPT, and save the result."""
    options: dict[str, Any] = dict(parse_option(text) for text in extra_options)
    flags = {
        "strength": strength,
        "seed": seed,
        "num_steps": steps,
        "guidance_scale": guidance,
        "n": count,
    }
    options.update({name: value for name, value in flags.items() if value is not None})
    with open_client(url, api_key) as client:
        job = client.images.submit_edit(
            image, model=model, prompt=prompt, mask=mask, fallbacks=fallbacks or None, **options
        )
        result = await_result(client, job, show_progress=not as_json)
        if not as_json:
            say_who_served(result.model, result.requested_model)
        paths = output_paths(output, len(result.data), job_id=job.id, extension="png")
        for item, path in zip(result.data, paths, strict=True):
            item.save(path)
            if not as_json:
                click.echo(f"{path}  {item.url or ''}".rstrip())
        if not as_json:
            for change in result.adjustments or []:
                click.echo(
                    f"note: {change['param']} resized {change['from']} -> {change['to']}: "
                    f"{change['reason']}",
                    err=True,
                )
    if as_json:
        print_json(result)
