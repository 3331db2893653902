"""Jobs: polling, the SSE stream, cancel."""

from __future__ import annotations

import base64
import io
import threading
import time

import httpx
from PIL import Image

from tests.helpers import MEDIUM, SLOW, read_events, submit, wait_for


def test_events_arrive_in_order_queued_running_progress_succeeded(api: httpx.Client) -> None:
    job = submit(api, num_steps=6)

    events = read_events(api, job["id"])

    names = [name for name, _, _ in events]
    assert names[0] == "queued"
    assert names[-1] == "succeeded"
    assert "running" in names
    running_at = names.index("running")
    progress = [data for name, data, _ in events if name == "progress"]
    # progress seen live follows running; a late subscriber may miss early steps, never the order
    assert all(names.index("progress") > running_at for _ in progress[:1])
    steps = [data["step"] for data in progress]
    assert steps == sorted(steps)
    assert all(data["total"] == 6 for data in progress)
    final = events[-1][1]["job"]
    assert final["status"] == "succeeded"
    assert final["result"]["data"][0]["url"]


def test_progress_is_streamed_live_step_by_step(api: httpx.Client) -> None:
    job = submit(api, **{**SLOW, "num_steps": 40})

    events = read_events(api, job["id"])

    steps = [data["step"] for name, data, _ in events if name == "progress"]
    assert len(steps) >= 10
    assert steps == sorted(steps)
    assert steps[-1] == 40


def test_progress_of_a_local_model_carries_a_preview_of_the_image_so_far(
    api: httpx.Client,
) -> None:
    job = submit(api, **MEDIUM)  # a few seconds: a preview every half second or so

    events = read_events(api, job["id"])

    previews = [data["preview"] for name, data, _ in events if "preview" in data]
    assert previews, [name for name, _, _ in events]
    assert all(name == "progress" for name, data, _ in events if "preview" in data)
    prefix = "data:image/jpeg;base64,"
    assert all(preview.startswith(prefix) and len(preview) < 8_000 for preview in previews)
    with Image.open(io.BytesIO(base64.b64decode(previews[-1].removeprefix(prefix)))) as image:
        assert image.format == "JPEG"
        assert image.size == (32, 32)  # the tiny model's latents of a 64x64 image
    recorded = [name for name, _, event_id in events if event_id is not None]
    assert recorded == ["queued", "running", "succeeded"]  # previews are never stored


def test_recorded_events_carry_ids_and_resume_after_last_event_id(api: httpx.Client) -> None:
    job = submit(api)
    wait_for(api, job["id"], "succeeded")

    events = read_events(api, job["id"])
    recorded = [(name, event_id) for name, _, event_id in events if event_id is not None]
    assert [name for name, _ in recorded] == ["queued", "running", "succeeded"]

    first_id = recorded[0][1]
    assert first_id is not None
    resumed = read_events(api, job["id"], headers={"Last-Event-ID": first_id})
    assert [name for name, _, _ in resumed] == ["running", "succeeded"]


def test_cancel_a_running_job_stops_it_and_returns_no_image(api: httpx.Client) -> None:
    job = submit(api, **SLOW)
    wait_for(api, job["id"], "running")
    time.sleep(0.3)

    response = api.post(f"/v1/jobs/{job['id']}/cancel")

    assert response.status_code == 200
    assert response.json()["data"]["cancel_requested"] is True
    started = time.monotonic()
    final = wait_for(api, job["id"], "canceled", "succeeded", "failed", timeout=30)
    assert final["status"] == "canceled"
    assert final["result"] is None
    assert time.monotonic() - started < 5  # stopped at a step, not after 200 of them
    names = [name for name, _, _ in read_events(api, job["id"])]
    assert names[-1] == "canceled"
    assert "succeeded" not in names


def test_cancel_a_queued_job_cancels_it_at_once(api: httpx.Client) -> None:
    blocker = submit(api, **SLOW)  # the model is busy with this
    wait_for(api, blocker["id"], "running")
    time.sleep(0.1)  # past the moments in which a job may still join the blocker's batch
    queued = submit(api)

    response = api.post(f"/v1/jobs/{queued['id']}/cancel")

    assert response.json()["data"]["status"] == "canceled"
    api.post(f"/v1/jobs/{blocker['id']}/cancel")
    wait_for(api, blocker["id"], "canceled")
    assert api.get(f"/v1/jobs/{queued['id']}").json()["data"]["status"] == "canceled"


def test_canceling_a_finished_job_is_a_conflict(api: httpx.Client) -> None:
    job = submit(api)
    wait_for(api, job["id"], "succeeded")

    response = api.post(f"/v1/jobs/{job['id']}/cancel")

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "CONFLICT"


def test_a_waiting_sync_request_reports_cancel_by_another_client(api: httpx.Client) -> None:
    results: list[httpx.Response] = []
    waiting = threading.Thread(
        target=lambda: results.append(
            api.post(
                "/v1/inference/images/generate",
                json={**SLOW, "prompt": "x", "metadata": {"tag": "sync-cancel"}},
            )
        )
    )
    waiting.start()
    deadline = time.monotonic() + 10
    job_id = None
    while job_id is None and time.monotonic() < deadline:
        time.sleep(0.1)
        job_id = _running_job_with_tag(api, "sync-cancel")
    assert job_id is not None
    api.post(f"/v1/jobs/{job_id}/cancel")
    waiting.join(30)

    assert results[0].status_code == 409
    assert results[0].json()["error"]["code"] == "CANCELED"


def _running_job_with_tag(api: httpx.Client, tag: str) -> str | None:
    """A sync caller learns its job id only at the end; others find it in the job list."""
    jobs = api.get("/v1/jobs", params={"status": "running"}).json()["data"]
    return next((job["id"] for job in jobs if (job["metadata"] or {}).get("tag") == tag), None)


def test_unknown_job_is_not_found(api: httpx.Client) -> None:
    for path in ("/v1/jobs/job_nope", "/v1/jobs/job_nope/events"):
        response = api.get(path)
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "NOT_FOUND"
    assert api.post("/v1/jobs/job_nope/cancel").status_code == 404


def test_job_list_is_newest_first_and_filters_by_status(api: httpx.Client) -> None:
    first = submit(api)
    second = submit(api)
    wait_for(api, second["id"], "succeeded")
    wait_for(api, first["id"], "succeeded")

    listed = api.get("/v1/jobs", params={"limit": 50}).json()["data"]
    ids = [job["id"] for job in listed]
    assert ids.index(second["id"]) < ids.index(first["id"])
    succeeded = api.get("/v1/jobs", params={"status": "succeeded"}).json()["data"]
    assert all(job["status"] == "succeeded" for job in succeeded)
    bad = api.get("/v1/jobs", params={"status": "bogus"})
    assert bad.status_code == 400
    assert bad.json()["error"]["param"] == "status"
