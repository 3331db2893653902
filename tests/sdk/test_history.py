"""SDK: listing and deleting jobs and files (sync and async), against a real server."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

import pixelgate
from pixelgate.errors import Conflict, NotFound, ValidationError
from tests.conftest import Server
from tests.helpers import tenant_key
from tests.sdk.conftest import FAST


@pytest.fixture
def key(server: Server) -> str:
    with server.client() as admin:
        return tenant_key(admin)


@pytest.fixture
def own(server: Server, key: str) -> Iterator[pixelgate.Client]:
    with pixelgate.Client(base_url=server.url, api_key=key) as instance:
        yield instance


def test_pages_of_jobs_and_files_and_every_item_once(own: pixelgate.Client) -> None:
    made = [
        own.images.generate(model="local/tiny", prompt=f"shape {n}", n=2, **FAST) for n in range(3)
    ]
    job_ids = [result.job_id for result in reversed(made)]

    first = own.jobs.list(limit=2)
    second = own.jobs.list(limit=2, after=first.last_id)

    assert [job.id for job in first] == job_ids[:2] and first.has_more
    assert [job.id for job in second] == job_ids[2:] and not second.has_more
    assert [job.id for job in own.jobs.list(before=second.first_id)] == job_ids[:2]
    assert [job.id for job in own.jobs.iter(limit=1)] == job_ids
    assert [job.id for job in own.jobs.iter(q="SHAPE 1", status="succeeded")] == [job_ids[1]]
    files = list(own.files.iter(limit=4))
    assert len(files) == 6 and len({file.id for file in files}) == 6
    assert [file.job_id for file in files][::2] == job_ids
    assert (files[0].prompt, files[0].model) == ("shape 2", "local/tiny")
    assert [f.id for f in own.files.list(job_id=job_ids[0])] == [f.id for f in files[:2]]
    assert not own.files.list(created_after=files[0].created_at.timestamp() + 1)
    with pytest.raises(ValidationError) as caught:
        own.files.list(after="file_nope")
    assert caught.value.param == "after"


def test_deleting_a_file_and_a_job(own: pixelgate.Client) -> None:
    result = own.images.generate(model="local/tiny", prompt="to delete", n=2, **FAST)
    kept, gone = result.data

    own.files.delete(gone.file_id)

    with pytest.raises(NotFound):
        own.files.get(gone.file_id)
    assert httpx.get(gone.url or "").status_code == 404
    assert own.files.get(kept.file_id)
    own.jobs.delete(result.job_id)
    with pytest.raises(NotFound):
        own.files.get(kept.file_id)
    running = own.images.submit(
        model="local/tiny", prompt="busy", num_steps=200, width=128, height=128
    )
    with pytest.raises(Conflict, match="cancel it first"):
        own.jobs.delete(running.id)
    own.jobs.cancel(running.id)
    own.jobs.wait(running.id, timeout=60)
    own.jobs.delete(running.id)


@pytest.mark.anyio
async def test_the_async_client_does_the_same(server: Server, key: str) -> None:
    async with pixelgate.AsyncClient(base_url=server.url, api_key=key) as client:
        results = [
            await client.images.generate(model="local/tiny", prompt=f"async {n}", **FAST)
            for n in range(3)
        ]
        page = await client.jobs.list(limit=2)
        every = [job.id async for job in client.jobs.iter(limit=2)]
        files = [file.id async for file in client.files.iter(limit=2)]
        await client.files.delete(files[0])
        await client.jobs.delete(results[0].job_id)
        left = await client.files.list()

    assert page.has_more and len(page) == 2
    assert every == [result.job_id for result in reversed(results)]
    assert files == [result.data[0].file_id for result in reversed(results)]
    assert [file.id for file in left] == files[1:2]
