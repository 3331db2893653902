"""The composition root: builds every part from the settings, starts and stops them.

The deployment shape is chosen by configuration, with the same code:
- embedded (default): SQLite, local disk, in-process events, and worker threads in `serve`;
- cluster: any database URL (PostgreSQL), S3 storage (`storage_url`), Redis events and rate
  limits (`redis_url`), and jobs handed through Celery (`broker_url`) to `pixelgate worker`
  processes, which build this same runtime in the "worker" role.
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Literal

from pixelgate.catalog import Catalog, ModelSpec
from pixelgate.clock import Clock, SystemClock
from pixelgate.db import Database, upgrade
from pixelgate.db.tables import Job, WebhookDelivery
from pixelgate.engine import CancelRegistry, EventBus, JobQueue, ThreadWorker
from pixelgate.engine.model_process import ModelProcess
from pixelgate.extras import installed
from pixelgate.metrics import Metrics
from pixelgate.paths import kept_secret
from pixelgate.providers import ImageTask, ProviderRegistry
from pixelgate.providers.registry import configured_models
from pixelgate.service.access import ADMIN_KEY_FILE, AccessService
from pixelgate.service.batches import BatchService, batch_dispatcher
from pixelgate.service.billing import Billing
from pixelgate.service.cache import ResultCache
from pixelgate.service.erasure import TenantEraser
from pixelgate.service.execution import JobCollaborators, JobExecutor
from pixelgate.service.files import FileService
from pixelgate.service.history import History
from pixelgate.service.idempotency import IdempotencyKeys
from pixelgate.service.inputs import InputImages
from pixelgate.service.job_store import JobStore
from pixelgate.service.jobs import JobService, Policies
from pixelgate.service.maintenance import Chore, Housekeeper, Maintenance, WorkerRegistry
from pixelgate.service.media import MediaLinks
from pixelgate.service.models import ModelDirectory
from pixelgate.service.passes import PassLoop
from pixelgate.service.provider_keys import KeyVault, ProviderKeys
from pixelgate.service.rate_limits import LimitValues, RateLimits
from pixelgate.service.retention import Retention
from pixelgate.service.safety import NsfwClassifier, Safety
from pixelgate.service.tenants import TenantService
from pixelgate.service.webhook_outbox import WebhookOutbox
from pixelgate.service.webhook_payload import webhook_body
from pixelgate.service.webhook_secrets import WebhookSecrets
from pixelgate.service.webhook_sender import WebhookSender
from pixelgate.service.webhook_targets import WebhookTargets
from pixelgate.settings import Settings
from pixelgate.storage import BlobStore, LocalBlobStore

if TYPE_CHECKING:
    from celery import Celery

    from pixelgate.engine.celery_queue import CeleryQueue
    from pixelgate.engine.redis_events import RedisEventBus
    from pixelgate.storage.s3 import S3BlobStore

log = logging.getLogger(__name__)

SWEEP_INTERVAL_SECONDS = 600.0


Role = Literal["api", "worker"]


class Runtime:
    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock | None = None,
        role: Role = "api",
        models: Sequence[str] = (),
        local_models: ModelProcess | None = None,
    ) -> None:
        """`local_models`: the local model worker, when the caller started it early (`serve`
        does, so that its imports overlap the API's start)."""
        self.settings = settings
        self.clock = clock or SystemClock()
        self.role = role
        settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.db = Database(settings.resolved_database_url)
        self.catalog = Catalog.load(settings.catalog_file, configured=configured_models(settings))
        self.local_models = local_models or ModelProcess.from_settings(settings)
        self.providers = ProviderRegistry.from_settings(settings, local=self.local_models)
        self.models = [self.catalog.resolve(name).id for name in models]
        self._redis_bus = _redis_bus(settings.redis_url) if settings.redis_url else None
        self.bus: EventBus = self._redis_bus or EventBus()
        self.cancels = CancelRegistry()
        links = MediaLinks(
            _secret_key(settings), self.clock, ttl_seconds=settings.media_link_ttl_seconds
        )
        self._s3 = _s3_store(settings) if settings.storage_url else None
        self.blobs: BlobStore = self._s3 or LocalBlobStore(settings.data_dir / "blobs")
        blobs = self.blobs
        retention = timedelta(days=settings.retention_days)
        self.files = FileService(
            self.db,
            blobs,
            links,
            self.clock,
            retention=retention,
            retention_days_of=lambda tenant_id: self.tenants.current(tenant_id).retention_days,
        )
        self.retention = Retention(self.db, self.files, self.clock, retention=retention)
        self.inputs = InputImages(
            blobs,
            self.files,
            max_bytes=settings.max_input_bytes,
            max_pixels=settings.max_input_pixels,
        )
        self.access = AccessService(self.db, self.clock)
        self.vault = KeyVault.from_settings(settings)
        """Encrypts what is kept secret: tenants' own provider keys, webhook signing secrets."""
        self.tenants = TenantService(
            self.db,
            self.clock,
            keys=ProviderKeys(self.db, self.clock, self.vault, self.providers),
            on_retention_change=self.files.apply_retention,
        )
        self.eraser = TenantEraser(self.db, self.files, self.tenants, self.access, self.clock)
        self.model_directory = ModelDirectory(self.catalog, self.tenants, self.providers)
        self.safety = Safety(
            self.tenants,
            NsfwClassifier(settings.resolved_safety_model_file, threads=settings.torch_threads),
            threshold=settings.safety_threshold,
            blocked_terms=settings.safety_blocked_terms,
        )
        self.billing = Billing(self.db, self.clock)
        self.metrics = Metrics()
        self.webhook_secrets = WebhookSecrets(self.db, self.clock, self.vault)
        self.webhooks = WebhookOutbox(
            self.db,
            self.clock,
            targets=WebhookTargets(allowed_hosts=settings.webhook_allowed_hosts),
        )
        store = JobStore(
            self.db,
            self.bus,
            self.clock,
            on_end=[self.billing.on_job_ending],
            on_finish=[self.metrics.on_job_finished],
            on_event=[self.webhooks.on_job_event],
            on_progress=[self.webhooks.on_progress],
        )
        self.workers = WorkerRegistry(self.db, self.clock)
        self.worker_id = WorkerRegistry.new_id()
        cache = ResultCache(
            self.db, self.files, self.billing, self.clock, shared=settings.cache_shared
        )
        collaborators = JobCollaborators(
            store, self.catalog, self.providers, self.files, self.inputs, self.cancels, self.clock
        )
        self.executor = JobExecutor(
            collaborators,
            worker_id=self.worker_id,
            lease_seconds=settings.lease_seconds,
            max_attempts=settings.max_attempts,
            requeue=self.enqueue,
            keys=self.tenants.keys,
            safety=self.safety,
            cache=cache,
            previews=settings.progress_previews,
        )
        self.celery = _celery(settings.broker_url) if settings.broker_url else None
        self.local_worker = (
            None
            if settings.clustered
            else ThreadWorker(
                self.executor.run,
                threads=settings.worker_threads,
                group_size=settings.max_batch_size,
                grouped=self._batched,
                # as long as the model's batcher may wait for companions (a quiet window,
                # at most 3 windows after its first job)
                gather_seconds=4 * settings.batch_window_ms / 1000,
            )
        )
        self.queue: JobQueue = (
            _celery_queue(self.celery, [spec.id for spec in self.catalog])
            if self.celery is not None
            else self._local_worker()
        )
        self.local_models.more_on_the_way = self._more_on_the_way
        self.maintenance = Maintenance(
            store,
            self.enqueue,
            self.clock,
            max_attempts=settings.max_attempts,
            requeue_after=timedelta(seconds=settings.requeue_after_seconds),
        )
        self.jobs = JobService(
            collaborators,
            queue=self.queue,
            bus=self.bus,
            executor=self.executor,
            policies=Policies(
                tenants=self.tenants,
                billing=self.billing,
                limits=RateLimits(
                    settings.resolved_rate_limit_storage_uri, redis_url=settings.redis_url
                ),
                default_limits=LimitValues(
                    requests_per_minute=settings.default_requests_per_minute,
                    images_per_day=settings.default_images_per_day,
                    concurrent_jobs=settings.default_concurrent_jobs,
                ),
                cache=cache,
                idempotency=IdempotencyKeys(self.db, self.clock),
                safety=self.safety,
                webhooks=self.webhooks,
            ),
            max_attempts=settings.max_attempts,
        )
        self.history = History(self.db, self.files, self.catalog, self.clock)
        self.batches = BatchService(self.db, self.jobs, self.access, self.clock)
        self.batch_dispatcher = batch_dispatcher(self.batches) if role == "api" else None
        self.webhook_sender = WebhookSender(
            self.db,
            self.clock,
            secrets=self.webhook_secrets,
            targets=self.webhooks.targets,
            body=self._webhook_body,
            timeout_seconds=settings.webhook_timeout_seconds,
            retry_window=timedelta(seconds=settings.webhook_retry_seconds),
            backoff_seconds=settings.webhook_backoff_seconds,
            concurrency=settings.webhook_concurrency,
            per_receiver=settings.webhook_concurrency_per_receiver,
            per_tenant=settings.webhook_concurrency_per_tenant,
        )
        # every process sends (API replicas and workers alike); claims keep each delivery to one
        self.webhook_loop = PassLoop("webhooks", self.webhook_sender.send_due)
        self.webhooks.on_added = self.webhook_loop.wake
        self.webhook_sender.on_finished = self.webhook_loop.wake
        self.metrics.watch(
            jobs_by_state=store.counts_by_state,
            queue_depth=lambda: self.queue.depth,
            spend_by_tenant=self.billing.spend_by_tenant,
        )
        self.housekeeper = Housekeeper(self._chores())

    def _chores(self) -> list[Chore]:
        """Leases and retention everywhere; lost messages in a cluster; a worker's heartbeat."""
        settings = self.settings
        chores = [
            Chore("leases", settings.lease_seconds / 3, self.maintenance.take_back_expired),
            Chore("retention", SWEEP_INTERVAL_SECONDS, self.retention.sweep),
        ]
        if settings.clustered:
            chores.append(
                Chore("resend", settings.requeue_after_seconds / 2, self.maintenance.resend_waiting)
            )
        if self.role == "worker":
            chores.append(
                Chore(
                    "heartbeat",
                    settings.worker_heartbeat_seconds,
                    lambda: self.workers.beat(
                        self.worker_id, models=self.models, running=self.executor.running
                    ),
                )
            )
        return chores

    def _webhook_body(self, job: Job, delivery: WebhookDelivery, base_url: str) -> bytes:
        return webhook_body(job, delivery, base_url=base_url, files=self.files)

    def _more_on_the_way(self, model: str) -> bool:
        """Whether another job for local `model` may reach the model worker within a batch
        window of the one being sent: another POST is being handled (a request still being
        read or waiting for its images), a job is queued, or another of the model's jobs is
        in a worker thread. Unknown in a cluster, where other processes submit: then yes."""
        worker = self.local_worker
        if worker is None:
            return True
        return self.metrics.posts_in_progress > 1 or worker.depth > 0 or worker.in_hand(model) > 1

    def _local_worker(self) -> ThreadWorker:
        assert self.local_worker is not None
        return self.local_worker

    def _batched(self, model: str) -> bool:
        """Local models batch a group of jobs; hosted calls need no grouping."""
        return self.catalog.resolve(model).provider == self.local_models.name

    def enqueue(self, job_id: str, model: str) -> None:
        self.queue.enqueue(job_id, model)

    def start(self) -> None:
        upgrade(self.db, cipher=self.vault)
        if self.role == "api":
            configured = self.settings.admin_key
            new_key = self.access.bootstrap_admin(
                configured.get_secret_value() if configured else None, self.settings.data_dir
            )
            if new_key is not None:
                print(
                    f"pixelgate: created the admin API key (shown once; also saved to "
                    f"{self.settings.data_dir / ADMIN_KEY_FILE}):\n  {new_key}",
                    flush=True,
                )
        if self._redis_bus is not None:
            self._redis_bus.start()
        # without the local engine (`pixelgate[local]`) no model worker process starts: local
        # models are listed as unavailable, naming the extra
        local_engine = installed("local")
        if self.role == "worker" and local_engine:
            # a worker loads its models before it takes a job or says it is alive
            self.local_models.preload(self._preloads(self.models), wait=True)
        if self.local_worker is not None:
            # embedded: nothing else runs jobs, so jobs left running were cut off by a crash
            resumed = self.jobs.recover()
            if resumed:
                log.info("resuming %d unfinished jobs", resumed)
            self.local_worker.start()
            # in the background: the API answers while the models load and warm up
            if local_engine:
                self.local_models.preload(self._preloads(self.settings.preload_models), wait=False)
        self.housekeeper.start()
        if self.batch_dispatcher is not None:
            self.batch_dispatcher.start()
        self.webhook_loop.start()

    def _preloads(self, names: Sequence[str]) -> list[tuple[ModelSpec, ImageTask | None]]:
        """The local models among `names`, each with a one-step warm-up task where it makes
        images from text."""
        specs = [self.catalog.resolve(name) for name in names]
        return [
            (spec, self._warm_up_task(spec) if "generate" in spec.capabilities else None)
            for spec in specs
            if spec.provider == self.local_models.name
        ]

    def _warm_up_task(self, spec: ModelSpec) -> ImageTask:
        options = {"prompt": "warm-up", "seed": 0, "num_steps": 1}
        return ImageTask("generate", self.catalog.validate_options(spec, options, task="generate"))

    def stop(self) -> None:
        self.webhook_loop.stop()
        self.webhook_sender.close()
        if self.batch_dispatcher is not None:
            self.batch_dispatcher.stop()
        self.housekeeper.stop()
        if self.local_worker is not None:
            self.local_worker.stop()
        self.local_models.stop()
        if self.role == "worker":
            self.workers.leave(self.worker_id)
        if self._redis_bus is not None:
            self._redis_bus.stop()
        self.db.dispose()

    def check_dependencies(self) -> dict[str, str]:
        """Each dependency's state for /readyz: "ok", or why not."""
        checks: dict[str, Callable[[], object]] = {
            "database": lambda: self.db.ping(),
            "storage": self._check_storage,
        }
        if self._redis_bus is not None:
            checks["redis"] = self._redis_bus.ping
        if self.celery is not None:
            checks["broker"] = lambda: self.celery.connection_for_read().ensure_connection(  # type: ignore[union-attr]
                max_retries=1, timeout=2
            )
        if self.local_worker is not None:
            checks["worker"] = self._check_local_worker
        results = {}
        for name, check in checks.items():
            try:
                check()
                results[name] = "ok"
            except Exception as exc:
                results[name] = f"unavailable: {type(exc).__name__}"
        if self.local_worker is not None:
            results["models"] = self.local_models.readiness()
        return results

    def _check_storage(self) -> None:
        if self._s3 is not None:
            self._s3.check()
        elif not os.access(self.settings.data_dir, os.W_OK):
            raise PermissionError(str(self.settings.data_dir))

    def _check_local_worker(self) -> None:
        if self.local_worker is None or not self.local_worker.alive:
            raise RuntimeError("the worker threads stopped")


def _secret_key(settings: Settings) -> bytes:
    """The media-link signing key: configured, or made once and kept in the data directory."""
    if settings.secret_key is not None:
        return settings.secret_key.get_secret_value().encode()
    return kept_secret(settings.data_dir / "secret_key", lambda: secrets.token_hex(32)).encode()


# Cluster parts are imported only when configured: an embedded start does not pay for them.


def _redis_bus(url: str) -> RedisEventBus:
    from pixelgate.engine.redis_events import RedisEventBus

    return RedisEventBus(url)


def _s3_store(settings: Settings) -> S3BlobStore:
    from pixelgate.storage.s3 import S3BlobStore

    assert settings.storage_url is not None
    return S3BlobStore.from_url(
        settings.storage_url, endpoint_url=settings.s3_endpoint_url, region=settings.s3_region
    )


def _celery(broker_url: str) -> Celery:
    from pixelgate.engine.celery_queue import create_celery

    return create_celery(broker_url)


def _celery_queue(app: Celery, models: list[str]) -> CeleryQueue:
    from pixelgate.engine.celery_queue import CeleryQueue

    return CeleryQueue(app, models)
