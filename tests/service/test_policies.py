"""Tenants' rules at the service layer: access, budgets, limits, cache, idempotency."""

from __future__ import annotations

import threading
from typing import TypedDict

import pytest
from sqlalchemy import func, select

from pixelgate.db.tables import BudgetAccount, LedgerEntry
from pixelgate.errors import (
    BackendError,
    BudgetExceeded,
    Conflict,
    ModelAccessDenied,
    RateLimited,
)
from pixelgate.providers import CancelToken, GeneratedImage, ImageTask, ProgressCallback
from pixelgate.service.access import Principal
from pixelgate.service.jobs import ImageCommand
from pixelgate.service.tenants import TenantChanges
from tests.service.conftest import Services, images_of


def tenant(services: Services, tenant_id: str = "acme", **changes: object) -> Principal:
    services.tenants.create(tenant_id=tenant_id, name=tenant_id, changes=TenantChanges(**changes))
    return Principal(f"key_{tenant_id}", tenant_id, frozenset({"generate", "read"}))


def command(seed: int | None = None, n: int = 1, **extra: object) -> ImageCommand:
    options: dict[str, object] = {"prompt": "x", "n": n}
    if seed is not None:
        options["seed"] = seed
    return ImageCommand(task="generate", model="test/fixture", options=options, **extra)  # type: ignore[arg-type]


class Priced(TypedDict):
    prices: dict[str, dict[str, str]]


PRICED: Priced = {"prices": {"test/fixture": {"default": "0.25"}}}


def ledger(services: Services, tenant_id: str) -> dict[str, int]:
    with services.db.session() as session:
        rows = session.execute(
            select(LedgerEntry.kind, func.sum(LedgerEntry.amount))
            .where(LedgerEntry.tenant_id == tenant_id)
            .group_by(LedgerEntry.kind)
        ).all()
    return {kind: int(amount) for kind, amount in rows}


def account(services: Services, tenant_id: str) -> tuple[int, int]:
    with services.db.session() as session:
        row = session.get(BudgetAccount, (tenant_id, "total"))
        assert row is not None
        return row.spent, row.reserved


# -- access -------------------------------------------------------------------------------


def test_allow_and_deny_lists_take_ids_aliases_and_patterns(services: Services) -> None:
    caller = tenant(services, allow_models=["test/*", "dall-e-3"], deny_models=["openai/dall-e-2"])
    services.jobs.submit(caller, command())
    for model in ("local/tiny", "openai/dall-e-2"):
        with pytest.raises(ModelAccessDenied) as caught:
            services.jobs.submit(
                caller, ImageCommand(task="generate", model=model, options={"prompt": "x"})
            )
        assert caught.value.param == "model"
    spec = services.jobs._catalog.resolve("dall-e-3")
    assert services.tenants.may_use(services.tenants.get("acme"), spec)


# -- money --------------------------------------------------------------------------------


def test_success_settles_and_failure_refunds_through_one_ledger(services: Services) -> None:
    caller = tenant(services, budget_total="10", **PRICED)
    ok = services.jobs.submit(caller, command(n=2))
    assert account(services, "acme") == (0, 500_000)
    services.executor.run(ok.id)
    assert account(services, "acme") == (500_000, 0)

    def refuse(
        task: ImageTask, progress: ProgressCallback, cancel: CancelToken
    ) -> list[GeneratedImage]:
        raise BackendError("no")

    services.provider.behaviour = refuse
    failed = services.jobs.submit(caller, command())
    services.executor.run(failed.id)
    canceled = services.jobs.submit(caller, command())
    services.jobs.cancel(caller, canceled.id)

    assert account(services, "acme") == (500_000, 0)
    assert ledger(services, "acme") == {"reserve": 1_000_000, "settle": 500_000, "refund": 500_000}


def test_a_partial_result_pays_only_for_what_was_made(services: Services) -> None:
    caller = tenant(services, **PRICED)
    services.provider.behaviour = lambda task, progress, cancel: [
        GeneratedImage(b"png", "image/png", 8, 8, seed=1)
    ]
    job = services.jobs.submit(caller, command(n=3))
    services.executor.run(job.id)
    assert account(services, "acme") == (250_000, 0)
    assert ledger(services, "acme") == {"reserve": 750_000, "settle": 250_000, "refund": 500_000}


def test_a_tenants_default_price_outranks_the_catalogs_size_prices(services: Services) -> None:
    """Issue 19.2: the catalog prices dall-e-2 by size; a tenant's own `default` wins."""
    spec = services.jobs._catalog.resolve("openai/dall-e-2")
    options = services.jobs._catalog.validate_options(spec, {"prompt": "x", "size": "256x256"})
    tenant(services, "flat", prices={"openai/dall-e-2": {"default": "1.00"}})
    tenant(services, "sized", prices={"openai/dall-e-2": {"256x256": "0.50", "default": "1.00"}})
    tenant(services, "other", prices={"openai/dall-e-2": {"1024x1024": "0.70"}})
    price = services.billing.image_price
    assert price(services.tenants.get("flat"), spec, options) == 1_000_000
    assert price(services.tenants.get("sized"), spec, options) == 500_000
    assert price(services.tenants.get("other"), spec, options) == 16_000  # then the catalog


def test_over_budget_is_refused_with_what_remains(services: Services) -> None:
    caller = tenant(services, budget_total="0.60", **PRICED)
    services.jobs.submit(caller, command(n=2))
    with pytest.raises(BudgetExceeded) as caught:
        services.jobs.submit(caller, command(n=1))
    assert caught.value.message == (
        "Budget exceeded: this request costs 0.25 and 0.10 remains of the total budget"
    )
    assert caught.value.status == 402


def test_a_monthly_budget_is_kept_apart_from_the_total(services: Services) -> None:
    caller = tenant(services, budget_monthly="0.25", **PRICED)
    job = services.jobs.submit(caller, command())
    services.executor.run(job.id)
    with pytest.raises(BudgetExceeded, match="monthly"):
        services.jobs.submit(caller, command())
    services.clock.advance(40 * 86400)  # next month
    services.jobs.submit(caller, command())


def test_concurrent_reservations_never_overspend(services: Services) -> None:
    caller = tenant(services, budget_total="2.50", **PRICED)
    accepted: list[str] = []
    refused: list[Exception] = []

    def attempt() -> None:
        try:
            accepted.append(services.jobs.submit(caller, command()).id)
        except BudgetExceeded as exc:
            refused.append(exc)

    threads = [threading.Thread(target=attempt) for _ in range(30)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert (len(accepted), len(refused)) == (10, 20)
    assert account(services, "acme") == (0, 2_500_000)


# -- limits -------------------------------------------------------------------------------


def test_requests_per_minute_answer_with_retry_after(services: Services) -> None:
    caller = tenant(services, limits={"requests_per_minute": 2})
    services.jobs.submit(caller, command())
    services.jobs.submit(caller, command())
    with pytest.raises(RateLimited) as caught:
        services.jobs.submit(caller, command())
    assert caught.value.retry_after is not None and 1 <= caught.value.retry_after <= 60
    assert "2 requests per minute for this tenant" in caught.value.message


def test_images_per_day_count_images_not_requests(services: Services) -> None:
    caller = tenant(services, limits={"images_per_day": 5})
    services.jobs.submit(caller, command(n=4))
    with pytest.raises(RateLimited, match="5 images per day"):
        services.jobs.submit(caller, command(n=2))
    services.jobs.submit(caller, command(n=1))


def test_concurrent_jobs_are_limited_per_key(services: Services) -> None:
    tenant(services)
    caller = Principal("key_acme", "acme", frozenset({"generate"}), {"concurrent_jobs": 1})
    first = services.jobs.submit(caller, command())
    with pytest.raises(RateLimited, match="1 queued or running for this API key"):
        services.jobs.submit(caller, command())
    services.executor.run(first.id)
    services.jobs.submit(caller, command())


# -- cache and idempotency ----------------------------------------------------------------


def test_a_fixed_seed_is_served_from_the_cache_free_by_default(services: Services) -> None:
    caller = tenant(services, **PRICED)
    first = services.jobs.submit(caller, command(seed=5))
    services.executor.run(first.id)

    again = services.jobs.submit(caller, command(seed=5))

    assert again.status == "succeeded" and again.cached
    assert services.provider.runs == 1
    assert ledger(services, "acme")["settle"] == 250_000  # the hit was free
    [image] = images_of(again)
    assert image.file_id != images_of(services.jobs.get(caller, first.id))[0].file_id
    assert services.files.get("acme", image.file_id)


def test_the_cache_is_bypassed_on_request_and_missed_without_a_seed(services: Services) -> None:
    caller = tenant(services)
    first = services.jobs.submit(caller, command(seed=5))
    services.executor.run(first.id)
    assert not services.jobs.submit(caller, command(seed=5, use_cache=False)).cached
    assert not services.jobs.submit(caller, command()).cached
    assert not services.jobs.submit(caller, command(seed=6)).cached


def test_cache_hits_stay_within_a_tenant_and_can_be_charged(services: Services) -> None:
    first_tenant = tenant(services, "one")
    job = services.jobs.submit(first_tenant, command(seed=9))
    services.executor.run(job.id)
    other = tenant(services, "two", cache_policy="charge", **PRICED)

    assert not services.jobs.submit(other, command(seed=9)).cached
    hit_job = services.jobs.submit(first_tenant, command(seed=9))
    assert hit_job.cached
    services.executor.run(services.queue.job_ids[-1])
    assert services.jobs.submit(other, command(seed=9)).cached
    assert ledger(services, "two")["settle"] == 2 * 250_000  # the run and the charged hit


def test_an_idempotency_key_returns_the_same_job_and_refuses_another_body(
    services: Services,
) -> None:
    caller = tenant(services, **PRICED)
    first = services.jobs.submit(caller, command(idempotency_key="order-1"))
    again = services.jobs.submit(caller, command(idempotency_key="order-1"))
    assert again.id == first.id
    assert ledger(services, "acme") == {"reserve": 250_000}
    with pytest.raises(Conflict) as caught:
        services.jobs.submit(caller, command(n=2, idempotency_key="order-1"))
    assert caught.value.param == "Idempotency-Key"
    other_tenant = tenant(services, "other")
    assert services.jobs.submit(other_tenant, command(idempotency_key="order-1")).id != first.id
