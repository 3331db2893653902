"""The webhook outbox costs nothing to a job without a webhook (no query of `job_webhooks` or
`webhook_deliveries` on its events or progress, no wake of the sender), and still delivers
every event, and progress, a job with one asked for."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event

from pixelgate.db import Database
from pixelgate.providers import CancelToken, GeneratedImage, ImageTask, ProgressCallback
from pixelgate.service.access import Principal
from pixelgate.service.jobs import ImageCommand
from pixelgate.service.webhook_targets import Webhook
from tests.service.conftest import Services

CALLER = Principal("key_test", "default", frozenset({"generate", "read"}))
EVERY_EVENT = Webhook(
    "http://hooks.test/in", ("queued", "running", "progress", "succeeded"), "http://pixelgate.test"
)


def with_progress(
    task: ImageTask, progress: ProgressCallback, cancel: CancelToken
) -> list[GeneratedImage]:
    """A hosted provider's two steps: sent, and answered."""
    progress(0, 1)
    progress(1, 1)
    return [GeneratedImage(b"\x89PNG fixture", "image/png", 8, 8)]


@contextmanager
def webhook_statements(db: Database) -> Iterator[list[str]]:
    """The statements sent to `db` meanwhile that touch a webhook table."""
    sent: list[str] = []

    def before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "job_webhooks" in statement or "webhook_deliveries" in statement:
            sent.append(statement)

    event.listen(db.engine, "before_cursor_execute", before)
    try:
        yield sent
    finally:
        event.remove(db.engine, "before_cursor_execute", before)


def command(webhook: Webhook | None = None) -> ImageCommand:
    return ImageCommand(
        task="generate", model="test/fixture", options={"prompt": "a fox"}, webhook=webhook
    )


def test_a_job_without_a_webhook_costs_the_outbox_no_query(services: Services) -> None:
    services.provider.behaviour = with_progress
    woken: list[None] = []
    services.webhooks.on_added = lambda: woken.append(None)

    with webhook_statements(services.db) as sent:
        job = services.jobs.submit(CALLER, command())
        services.executor.run(job.id)

    assert services.jobs.get(CALLER, job.id).status == "succeeded"
    assert sent == [] and woken == []


def test_a_job_with_a_webhook_gets_its_events_and_progress(services: Services) -> None:
    services.provider.behaviour = with_progress
    woken: list[None] = []
    services.webhooks.on_added = lambda: woken.append(None)

    job = services.jobs.submit(CALLER, command(EVERY_EVENT))
    services.executor.run(job.id)

    deliveries = [record.delivery for record in services.webhooks.deliveries(job.id)]
    assert [(d.event, d.data) for d in deliveries] == [
        ("queued", {}),
        ("running", {"attempt": 1}),
        ("progress", {"step": 0, "total": 1}),  # the next step comes within `PROGRESS_EVERY`
        ("succeeded", {}),
    ]
    assert {d.url for d in deliveries} == {EVERY_EVENT.url} and woken
    assert services.jobs.get(CALLER, job.id).has_webhook


def test_a_job_with_a_webhook_that_wants_no_progress_gets_none(services: Services) -> None:
    services.provider.behaviour = with_progress
    hook = Webhook("http://hooks.test/in", ("succeeded",), "http://pixelgate.test")

    job = services.jobs.submit(CALLER, command(hook))
    services.executor.run(job.id)

    assert [r.delivery.event for r in services.webhooks.deliveries(job.id)] == ["succeeded"]
