"""The cluster's queue: Celery on Redis, one queue per model, late acknowledgement.

A message carries only a job id. The database decides whether it runs (the claim is a
conditional update), so a message delivered twice, or re-sent after the broker lost it, runs
the job at most once.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from celery import Celery

TASK_NAME = "pixelgate.run_job"
_handler: Callable[[str], None] | None = None


def queue_name(model: str) -> str:
    """`local/tiny` → `pixelgate.local.tiny`: one queue per model."""
    return "pixelgate." + re.sub(r"[^A-Za-z0-9_-]+", ".", model)


def create_celery(broker_url: str) -> Celery:
    app = Celery("pixelgate", broker=broker_url, set_as_current=False)
    app.conf.update(
        task_acks_late=True,  # a worker that dies mid-job leaves its message to be redelivered
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,  # a busy worker does not sit on other jobs
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        task_default_queue="pixelgate.default",
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        broker_transport_options={"visibility_timeout": 3600},
    )

    @app.task(name=TASK_NAME)  # type: ignore[untyped-decorator]
    def run_job(job_id: str) -> None:
        if _handler is None:
            raise RuntimeError("this process runs no pixelgate worker")
        _handler(job_id)

    return app


def serve_jobs_with(handler: Callable[[str], None]) -> None:
    """In a worker process: run every delivered job id with `handler`."""
    global _handler
    _handler = handler


class CeleryQueue:
    def __init__(self, app: Celery, models: list[str]) -> None:
        self._app = app
        self._queues = [queue_name(model) for model in models]

    def enqueue(self, job_id: str, model: str) -> None:
        self._app.send_task(TASK_NAME, args=[job_id], queue=queue_name(model))

    def runs_here(self, model: str) -> bool:
        return False  # the cluster's workers run every job

    @property
    def depth(self) -> int:
        """Messages waiting in the broker for every model (a Redis broker keeps a list per
        queue)."""
        with self._app.connection_for_read() as connection:
            client = connection.default_channel.client
            return int(sum(client.llen(name) for name in self._queues))
