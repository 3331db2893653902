"""Admin and usage: tenants, keys, prices, budgets, limits, spend. Answers are the API's JSON
objects (dicts); money is a decimal string.

    with pixelgate.Client() as client:  # an admin key
        client.admin.create_tenant("acme", name="Acme", budget_monthly="50.00")
        key = client.admin.create_key(tenant_id="acme", name="backend")["key"]  # shown once
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from pixelgate.sdk.transport import AsyncTransport, SyncTransport, data_list, data_object

TENANTS = "/v1/admin/tenants"
KEYS = "/v1/admin/keys"
ROTATE_PROVIDER_KEYS = "/v1/admin/provider-keys/rotate"


def _tenant_path(tenant_id: str) -> str:
    return f"{TENANTS}/{quote(tenant_id, safe='')}"


def _key_body(
    tenant_id: str,
    name: str,
    scopes: list[str] | None,
    expires_at: str | None,
    limits: dict[str, int] | None,
) -> dict[str, Any]:
    body: dict[str, Any] = {"tenant_id": tenant_id, "name": name}
    if scopes is not None:
        body["scopes"] = scopes
    if expires_at is not None:
        body["expires_at"] = expires_at
    if limits is not None:
        body["limits"] = limits
    return body


def _usage_params(days: int, tenant_id: str | None = None) -> dict[str, str]:
    params = {"days": str(days)}
    if tenant_id is not None:
        params["tenant_id"] = tenant_id
    return params


class Admin:
    def __init__(self, transport: SyncTransport) -> None:
        self._transport = transport

    def create_tenant(self, tenant_id: str | None = None, **fields: Any) -> dict[str, Any]:
        """Fields: name, allow_models, deny_models, prices, budget_total, budget_monthly,
        limits, cache_policy, safety_threshold, retention_days, provider_keys, own_keys_only,
        own_keys_billing."""
        body = {**fields, "id": tenant_id} if tenant_id else fields
        return data_object(self._transport.request("POST", TENANTS, json=body))

    def update_tenant(self, tenant_id: str, **fields: Any) -> dict[str, Any]:
        """Only the fields given change; None clears one."""
        response = self._transport.request("PATCH", _tenant_path(tenant_id), json=fields)
        return data_object(response)

    def get_tenant(self, tenant_id: str) -> dict[str, Any]:
        return data_object(self._transport.request("GET", _tenant_path(tenant_id)))

    def list_tenants(self) -> list[dict[str, Any]]:
        return data_list(self._transport.request("GET", TENANTS))

    def erase_tenant(self, tenant_id: str) -> dict[str, Any]:
        """Delete everything of the tenant but its budget accounts and a tombstone; what was
        removed and what was kept. `Conflict` while it has jobs queued or running."""
        return data_object(self._transport.request("POST", _tenant_path(tenant_id) + "/erase"))

    def set_provider_key(self, tenant_id: str, provider: str, key: str) -> dict[str, Any]:
        """The tenant's own API key for `provider` (openai, stability, bfl, fal, google), used
        for its requests instead of the server's; the tenant as it is now, which shows only
        the key's last 4 characters."""
        return self.update_tenant(tenant_id, provider_keys={provider: key})

    def remove_provider_key(self, tenant_id: str, provider: str) -> dict[str, Any]:
        """Back to the server's key for `provider` (none, with `own_keys_only`)."""
        return self.update_tenant(tenant_id, provider_keys={provider: None})

    def rotate_provider_keys(self) -> dict[str, Any]:
        """Encrypt every stored provider key and webhook signing secret again under the
        server's first secret key; how many of each (`rotated`, `webhook_secrets`)."""
        return data_object(self._transport.request("POST", ROTATE_PROVIDER_KEYS))

    def create_key(
        self,
        *,
        tenant_id: str,
        name: str,
        scopes: list[str] | None = None,
        expires_at: str | None = None,
        limits: dict[str, int] | None = None,
    ) -> dict[str, Any]:
        """A new key; its `key` field is the only time the key is ever shown."""
        body = _key_body(tenant_id, name, scopes, expires_at, limits)
        return data_object(self._transport.request("POST", KEYS, json=body))

    def list_keys(self, tenant_id: str | None = None) -> list[dict[str, Any]]:
        params = {"tenant_id": tenant_id} if tenant_id else None
        return data_list(self._transport.request("GET", KEYS, params=params))

    def revoke_key(self, key_id: str) -> dict[str, Any]:
        path = f"{KEYS}/{quote(key_id, safe='')}/revoke"
        return data_object(self._transport.request("POST", path))

    def usage(self, *, days: int = 30, tenant_id: str | None = None) -> list[dict[str, Any]]:
        """Every tenant's usage (or one tenant's), by model and by day."""
        params = _usage_params(days, tenant_id)
        return data_list(self._transport.request("GET", "/v1/admin/usage", params=params))

    def my_usage(self, *, days: int = 30) -> dict[str, Any]:
        """The caller's own tenant: spend, images, by model and day, budgets. Any key."""
        params = _usage_params(days)
        return data_object(self._transport.request("GET", "/v1/usage", params=params))


class AsyncAdmin:
    def __init__(self, transport: AsyncTransport) -> None:
        self._transport = transport

    async def create_tenant(self, tenant_id: str | None = None, **fields: Any) -> dict[str, Any]:
        body = {**fields, "id": tenant_id} if tenant_id else fields
        return data_object(await self._transport.request("POST", TENANTS, json=body))

    async def update_tenant(self, tenant_id: str, **fields: Any) -> dict[str, Any]:
        response = await self._transport.request("PATCH", _tenant_path(tenant_id), json=fields)
        return data_object(response)

    async def get_tenant(self, tenant_id: str) -> dict[str, Any]:
        return data_object(await self._transport.request("GET", _tenant_path(tenant_id)))

    async def list_tenants(self) -> list[dict[str, Any]]:
        return data_list(await self._transport.request("GET", TENANTS))

    async def erase_tenant(self, tenant_id: str) -> dict[str, Any]:
        path = _tenant_path(tenant_id) + "/erase"
        return data_object(await self._transport.request("POST", path))

    async def set_provider_key(self, tenant_id: str, provider: str, key: str) -> dict[str, Any]:
        return await self.update_tenant(tenant_id, provider_keys={provider: key})

    async def remove_provider_key(self, tenant_id: str, provider: str) -> dict[str, Any]:
        return await self.update_tenant(tenant_id, provider_keys={provider: None})

    async def rotate_provider_keys(self) -> dict[str, Any]:
        return data_object(await self._transport.request("POST", ROTATE_PROVIDER_KEYS))

    async def create_key(
        self,
        *,
        tenant_id: str,
        name: str,
        scopes: list[str] | None = None,
        expires_at: str | None = None,
        limits: dict[str, int] | None = None,
    ) -> dict[str, Any]:
        body = _key_body(tenant_id, name, scopes, expires_at, limits)
        return data_object(await self._transport.request("POST", KEYS, json=body))

    async def list_keys(self, tenant_id: str | None = None) -> list[dict[str, Any]]:
        params = {"tenant_id": tenant_id} if tenant_id else None
        return data_list(await self._transport.request("GET", KEYS, params=params))

    async def revoke_key(self, key_id: str) -> dict[str, Any]:
        path = f"{KEYS}/{quote(key_id, safe='')}/revoke"
        return data_object(await self._transport.request("POST", path))

    async def usage(self, *, days: int = 30, tenant_id: str | None = None) -> list[dict[str, Any]]:
        params = _usage_params(days, tenant_id)
        return data_list(await self._transport.request("GET", "/v1/admin/usage", params=params))

    async def my_usage(self, *, days: int = 30) -> dict[str, Any]:
        params = _usage_params(days)
        return data_object(await self._transport.request("GET", "/v1/usage", params=params))
