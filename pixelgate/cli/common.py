"""What every client command shares: connection options, exit codes, error output."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.table import Table

from pixelgate.cli.group import EXIT_OK, describe, exit_code
from pixelgate.errors import Error
from pixelgate.sdk import Client, Page
from pixelgate.sdk.types import to_jsonable

F = TypeVar("F", bound=Callable[..., Any])


def connection_options(func: F) -> F:
    """`--url` and `--api-key`, with the SDK's fallbacks when neither flag nor variable is set."""
    func = click.option(
        "--api-key",
        envvar="PIXELGATE_API_KEY",
        default=None,
        help="API key [default: PIXELGATE_API_KEY, else a local server's admin key file].",
    )(func)
    func = click.option(
        "--url",
        envvar="PIXELGATE_URL",
        default=None,
        help="Server URL [default: PIXELGATE_URL, else http://127.0.0.1:8000].",
    )(func)
    return func


def open_client(url: str | None, api_key: str | None) -> Client:
    return Client(base_url=url, api_key=api_key)


def stderr_console() -> Console:
    return Console(stderr=True, highlight=False)


def print_json(value: Any) -> None:
    """SDK objects (or plain data) as indented JSON on stdout."""
    click.echo(json.dumps(to_jsonable(value), indent=2))


def delete_each(ids: tuple[str, ...], delete: Callable[[str], None]) -> None:
    """Delete every id in turn, one line each; one that fails is reported on stderr and the
    rest go on, and the command exits with the status of the last failure."""
    status = EXIT_OK
    for item_id in ids:
        try:
            delete(item_id)
        except Error as error:
            click.echo(f"{item_id}: {describe(error)}", err=True)
            status = exit_code(error)
        else:
            click.echo(f"{item_id}: deleted")
    if status != EXIT_OK:
        raise SystemExit(status)


def print_page(table: Table, page: Page[Any]) -> None:
    """A page's table on stdout and, on stderr, how to ask for the next page if any."""
    Console(highlight=False).print(table)
    if page.has_more:
        stderr_console().print(f"more: --after {page.last_id}")


fallback_option = click.option(
    "--fallback",
    "fallbacks",
    multiple=True,
    metavar="MODEL",
    help="A model to serve the request when --model cannot (unavailable, rate-limited "
    "upstream, or failed before its provider billed anything). Repeatable, tried in order; "
    "at most 3. Unset: the catalog's default route, if any.",
)
"""`--fallback MODEL` of the commands that make images (`generate`, `edit`)."""


def say_who_served(model: str, requested: str | None) -> None:
    """Tell the user when a fallback, not the model they asked for, made the images."""
    if requested is not None and requested != model:
        click.echo(f"served by {model} (fallback for {requested})")
