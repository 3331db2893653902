"""`pixelgate webhooks secret [--rotate]`."""

from __future__ import annotations

import click

from pixelgate.cli.common import connection_options, open_client


@click.group()
def webhooks() -> None:
    """Your webhook signing secret."""


@webhooks.command("secret")
@click.option(
    "--rotate",
    is_flag=True,
    help="Make a new secret; for 24 hours deliveries are signed with the old one too.",
)
@connection_options
def secret(rotate: bool, url: str | None, api_key: str | None) -> None:
    """Print the secret (`whsec_...`) that signs your webhook deliveries (Standard Webhooks);
    verify them with `pixelgate.verify_webhook(body, headers, secret)`."""
    with open_client(url, api_key) as client:
        key = client.webhooks.rotate_secret() if rotate else client.webhooks.secret()
    click.echo(key)
