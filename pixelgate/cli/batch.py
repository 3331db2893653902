"""`pixelgate batch`: send a file of generate requests as one batch, follow it, save the
images."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from pixelgate.cli.common import connection_options, open_client, print_json, stderr_console
from pixelgate.cli.generate import parse_option
from pixelgate.sdk import Batch, Client
from pixelgate.sdk.types import media_type_of

POLL_SECONDS = 1.0


def read_requests(
    path: Path, *, model: str | None, options: dict[str, Any]
) -> list[dict[str, Any]]:
    """One request per line: a JSON object (a generate body) or a bare prompt; blank lines are
    skipped. `model` and `options` fill what a line does not say."""
    requests = []
    lines = path.read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines, start=1):
        text = line.strip()
        if not text:
            continue
        body: dict[str, Any]
        if text.startswith("{"):
            try:
                body = json.loads(text)
            except ValueError as exc:
                raise click.BadParameter(
                    f"line {number} is not valid JSON: {exc}", param_hint="PROMPTS"
                ) from None
        else:
            body = {"prompt": json.loads(text) if text.startswith('"') else text}
        body = {**options, **body}
        if "model" not in body:
            if model is None:
                raise click.UsageError(f"line {number} names no model; pass --model")
            body["model"] = model
        requests.append(body)
    if not requests:
        raise click.BadParameter(f"{path} holds no requests", param_hint="PROMPTS")
    return requests


@click.command()
@click.argument("prompts", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--model", "-m", default=None, help="The model of lines that name none.")
@click.option(
    "--option",
    "extra_options",
    multiple=True,
    metavar="KEY=VALUE",
    help="A model option for lines that do not set it (`width=512`). Repeatable.",
)
@click.option("--no-wait", is_flag=True, help="Print the batch id and return at once.")
@click.option(
    "--output-dir",
    "-o",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Save each item's images here, as <line index>-<image>.<format>.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the batch as JSON at the end.")
@connection_options
def batch(
    prompts: Path,
    model: str | None,
    extra_options: tuple[str, ...],
    no_wait: bool,
    output_dir: Path | None,
    as_json: bool,
    url: str | None,
    api_key: str | None,
) -> None:
    """Send the requests in PROMPTS (JSON lines: one generate body or bare prompt per line) as
    one batch; wait for it with a progress bar and save the images with --output-dir."""
    options = dict(parse_option(text) for text in extra_options)
    requests = read_requests(prompts, model=model, options=options)
    with open_client(url, api_key) as client:
        created = client.batches.create(requests)
        click.echo(created.id)
        if no_wait:
            return
        try:
            done = follow(client, created, show_progress=not as_json)
        except KeyboardInterrupt:
            client.batches.cancel(created.id)
            click.echo(f"interrupted: canceled batch {created.id}", err=True)
            raise SystemExit(130) from None
        if output_dir is not None:
            save_outputs(done, output_dir)
    if as_json:
        print_json(done)
    failed = [item for item in done.items or [] if item.status == "failed"]
    for item in failed:
        reason = f"[{item.error.code}] {item.error.message}" if item.error else "failed"
        click.echo(f"request {item.index}: {reason}", err=True)
    if failed:
        raise SystemExit(1)


def follow(client: Client, batch: Batch, *, show_progress: bool) -> Batch:
    """Poll the batch until no item is pending, queued or running, with a progress bar."""
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=stderr_console(), disable=not show_progress) as progress:
        task = progress.add_task(f"batch {batch.id}", total=batch.total)
        while True:
            batch = client.batches.get(batch.id)
            counts = batch.counts
            progress.update(
                task,
                completed=batch.finished,
                description=f"{counts['running']} running, {counts['queued']} queued, "
                f"{counts['pending']} waiting, {counts['failed']} failed",
            )
            if batch.is_done:
                return batch
            time.sleep(POLL_SECONDS)


def save_outputs(batch: Batch, directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for item in batch.items or []:
        for number, image in enumerate(item.outputs, start=1):
            data = image.content()
            extension = media_type_of(data).removeprefix("image/")
            path = directory / f"{item.index:03d}-{number}.{extension}"
            path.write_bytes(data)
            click.echo(path)
