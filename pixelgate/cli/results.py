"""Following a submitted job to its images, and where to write them."""

from __future__ import annotations

from pathlib import Path

import click
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)

from pixelgate.cli.common import stderr_console
from pixelgate.sdk import Client, ImagesResponse, Job


def await_result(client: Client, job: Job, *, show_progress: bool) -> ImagesResponse:
    """Follow a submitted job to its end and return its images; the job's own error is
    raised, and Ctrl-C cancels the job (it runs on the server) before exiting. What the job
    cost is said on stderr, beside its id."""
    click.echo(f"job {job.id}", err=True)
    try:
        job = follow(client, job, show_progress=show_progress)
    except KeyboardInterrupt:
        client.jobs.cancel(job.id)
        click.echo(f"interrupted: canceled job {job.id}", err=True)
        raise SystemExit(130) from None
    if job.cost is not None:
        click.echo(f"cost {job.cost}", err=True)
    job.raise_for_status()
    if job.result is None:
        raise click.ClickException(f"Job {job.id} succeeded without a result")
    return job.result


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
