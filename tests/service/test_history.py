"""A tenant's history at the service layer (issue 20, items 2 and 3): cursor pages of jobs and
files, their filters and the prompt search, and deleting files and finished jobs."""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest
from sqlalchemy import delete, func, select

from pixelgate.catalog import Catalog
from pixelgate.db.tables import IdempotencyKey, Job, JobEvent, JobInputBlob, LedgerEntry
from pixelgate.errors import Conflict, NotFound, ValidationError
from pixelgate.providers import CancelToken, GeneratedImage, ImageTask, ProgressCallback
from pixelgate.service.access import Principal
from pixelgate.service.cache import ResultCache
from pixelgate.service.history import Filters, History, Page, parse_instant
from pixelgate.service.job_store import JobStatus
from pixelgate.service.jobs import ImageCommand
from pixelgate.service.tenants import TenantChanges
from tests.service.conftest import FIXTURE_KONTEXT, FIXTURE_MODEL, Services, images_of

CALLER = Principal("key_test", "default", frozenset({"admin"}))


@pytest.fixture
def history(services: Services) -> History:
    catalog = Catalog([*Catalog.load(), FIXTURE_MODEL, FIXTURE_KONTEXT])
    return History(services.db, services.files, catalog, services.clock)


@pytest.fixture
def unique_images(services: Services) -> None:
    """Each image its own bytes, so each file its own blob."""
    counter = itertools.count()

    def behaviour(
        task: ImageTask, progress: ProgressCallback, cancel: CancelToken
    ) -> list[GeneratedImage]:
        return [
            GeneratedImage(f"png {next(counter)}".encode(), "image/png", 8, 8, seed=1)
            for _ in range(task.options.n)
        ]

    services.provider.behaviour = behaviour


def command(prompt: str = "a red circle", **options: object) -> ImageCommand:
    return ImageCommand(
        task="generate", model="test/fixture", options={"prompt": prompt, **options}
    )


def made(services: Services, prompt: str = "a red circle", **options: object) -> Job:
    """A succeeded job of the caller's."""
    job = services.jobs.submit(CALLER, command(prompt, **options))
    services.executor.run(job.id)
    return services.jobs.get(CALLER, job.id)


def ids(page: Page[Job]) -> list[str]:
    return [job.id for job in page.items]


def newest_first(jobs: list[Job]) -> list[str]:
    return [job.id for job in sorted(jobs, key=lambda job: (job.created_at, job.id), reverse=True)]


# -- pages ----------------------------------------------------------------------------------


def test_pages_walk_every_job_once_both_ways_though_creation_times_tie(
    services: Services, history: History
) -> None:
    jobs = []
    for number in range(7):
        jobs.append(services.jobs.submit(CALLER, command(f"job {number}")))
        if number % 3 == 2:
            services.clock.advance(1)  # three jobs share each second
    expected = newest_first(jobs)

    walked: list[str] = []
    page = history.jobs("default", Filters(limit=2))
    walked += ids(page)
    while page.has_more:
        page = history.jobs("default", Filters(limit=2, after=page.items[-1].id))
        walked += ids(page)
    assert walked == expected

    oldest = expected[-1]
    back: list[str] = []
    page = history.jobs("default", Filters(limit=2, before=oldest))
    back = ids(page)
    while page.has_more:
        page = history.jobs("default", Filters(limit=2, before=page.items[0].id))
        back = ids(page) + back
    assert [*back, oldest] == expected
    assert not history.jobs("default", Filters(limit=2, before=expected[0])).items


def test_an_unknown_or_foreign_cursor_names_its_parameter(
    services: Services, history: History
) -> None:
    services.tenants.create(tenant_id="other", name="other", changes=TenantChanges())
    foreign = services.jobs.submit(Principal("k", "other", frozenset({"generate"})), command())
    for param in ("after", "before"):
        for cursor in ("job_nope", foreign.id):
            with pytest.raises(ValidationError) as caught:
                history.jobs("default", Filters(**{param: cursor}))  # type: ignore[arg-type]
            assert caught.value.param == param
    with pytest.raises(ValidationError) as both:
        history.jobs("default", Filters(after=foreign.id, before=foreign.id))
    assert both.value.param == "before"


def test_jobs_filter_by_status_model_time_and_prompt_text(
    services: Services, history: History
) -> None:
    red = made(services, "A RED circle")
    services.clock.advance(10)
    blue = services.jobs.submit(CALLER, command("a blue square, 100% blue"))
    services.clock.advance(10)
    kontext = services.jobs.submit(
        CALLER,
        ImageCommand(task="generate", model="test/kontext", options={"prompt": "red_x"}),
    )

    def found(**filters: object) -> set[str]:
        return set(ids(history.jobs("default", Filters(**filters))))  # type: ignore[arg-type]

    assert found(status=JobStatus.SUCCEEDED) == {red.id}
    assert found(status=JobStatus.QUEUED) == {blue.id, kontext.id}
    assert found(model="test/kontext") == {kontext.id}
    assert found(model="gone/model") == set()
    assert found(created_after=blue.created_at) == {blue.id, kontext.id}
    assert found(created_before=blue.created_at) == {red.id}
    assert found(created_after=red.created_at, created_before=kontext.created_at) == {
        red.id,
        blue.id,
    }
    assert found(q="red") == {red.id, kontext.id}  # any case
    assert found(q="100%") == {blue.id}  # LIKE's wildcards are plain text
    assert found(q="d_x") == {kontext.id}
    assert found(q="red", model="test/fixture", status=JobStatus.SUCCEEDED) == {red.id}


def test_times_are_iso_8601_or_unix_seconds() -> None:
    assert parse_instant("1796000000", param="p") == parse_instant(
        "2026-11-30T00:53:20Z", param="p"
    )
    assert parse_instant("2026-11-30T01:33:20", param="p") == parse_instant(
        "2026-11-30T02:33:20+01:00", param="p"
    )
    with pytest.raises(ValidationError) as caught:
        parse_instant("yesterday", param="created_after")
    assert caught.value.param == "created_after"


def test_files_list_newest_first_with_their_jobs_prompt_and_model(
    services: Services, history: History, unique_images: None
) -> None:
    first = made(services, "first", n=3)  # three files created at once
    services.clock.advance(1)
    second = made(services, "second")

    page = history.files("default", Filters(limit=2))
    rest = history.files("default", Filters(limit=2, after=page.items[-1].record.id))

    listed = [entry.record for entry in page.items + rest.items]
    assert page.has_more and not rest.has_more
    assert [record.job_id for record in listed] == [second.id, first.id, first.id, first.id]
    assert len({record.id for record in listed}) == 4
    assert (page.items[0].prompt, page.items[0].model) == ("second", "test/fixture")
    only_first = history.files("default", Filters(job_id=first.id))
    assert {entry.record.job_id for entry in only_first.items} == {first.id}
    assert [e.prompt for e in history.files("default", Filters(q="SEC")).items] == ["second"]
    assert not history.files("default", Filters(model="test/kontext")).items
    services.clock.advance(timedelta(days=2).total_seconds())  # past retention
    assert not history.files("default", Filters()).items


# -- deleting -------------------------------------------------------------------------------


def test_a_deleted_file_is_gone_with_its_blob_and_its_links(
    services: Services, history: History, unique_images: None
) -> None:
    job = made(services)
    [item] = images_of(job)
    record = services.files.get("default", item.file_id)
    token, _ = services.files.links.sign(record.id)
    assert services.files.open_link(token)[1]

    history.delete_file("default", record.id)

    for look in (
        lambda: services.files.get("default", record.id),
        lambda: services.files.open_link(token),
        lambda: history.delete_file("default", record.id),
    ):
        with pytest.raises(NotFound):
            look()
    assert not services.blobs.exists(record.blob_key)
    assert services.files.get_many("default", [record.id]) == {}
    assert services.jobs.outputs(services.jobs.get(CALLER, job.id))[0].media_path is None


def test_another_tenants_file_or_job_is_not_found(services: Services, history: History) -> None:
    job = made(services)
    file_id = images_of(job)[0].file_id
    services.tenants.create(tenant_id="other", name="other", changes=TenantChanges())
    with pytest.raises(NotFound):
        history.delete_file("other", file_id)
    with pytest.raises(NotFound):
        history.delete_job("other", job.id)
    assert services.files.get("default", file_id)


def test_a_blob_another_file_uses_is_kept(services: Services, history: History) -> None:
    first = made(services, seed=4)
    hit = services.jobs.submit(CALLER, command(seed=4))  # a cache hit: a copy over the blob
    assert hit.cached
    original = services.files.get("default", images_of(first)[0].file_id)
    copy = services.files.get("default", images_of(hit)[0].file_id)
    assert copy.blob_key == original.blob_key

    history.delete_job("default", first.id)

    assert services.files.read(copy) == b"\x89PNG fixture"
    history.delete_file("default", copy.id)
    assert not services.blobs.exists(copy.blob_key)


def test_the_cache_skips_a_job_whose_file_was_deleted(services: Services, history: History) -> None:
    first = made(services, seed=8)
    history.delete_file("default", images_of(first)[0].file_id)

    again = services.jobs.submit(CALLER, command(seed=8))

    assert not again.cached
    assert services.provider.runs == 1  # queued to compute, not served


def test_a_hit_whose_source_is_deleted_meanwhile_is_refused_not_half_made(
    services: Services, history: History
) -> None:
    first = made(services, seed=8)
    cache = ResultCache(services.db, services.files, services.billing, services.clock, shared=False)
    hit = cache.lookup("default", first.cache_key or "")
    assert hit is not None and hit.id == first.id
    served = cache.serve(hit, tenant_id="default", job_id=first.id, price=None)

    history.delete_file("default", images_of(first)[0].file_id)

    with pytest.raises(Conflict), services.db.connection(writes=True) as connection:
        served.record(connection)
    with pytest.raises(Conflict):
        cache.serve(hit, tenant_id="default", job_id=first.id, price=None)


def test_a_finished_job_is_deleted_with_its_files_and_events_not_its_ledger(
    services: Services, history: History, unique_images: None
) -> None:
    services.tenants.update("default", TenantChanges(prices={"test/fixture": {"default": "1"}}))
    job = made(services, n=2)
    records = [services.files.get("default", i.file_id) for i in images_of(job)]

    history.delete_job("default", job.id)

    with services.db.session() as session:
        assert session.get(Job, job.id) is None
        events = select(func.count()).where(JobEvent.job_id == job.id)
        assert session.scalar(events) == 0
        ledger = select(func.count()).where(LedgerEntry.job_id == job.id)
        assert session.scalar(ledger) == 2  # reserve, settle
    for record in records:
        assert not services.blobs.exists(record.blob_key)
    with pytest.raises(NotFound):
        services.jobs.get(CALLER, job.id)
    with pytest.raises(NotFound):
        history.delete_job("default", job.id)


@pytest.mark.parametrize("state", ["queued", "running"])
def test_a_queued_or_running_job_is_refused_until_canceled(
    services: Services, history: History, state: str
) -> None:
    job = services.jobs.submit(CALLER, command())
    if state == "running":
        now = services.clock.now()
        services.store.claim(job.id, worker_id="w", now=now, lease_until=now)

    with pytest.raises(Conflict) as caught:
        history.delete_job("default", job.id)

    assert "cancel it first" in caught.value.message
    assert services.jobs.get(CALLER, job.id).status == state
    if state == "queued":
        services.jobs.cancel(CALLER, job.id)
        history.delete_job("default", job.id)


def test_the_idempotency_key_of_a_deleted_job_goes_with_it(
    services: Services, history: History
) -> None:
    keyed = ImageCommand(
        task="generate", model="test/fixture", options={"prompt": "x"}, idempotency_key="order-7"
    )
    job = services.jobs.submit(CALLER, keyed)
    services.executor.run(job.id)
    history.delete_job("default", job.id)

    again = services.jobs.submit(CALLER, keyed)  # a new request, as after retention

    assert again.id != job.id and again.status == "queued"
    with services.db.session() as session:
        record = session.get(IdempotencyKey, ("default", "order-7"))
        assert record is not None and record.job_id == again.id


def test_a_key_whose_job_is_gone_answers_404_not_a_crash(services: Services) -> None:
    keyed = ImageCommand(
        task="generate", model="test/fixture", options={"prompt": "x"}, idempotency_key="order-8"
    )
    job = services.jobs.submit(CALLER, keyed)
    with services.db.session() as session:  # a job row gone under its key (a race)
        session.execute(delete(JobEvent).where(JobEvent.job_id == job.id))
        session.execute(delete(JobInputBlob).where(JobInputBlob.job_id == job.id))
        session.execute(delete(Job).where(Job.id == job.id))

    with pytest.raises(NotFound) as caught:
        services.jobs.submit(CALLER, keyed)

    assert caught.value.param == "Idempotency-Key" and job.id in caught.value.message
