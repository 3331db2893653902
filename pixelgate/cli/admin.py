"""`pixelgate tenants ...`, `pixelgate keys ...`, `pixelgate usage`."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from pixelgate.cli.common import connection_options, open_client, print_json

console = Console(highlight=False)


def tenant_options(function: Any) -> Any:
    """The settable fields of a tenant, as options; what is not given is left alone."""
    options = [
        click.option("--name", default=None, help="Display name."),
        click.option("--allow", "allow_models", multiple=True, help="Allowed model or pattern."),
        click.option("--deny", "deny_models", multiple=True, help="Denied model or pattern."),
        click.option("--budget-total", default=None, help="Lifetime budget, e.g. 100.00."),
        click.option("--budget-monthly", default=None, help="Budget per calendar month."),
        click.option("--rpm", type=int, default=None, help="Requests per minute."),
        click.option("--images-per-day", type=int, default=None, help="Images per day."),
        click.option("--concurrent", type=int, default=None, help="Jobs queued or running."),
        click.option("--cache-policy", type=click.Choice(["free", "charge"]), default=None),
        click.option(
            "--retention-days",
            type=float,
            default=None,
            help="Keep its results and jobs this many days (its stored files too).",
        ),
        click.option(
            "--own-keys-only/--any-keys",
            default=None,
            help="Only the models it runs with its own provider keys (see set-key).",
        ),
        click.option(
            "--own-keys-billing",
            type=click.Choice(["free", "charge"]),
            default=None,
            help="What a job run with its own provider key costs here: nothing, or the price.",
        ),
        click.option(
            "--price",
            "prices",
            multiple=True,
            metavar="MODEL:KEY=AMOUNT",
            help="A price per image, e.g. 'openai/dall-e-3:hd 1024x1024=0.09'.",
        ),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def tenant_fields(values: dict[str, Any]) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for name in (
        "name",
        "budget_total",
        "budget_monthly",
        "cache_policy",
        "retention_days",
        "own_keys_only",
        "own_keys_billing",
    ):
        if values[name] is not None:
            fields[name] = values[name]
    for name in ("allow_models", "deny_models"):
        if values[name]:
            fields[name] = list(values[name])
    limits = {
        "requests_per_minute": values["rpm"],
        "images_per_day": values["images_per_day"],
        "concurrent_jobs": values["concurrent"],
    }
    if any(v is not None for v in limits.values()):
        fields["limits"] = {k: v for k, v in limits.items() if v is not None}
    if values["prices"]:
        prices: dict[str, dict[str, str]] = {}
        for entry in values["prices"]:
            model, _, rest = entry.partition(":")
            key, _, amount = rest.partition("=")
            if not (model and key and amount):
                raise click.BadParameter(f"{entry!r}: use MODEL:KEY=AMOUNT", param_hint="--price")
            prices.setdefault(model, {})[key] = amount
        fields["prices"] = prices
    return fields


def show_tenant(tenant: dict[str, Any]) -> None:
    table = Table(show_header=False, box=None)
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    shown = ("id", "name", "allow_models", "deny_models", "cache_policy", "limits", "prices")
    for name in (*shown, "retention_days", "own_keys_only", "own_keys_billing", "erased_at"):
        if tenant.get(name) is not None:
            table.add_row(name, str(tenant[name]))
    for provider, key in (tenant.get("provider_keys") or {}).items():
        table.add_row(f"key {provider}", f"set, ending {key['last4']}")
    for budget in tenant.get("budgets", []):
        limit = budget["limit"] or "no limit"
        table.add_row(
            f"budget {budget['period']}",
            f"{budget['spent']} spent, {budget['reserved']} reserved, limit {limit}",
        )
    console.print(table)


@click.group()
def tenants() -> None:
    """Manage tenants: model access, prices, budgets, limits (admin key)."""


@tenants.command("create")
@click.argument("tenant_id")
@tenant_options
@click.option("--json", "as_json", is_flag=True)
@connection_options
def create_tenant(
    tenant_id: str, as_json: bool, url: str | None, api_key: str | None, **values: Any
) -> None:
    fields = tenant_fields(values)
    fields.setdefault("name", tenant_id)
    with open_client(url, api_key) as client:
        tenant = client.admin.create_tenant(tenant_id, **fields)
    print_json(tenant) if as_json else show_tenant(tenant)


@tenants.command("update")
@click.argument("tenant_id")
@tenant_options
@click.option("--json", "as_json", is_flag=True)
@connection_options
def update_tenant(
    tenant_id: str, as_json: bool, url: str | None, api_key: str | None, **values: Any
) -> None:
    with open_client(url, api_key) as client:
        tenant = client.admin.update_tenant(tenant_id, **tenant_fields(values))
    print_json(tenant) if as_json else show_tenant(tenant)


@tenants.command("show")
@click.argument("tenant_id")
@click.option("--json", "as_json", is_flag=True)
@connection_options
def show(tenant_id: str, as_json: bool, url: str | None, api_key: str | None) -> None:
    with open_client(url, api_key) as client:
        tenant = client.admin.get_tenant(tenant_id)
    print_json(tenant) if as_json else show_tenant(tenant)


@tenants.command("erase")
@click.argument("tenant_id")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--json", "as_json", is_flag=True)
@connection_options
def erase_tenant(
    tenant_id: str, yes: bool, as_json: bool, url: str | None, api_key: str | None
) -> None:
    """Delete all of a tenant's jobs, files, keys and usage; only its budget accounts and a
    tombstone stay. Refused while it has jobs queued or running."""
    if not yes:
        click.confirm(f"Erase tenant {tenant_id!r} and everything it stored?", abort=True)
    with open_client(url, api_key) as client:
        erased = client.admin.erase_tenant(tenant_id)
    if as_json:
        print_json(erased)
        return
    click.echo(
        f"{tenant_id}: erased {erased['jobs']} jobs, {erased['files']} files, "
        f"{erased['blobs']} blobs, {erased['api_keys']} API keys"
    )
    for kept in erased["kept"]:
        click.echo(f"kept: {kept}")


@tenants.command("set-key")
@click.argument("tenant_id")
@click.argument("provider")
@click.argument("key", required=False)
@click.option("--remove", is_flag=True, help="Remove the tenant's key: the server's is used.")
@click.option("--json", "as_json", is_flag=True)
@connection_options
def set_key(
    tenant_id: str,
    provider: str,
    key: str | None,
    remove: bool,
    as_json: bool,
    url: str | None,
    api_key: str | None,
) -> None:
    """Set the tenant's own API key for PROVIDER (openai, stability, bfl, fal, google: a
    Gemini key), used for its requests instead of the server's. Without KEY it is read from
    a prompt, or from standard input when that is not a terminal, so that it stays out of the
    shell's history. Stored encrypted; only its last 4 characters are ever shown."""
    if remove and key is not None:
        raise click.UsageError("give KEY or --remove, not both")
    if not remove and key is None:
        key = read_secret(f"{provider} API key for {tenant_id}")
    with open_client(url, api_key) as client:
        if remove:
            tenant = client.admin.remove_provider_key(tenant_id, provider)
        else:
            assert key is not None
            tenant = client.admin.set_provider_key(tenant_id, provider, key)
    print_json(tenant) if as_json else show_tenant(tenant)


def read_secret(prompt: str) -> str:
    """A secret from a hidden prompt, or the first line of standard input when it is piped."""
    if sys.stdin.isatty():
        value = str(click.prompt(prompt, hide_input=True))
    else:
        value = sys.stdin.readline()
    value = value.strip()
    if not value:
        raise click.UsageError("no key given (as KEY, at the prompt or on standard input)")
    return value


@tenants.command("rotate-keys")
@connection_options
def rotate_keys(url: str | None, api_key: str | None) -> None:
    """Encrypt every tenant's provider keys again under the server's first secret key (put a
    new key first in PIXELGATE_PROVIDER_KEYS_SECRET, the old one after it, restart, run this,
    then drop the old one)."""
    with open_client(url, api_key) as client:
        rotation = client.admin.rotate_provider_keys()
    click.echo(
        f"{rotation['rotated']} provider keys and {rotation['webhook_secrets']} webhook signing "
        "secrets encrypted under the first secret key"
    )


@tenants.command("list")
@click.option("--json", "as_json", is_flag=True)
@connection_options
def list_tenants(as_json: bool, url: str | None, api_key: str | None) -> None:
    with open_client(url, api_key) as client:
        found = client.admin.list_tenants()
    if as_json:
        print_json(found)
        return
    table = Table("id", "name", "models", "spent (total)")
    for tenant in found:
        total = next((b for b in tenant["budgets"] if b["period"] == "total"), {"spent": "0.00"})
        table.add_row(
            tenant["id"], tenant["name"], str(tenant["allow_models"] or "all"), total["spent"]
        )
    console.print(table)


@click.group()
def keys() -> None:
    """Create, list and revoke API keys (admin key)."""


@keys.command("create")
@click.option("--tenant", "tenant_id", default="default", show_default=True)
@click.option("--name", required=True)
@click.option(
    "--scope", "scopes", multiple=True,
    type=click.Choice(["admin", "tenant_admin", "generate", "read"]),
    help="Repeat for several [default: generate, read]. `admin` is the operators' (every "
    "tenant; default tenant only); `tenant_admin` manages its own tenant's keys.",
)  # fmt: skip
@click.option("--expires-in-days", type=float, default=None)
@click.option("--json", "as_json", is_flag=True)
@connection_options
def create_key(
    tenant_id: str,
    name: str,
    scopes: tuple[str, ...],
    expires_in_days: float | None,
    as_json: bool,
    url: str | None,
    api_key: str | None,
) -> None:
    """Print a new key. It is shown this once: store it now."""
    expires_at = None
    if expires_in_days is not None:
        expires_at = (datetime.now(UTC) + timedelta(days=expires_in_days)).isoformat()
    with open_client(url, api_key) as client:
        created = client.admin.create_key(
            tenant_id=tenant_id, name=name, scopes=list(scopes) or None, expires_at=expires_at
        )
    if as_json:
        print_json(created)
    else:
        click.echo(created["key"])
        click.echo(f"({created['id']} for tenant {tenant_id}; shown once)", err=True)


@keys.command("list")
@click.option("--tenant", "tenant_id", default=None)
@click.option("--json", "as_json", is_flag=True)
@connection_options
def list_keys(tenant_id: str | None, as_json: bool, url: str | None, api_key: str | None) -> None:
    with open_client(url, api_key) as client:
        found = client.admin.list_keys(tenant_id)
    if as_json:
        print_json(found)
        return
    table = Table("id", "tenant", "name", "prefix", "scopes", "expires", "revoked")
    for key in found:
        table.add_row(
            key["id"], key["tenant_id"], key["name"], key["prefix"] + "…",
            ",".join(key["scopes"]), key["expires_at"] or "", key["revoked_at"] or "",
        )  # fmt: skip
    console.print(table)


@keys.command("revoke")
@click.argument("key_id")
@connection_options
def revoke_key(key_id: str, url: str | None, api_key: str | None) -> None:
    with open_client(url, api_key) as client:
        key = client.admin.revoke_key(key_id)
    click.echo(f"{key['id']}: revoked at {key['revoked_at']}")


@click.command()
@click.option("--days", type=int, default=30, show_default=True)
@click.option("--tenant", "tenant_id", default=None, help="Another tenant's (admin key).")
@click.option("--json", "as_json", is_flag=True)
@connection_options
def usage(
    days: int, tenant_id: str | None, as_json: bool, url: str | None, api_key: str | None
) -> None:
    """Spend and images, by model and by day, and the budgets left."""
    with open_client(url, api_key) as client:
        if tenant_id:
            report = client.admin.usage(days=days, tenant_id=tenant_id)[0]
        else:
            report = client.admin.my_usage(days=days)
    if as_json:
        print_json(report)
        return
    spent, images = report["spent"], report["images"]
    console.print(
        f"[bold]{report['tenant_id']}[/]: {spent} spent on {images} images in {days} days"
    )
    table = Table("model", "images", "spent")
    for model, bucket in report["by_model"].items():
        table.add_row(model, str(bucket["images"]), bucket["spent"])
    console.print(table)
    for budget in report["budgets"]:
        left = budget["remaining"] if budget["remaining"] is not None else "no limit"
        console.print(f"budget {budget['period']}: {budget['spent']} spent, {left} left")
