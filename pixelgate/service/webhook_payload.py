"""The one body of a webhook delivery, built at each try from the job as recorded, so its links
are fresh (a retry hours later still carries links that work) and its signature is made over
exactly the bytes sent.

    {"type": "job.succeeded", "timestamp": "2026-12-07T15:00:00Z",
     "data": {"id": "job_...", "object": "job", "status": "succeeded", "task": "generate",
              "model": "local/tiny", "created_at": ..., "metadata": {...},
              "outputs": [{"file_id", "url", "expires_at", "seed", "revised_prompt"}],
              "error": null, "cost": {"amount": "0.04", "currency": "USD"},
              "progress": null}}

`status` is the event's (a `running` delivery sent after the job ended still says running);
`outputs` and `cost` are those of the ended job, on its terminal event only; `progress` is
`{"step", "total"}` on a progress event.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from pixelgate.clock import as_utc
from pixelgate.db.tables import Job, WebhookDelivery
from pixelgate.service.billing import job_cost
from pixelgate.service.files import FileService

TERMINAL = ("succeeded", "failed", "canceled")


def _instant(moment: datetime | None) -> str | None:
    return None if moment is None else as_utc(moment).isoformat().replace("+00:00", "Z")


def webhook_body(
    job: Job,
    delivery: WebhookDelivery,
    *,
    base_url: str,
    files: FileService,
) -> bytes:
    """The JSON body of one try of `delivery`, an event of `job`."""
    terminal = delivery.event in TERMINAL
    outputs: list[dict[str, Any]] = []
    if terminal and delivery.event == "succeeded" and job.result is not None:
        images = job.result.images
        records = files.get_many(job.tenant_id, [image.file_id for image in images])
        for image in images:
            if image.file_id not in records:
                continue  # deleted since
            token, expires = files.links.sign(image.file_id)
            outputs.append(
                {
                    "file_id": image.file_id,
                    "url": f"{base_url}/v1/media/{token}",
                    "expires_at": _instant(expires),
                    "seed": image.seed,
                    "revised_prompt": image.revised_prompt,
                }
            )
    error = None
    if delivery.event == "failed" and job.error_code is not None:
        error = {"code": job.error_code, "message": job.error_message, "param": job.error_param}
    data = {
        "id": job.id,
        "object": "job",
        "status": delivery.event,
        "task": job.task,
        "model": job.model,
        "created_at": _instant(job.created_at),
        "finished_at": _instant(job.finished_at) if terminal else None,
        "metadata": job.metadata_,
        "outputs": outputs,
        "error": error,
        "cost": _cost(job) if terminal else None,
        "progress": dict(delivery.data) if delivery.event == "progress" else None,
    }
    document = {
        "type": f"job.{delivery.event}",
        "timestamp": _instant(delivery.created_at),
        "data": data,
    }
    return json.dumps(document, separators=(",", ":")).encode()


def _cost(job: Job) -> dict[str, str] | None:
    cost = job_cost(job)
    return None if cost is None else {"amount": cost.amount, "currency": cost.currency}
