"""Service-layer fixtures over a real SQLite database in a temporary folder."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest

from pixelgate.catalog import Catalog, ModelSpec
from pixelgate.clock import ManualClock
from pixelgate.db import Database
from pixelgate.db.job_records import ResultImage
from pixelgate.db.tables import Job
from pixelgate.engine import CancelRegistry, EventBus
from pixelgate.providers import (
    CancelToken,
    GeneratedImage,
    ImageTask,
    ProgressCallback,
    ProviderRegistry,
)
from pixelgate.service.access import AccessService
from pixelgate.service.billing import Billing
from pixelgate.service.cache import ResultCache
from pixelgate.service.erasure import TenantEraser
from pixelgate.service.execution import JobCollaborators, JobExecutor
from pixelgate.service.files import FileService
from pixelgate.service.idempotency import IdempotencyKeys
from pixelgate.service.inputs import InputImages
from pixelgate.service.job_store import JobStore
from pixelgate.service.jobs import JobService, Policies
from pixelgate.service.media import MediaLinks
from pixelgate.service.provider_keys import KeyVault, ProviderKeys
from pixelgate.service.rate_limits import LimitValues, RateLimits
from pixelgate.service.retention import Retention
from pixelgate.service.tenants import TenantService
from pixelgate.service.webhook_outbox import WebhookOutbox
from pixelgate.service.webhook_secrets import WebhookSecrets
from pixelgate.service.webhook_targets import WebhookTargets
from pixelgate.storage import BlobStore, LocalBlobStore
from tests.databases import ENGINES, open_database

FIXTURE_MODEL = ModelSpec(
    id="test/fixture",
    provider="fixture",
    family="diffusion",
    capabilities=("generate", "edit", "inpaint"),
    defaults={"width": 64, "height": 64, "num_steps": 2, "guidance_scale": 1.0},
)

FIXTURE_FILL = ModelSpec(
    id="test/fill",
    provider="fixture",
    family="diffusion",
    capabilities=("inpaint",),
    limits={"min_size": 32, "max_size": 256, "size_multiple": 16},  # type: ignore[arg-type]
    defaults={"width": 64, "height": 64, "num_steps": 2, "guidance_scale": 1.0},
)
FIXTURE_KONTEXT = ModelSpec(
    id="test/kontext", provider="fixture", family="flux-kontext", capabilities=("generate", "edit")
)
FIXTURE_HOSTED_EDIT = ModelSpec(
    id="test/hosted-edit", provider="fixture", family="gpt-image", capabilities=("generate", "edit")
)
FIXTURE_SQUARE_EDIT = ModelSpec(
    id="test/square-edit",
    provider="fixture",
    family="dall-e-2",
    capabilities=("generate", "edit"),
    limits={"square_inputs": True},  # type: ignore[arg-type]
)
"""Models of other families run by the fixture provider: what the service does for them."""


def images_of(job: Job) -> tuple[ResultImage, ...]:
    """The images a succeeded job made."""
    assert job.result is not None, f"job {job.id} has no result"
    return job.result.images


class FixtureProvider:
    """A provider whose behaviour each test chooses: one tiny fixture per failure mode."""

    name = "fixture"
    takes_own_keys = True
    """A tenant may bring its own key for it (`providers.keys.TakesOwnKeys`)."""

    def __init__(self) -> None:
        self.behaviour: Callable[[ImageTask, ProgressCallback, CancelToken], list[GeneratedImage]]
        self.behaviour = lambda task, progress, cancel: [
            GeneratedImage(b"\x89PNG fixture", "image/png", 8, 8, seed=task.options.seed_value)
            for _ in range(task.options.n)
        ]
        self.runs = 0
        self.tasks: list[ImageTask] = []

    def unavailable_reason(self, spec: ModelSpec) -> str | None:
        return None

    def own_key_problem(self, spec: ModelSpec) -> str | None:
        return None

    def run(
        self, spec: ModelSpec, task: ImageTask, *, progress: ProgressCallback, cancel: CancelToken
    ) -> list[GeneratedImage]:
        self.runs += 1
        self.tasks.append(task)
        return self.behaviour(task, progress, cancel)


class RecordingQueue:
    def __init__(self) -> None:
        self.job_ids: list[str] = []
        self.inline = False
        """Whether jobs run in the waiting caller's thread (`JobService.run`)."""

    def enqueue(self, job_id: str, model: str) -> None:
        self.job_ids.append(job_id)

    @property
    def depth(self) -> int:
        return len(self.job_ids)

    def runs_here(self, model: str) -> bool:
        return self.inline


@dataclass
class Services:
    db: Database
    clock: ManualClock
    access: AccessService
    files: FileService
    inputs: InputImages
    store: JobStore
    jobs: JobService
    executor: JobExecutor
    provider: FixtureProvider
    queue: RecordingQueue
    cancels: CancelRegistry
    tenants: TenantService
    billing: Billing
    blobs: BlobStore
    retention: Retention
    eraser: TenantEraser
    collaborators: JobCollaborators
    webhooks: WebhookOutbox
    webhook_secrets: WebhookSecrets


@pytest.fixture
def blob_store(tmp_path: Path) -> BlobStore:
    """Where the services keep bytes; a test module may give another (S3)."""
    return LocalBlobStore(tmp_path / "blobs")


@pytest.fixture(params=ENGINES)
def services(
    tmp_path: Path, request: pytest.FixtureRequest, blob_store: BlobStore
) -> Iterator[Services]:
    db = open_database(request.param, tmp_path, request)
    clock = ManualClock()
    access = AccessService(db, clock)
    access.ensure_default_tenant()
    bus = EventBus()
    cancels = CancelRegistry()
    catalog = Catalog(
        [
            *Catalog.load(),
            FIXTURE_MODEL,
            FIXTURE_FILL,
            FIXTURE_KONTEXT,
            FIXTURE_HOSTED_EDIT,
            FIXTURE_SQUARE_EDIT,
        ]
    )
    provider = FixtureProvider()
    providers = ProviderRegistry([provider])
    blobs = blob_store
    files = FileService(
        db,
        blobs,
        MediaLinks(b"k" * 32, clock, ttl_seconds=60),
        clock,
        retention=timedelta(days=1),
        retention_days_of=lambda tenant_id: tenants.current(tenant_id).retention_days,
    )
    vault = KeyVault([], kept_in=tmp_path / "provider_keys_secret")
    keys = ProviderKeys(db, clock, vault, providers)
    tenants = TenantService(db, clock, keys=keys, on_retention_change=files.apply_retention)
    inputs = InputImages(blobs, files, max_bytes=100_000, max_pixels=256 * 256)
    queue = RecordingQueue()
    billing = Billing(db, clock)
    # webhooks to `hooks.test` are allowed as named (nothing resolves it; nothing sends here)
    webhooks = WebhookOutbox(db, clock, targets=WebhookTargets(allowed_hosts=["hooks.test"]))
    store = JobStore(
        db,
        bus,
        clock,
        on_end=[billing.on_job_ending],
        on_event=[webhooks.on_job_event],
        on_progress=[webhooks.on_progress],
    )
    cache = ResultCache(db, files, billing, clock, shared=False)
    policies = Policies(
        tenants=tenants,
        billing=billing,
        limits=RateLimits(),
        default_limits=LimitValues(),
        cache=cache,
        idempotency=IdempotencyKeys(db, clock),
        webhooks=webhooks,
    )
    collaborators = JobCollaborators(store, catalog, providers, files, inputs, cancels, clock)
    executor = JobExecutor(
        collaborators,
        worker_id="test-worker",
        lease_seconds=30,
        max_attempts=2,
        requeue=queue.enqueue,
        keys=keys,
        cache=cache,
    )
    jobs = JobService(
        collaborators,
        queue=queue,
        bus=bus,
        executor=executor,
        policies=policies,
        max_attempts=2,
    )
    yield Services(
        db,
        clock,
        access,
        files,
        inputs,
        store,
        jobs,
        executor,
        provider,
        queue,
        cancels,
        tenants,
        billing,
        blobs,
        Retention(db, files, clock, retention=timedelta(days=1)),
        TenantEraser(db, files, tenants, access, clock),
        collaborators,
        webhooks,
        WebhookSecrets(db, clock, vault),
    )
    db.dispose()
