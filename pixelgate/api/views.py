"""Domain records to protocol bodies. Links become absolute here, where the base URL is known."""

from __future__ import annotations

from pixelgate.api.protocol import (
    ErrorBody,
    FilePublic,
    GenerateResult,
    ImageData,
    JobPublic,
    ModelPublic,
)
from pixelgate.catalog import OPTION_FAMILIES, ModelSpec
from pixelgate.clock import as_utc
from pixelgate.db.tables import Job, StoredFile
from pixelgate.runtime import Runtime


def generate_result(runtime: Runtime, job: Job, base_url: str) -> GenerateResult:
    images = [
        ImageData(
            url=base_url + output.media_path if output.media_path else None,
            b64_json=output.b64_json,
            revised_prompt=output.revised_prompt,
            seed=output.seed,
            file_id=output.file_id,
            expires_at=output.expires_at,
        )
        for output in runtime.jobs.outputs(job)
    ]
    created = int((job.result or {}).get("created", 0))
    return GenerateResult(
        created=created, data=images, job_id=job.id, model=job.model, metadata=job.metadata_
    )


def job_public(runtime: Runtime, job: Job, base_url: str) -> JobPublic:
    error = None
    if job.error_code:
        error = ErrorBody(
            code=job.error_code, message=job.error_message or "", param=job.error_param
        )
    return JobPublic(
        id=job.id,
        task=job.task,
        model=job.model,
        status=job.status,  # type: ignore[arg-type]
        created_at=as_utc(job.created_at),
        started_at=as_utc(job.started_at) if job.started_at else None,
        finished_at=as_utc(job.finished_at) if job.finished_at else None,
        attempts=job.attempts,
        cancel_requested=job.cancel_requested,
        metadata=job.metadata_,
        result=generate_result(runtime, job, base_url) if job.status == "succeeded" else None,
        error=error,
    )


def file_public(runtime: Runtime, record: StoredFile, base_url: str) -> FilePublic:
    token, url_expires_at = runtime.files.links.sign(record.id)
    return FilePublic(
        id=record.id,
        job_id=record.job_id,
        content_type=record.content_type,
        size_bytes=record.size_bytes,
        width=record.width,
        height=record.height,
        created_at=as_utc(record.created_at),
        expires_at=as_utc(record.expires_at) if record.expires_at else None,
        url=f"{base_url}/v1/media/{token}",
        url_expires_at=url_expires_at,
    )


def model_public(runtime: Runtime, spec: ModelSpec) -> ModelPublic:
    reason = runtime.providers.unavailable_reason(spec)
    return ModelPublic(
        id=spec.id,
        provider=spec.provider,
        family=spec.family,
        modality=spec.modality,
        capabilities=list(spec.capabilities),
        aliases=list(spec.aliases),
        description=spec.description,
        available=reason is None,
        unavailable_reason=reason,
        limits=spec.limits.model_dump(),
        defaults=spec.defaults,
        prices={key: str(value) for key, value in spec.prices.items()},
        options_schema=OPTION_FAMILIES[spec.family].model_json_schema(),
    )
