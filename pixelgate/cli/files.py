"""`pixelgate files list|delete`."""

from __future__ import annotations

import click
from rich.table import Table

from pixelgate.cli.common import (
    connection_options,
    delete_each,
    open_client,
    print_json,
    print_page,
)


@click.group()
def files() -> None:
    """List and delete your stored results."""


@files.command("list")
@click.option("--model", default=None, help="Only files made by this model.")
@click.option("--job", "job_id", default=None, help="Only this job's files.")
@click.option("--q", default=None, help="Only files whose prompt contains this text (any case).")
@click.option("--since", default=None, help="Created at or after (ISO 8601 or unix seconds).")
@click.option("--until", default=None, help="Created before (ISO 8601 or unix seconds).")
@click.option("--limit", type=click.IntRange(1, 100), default=20, show_default=True)
@click.option("--after", default=None, help="The page after this file id (older files).")
@click.option("--json", "as_json", is_flag=True, help="Print the files as JSON.")
@connection_options
def list_files(
    model: str | None,
    job_id: str | None,
    q: str | None,
    since: str | None,
    until: str | None,
    limit: int,
    after: str | None,
    as_json: bool,
    url: str | None,
    api_key: str | None,
) -> None:
    """Your stored results, newest first, a page at a time (`--json` for every field, the
    job ids included)."""
    with open_client(url, api_key) as client:
        page = client.files.list(
            model=model,
            job_id=job_id,
            q=q,
            created_after=since,
            created_before=until,
            limit=limit,
            after=after,
        )
    if as_json:
        print_json(page)
        return
    table = Table(box=None)
    table.add_column("id", no_wrap=True)
    for name in ("model", "size", "created", "prompt"):
        table.add_column(name, overflow="fold")
    for item in page:
        created = item.created_at.strftime("%Y-%m-%d %H:%M")
        size = f"{item.width}x{item.height}"
        table.add_row(item.id, item.model or "", size, created, item.prompt)
    print_page(table, page)


@files.command()
@click.argument("file_ids", nargs=-1, required=True)
@connection_options
def delete(file_ids: tuple[str, ...], url: str | None, api_key: str | None) -> None:
    """Delete stored results; their links stop working at once."""
    with open_client(url, api_key) as client:
        delete_each(file_ids, client.files.delete)
