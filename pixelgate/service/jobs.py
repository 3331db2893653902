"""Jobs as the caller sees them: submit, look up, wait, follow, cancel; and recovery after a
crash. Every request becomes a durable job before anything runs."""

from __future__ import annotations

import asyncio
import base64
import logging
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import Future
from dataclasses import dataclass, replace
from datetime import datetime
from functools import partial
from typing import Any, Generic, Literal, TypeVar

from anyio import to_thread
from PIL import Image
from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

from pixelgate.catalog import (
    OPTION_FAMILIES,
    TASK_NAMES,
    ImageOptions,
    ModelSpec,
    TaskKind,
)
from pixelgate.catalog.options import EditKind
from pixelgate.db.job_records import JobInputs, JobOptions, JobResult
from pixelgate.db.tables import Job, Tenant
from pixelgate.engine import EventBus, JobEventMessage, JobQueue
from pixelgate.errors import (
    Canceled,
    Conflict,
    ModelAccessDenied,
    MustProvideFile,
    NotFound,
    Timeout,
    ValidationError,
    error_from_code,
)
from pixelgate.providers.base import (
    UpstreamState,
    UpstreamTask,
    sends_one_request,
)
from pixelgate.service.access import Principal
from pixelgate.service.billing import Billing
from pixelgate.service.cache import InFlight, ResultCache, cache_key, follow_pauses
from pixelgate.service.edit_sizes import (
    adjustment,
    plan_aspect_ratio,
    plan_edit,
    plan_requested_size,
    with_option_adjustment,
)
from pixelgate.service.execution import JobCollaborators, JobExecutor
from pixelgate.service.idempotency import IdempotencyKeys, request_fingerprint
from pixelgate.service.inputs import ImageUpload
from pixelgate.service.job_store import JobStatus
from pixelgate.service.portable_options import portable_options
from pixelgate.service.rate_limits import LimitValues, RateLimits, Subject
from pixelgate.service.routes import Fitted, RoutePlan, fallback_specs, plan_route
from pixelgate.service.safety import Safety
from pixelgate.service.tenants import TenantService
from pixelgate.service.upscale_sizes import upscale_input_size
from pixelgate.service.webhook_outbox import WebhookOutbox
from pixelgate.service.webhook_targets import Webhook

log = logging.getLogger(__name__)

Answer = TypeVar("Answer")
"""What a synchronous request makes of its succeeded job (`JobService.run`)."""
Served = TypeVar("Served")

ResponseFormat = Literal["url", "b64_json"]


@dataclass(frozen=True)
class ImageCommand:
    """A request for images, as every surface (native, OpenAI-compatible, web, MCP) hands it
    to the service."""

    task: TaskKind
    model: str
    options: dict[str, Any]
    response_format: ResponseFormat = "url"
    metadata: dict[str, Any] | None = None
    image: ImageUpload | None = None
    mask: ImageUpload | None = None
    use_cache: bool = True
    """False bypasses the result cache (`"cache": false`, `Cache-Control: no-cache`)."""
    idempotency_key: str | None = None
    webhook: Webhook | None = None
    """Where the job's events go (`"webhook"`, `"webhook_events"`)."""
    fallbacks: tuple[str, ...] | None = None
    """Models to try, in order, when `model` cannot serve the request (see `service.routes`);
    None takes the catalog's default route for the model, an empty tuple asks for none."""


@dataclass(frozen=True)
class Policies:
    """The rules a job passes before it is accepted."""

    tenants: TenantService
    billing: Billing
    limits: RateLimits
    default_limits: LimitValues
    cache: ResultCache
    idempotency: IdempotencyKeys
    safety: Safety | None = None
    """The prompt block-list, when one is set."""
    webhooks: WebhookOutbox | None = None
    """Where a request's webhook is checked and recorded; None refuses every webhook."""


@dataclass(frozen=True)
class ImageOutput:
    file_id: str
    seed: int | None
    revised_prompt: str | None
    media_path: str | None
    expires_at: datetime | None
    b64_json: str | None


class JobService:
    def __init__(
        self,
        collaborators: JobCollaborators,
        *,
        queue: JobQueue,
        bus: EventBus,
        executor: JobExecutor,
        policies: Policies,
        max_attempts: int,
    ) -> None:
        self._store = collaborators.store
        self._catalog = collaborators.catalog
        self._providers = collaborators.providers
        self._files = collaborators.files
        self._inputs = collaborators.inputs
        self._cancels = collaborators.cancels
        self._clock = collaborators.clock
        self._queue = queue
        self._bus = bus
        self._executor = executor
        self._policies = policies
        self._max_attempts = max_attempts
        self._flights = InFlight()

    # -- submitting -----------------------------------------------------------------------

    def submit(self, principal: Principal, command: ImageCommand) -> Job:
        """Check, record and queue a job; nothing runs before this returns. The same
        Idempotency-Key and request return the earlier job; a cache hit returns a finished
        job at once."""
        job, _ = self._submit(principal, command, claim=False)
        return job

    def _submit(
        self,
        principal: Principal,
        command: ImageCommand,
        *,
        claim: bool,
        follow_until: float | None = None,
    ) -> tuple[Job, bool]:
        """`submit`; with `claim`, a new job is recorded as claimed by this process's executor
        and not queued, for the caller to run. Returns the job and whether it was so claimed
        (an earlier job or a cached one is not).

        `follow_until` (a `time.monotonic()` deadline): the caller waits for the result, so a
        cacheable request that finds an identical one in flight waits for that one to end,
        then is served from the cache under the tenant's cache policy, instead of computing
        (and paying for) the same images again. Raises `Timeout` past the deadline.

        A request refused once its inputs were stored leaves none behind that nothing uses."""
        with self._inputs.kept_if_accepted():
            return self._accept(principal, command, claim=claim, follow_until=follow_until)

    def _accept(
        self,
        principal: Principal,
        command: ImageCommand,
        *,
        claim: bool,
        follow_until: float | None,
    ) -> tuple[Job, bool]:
        rules = self._policies
        tenant, edit, plan = self._checked(principal, command)
        spec, raw_options, options = plan.chosen.spec, plan.chosen.raw_options, plan.chosen.options
        option_changes = plan.chosen.changes
        # only an Idempotency-Key needs the request's digest (input images included)
        fingerprint = request_fingerprint(command) if command.idempotency_key is not None else ""
        if command.idempotency_key is not None:
            earlier = rules.idempotency.replay(tenant.id, command.idempotency_key, fingerprint)
            if earlier is not None:
                return self._replayed(earlier), False
        # 3. how fast
        subjects = self._limit_subjects(principal, tenant)
        rules.limits.check_request(subjects, images=options.n)
        image = self._inputs.accept(principal, command.image) if command.image else None
        mask = self._inputs.accept(principal, command.mask) if command.mask else None
        # white repaints, whichever convention the caller's mask came in
        inputs = JobInputs(image=image, mask=self._inputs.as_mask(mask) if mask else None)
        if spec.limits.square_inputs and inputs.image is not None:
            inputs = self._square_image(spec, inputs)
        if command.task == "edit" and inputs.image and "width" in type(options).model_fields:
            # local models edit at a size they accept; the resize is recorded with the inputs
            sized, inputs = plan_edit(spec, raw_options, inputs)
            options = self._catalog.validate_options(spec, sized, task=command.task, edit=edit)
            plan = replace(plan, chosen=replace(plan.chosen, options=options))
        elif inputs.mask is not None and inputs.image is not None:
            inputs = self._mask_to_image_size(inputs)
        elif command.task == "upscale" and inputs.image is not None:
            inputs = self._upscale_input(spec, options, inputs)
        for change in option_changes:
            inputs = with_option_adjustment(inputs, change)
        # 4. a fixed seed makes the result cacheable; a caller who waits (a synchronous
        # request) and finds the same request in flight waits for it and takes its result;
        # a job of its own (an asynchronous request) does so when it runs (`JobExecutor`)
        key = None
        if options.seed_value is not None:
            dump = options.model_dump(mode="json")
            key = cache_key(task=command.task, model=spec.id, options=dump, inputs=inputs)
        if key is None or not command.use_cache:
            return self._create(principal, command, plan, tenant, inputs, key,
                                fingerprint, subjects, claim=claim)  # fmt: skip
        while True:
            with self._flights.one_at_a_time(rules.cache.scope(tenant.id, key)):
                # identical requests of this process look and record one after the other, so
                # the second one sees the first one's job in flight
                hit = rules.cache.lookup(tenant.id, key)
                if hit is not None:
                    cached = self._serve_cached(principal, tenant, command, hit, key, fingerprint)
                    return cached, False
                leader = rules.cache.in_flight(tenant.id, key) if follow_until else None
                if leader is None:
                    return self._create(principal, command, plan, tenant, inputs, key,
                                        fingerprint, subjects, claim=claim)  # fmt: skip
            assert follow_until is not None
            self._await_end(leader.id, follow_until)

    def check(self, principal: Principal, command: ImageCommand) -> None:
        """Raise what `submit` would refuse the request for before anything is spent: the
        scope, the model and the tenant's access to it, the task, the options and the prompt.
        Nothing is recorded (a batch checks every request before it queues any)."""
        self._checked(principal, command)

    def _checked(
        self, principal: Principal, command: ImageCommand
    ) -> tuple[Tenant, EditKind | None, RoutePlan]:
        """Steps 1 and 2 of `_submit`: the tenant, the edit kind, and the models that may serve
        the request (the model asked for, or its first fallback that can run here when it
        cannot, and the fallbacks after it), each with the request's options fitted to it."""
        rules = self._policies
        principal.require("generate")
        # 1. who may use what, and with whose provider key
        spec = self._catalog.resolve(command.model)
        tenant = rules.tenants.current(principal.tenant_id)
        rules.tenants.check_model(tenant, spec)
        # which key each model would run with, decided once per model and carried in `Fitted`
        keys = {spec.id: rules.tenants.keys.plan(tenant, spec)}
        refusal = keys[spec.id].refusal
        if refusal is not None:
            raise ModelAccessDenied(
                f"Model {spec.id!r} is unavailable to this tenant: {refusal}", param="model"
            )
        # 2. the request itself, before anything is spent
        _check_capability(spec, command)
        self._check_mask_source(principal, spec, command)
        edit = _edit_kind(command)
        first = self._fit(spec, command, edit, own_key=keys[spec.id].own_key)
        prompt = getattr(first.options, "prompt", None)  # optional for some families (outpaint)
        if rules.safety is not None and isinstance(prompt, str):
            rules.safety.check_prompt(prompt, principal.tenant_id)
        if command.webhook is not None:  # a request's own mistake, before what the server lacks
            if rules.webhooks is None:
                raise ValidationError("This server sends no webhooks", param="webhook")
            rules.webhooks.check(command.webhook)

        def may_use(fallback: ModelSpec) -> bool:
            if not rules.tenants.may_use(tenant, fallback):
                return False
            keys[fallback.id] = rules.tenants.keys.plan(tenant, fallback)
            return keys[fallback.id].refusal is None

        def fit(fallback: ModelSpec) -> Fitted:  # a fallback that `may_use` allowed
            return self._fit(fallback, command, edit, own_key=keys[fallback.id].own_key)

        fallbacks, named = fallback_specs(
            command.fallbacks,
            requested=spec,
            resolve=self._catalog.resolve,
            may_use=may_use,
            task=command.task,
            masked=command.mask is not None,
        )
        plan = plan_route(
            first,
            fallbacks,
            routed=named,
            fit=fit,
            check_available=lambda fitted: self._providers.for_model(
                fitted.spec, own_key=fitted.own_key
            ),
        )
        return tenant, edit, plan

    def _fit(
        self, spec: ModelSpec, command: ImageCommand, edit: EditKind | None, *, own_key: bool
    ) -> Fitted:
        """The request's options fitted to `spec`: mapped to it (a width and height the model
        takes otherwise, with the mapping recorded), then validated; with whether it runs with
        the tenant's own key for the model's provider (`ProviderKeys.plan`)."""
        family = OPTION_FAMILIES[spec.family]
        portable = portable_options(spec, family, command.options, task=command.task)
        raw_options, option_change = plan_aspect_ratio(spec, family, portable.options)
        if command.task == "edit" and option_change is None:
            raw_options, option_change = plan_requested_size(spec, family, raw_options)
        options = self._catalog.validate_options(spec, raw_options, task=command.task, edit=edit)
        changes = (*portable.adjustments, *([option_change] if option_change else []))
        return Fitted(spec, raw_options, changes, options, own_key=own_key)

    def _check_mask_source(
        self, principal: Principal, spec: ModelSpec, command: ImageCommand
    ) -> None:
        """A model that reads an edit's mask from the image's transparency without a mask
        (`transparency_as_mask`) gets a mask or an image with transparent pixels."""
        if not spec.limits.transparency_as_mask or command.task != "edit":
            return
        if command.mask is not None or command.image is None:
            return
        if not self._inputs.transparent(principal, command.image):
            raise MustProvideFile(
                f"Model {spec.id!r} edits what a mask covers: send a mask (white repaints, black "
                "keeps), or an image whose transparent pixels mark the area",
                param="mask",
            )

    def _create(
        self,
        principal: Principal,
        command: ImageCommand,
        plan: RoutePlan,
        tenant: Tenant,
        inputs: JobInputs,
        key: str | None,
        fingerprint: str,
        subjects: list[Subject],
        *,
        claim: bool,
    ) -> tuple[Job, bool]:
        """Record (and, unless claimed, queue) a new job for an accepted request, on the model
        its route chose (with the tenant's own key for its provider where `plan` says so)."""
        rules = self._policies
        spec, options = plan.chosen.spec, plan.chosen.options
        if "seed" in type(options).model_fields and options.seed_value is None:
            # fixed now, so a resumed job draws the same images and the caller can reproduce them
            options = options.with_seed(secrets.randbelow(2**32))
        plan = plan.with_seed(options.seed_value)
        job = self._new_job(
            principal, command, spec.id, JobOptions(options.model_dump(mode="json"))
        )
        job.inputs = inputs if inputs != JobInputs() else None
        job.cache_key = key
        job.cache_bypassed = not command.use_cache
        own_key = plan.chosen.own_key
        job.own_key = own_key

        def price(fitted: Fitted) -> int:
            # a job on the tenant's own provider key is free unless the tenant's policy charges
            # (it still counts in the usage report)
            if fitted.own_key and tenant.own_keys_billing != "charge":
                return 0
            return rules.billing.image_price(tenant, fitted.spec, fitted.options)

        job.route = plan.route(price)
        # 5. money, reserved in the job's own transaction: for the dearest model that may serve
        cost = plan.reservation(price)

        def within(connection: Connection) -> None:
            if cost > 0 or own_key:
                rules.billing.reserve(
                    connection, tenant=tenant, job_id=job.id, model=spec.id, amount=cost,
                    images=options.n,
                )  # fmt: skip
            self._record_idempotency(connection, tenant.id, command, fingerprint, job.id)
            self._subscribe(connection, job, command)

        # the model that serves may not be the one asked for: is it this process's to run?
        claim = claim and self._queue.runs_here(spec.id)
        holder = self._executor.worker_id if claim else None
        lease_until = self._clock.now() + self._executor.lease if claim else None
        if claim and sends_one_request(self._providers.for_model(spec, own_key=own_key)):
            # the claim notes the one billed request its attempt (the first) may send, so that
            # no later attempt sends it again, and the call needs no write of its own
            first = UpstreamTask(spec.provider, by_attempt=1)
            job.result = JobResult(upstream=UpstreamState.data_of({0: first}))
        with rules.limits.concurrency_slot(subjects, self._count_active):
            try:
                self._store.create(job, within=within, claimed_by=holder, lease_until=lease_until)
            except IntegrityError:
                winner = self._idempotency_winner(tenant.id, command, fingerprint)
                if winner is None:
                    raise
                return winner, False
        if not claim:
            self._hand_over(job)
        return job, claim

    def _square_image(self, spec: ModelSpec, inputs: JobInputs) -> JobInputs:
        """A model that edits square images only (dall-e-2): a non-square input image is
        resized to the square of its longer side, and the result says so."""
        image = inputs.image
        assert image is not None
        if image.width == image.height:
            return inputs
        square = (max(image.size), max(image.size))
        resized = self._inputs.resized(image, square, resample=Image.Resampling.LANCZOS)
        change = adjustment("image", image.size, square, f"{spec.id} edits square images only")
        return replace(inputs, image=replace(resized, adjustment=change))

    def _upscale_input(
        self, spec: ModelSpec, options: ImageOptions, inputs: JobInputs
    ) -> JobInputs:
        """An upscaler's input, refused when the model cannot take it, or resized down to the
        multiple its sides must be (and the result says so)."""
        image = inputs.image
        assert image is not None
        size = upscale_input_size(spec, image.size, getattr(options, "factor", None))
        if size == image.size:
            return inputs
        resized = self._inputs.resized(image, size, resample=Image.Resampling.LANCZOS)
        reason = f"{spec.id} upscales images whose sides are a multiple of its own"
        change = adjustment("image", image.size, size, reason)
        return replace(inputs, image=replace(resized, adjustment=change))

    def _mask_to_image_size(self, inputs: JobInputs) -> JobInputs:
        """A hosted model's edit: a mask of another size than the image is resized to it (and
        the result says so), so every provider gets a mask that matches its image."""
        image, mask = inputs.image, inputs.mask
        assert image is not None and mask is not None
        if mask.size == image.size:
            return inputs
        resized = self._inputs.resized(mask, image.size)
        change = adjustment(
            "mask", mask.size, image.size, "the mask is resized to the image's size"
        )
        return replace(inputs, mask=replace(resized, adjustment=change))

    def _await_end(self, job_id: str, deadline: float) -> None:
        """Block until the job is over (however it ended), or raise `Timeout` at `deadline`."""
        for pause in follow_pauses():
            job = self._store.load(job_id)
            if job is None or JobStatus(job.status).is_terminal:
                return
            left = deadline - time.monotonic()
            if left <= 0:
                raise Timeout(
                    "An identical request is still running; it was waited for until the "
                    "synchronous timeout. Send this one again, or asynchronously"
                )
            time.sleep(min(pause, left))

    def _hand_over(self, job: Job) -> None:
        """Queue an accepted job. If the queue is down the job stays recorded as queued, and
        housekeeping hands it over again: accepted work is never dropped."""
        try:
            self._queue.enqueue(job.id, job.model)
        except Exception as exc:
            log.warning("job %s accepted but not yet queued (%s); it will be resent", job.id, exc)

    def _serve_cached(
        self,
        principal: Principal,
        tenant: Tenant,
        command: ImageCommand,
        hit: Job,
        key: str,
        fingerprint: str,
    ) -> Job:
        """A finished job of the caller's own, over the stored images of an earlier one."""
        rules = self._policies
        job = self._new_job(principal, command, hit.model, hit.options)
        spec = self._catalog.resolve(hit.model)
        options = self._catalog.validate_options(spec, hit.options.values, task=hit.task)
        price = rules.billing.image_price(tenant, spec, options)
        served = rules.cache.serve(hit, tenant_id=tenant.id, job_id=job.id, price=price)
        now = self._clock.now()
        job.status = JobStatus.SUCCEEDED
        job.cached = True
        job.cache_key = key
        job.inputs = hit.inputs
        job.started_at = job.finished_at = now
        job.result = served.result

        def within(connection: Connection) -> None:
            job.cost = served.record(connection)  # written to the row too, by the settlement
            self._record_idempotency(connection, tenant.id, command, fingerprint, job.id)
            self._subscribe(connection, job, command)

        try:
            self._store.create(job, event_data={"cached": True}, within=within)
        except IntegrityError:
            winner = self._idempotency_winner(tenant.id, command, fingerprint)
            if winner is None:
                raise
            return winner
        return job

    def _new_job(
        self, principal: Principal, command: ImageCommand, model: str, options: JobOptions
    ) -> Job:
        return Job(
            id="job_" + secrets.token_hex(12),
            tenant_id=principal.tenant_id,
            api_key_id=principal.key_id,
            task=command.task,
            model=model,
            status=JobStatus.QUEUED,
            options=options,
            prompt=options.prompt,  # in its own column, where `GET /v1/jobs?q=` searches it
            response_format=command.response_format,
            metadata_=command.metadata,
            result=None,
            attempts=0,
            cancel_requested=False,
            cached=False,
            cache_bypassed=False,
            own_key=False,
            has_webhook=command.webhook is not None,
            created_at=self._clock.now(),
            enqueued_at=self._clock.now(),
        )

    def _record_idempotency(
        self,
        connection: Connection,
        tenant_id: str,
        command: ImageCommand,
        fingerprint: str,
        job_id: str,
    ) -> None:
        if command.idempotency_key is not None:
            self._policies.idempotency.record(
                connection,
                tenant_id=tenant_id,
                key=command.idempotency_key,
                fingerprint=fingerprint,
                job_id=job_id,
            )

    def _subscribe(self, connection: Connection, job: Job, command: ImageCommand) -> None:
        """Record the request's webhook with its new job, before the job's first event."""
        if command.webhook is not None and self._policies.webhooks is not None:
            self._policies.webhooks.subscribe(connection, job.id, job.tenant_id, command.webhook)

    def _idempotency_winner(
        self, tenant_id: str, command: ImageCommand, fingerprint: str
    ) -> Job | None:
        """After a failed insert: the job of a concurrent request with the same
        Idempotency-Key that was recorded first, if that is what happened."""
        if command.idempotency_key is None:
            return None
        earlier = self._policies.idempotency.replay(tenant_id, command.idempotency_key, fingerprint)
        return None if earlier is None else self._replayed(earlier)

    def _replayed(self, job_id: str) -> Job:
        """The job an earlier request with the same Idempotency-Key made; it may have been
        deleted since (`DELETE /v1/jobs/{id}`): the key stays spent, and says so."""
        job = self._store.load(job_id)
        if job is None:
            raise NotFound(
                f"Job {job_id!r}, made by an earlier request with this Idempotency-Key, was "
                "deleted",
                param="Idempotency-Key",
            )
        return job

    def _limit_subjects(self, principal: Principal, tenant: Tenant) -> list[Subject]:
        defaults = self._policies.default_limits
        return [
            Subject("tenant", tenant.id, defaults.over(tenant.limits)),
            Subject("API key", principal.key_id, LimitValues().over(principal.limits)),
        ]

    def _count_active(self, subject: Subject) -> int:
        if subject.kind == "tenant":
            return self._store.count_active(tenant_id=subject.id)
        return self._store.count_active(api_key_id=subject.id)

    # -- looking up -----------------------------------------------------------------------

    def get(self, principal: Principal, job_id: str) -> Job:
        """A job of the caller's tenant; anyone else's is not found."""
        job = self._store.load(job_id)
        if job is None or job.tenant_id != principal.tenant_id:
            raise NotFound(f"No job {job_id!r}", param="job_id")
        return job

    def outputs(self, job: Job) -> list[ImageOutput]:
        """The images of a succeeded job, with fresh links or inline bytes as requested."""
        images = job.result.images if job.result is not None else ()
        records = self._files.get_many(job.tenant_id, [image.file_id for image in images])
        outputs = []
        for image in images:
            record = records.get(image.file_id)
            path = expires = b64 = None
            if record is not None and job.response_format == "b64_json":
                b64 = base64.b64encode(self._files.read(record)).decode()
            elif record is not None:
                token, expires = self._files.links.sign(record.id)
                path = f"/v1/media/{token}"
            outputs.append(
                ImageOutput(image.file_id, image.seed, image.revised_prompt, path, expires, b64)
            )
        return outputs

    # -- waiting and following ------------------------------------------------------------

    async def run(
        self,
        principal: Principal,
        command: ImageCommand,
        *,
        timeout: float,
        disconnected: Callable[[], Awaitable[bool]],
        answer: Callable[[Job], Answer],
    ) -> Answer:
        """Submit, wait for the job to end, and return `answer(job)` if it succeeded (raise its
        error otherwise): a synchronous request. A caller who hangs up cancels the job.
        `answer` (the job's images read back, say) runs in a worker thread.

        One path for every request: one worker thread submits, and when this process runs the
        model's jobs itself, one by one (a hosted model in embedded mode), runs the job and
        answers it too: the job is recorded already claimed, with no hand-off to the queue and
        no event to wait for. It is the same job all the same (durable before it runs, leased,
        cancelable, followable). A job queued instead (or again, for another try) is waited
        for (`_wait`) and answered in another thread."""
        caller = _Caller.starting_now(principal, timeout, disconnected)
        accepted: Future[Job] = Future()
        serve = partial(
            self._serve, principal, command, answer,
            claim=self._queue.runs_here(self._catalog.resolve(command.model).id),
            # an identical request in flight is waited for until the caller's time is up
            follow_until=time.monotonic() + timeout,
            accepted=accepted,
        )  # fmt: skip
        served = await self._watching(caller, accepted, serve)
        if isinstance(served, _Answered):
            return served.answer
        succeeded = await self._wait(caller, accepted.result().id, submitted=served)
        return await to_thread.run_sync(answer, succeeded)

    def _serve(
        self,
        principal: Principal,
        command: ImageCommand,
        answer: Callable[[Job], Answer],
        *,
        claim: bool,
        follow_until: float,
        accepted: Future[Job],
    ) -> _Answered[Answer] | Job | None:
        """A synchronous request's work, in a worker thread: submit (the job claimed by this
        process's executor with `claim`), set `accepted` to the job, run it here if it was
        claimed, and answer it if it succeeded. Returns the answer; else the job as it is
        (over, or queued), or None when it ran here and did not end (queued again for another
        try, or taken back)."""
        job, claimed = self._submit(principal, command, claim=claim, follow_until=follow_until)
        accepted.set_result(job)
        ended = self._executor.run_claimed(job) if claimed else job
        if ended is not None and ended.status == JobStatus.SUCCEEDED:
            return _Answered(answer(ended))
        return ended

    async def _watching(
        self, caller: _Caller, accepted: Future[Job], work: Callable[[], Served]
    ) -> Served:
        """`work()` in a worker thread, `caller` watched meanwhile from the moment their job
        is `accepted` (see `_check_caller`). A caller who stops waiting leaves the work to go
        on alone: how the job ends is recorded with it."""
        running = asyncio.ensure_future(to_thread.run_sync(work, abandon_on_cancel=True))
        try:
            while True:
                await asyncio.wait({running}, timeout=min(max(caller.remaining, 0.0), 1.0))
                if running.done():
                    return running.result()
                caller.waited = True
                if accepted.done():
                    await self._check_caller(caller, accepted.result())
        finally:
            running.cancel()  # nothing once it is done

    async def _wait(self, caller: _Caller, job_id: str, *, submitted: Job | None = None) -> Job:
        """Wait for the job to end and return it if it succeeded; raise its error otherwise.
        A caller who hangs up cancels the job: nobody is left to take the result.

        `submitted`: the job as `submit` (or its run here) just returned it, so that it is not
        read again before waiting. The job's end comes as an event (carrying the ended record when
        it ended in this process, else it is read); the record is read again at least every
        second in case an event went astray."""
        if submitted is not None and JobStatus(submitted.status).is_terminal:
            return _raise_unless_succeeded(submitted)  # over already: nothing to wait for
        subscription = self._bus.subscribe(job_id, only_endings=True)
        job = submitted
        try:
            while True:
                if job is None:
                    job = await to_thread.run_sync(self.get, caller.principal, job_id)
                if JobStatus(job.status).is_terminal:
                    return _raise_unless_succeeded(job)
                await self._check_caller(caller, job)
                caller.waited = True
                limit = min(caller.remaining, 1.0)
                job = None
                try:
                    event = await subscription.next(limit)
                    job = _ended_job(caller.principal, event)
                except TimeoutError:
                    pass
        finally:
            subscription.close()

    async def _check_caller(self, caller: _Caller, job: Job) -> None:
        """While `caller` waits for `job`: raise Timeout once their time is up; cancel the job
        and raise Canceled if they hung up. The connection is looked at only after a first
        wait: most jobs end before then, and looking costs the event loop more than the rest
        of the wait."""
        if caller.remaining <= 0:
            raise Timeout(
                f"Job {job.id} is still {job.status} after {caller.timeout:g}s; "
                f"follow it at GET /v1/jobs/{job.id}",
            )
        if caller.waited and await caller.disconnected():
            await to_thread.run_sync(self.cancel, caller.principal, job.id)
            raise Canceled("The client disconnected; the job was canceled")

    async def follow(
        self,
        principal: Principal,
        job_id: str,
        *,
        after_id: int | None = None,
        heartbeat: float = 15.0,
    ) -> AsyncIterator[JobEventMessage | None]:
        """The job's events: the recorded ones first, then live ones, until it ends.
        Yields None when `heartbeat` seconds pass quietly."""
        await to_thread.run_sync(self.get, principal, job_id)
        subscription = self._bus.subscribe(job_id)
        try:
            last_id = after_id
            while True:
                for event in await to_thread.run_sync(self._store.events_after, job_id, last_id):
                    yield event
                    last_id = event.id
                    if event.is_terminal:
                        return
                try:
                    event = await subscription.next(heartbeat)
                except TimeoutError:
                    yield None
                    continue
                if event.id is None:
                    yield event  # progress: live only
                # a recorded event is read back from the database on the next pass, in order
        finally:
            subscription.close()

    # -- canceling ------------------------------------------------------------------------

    def cancel(self, principal: Principal, job_id: str) -> Job:
        """Cancel a queued job at once, or a running one at its next step."""
        job = self.get(principal, job_id)
        if job.status == JobStatus.QUEUED and self._store.transition(
            job_id,
            to=JobStatus.CANCELED,
            allowed_from=(JobStatus.QUEUED,),
            event_data={"reason": "canceled by request"},
        ):
            return self.get(principal, job_id)
        if self._store.request_cancel(job_id):
            self._cancels.cancel(job_id)
            return self.get(principal, job_id)
        job = self.get(principal, job_id)
        if job.status != JobStatus.CANCELED:
            raise Conflict(f"Job {job_id} has already {job.status}", param="job_id")
        return job

    # -- recovery -------------------------------------------------------------------------

    def recover(self) -> int:
        """Embedded mode, at start: nothing runs yet, so jobs left running were cut off by a
        crash. Queue them again (or fail them after too many tries) and queue every queued
        job. Returns how many were queued."""
        queued = 0
        for job in self._store.unfinished():
            if job.status == JobStatus.RUNNING:
                if job.attempts >= self._max_attempts:
                    self._store.transition(
                        job.id,
                        to=JobStatus.FAILED,
                        allowed_from=(JobStatus.RUNNING,),
                        error_code="INTERNAL_ERROR",
                        error_message=f"The job was interrupted {job.attempts} times; giving up",
                    )
                    continue
                self._store.transition(
                    job.id,
                    to=JobStatus.QUEUED,
                    allowed_from=(JobStatus.RUNNING,),
                    event_data={"reason": "resumed after a restart"},
                )
            self._hand_over(job)
            queued += 1
        return queued


@dataclass(frozen=True)
class _Answered(Generic[Answer]):
    """A synchronous request's answer, made in the thread that ran its job."""

    answer: Answer


@dataclass
class _Caller:
    """Someone waiting for a job's end: for how long, and how to tell they hung up."""

    principal: Principal
    timeout: float
    deadline: float
    """On the event loop's clock."""
    disconnected: Callable[[], Awaitable[bool]]
    waited: bool = False
    """Whether they have waited once already (the connection is looked at from then on)."""

    @classmethod
    def starting_now(
        cls, principal: Principal, timeout: float, disconnected: Callable[[], Awaitable[bool]]
    ) -> _Caller:
        deadline = asyncio.get_running_loop().time() + timeout
        return cls(principal, timeout, deadline, disconnected)

    @property
    def remaining(self) -> float:
        return self.deadline - asyncio.get_running_loop().time()


def _ended_job(principal: Principal, event: JobEventMessage) -> Job | None:
    """The ended job a terminal event carries, when it carries it and it is the caller's."""
    job = event.snapshot
    if isinstance(job, Job) and job.tenant_id == principal.tenant_id:
        return job
    return None


def _raise_unless_succeeded(job: Job) -> Job:
    if job.status == JobStatus.SUCCEEDED:
        return job
    if job.status == JobStatus.CANCELED:
        raise Canceled(f"Job {job.id} was canceled")
    raise error_from_code(
        job.error_code or "INTERNAL_ERROR",
        job.error_message or "The job failed",
        param=job.error_param,
    )


def _edit_kind(command: ImageCommand) -> EditKind | None:
    if command.task != "edit":
        return None
    return "inpaint" if command.mask is not None else "image-to-image"


def _check_capability(spec: ModelSpec, command: ImageCommand) -> None:
    """The model can do the task, and the inputs fit the task."""
    able = spec.supports(command.task, masked=command.mask is not None)
    if not able and command.task == "edit" and "inpaint" in spec.capabilities:
        raise MustProvideFile(
            f"Model {spec.id!r} only inpaints: send a mask with the image (white repaints, "
            "black keeps)",
            param="mask",
        )
    if not able:
        raise ValidationError(
            f"Model {spec.id!r} does not support {TASK_NAMES[command.task]}", param="model"
        )
    if command.task != "generate" and command.image is None:
        raise MustProvideFile(
            f"{TASK_NAMES[command.task].capitalize()} needs an input image", param="image"
        )
    if command.task == "generate" and command.image is not None:
        raise ValidationError("Text-to-image takes no input image", param="image")
    if command.mask is not None and command.task != "edit":
        raise ValidationError(f"{TASK_NAMES[command.task]} takes no mask", param="mask")
    if command.mask is not None and not spec.limits.takes_mask:
        raise ValidationError(
            f"Model {spec.id!r} takes no mask: it finds what to change itself; send the image "
            "alone",
            param="mask",
        )
    if command.task != "edit" and command.options.get("strength") is not None:
        raise ValidationError(
            f"strength applies to image editing only; {TASK_NAMES[command.task]} takes none",
            param="strength",
        )
