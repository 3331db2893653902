"""`pixelgate jobs get|cancel|list|delete`."""

from __future__ import annotations

import click
from rich.console import Console
from rich.table import Table

from pixelgate.cli.common import (
    connection_options,
    delete_each,
    open_client,
    print_json,
    print_page,
)
from pixelgate.sdk import Job
from pixelgate.sdk.endpoints import JobStatusFilter


def job_table(job: Job) -> Table:
    table = Table(show_header=False, box=None)
    table.add_column("field", style="bold", no_wrap=True)
    table.add_column("value", overflow="fold")
    rows: list[tuple[str, str | None]] = [
        ("id", job.id),
        ("model", job.model),
        ("status", job.status),
        ("created", job.created_at.isoformat()),
        ("started", job.started_at.isoformat() if job.started_at else None),
        ("finished", job.finished_at.isoformat() if job.finished_at else None),
        ("cancel requested", "yes" if job.cancel_requested else None),
        ("cost", str(job.cost) if job.cost else None),
        ("error", f"[{job.error.code}] {job.error.message}" if job.error else None),
    ]
    for index, image in enumerate(job.result.data if job.result else [], start=1):
        rows.append((f"image {index}", image.url or image.file_id))
    for name, value in rows:
        if value is not None:
            table.add_row(name, value)
    return table


@click.group()
def jobs() -> None:
    """Look at, cancel and delete jobs."""


@jobs.command()
@click.argument("job_id")
@click.option("--json", "as_json", is_flag=True, help="Print the job as JSON.")
@connection_options
def get(job_id: str, as_json: bool, url: str | None, api_key: str | None) -> None:
    """Show a job: status, times, error, images."""
    with open_client(url, api_key) as client:
        job = client.jobs.get(job_id)
    if as_json:
        print_json(job)
    else:
        Console(highlight=False).print(job_table(job))


@jobs.command()
@click.argument("job_id")
@click.option("--json", "as_json", is_flag=True, help="Print the job as JSON.")
@connection_options
def cancel(job_id: str, as_json: bool, url: str | None, api_key: str | None) -> None:
    """Cancel a job: a queued one at once, a running one at its next step."""
    with open_client(url, api_key) as client:
        job = client.jobs.cancel(job_id)
    if as_json:
        print_json(job)
    elif job.status == "canceled":
        click.echo(f"{job.id}: canceled")
    elif job.is_terminal:
        click.echo(f"{job.id}: already {job.status}")
    else:
        click.echo(f"{job.id}: cancel requested ({job.status})")


@jobs.command("list")
@click.option(
    "--status",
    type=click.Choice(["queued", "running", "succeeded", "failed", "canceled"]),
    default=None,
    help="Only jobs in this state.",
)
@click.option("--model", default=None, help="Only this model's jobs.")
@click.option("--q", default=None, help="Only jobs whose prompt contains this text (any case).")
@click.option("--limit", type=click.IntRange(1, 100), default=20, show_default=True)
@click.option("--after", default=None, help="The page after this job id (older jobs).")
@click.option("--json", "as_json", is_flag=True, help="Print the jobs as JSON.")
@connection_options
def list_jobs(
    status: JobStatusFilter | None,
    model: str | None,
    q: str | None,
    limit: int,
    after: str | None,
    as_json: bool,
    url: str | None,
    api_key: str | None,
) -> None:
    """Your jobs, newest first, a page at a time."""
    with open_client(url, api_key) as client:
        found = client.jobs.list(status=status, model=model, q=q, limit=limit, after=after)
    if as_json:
        print_json(found)
        return
    table = Table(box=None)
    for name in ("id", "task", "model", "status"):
        table.add_column(name, no_wrap=True)
    table.add_column("created", overflow="fold")
    table.add_column("cost", overflow="fold", justify="right")
    table.add_column("images / error", overflow="fold")
    for job in found:
        if job.error:
            outcome = f"[{job.error.code}] {job.error.message}"
        else:
            outcome = str(len(job.result.data)) if job.result else ""
        created = job.created_at.strftime("%Y-%m-%d %H:%M:%S")
        cost = str(job.cost.amount) if job.cost else ""  # the currency: one, in `jobs get`
        table.add_row(job.id, job.task, job.model, job.status, created, cost, outcome)
    print_page(table, found)


@jobs.command()
@click.argument("job_ids", nargs=-1, required=True)
@connection_options
def delete(job_ids: tuple[str, ...], url: str | None, api_key: str | None) -> None:
    """Delete finished jobs with their files (cancel a queued or running one first)."""
    with open_client(url, api_key) as client:
        delete_each(job_ids, client.jobs.delete)
