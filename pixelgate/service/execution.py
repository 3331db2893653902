"""Running one job: claim it, run its provider, store its images, record how it ended.

The in-process worker calls `JobExecutor.run` with a job id; a cluster worker calls the same
method. The claim is a conditional update in the database, so a job handed out twice runs once.
"""

from __future__ import annotations

import logging
from typing import Any

from pixelgate.catalog import Catalog
from pixelgate.clock import Clock
from pixelgate.engine import CancelRegistry
from pixelgate.errors import Canceled, Error
from pixelgate.providers import ImageTask, ProviderRegistry
from pixelgate.service.files import FileService
from pixelgate.service.inputs import InputImages
from pixelgate.service.job_store import JobStatus, JobStore
from pixelgate.service.safety import Safety

log = logging.getLogger(__name__)

RUNNING = (JobStatus.RUNNING,)


class JobExecutor:
    def __init__(
        self,
        store: JobStore,
        catalog: Catalog,
        providers: ProviderRegistry,
        files: FileService,
        inputs: InputImages,
        cancels: CancelRegistry,
        clock: Clock,
        *,
        safety: Safety | None = None,
    ) -> None:
        self._store = store
        self._catalog = catalog
        self._providers = providers
        self._files = files
        self._inputs = inputs
        self._cancels = cancels
        self._clock = clock
        self._safety = safety

    def run(self, job_id: str) -> None:
        token = self._cancels.open(job_id)
        try:
            self._run(job_id, token)
        finally:
            self._cancels.close(job_id)

    def _run(self, job_id: str, token: Any) -> None:
        # 1. claim: only one runner moves a job from queued to running
        job = self._store.load(job_id)
        if job is None:
            return
        claimed = self._store.transition(
            job_id,
            to=JobStatus.RUNNING,
            allowed_from=(JobStatus.QUEUED,),
            event_data={"attempt": job.attempts + 1},
            started_at=self._clock.now(),
            attempts=job.attempts + 1,
        )
        if not claimed:
            return
        job = self._store.load(job_id)
        if job is None:
            return
        if job.cancel_requested:
            token.cancel()
        try:
            # 2. the model and its options, checked again against today's catalog
            spec = self._catalog.resolve(job.model)
            options = self._catalog.validate_options(spec, job.options)
            provider = self._providers.for_model(spec)
            if token.canceled:
                raise Canceled("Job canceled")
            # 3. the work, with progress and cancel at every step
            inputs = job.inputs or {}
            task = ImageTask(
                kind=job.task,  # type: ignore[arg-type]
                options=options,
                image=self._inputs.load(inputs["image"]) if "image" in inputs else None,
                mask=self._inputs.load(inputs["mask"]) if "mask" in inputs else None,
            )
            images = provider.run(
                spec,
                task,
                progress=lambda step, total: self._store.publish_progress(job_id, step, total),
                cancel=token,
            )
            # 4. the safety check, when on: a flagged image is never stored
            if self._safety is not None:
                self._safety.check_images(job.tenant_id, images)
            # 5. the results, stored before the job says it succeeded
            stored = [
                self._files.store(tenant_id=job.tenant_id, job_id=job_id, image=image)
                for image in images
            ]
            result = {
                "created": int(self._clock.now().timestamp()),
                "images": [
                    {
                        "file_id": record.id,
                        "seed": image.seed,
                        "revised_prompt": image.revised_prompt,
                    }
                    for record, image in zip(stored, images, strict=True)
                ],
            }
            self._store.transition(
                job_id, to=JobStatus.SUCCEEDED, allowed_from=RUNNING, result=result
            )
        except Canceled:
            self._store.transition(
                job_id,
                to=JobStatus.CANCELED,
                allowed_from=RUNNING,
                event_data={"reason": "canceled by request"},
            )
        except Error as exc:
            self._fail(job_id, exc)
        except Exception as exc:
            log.exception("job %s failed unexpectedly", job_id)
            self._fail(job_id, Error(f"Internal error while running the job: {type(exc).__name__}"))

    def _fail(self, job_id: str, error: Error) -> None:
        self._store.transition(
            job_id,
            to=JobStatus.FAILED,
            allowed_from=RUNNING,
            event_data={"error": error.to_dict()},
            error_code=error.code,
            error_message=error.message,
            error_param=error.param,
        )
