"""A hosted provider's billed request is sent once per job (issue 19.3): through the real
server, its job system and the fake Black Forest Labs API on loopback."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.conftest import Server
from tests.helpers import generate, submit, wait_for
from tests.providers.conftest import BFL_KEY
from tests.providers.upstreams.bfl import GET_RESULT, FakeBFL, Plan

PRO = "/v1/flux-pro-1.1"


@pytest.fixture
def upstream() -> Iterator[FakeBFL]:
    with FakeBFL(BFL_KEY) as fake:
        yield fake


def bfl_server(make_server: Callable[..., Server], upstream: FakeBFL, **env: str) -> Server:
    return make_server(
        PIXELGATE_BFL_API_KEY=BFL_KEY,
        PIXELGATE_BFL_BASE_URL=upstream.url,
        PIXELGATE_BFL_POLL_INTERVAL_SECONDS="0.05",
        PIXELGATE_MAX_ATTEMPTS="3",
        **env,
    ).start()


def submits(upstream: FakeBFL) -> int:
    return len(upstream.requests_to(PRO))


def test_a_task_that_outlives_the_polling_window_fails_refunded_and_is_not_resubmitted(
    make_server: Callable[..., Server], upstream: FakeBFL
) -> None:
    """It was submitted 3 times (three billed tasks) while the caller waited."""
    server = bfl_server(make_server, upstream, PIXELGATE_BFL_POLL_TIMEOUT_SECONDS="1")
    upstream.plan = Plan(pending_polls=10**6)
    with server.client() as client:
        answer = generate(client, model="flux-pro-1.1", prompt="slow fox")
        assert answer.status_code == 504, answer.text
        assert answer.json()["error"]["code"] == "TIMEOUT"
        job_id = (
            answer.headers.get("x-pixelgate-job-id")
            or client.get("/v1/jobs").json()["data"][0]["id"]
        )
        job = wait_for(client, job_id, "failed", "succeeded", timeout=30)
        time.sleep(1.5)  # a retry, were there one, would have submitted again by now
        usage: dict[str, Any] = client.get("/v1/usage").json()["data"]

    assert (job["status"], job["error"]["code"]) == ("failed", "TIMEOUT")
    assert submits(upstream) == 1
    assert [(b["spent"], b["reserved"]) for b in usage["budgets"]] == [("0.00", "0.00")] * 2


def test_a_job_cut_off_by_a_crash_resumes_polling_its_task_after_the_restart(
    make_server: Callable[..., Server], upstream: FakeBFL
) -> None:
    server = bfl_server(make_server, upstream, PIXELGATE_BFL_POLL_TIMEOUT_SECONDS="60")
    upstream.plan = Plan(pending_polls=60)  # about 3 s of polling
    with server.client() as client:
        job = submit(client, model="flux-pro-1.1", prompt="patient fox")
        deadline = time.monotonic() + 30
        while len(upstream.requests_to(GET_RESULT)) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert submits(upstream) == 1
    server.kill()  # kill -9 while it polls

    server.start()
    with server.client() as client:
        ended = wait_for(client, job["id"], "succeeded", "failed", timeout=60)

    assert ended["status"] == "succeeded", ended
    assert submits(upstream) == 1  # the same task, polled again; not a second one


def test_each_of_n_tasks_cut_off_by_a_crash_is_resumed_not_resubmitted(
    make_server: Callable[..., Server], upstream: FakeBFL
) -> None:
    """`n` images are `n` tasks (issue 19.10), each submitted once per job (19.3): the job
    notes one task per image, and after a restart polls both again."""
    server = bfl_server(make_server, upstream, PIXELGATE_BFL_POLL_TIMEOUT_SECONDS="60")
    upstream.plan = Plan(pending_polls=40)  # about 2 s of polling per task
    with server.client() as client:
        job = submit(client, model="flux-pro-1.1", prompt="two foxes", n=2, seed=3)
        deadline = time.monotonic() + 30
        while submits(upstream) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        polled = len(upstream.requests_to(GET_RESULT))
        while len(upstream.requests_to(GET_RESULT)) < polled + 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert submits(upstream) == 2
    server.kill()  # kill -9 while the second task is polled

    server.start()
    with server.client() as client:
        ended = wait_for(client, job["id"], "succeeded", "failed", timeout=60)

    assert ended["status"] == "succeeded", ended
    assert [image["seed"] for image in ended["result"]["data"]] == [3, 4]
    assert submits(upstream) == 2  # the same two tasks, polled again; no third
