"""`pixelgate generate`: submit, follow the job's progress, save the images."""

from __future__ import annotations

import json
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
from pixelgate.cli.results import await_result, output_paths


def parse_option(text: str) -> tuple[str, Any]:
    """`key=value`, the value read as JSON when it is JSON (`steps=4`, `tiling=true`) and as a
    string otherwise (`style=vivid`)."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise click.BadParameter(f"expected key=value, got {text!r}", param_hint="--option")
    try:
        value: Any = json.loads(raw)
    except ValueError:
        value = raw
    return key.strip(), value


@click.command()
@click.argument("prompt")
@click.option("--model", "-m", required=True, help="A catalog model id or alias.")
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Where to write the image [default: <job id>.<format>]; several: out-1.png, ...",
)
@click.option("--seed", type=int, default=None, help="Seed, for a reproducible image.")
@click.option("--width", type=int, default=None)
@click.option("--height", type=int, default=None)
@click.option("--steps", type=int, default=None, help="Denoising steps (num_steps).")
@click.option("--guidance", type=float, default=None, help="Guidance scale.")
@click.option("--negative-prompt", default=None, help="What not to draw.")
@click.option("--n", "count", type=int, default=None, help="Number of images.")
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["png", "jpeg", "webp"]),
    default=None,
    help="Image format [default: the model's].",
)
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
def generate(
    prompt: str,
    model: str,
    output: Path | None,
    seed: int | None,
    width: int | None,
    height: int | None,
    steps: int | None,
    guidance: float | None,
    negative_prompt: str | None,
    count: int | None,
    output_format: str | None,
    extra_options: tuple[str, ...],
    fallbacks: tuple[str, ...],
    as_json: bool,
    url: str | None,
    api_key: str | None,
) -> None:
    """Generate images from PROMPT and save them."""
    options: dict[str, Any] = dict(parse_option(text) for text in extra_options)
    flags = {
        "seed": seed,
        "width": width,
        "height": height,
        "num_steps": steps,
        "guidance_scale": guidance,
        "negative_prompt": negative_prompt,
        "n": count,
        "output_format": output_format,
    }
    options.update({name: value for name, value in flags.items() if value is not None})

    with open_client(url, api_key) as client:
        job = client.images.submit(
            model=model, prompt=prompt, fallbacks=fallbacks or None, **options
        )
        result = await_result(client, job, show_progress=not as_json)
        if not as_json:
            say_who_served(result.model, result.requested_model)
        paths = output_paths(
            output, len(result.data), job_id=job.id, extension=output_format or "png"
        )
        for image, path in zip(result.data, paths, strict=True):
            image.save(path)
            if not as_json:
                click.echo(f"{path}  {image.url or ''}".rstrip())
    if as_json:
        print_json(result)
