"""The batch service over real databases: items submitted once whatever happens between
submitting and recording, held back by limits, refused when their key is gone."""

from __future__ import annotations

from dataclasses import replace

import pytest
from sqlalchemy import func, select

from pixelgate.db.tables import Batch, BatchItem
from pixelgate.errors import NotFound, ValidationError
from pixelgate.service.access import Principal
from pixelgate.service.batches import BatchService, command_of
from pixelgate.service.jobs import ImageCommand
from pixelgate.service.tenants import TenantChanges
from tests.service.conftest import Services


def command(prompt: str, **options: object) -> ImageCommand:
    return ImageCommand(
        task="generate", model="test/fixture", options={"prompt": prompt, **options}
    )


def batch_service(services: Services) -> BatchService:
    return BatchService(services.db, services.jobs, services.access, services.clock)


def key_principal(services: Services, **limits: int) -> Principal:
    record, _ = services.access.create_key(
        tenant_id="default", name="batch", scopes=frozenset({"generate", "read"}),
        limits=limits or None,
    )  # fmt: skip
    return services.access.principal_of_key(record.id)


def test_an_item_submitted_before_a_crash_is_not_submitted_again(services: Services) -> None:
    batches = batch_service(services)
    principal = key_principal(services)
    view = batches.create(principal, [command("one"), command("two")])
    batch_id = view.batch.id
    # a process claims item 0 and submits it, then dies before recording the job
    assert batches._claim(batch_id, 0)
    with services.db.session() as session:
        stored = session.get(BatchItem, (batch_id, 0))
        assert stored is not None
    earlier = services.jobs.submit(
        principal,
        replace(command_of(stored.request), idempotency_key=f"batch:{batch_id}:0"),
    )
    assert batches.dispatch() == 1  # item 1 only: item 0 is still claimed
    services.clock.advance(61)
    assert batches.dispatch() == 1
    items = batches.get(principal, batch_id).items
    assert items is not None
    assert items[0].job is not None and items[0].job.id == earlier.id
    assert len(services.queue.job_ids) == 2  # two jobs in all, one per item


def test_items_beyond_the_concurrency_limit_wait_then_run(services: Services) -> None:
    batches = batch_service(services)
    principal = key_principal(services, concurrent_jobs=1)
    view = batches.create(principal, [command("a"), command("b")])
    assert batches.dispatch() == 1
    first = batches.get(principal, view.batch.id)
    assert first.counts["queued"] == 1 and first.counts["pending"] == 1
    assert batches.dispatch() == 0  # still limited: nothing more, nothing failed
    services.executor.run(services.queue.job_ids[0])
    services.clock.advance(2)
    assert batches.dispatch() == 1
    done = batches.get(principal, view.batch.id)
    assert done.counts["failed"] == 0 and done.counts["pending"] == 0


def test_a_revoked_key_fails_its_items_not_yet_submitted(services: Services) -> None:
    batches = batch_service(services)
    principal = key_principal(services)
    view = batches.create(principal, [command("a")])
    services.access.revoke(principal.key_id)
    batches.dispatch()
    items = batches.get(principal, view.batch.id).items
    assert items is not None and items[0].status == "failed"
    assert items[0].error is not None and items[0].error.code == "UNAUTHORIZED"


def test_an_invalid_item_records_nothing(services: Services) -> None:
    batches = batch_service(services)
    principal = key_principal(services)
    with pytest.raises(ValidationError) as caught:
        batches.create(principal, [command("a"), command("b", num_steps=0)])
    assert caught.value.param == "requests.1.num_steps"
    assert batches.dispatch() == 0 and services.queue.job_ids == []


def test_erasing_a_tenant_deletes_its_batches(services: Services) -> None:
    services.tenants.create(tenant_id="gone", name="gone", changes=TenantChanges())
    record, _ = services.access.create_key(
        tenant_id="gone", name="batch", scopes=frozenset({"generate", "read"})
    )
    principal = services.access.principal_of_key(record.id)
    batches = batch_service(services)
    view = batches.create(principal, [command("a private prompt")])
    services.eraser.erase("gone")
    with services.db.session() as session:
        assert session.scalar(select(func.count()).select_from(Batch)) == 0
        assert session.scalar(select(func.count()).select_from(BatchItem)) == 0
    assert batches.dispatch() == 0
    with pytest.raises(NotFound):
        batches.get(principal, view.batch.id)
