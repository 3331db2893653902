"""The `pixelgate` command group: errors as a line on stderr and an exit status, and each
command's module imported only when that command runs. Light on purpose (click and
`pixelgate.errors` only): `pixelgate serve` starts its model worker process before anything
heavier is imported (the client commands' SDK and rich took 0.2 s of CPU)."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

import click

from pixelgate.errors import (
    BackendError,
    Canceled,
    Error,
    Forbidden,
    ModelAccessDenied,
    ModelUnavailable,
    NotFound,
    Timeout,
    Unauthorized,
    ValidationError,
)

EXIT_OK = 0
EXIT_OTHER = 1
EXIT_CODES: tuple[tuple[type[Error], int], ...] = (
    (ValidationError, 2),
    (Unauthorized, 3),
    (Forbidden, 3),
    (ModelAccessDenied, 3),
    (NotFound, 4),
    (BackendError, 5),
    (ModelUnavailable, 5),
    (Timeout, 6),
    (Canceled, 7),
)
"""Exit status per failure kind; 2 is also click's own for usage errors."""


def exit_code(error: Error) -> int:
    for kind, code in EXIT_CODES:
        if isinstance(error, kind):
            return code
    return EXIT_OTHER


def describe(error: Error) -> str:
    """`error [CODE] message (param: p)`, as printed on stderr."""
    text = f"error [{error.code}] {error.message}"
    return f"{text} (param: {error.param})" if error.param else text


class ErrorReportingGroup(click.Group):
    """A command group that turns `pixelgate.errors` exceptions into a line on stderr and
    the exit status of their kind. `lazy` names commands by `module:attribute`, imported
    when first asked for (click's lazy-loading pattern)."""

    def __init__(self, *args: Any, lazy: Mapping[str, str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lazy = dict(lazy or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self._lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        where = self._lazy.get(cmd_name)
        if where is None:
            return super().get_command(ctx, cmd_name)
        module, _, attribute = where.partition(":")
        command = getattr(importlib.import_module(module), attribute)
        if not isinstance(command, click.Command):
            raise TypeError(f"{where} is not a click command")
        return command

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except Error as error:
            click.echo(describe(error), err=True)
            ctx.exit(exit_code(error))
