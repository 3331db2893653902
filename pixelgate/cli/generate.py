"""`pixelgate generate`: submit, follow the job's progress, save the images."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)

from pixelgate.cli.common import connection_options, open_client, print_json, stderr_console
from pixelgate.sdk import Client, Job


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


def output_paths(output: Path | None, count: int, *, job_id: str, extension: str) -> list[Path]:
    """`out.png` for one image; `out-1.png`, `out-2.png`, ... for several."""
    base = output or Path(f"{job_id}.{extension}")
    if count == 1:
        return [base]
    return [base.with_name(f"{base.stem}-{index}{base.suffix}") for index in range(1, count + 1)]


def follow(client: Client, job: Job, *, show_progress: bool) -> Job:
    """Follow the job's events to its end, with a progress bar on stderr."""
    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=stderr_console(), disable=not show_progress) as progress:
        task = progress.add_task(f"{job.model}: queued", total=None)
        for event in client.jobs.events(job.id):
            if event.type == "running":
                progress.update(task, description=f"{job.model}: running")
            elif event.type == "progress" and event.total:
                progress.update(task, completed=event.step or 0, total=event.total)
            elif event.is_terminal:
                progress.update(task, description=f"{job.model}: {event.type}")
                if event.job is not None:
                    return event.job
    return client.jobs.get(job.id)


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
        job = client.images.submit(model=model, prompt=prompt, **options)
        click.echo(f"job {job.id}", err=True)
        try:
            job = follow(client, job, show_progress=not as_json)
        except KeyboardInterrupt:
            # the job runs on the server; stopping the command should stop it too
            client.jobs.cancel(job.id)
            click.echo(f"interrupted: canceled job {job.id}", err=True)
            raise SystemExit(130) from None
        job.raise_for_status()
        result = job.result
        if result is None:
            raise click.ClickException(f"Job {job.id} succeeded without a result")
        paths = output_paths(
            output, len(result.data), job_id=job.id, extension=output_format or "png"
        )
        for image, path in zip(result.data, paths, strict=True):
            image.save(path)
            if not as_json:
                click.echo(f"{path}  {image.url or ''}".rstrip())
    if as_json:
        print_json(result)
