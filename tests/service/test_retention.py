"""Retention (issue 20, item 4): files and jobs past their tenant's retention are deleted in
short batches, with the blobs nothing else uses; a tenant's own retention applies to what it
already stored. Erasing a tenant leaves nothing of it but its budget accounts and a tombstone,
on local disk and in S3."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer
from sqlalchemy import select

from pixelgate.clock import as_utc
from pixelgate.db.tables import (
    Base,
    Batch,
    BatchItem,
    BudgetAccount,
    Job,
    JobWebhook,
    StoredFile,
    Tenant,
    WebhookAttempt,
    WebhookDelivery,
)
from pixelgate.errors import Conflict, NotFound, Unauthorized, ValidationError
from pixelgate.providers import CancelToken, GeneratedImage, ImageTask, ProgressCallback
from pixelgate.service.access import Principal
from pixelgate.service.batches import BatchService
from pixelgate.service.inputs import ImageUpload
from pixelgate.service.jobs import ImageCommand
from pixelgate.service.tenants import TenantChanges
from pixelgate.service.webhook_targets import Webhook
from pixelgate.storage import BlobNotFound, BlobStore, LocalBlobStore
from pixelgate.storage.s3 import S3BlobStore
from tests.conftest import free_port
from tests.service.conftest import Services, images_of
from tests.service.test_inputs import picture

BUCKET = "pixelgate-retention"


@pytest.fixture(scope="module")
def s3_client() -> Iterator[Any]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port())
    server.start()
    host, port = server.get_host_and_port()
    client = boto3.client(
        "s3",
        endpoint_url=f"http://{host}:{port}",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )
    client.create_bucket(Bucket=BUCKET)
    yield client
    server.stop()


@pytest.fixture(params=["disk", "s3"])
def blob_store(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    if request.param == "disk":
        return LocalBlobStore(tmp_path / "blobs")
    client = request.getfixturevalue("s3_client")
    return S3BlobStore(client, BUCKET, prefix=tmp_path.name)  # a prefix of the test's own


def stored_keys(store: BlobStore) -> set[str]:
    """Every blob in the store, read from the store itself."""
    if isinstance(store, LocalBlobStore):
        return {path.name for path in store.root.rglob("*") if path.is_file()}
    assert isinstance(store, S3BlobStore)
    pages = store._client.get_paginator("list_objects_v2").paginate(
        Bucket=store.bucket, Prefix=store.prefix + "/"
    )
    return {item["Key"].rsplit("/", 1)[-1] for page in pages for item in page.get("Contents", [])}


def distinct_images(
    task: ImageTask, progress: ProgressCallback, cancel: CancelToken
) -> list[GeneratedImage]:
    """Bytes of each prompt and seed: distinct results, so each has its own blob."""
    seed = task.options.seed_value
    data = f"png {task.options.prompt} {seed}".encode()  # type: ignore[attr-defined]
    return [GeneratedImage(data, "image/png", 8, 8, seed=seed) for _ in range(task.options.n)]


def make_tenant(services: Services, tenant_id: str, **changes: Any) -> Principal:
    services.tenants.create(tenant_id=tenant_id, name=tenant_id, changes=TenantChanges(**changes))
    return Principal(f"key_{tenant_id}", tenant_id, frozenset({"generate", "read"}))


HOOK = Webhook("http://hooks.test/in", ("queued", "succeeded"), "http://pixelgate.test")


def run(
    services: Services,
    caller: Principal,
    prompt: str,
    *,
    webhook: Webhook | None = None,
    **options: Any,
) -> Job:
    command = ImageCommand(
        task="generate",
        model="test/fixture",
        options={"prompt": prompt, **options},
        webhook=webhook,
    )
    job = services.jobs.submit(caller, command)
    services.executor.run(job.id)
    return services.jobs.get(caller, job.id)


def file_ids(job: Job) -> list[str]:
    return [item.file_id for item in images_of(job)]


# -- retention ----------------------------------------------------------------------------


def test_files_expire_by_their_tenants_retention_else_the_global_one(services: Services) -> None:
    services.provider.behaviour = distinct_images
    own = make_tenant(services, "brief", retention_days=0.5)
    default = make_tenant(services, "plain")
    short, usual = run(services, own, "a"), run(services, default, "b")
    [short_file], [usual_file] = file_ids(short), file_ids(usual)

    assert as_utc(services.files.get("brief", short_file).expires_at) == (  # type: ignore[arg-type]
        services.clock.now() + timedelta(days=0.5)
    )
    services.clock.advance(13 * 3600)
    assert services.retention.sweep() == (1, 1)
    with pytest.raises(NotFound):
        services.files.get("brief", short_file)
    assert services.files.get("plain", usual_file)
    with pytest.raises(NotFound):
        services.jobs.get(own, short.id)
    assert services.jobs.get(default, usual.id)


def test_a_new_retention_applies_to_files_already_stored(services: Services) -> None:
    services.provider.behaviour = distinct_images
    caller = make_tenant(services, "acme")
    job = run(services, caller, "kept")
    [file_id] = file_ids(job)

    services.tenants.update("acme", TenantChanges(retention_days=10))
    services.clock.advance(5 * 86400)  # past the global day, within the tenant's ten
    assert services.retention.sweep() == (0, 0)
    assert services.files.get("acme", file_id)

    services.tenants.update("acme", TenantChanges(retention_days=2))
    assert services.retention.sweep() == (1, 1)
    with pytest.raises(NotFound):
        services.files.get("acme", file_id)


def test_a_job_s_webhook_deliveries_go_with_it(services: Services) -> None:
    caller = make_tenant(services, "hooked")
    old, kept = run(services, caller, "old", webhook=HOOK), run(services, caller, "new")
    with services.db.session() as session:  # a try of each, as the sender records them
        for record in services.webhooks.deliveries(old.id):
            session.add(
                WebhookAttempt(
                    delivery_seq=record.delivery.seq, attempted_at=services.clock.now(),
                    status_code=204, error=None, duration_ms=1.0,
                )
            )  # fmt: skip
    services.clock.advance(86400 + 1)
    newer = run(services, caller, "newer", webhook=HOOK)

    assert [len(r.attempts) for r in services.webhooks.deliveries(old.id)] == [1, 1]
    assert services.retention.sweep_jobs() == 2
    assert services.webhooks.deliveries(old.id) == []
    with services.db.session() as session:
        assert session.scalars(select(WebhookAttempt)).all() == []
        assert {row.job_id for row in session.scalars(select(JobWebhook))} == {newer.id}
        assert {row.job_id for row in session.scalars(select(WebhookDelivery))} == {newer.id}
    assert kept.id


def test_batches_go_once_every_item_is_past_retention(services: Services) -> None:
    caller = make_tenant(services, "batcher")
    batches = BatchService(services.db, services.jobs, services.access, services.clock)
    command = ImageCommand(task="generate", model="test/fixture", options={"prompt": "b"})
    done = batches.create(caller, [command, command])
    with services.db.session() as session:  # its items as the dispatcher leaves them
        for position in (0, 1):
            job = services.jobs.submit(caller, command)
            services.executor.run(job.id)
            item = session.get(BatchItem, (done.batch.id, position))
            assert item is not None
            item.state, item.job_id = "submitted", job.id
    waiting = batches.create(caller, [command])  # an item never submitted: still pending
    services.clock.advance(86400 + 1)
    fresh = batches.create(caller, [command])

    services.retention.sweep()

    with services.db.session() as session:
        left = set(session.scalars(select(Batch.id)))
        items = set(session.scalars(select(BatchItem.batch_id)))
    assert left == items == {waiting.batch.id, fresh.batch.id}


def test_the_sweep_deletes_in_batches_and_keeps_blobs_still_used(services: Services) -> None:
    services.provider.behaviour = distinct_images
    caller = make_tenant(services, "acme")
    old = [run(services, caller, f"old {number}") for number in range(5)]
    services.clock.advance(86400 + 1)
    fresh = run(services, caller, "old 0")  # the same bytes as the first old result
    running = services.jobs.submit(
        caller, ImageCommand(task="generate", model="test/fixture", options={"prompt": "busy"})
    )
    services.clock.advance(3600)

    assert services.retention.sweep(batch=2) == (5, 5)

    [kept] = file_ids(fresh)
    assert services.files.read(services.files.get("acme", kept))  # its blob is shared, kept
    assert services.jobs.get(caller, running.id).status == "queued"  # unfinished: kept
    for job in old[1:]:
        [gone] = file_ids(job)
        with pytest.raises(NotFound):
            services.files.get("acme", gone)
    assert len(stored_keys(services.blobs)) == 1


@pytest.mark.parametrize("days", [0, -1, "x", True, 40000])
def test_a_retention_must_be_some_days(services: Services, days: object) -> None:
    with pytest.raises(ValidationError) as caught:
        make_tenant(services, "acme", retention_days=days)
    assert caught.value.param == "retention_days"


# -- erasure ------------------------------------------------------------------------------


def rows_mentioning(services: Services, needles: set[str]) -> dict[str, list[dict[str, Any]]]:
    """Every row of every table with a value (a JSON one read as text) naming one of them."""
    found: dict[str, list[dict[str, Any]]] = {}
    with services.db.engine.connect() as connection:
        for table in Base.metadata.sorted_tables:
            for row in connection.execute(select(table)).mappings():
                text = " ".join(str(value) for value in row.values())
                if any(needle in text for needle in needles):
                    found.setdefault(table.name, []).append(dict(row))
    return found


def test_erasing_a_tenant_leaves_only_its_accounts_and_a_tombstone(services: Services) -> None:
    services.provider.behaviour = distinct_images
    victim = make_tenant(
        services, "victim", prices={"test/fixture": {"default": "0.25"}}, retention_days=3
    )
    other = make_tenant(services, "other")
    services.access.create_key(
        tenant_id="victim", name="app", scopes=frozenset({"generate"}), expires_at=None, limits=None
    )
    jobs = [run(services, victim, f"p{n}", n=2, seed=n, webhook=HOOK) for n in range(3)]
    assert len(services.webhooks.deliveries(jobs[0].id)) == 2  # queued, succeeded
    services.webhook_secrets.current("victim")
    shared = run(services, other, "p0", n=2, seed=0)  # the same bytes as the victim's first
    upload = picture()
    edit = services.jobs.submit(
        victim,
        ImageCommand(
            task="edit",
            model="test/fixture",
            options={"prompt": "edit"},
            image=ImageUpload("image", data=upload),
            idempotency_key="once",
        ),
    )
    services.executor.run(edit.id)
    edit = services.jobs.get(victim, edit.id)
    failed_job = services.jobs.submit(
        victim, ImageCommand(task="generate", model="test/fixture", options={"prompt": "no"})
    )
    services.jobs.cancel(victim, failed_job.id)
    victim_keys = {key.id for key in services.access.list_keys("victim")}
    victim_jobs = {job.id for job in [*jobs, edit, failed_job]}
    victim_files = {f for job in [*jobs, edit] for f in file_ids(job)}
    private = {services.files.get("victim", f).blob_key for f in victim_files}
    private.add(hashlib.sha256(upload).hexdigest())
    shared_blobs = {services.files.get("other", f).blob_key for f in file_ids(shared)}
    private -= shared_blobs
    assert private <= stored_keys(services.blobs)
    spent = services.billing.budgets(services.tenants.get("victim"))[0].spent

    erased = services.eraser.erase("victim", batch=2)

    assert (erased.jobs, erased.files, erased.api_keys) == (5, 7, 1)
    assert erased.blobs == len(private)
    found = rows_mentioning(services, {"victim", *victim_jobs, *victim_keys, *victim_files})
    assert set(found) == {"tenants", "budget_accounts"}, found
    [tombstone] = found["tenants"]
    assert tombstone["erased_at"] is not None and tombstone["name"] == "victim"
    assert tombstone["prices"] is None and tombstone["retention_days"] is None
    with services.db.session() as session:
        total = session.get(BudgetAccount, ("victim", "total"))
        assert total is not None and (total.spent, total.reserved) == (spent, 0)
    left = stored_keys(services.blobs)
    assert not private & left
    assert shared_blobs <= left  # the other tenant's result, with the same bytes, stays
    for file_id in file_ids(shared):
        assert services.files.read(services.files.get("other", file_id))
    for key in private:
        with pytest.raises(BlobNotFound):
            services.blobs.get(key)


def test_erasing_refuses_work_in_flight_the_default_tenant_and_unknown_ids(
    services: Services,
) -> None:
    caller = make_tenant(services, "busy")
    queued = services.jobs.submit(
        caller, ImageCommand(task="generate", model="test/fixture", options={"prompt": "x"})
    )
    with pytest.raises(Conflict, match="1 queued or running jobs") as caught:
        services.eraser.erase("busy")
    assert caught.value.param == "tenant_id"
    assert services.tenants.get("busy").erased_at is None  # nothing was changed
    assert services.jobs.get(caller, queued.id)

    services.jobs.cancel(caller, queued.id)
    services.eraser.erase("busy")
    with pytest.raises(Conflict, match="was erased"):
        services.tenants.update("busy", TenantChanges(name="back"))
    with pytest.raises(Conflict):
        services.tenants.create(tenant_id="busy", name="again", changes=TenantChanges())
    with pytest.raises(Conflict, match="operators"):
        services.eraser.erase("default")
    with pytest.raises(NotFound) as missing:
        services.eraser.erase("nobody")
    assert missing.value.param == "tenant_id"


def test_a_key_used_just_before_the_erasure_is_refused_after_it(services: Services) -> None:
    make_tenant(services, "leaving")
    _, key = services.access.create_key(
        tenant_id="leaving", name="app", scopes=frozenset({"generate", "read"})
    )
    header = f"Bearer {key}"
    assert services.access.authenticate(header).tenant_id == "leaving"  # now trusted a while

    services.eraser.erase("leaving")

    with pytest.raises(Unauthorized):
        services.access.authenticate(header)


def test_only_the_tenants_rows_are_deleted(services: Services) -> None:
    services.provider.behaviour = distinct_images
    make_tenant(services, "gone")
    stays = make_tenant(services, "stays")
    job = run(services, stays, "mine")
    services.eraser.erase("gone")
    with services.db.session() as session:
        assert session.scalar(select(StoredFile.id).where(StoredFile.job_id == job.id))
        assert session.get(Tenant, "stays") is not None
    assert services.jobs.get(stays, job.id).status == "succeeded"
