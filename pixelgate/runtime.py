"""The composition root: builds every part from the settings, starts and stops them.

Embedded mode: SQLite, local disk, in-process worker threads.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
from datetime import timedelta
from pathlib import Path

from pixelgate.catalog import Catalog
from pixelgate.clock import Clock, SystemClock
from pixelgate.db import Database, upgrade
from pixelgate.engine import CancelRegistry, EventBus, ThreadWorker
from pixelgate.metrics import Metrics
from pixelgate.providers import ProviderRegistry
from pixelgate.providers.bfl import BlackForestLabsProvider
from pixelgate.providers.local_diffusion import LocalDiffusionProvider
from pixelgate.providers.openai import OpenAIProvider
from pixelgate.providers.rembg import RembgProvider
from pixelgate.providers.stability import StabilityProvider
from pixelgate.service.access import ADMIN_KEY_FILE, AccessService
from pixelgate.service.billing import Billing
from pixelgate.service.cache import ResultCache
from pixelgate.service.execution import JobExecutor
from pixelgate.service.files import FileService
from pixelgate.service.idempotency import IdempotencyKeys
from pixelgate.service.inputs import InputImages
from pixelgate.service.job_store import JobStore
from pixelgate.service.jobs import JobService, Policies
from pixelgate.service.media import MediaLinks
from pixelgate.service.rate_limits import LimitValues, RateLimits
from pixelgate.service.safety import NsfwClassifier, Safety
from pixelgate.service.tenants import TenantService
from pixelgate.settings import Settings
from pixelgate.storage import LocalBlobStore

log = logging.getLogger(__name__)

SWEEP_INTERVAL_SECONDS = 600.0


class Runtime:
    def __init__(self, settings: Settings, *, clock: Clock | None = None) -> None:
        self.settings = settings
        self.clock = clock or SystemClock()
        settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.db = Database(settings.resolved_database_url)
        self.catalog = Catalog.load(settings.catalog_file)
        self.local_models = LocalDiffusionProvider.from_settings(settings)
        self.providers = ProviderRegistry(
            [
                self.local_models,
                OpenAIProvider.from_settings(settings),
                StabilityProvider.from_settings(settings),
                RembgProvider(settings.resolved_rembg_home, threads=settings.torch_threads),
                BlackForestLabsProvider.from_settings(settings),
            ]
        )
        self.bus = EventBus()
        self.cancels = CancelRegistry()
        links = MediaLinks(
            _secret_key(settings), self.clock, ttl_seconds=settings.media_link_ttl_seconds
        )
        blobs = LocalBlobStore(settings.data_dir / "blobs")
        self.files = FileService(
            self.db,
            blobs,
            links,
            self.clock,
            retention=timedelta(days=settings.retention_days),
        )
        self.inputs = InputImages(
            blobs,
            self.files,
            max_bytes=settings.max_input_bytes,
            max_pixels=settings.max_input_pixels,
        )
        self.access = AccessService(self.db, self.clock)
        self.safety = Safety(
            self.db,
            NsfwClassifier(settings.resolved_safety_model_file, threads=settings.torch_threads),
            threshold=settings.safety_threshold,
            blocked_terms=settings.safety_blocked_terms,
        )
        self.tenants = TenantService(self.db, self.clock)
        self.billing = Billing(self.db, self.clock)
        self.metrics = Metrics()
        store = JobStore(
            self.db,
            self.bus,
            self.clock,
            on_finish=[self.billing.on_job_finished, self.metrics.on_job_finished],
        )
        self.executor = JobExecutor(
            store,
            self.catalog,
            self.providers,
            self.files,
            self.inputs,
            self.cancels,
            self.clock,
            safety=self.safety,
        )
        self.worker = ThreadWorker(
            self.executor.run, threads=settings.worker_threads, group_size=settings.max_batch_size
        )
        self.jobs = JobService(
            store,
            self.catalog,
            self.providers,
            self.files,
            self.inputs,
            self.worker,
            self.bus,
            self.cancels,
            self.clock,
            policies=Policies(
                tenants=self.tenants,
                billing=self.billing,
                limits=RateLimits(settings.rate_limit_storage_uri),
                default_limits=LimitValues(
                    requests_per_minute=settings.default_requests_per_minute,
                    images_per_day=settings.default_images_per_day,
                    concurrent_jobs=settings.default_concurrent_jobs,
                ),
                cache=ResultCache(self.db, self.files, shared=settings.cache_shared),
                idempotency=IdempotencyKeys(self.db, self.clock),
            ),
            max_attempts=settings.max_attempts,
        )
        self.metrics.watch(
            jobs_by_state=store.counts_by_state,
            queue_depth=lambda: self.worker.depth,
            spend_by_tenant=self.billing.spend_by_tenant,
        )
        self._stopping = threading.Event()
        self._sweeper = threading.Thread(target=self._sweep_loop, name="pixelgate-retention")

    def start(self) -> None:
        upgrade(self.db)
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
        resumed = self.jobs.recover()
        if resumed:
            log.info("resuming %d unfinished jobs", resumed)
        self.worker.start()
        self._sweeper.start()
        preload = [self.catalog.resolve(name) for name in self.settings.preload_models]
        self.local_models.start_preload(preload)

    def stop(self) -> None:
        self._stopping.set()
        self.worker.stop()
        if self._sweeper.is_alive():
            self._sweeper.join(5)
        self.db.dispose()

    def _sweep_loop(self) -> None:
        while True:
            try:
                self.files.sweep_expired()
            except Exception:
                log.exception("retention sweep failed")
            if self._stopping.wait(SWEEP_INTERVAL_SECONDS):
                return


def _secret_key(settings: Settings) -> bytes:
    """The media-link signing key: configured, or made once and kept in the data directory."""
    if settings.secret_key is not None:
        return settings.secret_key.get_secret_value().encode()
    path: Path = settings.data_dir / "secret_key"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(32))
    return path.read_text().strip().encode()
