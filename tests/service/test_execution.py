"""How a job ends, for each way its provider can behave."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from pixelgate.db.tables import BudgetAccount
from pixelgate.errors import BackendError, Canceled, StorageError
from pixelgate.providers import CancelToken, GeneratedImage, ImageTask, ProgressCallback
from pixelgate.service.access import Principal
from pixelgate.service.job_store import JobStatus
from pixelgate.service.jobs import ImageCommand
from pixelgate.service.tenants import TenantChanges
from tests.service.conftest import Services, images_of

RUNNING, QUEUED = JobStatus.RUNNING, JobStatus.QUEUED
CALLER = Principal("key_test", "default", frozenset({"admin"}))


def submit(services: Services) -> str:
    job = services.jobs.submit(
        CALLER,
        ImageCommand(task="generate", model="test/fixture", options={"prompt": "x", "seed": 3}),
    )
    return job.id


def events(services: Services, job_id: str) -> list[str]:
    return [event.type for event in services.store.events_after(job_id, None)]


def test_a_job_that_succeeds_stores_its_images(services: Services) -> None:
    job_id = submit(services)
    services.executor.run(job_id)

    job = services.jobs.get(CALLER, job_id)
    assert job.status == "succeeded"
    [image] = images_of(job)
    assert image.seed == 3
    stored = services.files.get("default", image.file_id)
    assert services.files.read(stored) == b"\x89PNG fixture"
    assert events(services, job_id) == ["queued", "running", "succeeded"]


def test_a_job_handed_out_twice_runs_once(services: Services) -> None:
    job_id = submit(services)
    services.executor.run(job_id)
    services.executor.run(job_id)
    assert services.provider.runs == 1
    assert events(services, job_id) == ["queued", "running", "succeeded"]


def test_a_provider_error_fails_the_job_with_its_code(services: Services) -> None:
    def refuse(
        task: ImageTask, progress: ProgressCallback, cancel: CancelToken
    ) -> list[GeneratedImage]:
        raise BackendError("upstream said no", param="prompt")

    services.provider.behaviour = refuse
    job_id = submit(services)
    services.executor.run(job_id)

    job = services.jobs.get(CALLER, job_id)
    assert (job.status, job.error_code, job.error_message, job.error_param) == (
        "failed", "BACKEND_ERROR", "upstream said no", "prompt",
    )  # fmt: skip


def test_an_unexpected_crash_fails_the_job_without_leaking_details(services: Services) -> None:
    def crash(
        task: ImageTask, progress: ProgressCallback, cancel: CancelToken
    ) -> list[GeneratedImage]:
        raise RuntimeError("/secret/path/weights.bin is corrupt")

    services.provider.behaviour = crash
    job_id = submit(services)
    services.executor.run(job_id)

    job = services.jobs.get(CALLER, job_id)
    assert job.status == "failed"
    assert job.error_code == "INTERNAL_ERROR"
    assert "secret" not in (job.error_message or "")


def test_a_cancel_during_the_run_ends_canceled_with_no_files(services: Services) -> None:
    job_id = submit(services)

    def cancel_midway(
        task: ImageTask, progress: ProgressCallback, cancel: CancelToken
    ) -> list[GeneratedImage]:
        services.jobs.cancel(CALLER, job_id)
        assert cancel.canceled
        raise Canceled("Job canceled")

    services.provider.behaviour = cancel_midway
    services.executor.run(job_id)

    job = services.jobs.get(CALLER, job_id)
    assert job.status == "canceled"
    assert job.result is None
    assert events(services, job_id)[-1] == "canceled"


def test_a_job_canceled_while_queued_never_runs(services: Services) -> None:
    job_id = submit(services)
    services.jobs.cancel(CALLER, job_id)
    services.executor.run(job_id)
    assert services.provider.runs == 0
    assert services.jobs.get(CALLER, job_id).status == "canceled"


def test_recovery_requeues_interrupted_jobs_and_gives_up_after_max_attempts(
    services: Services,
) -> None:
    job_id = submit(services)
    services.store.transition(job_id, to=RUNNING, allowed_from=(QUEUED,), attempts=1)
    services.queue.job_ids.clear()

    assert services.jobs.recover() == 1
    assert services.queue.job_ids == [job_id]
    assert services.jobs.get(CALLER, job_id).status == "queued"

    services.store.transition(job_id, to=RUNNING, allowed_from=(QUEUED,), attempts=2)
    assert services.jobs.recover() == 0
    job = services.jobs.get(CALLER, job_id)
    assert job.status == "failed"
    assert job.error_message == "The job was interrupted 2 times; giving up"


def test_another_tenant_cannot_see_or_cancel_a_job(services: Services) -> None:
    from pixelgate.errors import NotFound

    job_id = submit(services)
    stranger = Principal("key_other", "other-tenant", frozenset({"admin"}))
    for action in (services.jobs.get, services.jobs.cancel):
        try:
            action(stranger, job_id)
        except NotFound:
            continue
        raise AssertionError(f"{action.__name__} let another tenant see the job")


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[Path]:
    """A real full file system (a tmpfs of 64 KiB, filled) mounted over the blob store's
    folder; the database stays where it was. Needs the right to mount (root in CI's
    containers)."""
    blobs = tmp_path / "blobs"
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small file system needs root")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(blobs)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {mounted.stderr.decode().strip()}")
    try:
        with contextlib.suppress(OSError), (blobs / "filler").open("wb") as filler:
            while True:
                filler.write(b"\0" * 4096)
                filler.flush()
        yield blobs
    finally:
        subprocess.run(["umount", "-l", str(blobs)], check=False)


def test_a_full_disk_fails_the_job_at_once_with_storage_error_and_refunds(
    services: Services, full_disk: Path
) -> None:
    """Issue 19.7: the job stayed `running`, money reserved, until housekeeping failed it."""
    services.tenants.create(
        tenant_id="acme",
        name="acme",
        changes=TenantChanges(prices={"test/fixture": {"default": "0.25"}}),
    )
    caller = Principal("key_acme", "acme", frozenset({"generate", "read"}))
    job = services.jobs.submit(
        caller,
        ImageCommand(task="generate", model="test/fixture", options={"prompt": "x", "seed": 3}),
    )
    services.executor.run(job.id)

    ended = services.jobs.get(caller, job.id)
    assert (ended.status, ended.error_code) == ("failed", "STORAGE_ERROR")
    assert ended.error_message == "Storing the result failed: No space left on device"
    assert services.queue.job_ids == [job.id]  # not queued again
    assert services.provider.runs == 1
    with services.db.session() as session:
        held = session.get(BudgetAccount, ("acme", "total"))
        assert held is not None and (held.spent, held.reserved) == (0, 0)
    assert StorageError.status == 507
    assert not [p for p in full_disk.rglob(".tmp-*")]  # no partial file left behind
