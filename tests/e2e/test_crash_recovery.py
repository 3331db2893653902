"""Nothing accepted is lost: kill -9 the server mid-job, start it again, the job finishes."""

from __future__ import annotations

import time

import httpx

from tests.conftest import Server
from tests.helpers import MEDIUM, SLOW, png_size, submit, wait_for


def test_a_job_running_when_the_server_is_killed_finishes_after_restart(make_server) -> None:  # type: ignore[no-untyped-def]
    server: Server = make_server().start()
    with server.client() as api:
        running = submit(api, **MEDIUM, seed=42)
        wait_for(api, running["id"], "running")
        time.sleep(0.1)  # past the moments in which a job may still join the running one's batch
        queued = submit(api, seed=43)
        assert api.get(f"/v1/jobs/{queued['id']}").json()["data"]["status"] == "queued"

    server.kill()
    server.start()

    with server.client() as api:
        resumed = wait_for(api, running["id"], "succeeded", "failed", timeout=120)
        after = wait_for(api, queued["id"], "succeeded", "failed", timeout=60)
        assert resumed["status"] == "succeeded"
        assert after["status"] == "succeeded"
        assert resumed["attempts"] == 2
        [item] = resumed["result"]["data"]
        assert item["seed"] == 42  # the seed fixed at submission, so the restart draws the same
        assert png_size(httpx.get(item["url"]).content) == (64, 64)
        events = _event_names(api, running["id"])
        assert events == ["queued", "running", "queued", "running", "succeeded"]


def test_a_job_that_keeps_crashing_the_server_is_failed_not_retried_forever(make_server) -> None:  # type: ignore[no-untyped-def]
    server: Server = make_server(PIXELGATE_MAX_ATTEMPTS="1").start()
    with server.client() as api:
        job = submit(api, **SLOW)
        wait_for(api, job["id"], "running")
    server.kill()
    server.start()
    with server.client() as api:
        failed = wait_for(api, job["id"], "failed", timeout=30)
        assert failed["error"]["code"] == "INTERNAL_ERROR"
        assert "interrupted 1 times" in failed["error"]["message"]


def _event_names(api: httpx.Client, job_id: str) -> list[str]:
    from tests.helpers import read_events

    return [name for name, _, event_id in read_events(api, job_id) if event_id is not None]
