"""Running one job: claim it, run its provider, store its images, record how it ended.

The in-process worker calls `JobExecutor.run` with a job id; a cluster worker calls the same
method. The claim is a conditional update in the database, so a job handed out twice runs once.
The claim leases the job to this worker; the worker renews the lease while it works, and only
the lease holder may end the job, so a job taken back from a worker presumed dead is never
finished twice.

A cacheable job (a fixed seed, the cache not bypassed) looks for an identical request's result
before it computes: a cache hit ends it at once, and an older identical job in flight is waited
for first (see `_identical_result`), so that identical asynchronous requests compute once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from pixelgate.catalog import Catalog
from pixelgate.clock import Clock
from pixelgate.db.job_records import JobInputs, JobOptions, JobResult, ResultImage
from pixelgate.db.tables import Job
from pixelgate.engine import CancelRegistry
from pixelgate.errors import Canceled, Error
from pixelgate.providers import (
    CancelToken,
    ImageTask,
    ProviderRegistry,
    UpstreamState,
    UpstreamTask,
)
from pixelgate.providers.base import ProgressCallback, ProgressWithPreviews, StepPreview
from pixelgate.providers.keys import whose_key_refused
from pixelgate.service.cache import ResultCache, follow_pauses
from pixelgate.service.files import FileService
from pixelgate.service.inputs import InputImages
from pixelgate.service.job_store import JobStatus, JobStore
from pixelgate.service.provider_keys import ProviderKeys
from pixelgate.service.routes import FALLBACK_CODES, served, try_of
from pixelgate.service.safety import Safety

log = logging.getLogger(__name__)

RUNNING = (JobStatus.RUNNING,)


TRANSIENT = (OSError, MemoryError)
"""Unexpected failures worth another try (I/O, memory); other surprises are bugs and fail."""

FOLLOW_QUEUED_LIMIT = 2.0
"""How long (seconds) a job waits for an older identical job that is still queued. That job is
older, so it is normally taken before this one and runs within moments; one queued for longer
waits behind other work (its retry, a busy worker elsewhere), and this job computes instead of
holding a worker thread that the other may need."""


@dataclass(frozen=True)
class JobCollaborators:
    """What both ends of a job work with: the service that accepts it (`JobService`) and the
    executor that runs it (`JobExecutor`)."""

    store: JobStore
    catalog: Catalog
    providers: ProviderRegistry
    files: FileService
    inputs: InputImages
    cancels: CancelRegistry
    clock: Clock


class JobExecutor:
    def __init__(
        self,
        collaborators: JobCollaborators,
        *,
        worker_id: str,
        lease_seconds: float,
        max_attempts: int,
        requeue: Callable[[str, str], None],
        keys: ProviderKeys,
        safety: Safety | None = None,
        cache: ResultCache | None = None,
        previews: bool = False,
    ) -> None:
        """`keys`: tenants' own provider keys, for the jobs that run with one. `cache`: the
        result cache, for a cacheable job to be served from when it runs (an
        identical job finished or in flight); None, and every job computes. `previews`: ask
        providers that can for previews of the current step, sent with the job's progress."""
        self._store = store = collaborators.store
        self._catalog = collaborators.catalog
        self._providers = collaborators.providers
        self._files = collaborators.files
        self._inputs = collaborators.inputs
        self._cancels = collaborators.cancels
        self._clock = clock = collaborators.clock
        self.worker_id = worker_id
        self._lease = timedelta(seconds=lease_seconds)
        self._max_attempts = max_attempts
        self._requeue = requeue
        self._keys = keys
        self._safety = safety
        self._cache = cache
        self._previews = previews
        self._running: set[str] = set()
        self._running_lock = threading.Lock()
        self._keeper = _LeaseKeeper(store, clock, worker_id=worker_id, lease=self._lease)

    @property
    def running(self) -> list[str]:
        """Ids of the jobs this executor runs now."""
        with self._running_lock:
            return sorted(self._running)

    @property
    def lease(self) -> timedelta:
        """How long a claim holds a job before it must be renewed."""
        return self._lease

    def run(self, job_id: str) -> None:
        token = self._cancels.open(job_id)
        try:
            # 1. claim: only one runner moves a job from queued to running, and leases it
            now = self._clock.now()
            job = self._store.claim(
                job_id, worker_id=self.worker_id, now=now, lease_until=now + self._lease
            )
            if job is not None:  # None: already taken, finished or canceled (a duplicate)
                self._run_held(job, token)
        finally:
            self._cancels.close(job_id)

    def run_claimed(self, job: Job) -> Job | None:
        """Run a job recorded as already claimed by this executor (see `JobStore.create`), in
        the calling thread; returns it as it ended, or None when it did not end here (queued
        again for another try, or taken back)."""
        token = self._cancels.open(job.id)
        try:
            return self._run_held(job, token)
        finally:
            self._cancels.close(job.id)

    def _run_held(self, job: Job, token: CancelToken) -> Job | None:
        """A job this executor holds: its lease kept and a cancel passed on while it runs."""
        if job.cancel_requested:
            token.cancel()
        with self._holding_lease(job.id, token):
            return self._work(job, token)

    def _work(self, job: Job, token: CancelToken) -> Job | None:
        """Run a claimed job to its end; the ended job, or None when it did not end here."""
        job_id = job.id
        upstream = self._upstream_of(job)
        ran = False
        try:
            # 2. the model and its options, checked again against today's catalog
            spec = self._catalog.resolve(job.model)
            options = self._catalog.validate_options(spec, job.options.values, task=job.task)
            provider = self._providers.for_model(spec, own_key=job.own_key)
            if token.canceled:
                raise Canceled("Job canceled")
            # 3. the result of an identical request, when there is one or one is on its way
            hit = self._identical_result(job, token)
            if hit is not None:
                return self._end_as_hit(job, hit)
            # 4. the work, with progress and cancel at every step
            inputs = job.inputs or JobInputs()
            # the tenant's own key, when the job was accepted to run with it (never the
            # operator's in its place: that one was neither chosen nor billed)
            own_key = self._keys.secret_for(job.tenant_id, spec) if job.own_key else None
            task = ImageTask(
                kind=job.task,
                options=options,
                image=self._inputs.load(inputs.image) if inputs.image else None,
                mask=self._inputs.load(inputs.mask) if inputs.mask else None,
                upstream=upstream,
                own_key=own_key,
            )
            ran = True
            images = provider.run(
                spec,
                task,
                progress=self._progress_of(job),
                cancel=token,
            )
            if len(images) > options.n:
                # never more than asked (and charged for): the extras are dropped unstored
                log.warning(
                    "job %s: %s returned %d images for n=%d; keeping %d",
                    job_id, spec.provider, len(images), options.n, options.n,
                )  # fmt: skip
                images = images[: options.n]
            # 5. the safety check, when on: a flagged image is never stored
            if self._safety is not None:
                self._safety.check_images(job.tenant_id, images)
            # 6. the results: bytes stored first, then their records and the success in one
            # transaction, so a job that says it succeeded always has its files
            stored = [
                self._files.prepare(tenant_id=job.tenant_id, job_id=job_id, image=image)
                for image in images
            ]
            result = JobResult(
                created=int(self._clock.now().timestamp()),
                images=tuple(
                    ResultImage(record.id, image.seed, image.revised_prompt)
                    for record, image in zip(stored, images, strict=True)
                ),
            )
            routed: dict[str, Any] = {}
            if job.route is not None:
                routed["route"] = job.route.tried(served(job.model))
            succeeded = self._store.end(
                job_id,
                to=JobStatus.SUCCEEDED,
                held_by=self.worker_id,
                within=lambda connection: self._files.record(connection, stored),
                result=result,
                **routed,
            )
            if succeeded is not None:
                self._files.saved(stored)
            else:
                # the job was taken back or canceled meanwhile: the files are recorded anyway,
                # so that retention removes their bytes in time
                self._files.save(stored)
            return succeeded
        except Canceled:
            return self._store.end(
                job_id,
                to=JobStatus.CANCELED,
                held_by=self.worker_id,
                event_data={"reason": "canceled by request"},
            )
        except Error as raised:
            exc = whose_key_refused(raised, own_key=job.own_key)  # the tenant's key, or ours
            if self._may_fall_back(job, exc, upstream, ran=ran) and self._fall_back(job, exc):
                return None
            return self._fail_or_retry(job, exc, retry=exc.retryable)
        except TRANSIENT as exc:
            log.warning("job %s hit %s; it may be tried again", job_id, type(exc).__name__)
            error = Error(f"Transient failure: {type(exc).__name__}")
            return self._fail_or_retry(job, error, retry=True)
        except Exception as exc:
            log.exception("job %s failed unexpectedly", job_id)
            error = Error(f"Internal error while running the job: {type(exc).__name__}")
            return self._fail_or_retry(job, error, retry=False)

    def _progress_of(self, job: Job) -> ProgressCallback:
        """How a job's provider reports its steps: to the job's event subscribers."""

        def progress(step: int, total: int) -> None:
            self._store.publish_progress(job, step, total)

        if not self._previews:
            return progress

        def preview(step: int, total: int, picture: StepPreview) -> None:
            self._store.publish_progress(job, step, total, preview=picture.data_uri())

        return ProgressWithPreviews(progress, preview)

    def _identical_result(self, job: Job, token: CancelToken) -> Job | None:
        """For a cacheable job: the succeeded job of an identical request to serve it from,
        waiting first for an older identical job in flight to end; None when this job
        computes (it is not cacheable, it is the oldest, or the one it waited for failed).

        A job waits only for an older one, so no two jobs wait for each other; and it waits
        for one still queued only briefly (`FOLLOW_QUEUED_LIMIT`), so waiting jobs never hold
        every worker thread while the job they wait for is queued behind them."""
        cache, key = self._cache, job.cache_key
        if cache is None or key is None or job.cache_bypassed:
            return None
        while True:
            hit = cache.lookup(job.tenant_id, key)
            if hit is not None:
                return hit
            leader = cache.in_flight(job.tenant_id, key, before=job)
            if leader is None:
                return cache.lookup(job.tenant_id, key)  # one that ended between the looks
            if not self._await_end(leader.id, token):
                return None

    def _await_end(self, leader_id: str, token: CancelToken) -> bool:
        """Wait for the job `leader_id` to end (however it ends): True once it has; False when
        it is still queued after `FOLLOW_QUEUED_LIMIT`. Raises `Canceled` when this job is
        canceled meanwhile (its lease is kept by `_LeaseKeeper` all along)."""
        queued_since: float | None = None
        for pause in follow_pauses():
            leader = self._store.load(leader_id)
            if leader is None or JobStatus(leader.status).is_terminal:
                return True
            if leader.status != JobStatus.QUEUED:
                queued_since = None
            elif queued_since is None:
                queued_since = time.monotonic()
            elif time.monotonic() - queued_since > FOLLOW_QUEUED_LIMIT:
                return False
            if token.wait(pause):
                raise Canceled("Job canceled")
        return False  # not reached: the pauses never end

    def _end_as_hit(self, job: Job, hit: Job) -> Job | None:
        """End the job as a cache hit over the images of `hit`, billed under the tenant's cache
        policy as a hit served at once is (see `ResultCache.serve`)."""
        assert self._cache is not None
        served = self._cache.serve(hit, tenant_id=job.tenant_id, job_id=job.id, price=None)
        return self._store.end(
            job.id,
            to=JobStatus.SUCCEEDED,
            held_by=self.worker_id,
            event_data={"cached": True},
            within=served.record,
            result=served.result,
            cached=True,
        )

    def _upstream_of(self, job: Job) -> UpstreamState:
        """What earlier attempts of the job left with a hosted provider (one record per
        request, so per image where each image is its own request), and the note-taker for
        this attempt: kept with the job, so that no attempt sends a billed request twice."""
        earlier = UpstreamState.records_from(job.result.upstream if job.result else None)

        def keep(records: Mapping[int, UpstreamTask]) -> None:
            data = UpstreamState.data_of(records)
            if not self._store.keep_upstream(job.id, self.worker_id, data):
                log.warning("job %s: could not note its upstream task (no longer held)", job.id)

        return UpstreamState(earlier, keep, attempt=job.attempts)

    def _may_fall_back(self, job: Job, error: Error, upstream: UpstreamState, *, ran: bool) -> bool:
        """Whether the next model of the job's route may serve it after `error`: one is left,
        the error is one a fallback answers (`FALLBACK_CODES`), and the provider billed nothing
        for the job. Before this attempt ran its provider, only earlier attempts' requests
        count (the claim's note of the request this attempt would send was never sent)."""
        if job.route is None or not job.route.candidates or error.code not in FALLBACK_CODES:
            return False
        if ran:
            return upstream.billed_nothing
        earlier = UpstreamState.records_from(job.result.upstream if job.result else None)
        sent = {i: task for i, task in earlier.items() if task.by_attempt != job.attempts}
        return UpstreamState(sent).billed_nothing

    def _fall_back(self, job: Job, error: Error) -> bool:
        """Move the job back to the queue on its route's next model, with that model's options,
        the failed try recorded; False when it was not moved (canceled or taken back)."""
        assert job.route is not None
        step = job.route.tried(try_of(job.model, error)).next_candidate()
        assert step is not None
        candidate, route = step
        log.info("job %s: %s failed (%s); falling back to %s",
                 job.id, job.model, error.code, candidate.model)  # fmt: skip
        moved = self._store.transition(
            job.id,
            to=JobStatus.QUEUED,
            allowed_from=RUNNING,
            held_by=self.worker_id,
            event_data={
                "fallback": {"from": job.model, "to": candidate.model},
                "error": error.to_dict(),
            },
            worker_id=None,
            enqueued_at=self._clock.now(),
            model=candidate.model,
            options=JobOptions(candidate.options),
            own_key=candidate.own_key,
            route=route,
            result=None,
            cache_key=None,
            attempts=0,
        )
        if moved:
            self._requeue(job.id, candidate.model)
        return moved

    def _fail_or_retry(self, job: Job, error: Error, *, retry: bool) -> Job | None:
        """A transient failure queues the job again while it has attempts left; otherwise
        the job fails. The failed job, or None when it was queued again (or taken back)."""
        if retry and job.attempts < self._max_attempts:
            requeued = self._store.transition(
                job.id,
                to=JobStatus.QUEUED,
                allowed_from=RUNNING,
                held_by=self.worker_id,
                event_data={"retry": True, "error": error.to_dict()},
                worker_id=None,
                enqueued_at=self._clock.now(),
            )
            if requeued:
                self._requeue(job.id, job.model)
            return None
        routed: dict[str, Any] = {}
        if job.route is not None:
            routed["route"] = job.route.tried(try_of(job.model, error))
        return self._store.end(
            job.id,
            to=JobStatus.FAILED,
            held_by=self.worker_id,
            event_data={"error": error.to_dict()},
            **routed,
            error_code=error.code,
            error_message=error.message,
            error_param=error.param,
        )

    @contextmanager
    def _holding_lease(self, job_id: str, token: CancelToken) -> Iterator[None]:
        """While the job runs, its lease is renewed and a cancel asked for anywhere reaches it
        (see `_LeaseKeeper`)."""
        with self._running_lock:
            self._running.add(job_id)
        self._keeper.add(job_id, token)
        try:
            yield
        finally:
            self._keeper.discard(job_id)
            with self._running_lock:
                self._running.discard(job_id)


class _LeaseKeeper:
    """One thread per executor that, while the executor runs jobs, renews all their leases every
    third of the lease in one transaction, and passes on a cancel asked for anywhere (another
    replica, another process) through the database. A lost lease (the job was taken back) stops
    the work at its next step. The thread ends after an interval with no job running, and
    starts again with the next job."""

    def __init__(self, store: JobStore, clock: Clock, *, worker_id: str, lease: timedelta) -> None:
        self._store = store
        self._clock = clock
        self._worker_id = worker_id
        self._lease = lease
        self._interval = lease.total_seconds() / 3
        self._tokens: dict[str, CancelToken] = {}
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None

    def add(self, job_id: str, token: CancelToken) -> None:
        with self._cond:
            self._tokens[job_id] = token
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._keep, name=f"lease-{self._worker_id}", daemon=True
                )
                self._thread.start()

    def discard(self, job_id: str) -> None:
        with self._cond:
            self._tokens.pop(job_id, None)

    def _keep(self) -> None:
        while True:
            with self._cond:
                self._cond.wait(self._interval)
                if not self._tokens:  # a whole interval without a job: stop until the next
                    self._thread = None
                    return
                tokens = dict(self._tokens)
            try:
                states = self._store.renew_leases(
                    tokens, self._worker_id, self._clock.now() + self._lease
                )
            except Exception:
                log.warning("could not renew the leases of %s", sorted(tokens), exc_info=True)
                continue
            for job_id, (held, cancel) in states.items():
                if cancel or not held:
                    tokens[job_id].cancel()
