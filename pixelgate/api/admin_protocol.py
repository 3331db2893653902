"""Bodies of the admin and usage routes (pydantic only)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

Money = str
"""A decimal amount as a string, e.g. "12.50"; exact, never a float."""

Scope = Literal["admin", "tenant_admin", "generate", "read"]


class Limits(BaseModel):
    model_config = ConfigDict(extra="forbid")

    requests_per_minute: int | None = Field(default=None, ge=0)
    images_per_day: int | None = Field(default=None, ge=0)
    concurrent_jobs: int | None = Field(default=None, ge=0)


class TenantFields(BaseModel):
    """Fields an admin sets on a tenant. In an update, only the fields sent change; `null`
    clears one."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=200)
    allow_models: list[str] | None = Field(
        default=None, description="Model ids, aliases or glob patterns; null allows all."
    )
    deny_models: list[str] | None = None
    prices: dict[str, dict[str, Money]] | None = Field(
        default=None,
        description='Per model: {"default" | "<size>" | "<quality> <size>": amount}.',
    )
    budget_total: Money | None = None
    budget_monthly: Money | None = None
    limits: Limits | None = None
    cache_policy: Literal["free", "charge"] | None = None
    safety_threshold: float | None = Field(default=None, ge=0, le=1)
    retention_days: float | None = Field(
        default=None,
        gt=0,
        lt=36500,
        description="How long its results and jobs are kept; null: the global retention.",
    )
    provider_keys: dict[str, SecretStr | None] | None = Field(
        default=None,
        description="The tenant's own API keys by provider (openai, stability, bfl, fal, google"
        " (a Gemini API key)), used for its requests instead of the server's; `null` for one "
        "removes it, `null` for all removes every one. Stored encrypted, never shown again.",
    )
    own_keys_only: bool | None = Field(
        default=None, description="Only the models it runs with its own provider keys."
    )
    own_keys_billing: Literal["free", "charge"] | None = Field(
        default=None,
        description="A job run with its own provider key: `free` (default; its provider bills "
        "it) or `charge` (the model's price, as any job).",
    )


class TenantCreate(TenantFields):
    id: str | None = Field(default=None, description="Made up when not given.")
    name: str = Field(min_length=1, max_length=200)


class BudgetPublic(BaseModel):
    period: str
    limit: Money | None
    spent: Money
    reserved: Money
    remaining: Money | None


class ProviderKeyPublic(BaseModel):
    set: Literal[True] = True
    last4: str = Field(description="The key's last 4 characters; the key is never shown.")


class ProviderKeysRotated(BaseModel):
    object: Literal["provider_keys.rotation"] = "provider_keys.rotation"
    rotated: int = Field(description="Stored keys encrypted again under the first secret key.")
    webhook_secrets: int = Field(
        description="Tenants' webhook signing secrets encrypted again under the first secret key."
    )


class TenantPublic(BaseModel):
    id: str
    object: Literal["tenant"] = "tenant"
    name: str
    created_at: datetime
    allow_models: list[str] | None
    deny_models: list[str] | None
    prices: dict[str, dict[str, Money]] | None
    budget_total: Money | None
    budget_monthly: Money | None
    limits: Limits | None
    cache_policy: str
    safety_threshold: float | None
    retention_days: float | None
    provider_keys: dict[str, ProviderKeyPublic] = Field(
        description="Providers it has its own key for, each with the key's last 4 characters."
    )
    own_keys_only: bool
    own_keys_billing: str
    erased_at: datetime | None = Field(description="Set once the tenant was erased.")
    budgets: list[BudgetPublic]


class ErasurePublic(BaseModel):
    object: Literal["tenant.erasure"] = "tenant.erasure"
    tenant_id: str
    jobs: int = Field(description="Jobs deleted, with their events and input images.")
    files: int = Field(description="File records deleted.")
    blobs: int = Field(description="Stored blobs deleted (those no other file or job uses).")
    api_keys: int = Field(description="API keys deleted.")
    kept: list[str] = Field(description="What stays, and why (the money accounted).")


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tenant_id: str = "default"
    name: str = Field(min_length=1, max_length=200)
    scopes: list[Scope] = Field(default=["generate", "read"], min_length=1)
    expires_at: datetime | None = None
    limits: Limits | None = None


class KeyPublic(BaseModel):
    id: str
    object: Literal["api_key"] = "api_key"
    tenant_id: str
    name: str
    prefix: str = Field(description="The first characters of the key, to recognise it.")
    scopes: list[str]
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    limits: Limits | None


class KeyCreated(KeyPublic):
    key: str = Field(description="The key itself. Shown this once; only its hash is kept.")


class UsageBucket(BaseModel):
    spent: Money
    images: int
    jobs: int = Field(description="Jobs settled: each that reserved money, whatever it made.")


class UsagePublic(BaseModel):
    object: Literal["usage"] = "usage"
    tenant_id: str
    since: datetime
    spent: Money
    images: int
    jobs: int
    by_model: dict[str, UsageBucket]
    by_day: dict[str, UsageBucket]
    budgets: list[BudgetPublic]


class WorkerPublic(BaseModel):
    id: str
    object: Literal["worker"] = "worker"
    hostname: str
    pid: int
    models: list[str]
    started_at: datetime
    last_seen_at: datetime
    running: list[str]
