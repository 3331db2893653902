"""Cluster mode end to end: real PostgreSQL, Redis, S3 (moto), two API replicas, two workers."""

from __future__ import annotations

import json
import secrets
import threading
import time
from typing import Any

import boto3
import httpx

from pixelgate.engine.celery_queue import TASK_NAME, create_celery, queue_name
from pixelgate.storage.blobs import blob_key
from tests.cluster.conftest import BUCKET, Cluster
from tests.cluster.services import TcpProxy, wait_for_workers
from tests.conftest import ADMIN_KEY
from tests.helpers import read_events, submit, wait_for

LONG = {"model": "local/tiny", "num_steps": 120, "width": 96, "height": 96}
LONGER = {"model": "local/tiny", "num_steps": 200, "width": 192, "height": 192}
"""Long enough for a cancel to reach a worker (through the database) before the job ends."""


def client(url: str, key: str = ADMIN_KEY) -> httpx.Client:
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=60)


def test_a_job_from_replica_one_is_followed_and_canceled_through_replica_two(
    cluster: Cluster,
) -> None:
    one, two = (client(replica.url) for replica in cluster.replicas[:2])
    job = submit(one, **LONGER)
    events: list[tuple[str, dict[str, Any], str | None]] = []
    follower = threading.Thread(target=lambda: read_events(two, job["id"], into=events))
    follower.start()
    wait_for(two, job["id"], "running", timeout=60)
    deadline = time.monotonic() + 60
    while not any("preview" in data for _, data, _ in events) and time.monotonic() < deadline:
        time.sleep(0.05)  # progress from a worker, relayed through Redis to replica two
    previews = [
        data["preview"] for name, data, _ in events if name == "progress" and "preview" in data
    ]
    assert previews and previews[0].startswith("data:image/jpeg;base64,"), events

    canceled = two.post(f"/v1/jobs/{job['id']}/cancel")
    assert canceled.json()["data"]["cancel_requested"] is True
    follower.join(30)

    names = [name for name, _, _ in events]
    assert names[0] == "queued" and names[-1] == "canceled"
    assert "succeeded" not in names
    assert one.get(f"/v1/jobs/{job['id']}").json()["data"]["status"] == "canceled"


def s3_keys(cluster: Cluster) -> set[str]:
    s3 = boto3.client(
        "s3",
        endpoint_url=cluster.s3_url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )
    return {item["Key"] for item in s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])}


def test_results_live_in_s3_and_links_work_on_every_replica(cluster: Cluster) -> None:
    one = client(cluster.replicas[0].url)
    result = one.post(
        "/v1/inference/images/generate", json={"model": "local/tiny", "prompt": "s3", "seed": 4}
    ).json()["data"]
    url = result["data"][0]["url"]
    other = url.replace(cluster.replicas[0].url, cluster.replicas[1].url)

    assert httpx.get(url).content == httpx.get(other).content
    keys = s3_keys(cluster)
    assert keys and all(key.startswith("results/") for key in keys)


def test_a_deleted_file_leaves_s3_and_its_links_fail_on_every_replica(cluster: Cluster) -> None:
    one, two = (client(replica.url) for replica in cluster.replicas[:2])
    body = {"model": "local/tiny", "prompt": "s3 delete", "seed": secrets.randbelow(2**31)}
    result = one.post("/v1/inference/images/generate", json=body).json()["data"]
    [image] = result["data"]
    data = httpx.get(image["url"]).content
    name = blob_key(data)
    assert any(key.endswith(name) for key in s3_keys(cluster))

    deleted = two.delete(f"/v1/files/{image['file_id']}")

    assert deleted.status_code == 200, deleted.text
    for replica in cluster.replicas[:2]:
        assert (
            httpx.get(image["url"].replace(cluster.replicas[0].url, replica.url)).status_code == 404
        )
    assert one.get(f"/v1/files/{image['file_id']}").status_code == 404
    assert not any(key.endswith(name) for key in s3_keys(cluster))
    # the same request again computes: the deleted file is no cache source on either replica
    again = one.post("/v1/inference/images/generate", json=body).json()["data"]
    assert not again["cached"] and httpx.get(again["data"][0]["url"]).content == data


def test_a_killed_worker_s_job_is_finished_by_the_other_once_and_charged_once(
    cluster: Cluster,
) -> None:
    cluster.ensure_workers(2)
    admin = client(cluster.replicas[0].url)
    admin.post(
        "/v1/admin/tenants",
        json={"id": "kill-t", "name": "K", "prices": {"local/tiny": {"default": "0.25"}}},
    )
    key = admin.post("/v1/admin/keys", json={"tenant_id": "kill-t", "name": "k"}).json()["data"]
    tenant = client(cluster.replicas[0].url, key["key"])
    job = submit(tenant, **LONG, seed=21)
    running = wait_for(tenant, job["id"], "running", timeout=60)
    victim = next(w for w in cluster.workers if f":{w.pid}:" in _worker_of(admin, job["id"]))

    victim.kill()

    done = wait_for(tenant, job["id"], "succeeded", "failed", timeout=120)
    assert done["status"] == "succeeded"
    assert done["attempts"] == running["attempts"] + 1
    assert len(done["result"]["data"]) == 1
    recorded = [name for name, _, event_id in read_events(tenant, job["id"]) if event_id]
    assert recorded.count("succeeded") == 1
    usage = tenant.get("/v1/usage").json()["data"]
    assert (usage["spent"], usage["images"]) == ("0.25", 1)
    total = next(b for b in usage["budgets"] if b["period"] == "total")
    assert total["reserved"] == "0.00"


def test_the_same_message_delivered_twice_runs_the_job_once(cluster: Cluster) -> None:
    cluster.ensure_workers(2)
    api = client(cluster.replicas[0].url)
    celery = create_celery(cluster.env["PIXELGATE_BROKER_URL"])
    job = submit(api, model="local/tiny", num_steps=30, seed=8)
    for _ in range(2):  # two more deliveries of the same job, to any worker
        celery.send_task(TASK_NAME, args=[job["id"]], queue=queue_name("local/tiny"))

    done = wait_for(api, job["id"], "succeeded", timeout=60)
    time.sleep(2)  # give the duplicates time to arrive and be refused

    assert api.get(f"/v1/jobs/{job['id']}").json()["data"]["attempts"] == done["attempts"] == 1
    recorded = [name for name, _, event_id in read_events(api, job["id"]) if event_id]
    assert recorded == ["queued", "running", "succeeded"]


def test_a_redis_restart_loses_no_accepted_job(cluster: Cluster) -> None:
    cluster.ensure_workers(2)
    api = client(cluster.replicas[0].url)
    jobs = [submit(api, model="local/tiny", num_steps=40, seed=100 + i) for i in range(4)]

    cluster.redis.stop()  # every queued message and event in Redis is gone
    time.sleep(1)
    cluster.redis.start()

    for job in jobs:
        assert wait_for(api, job["id"], "succeeded", "failed", timeout=120)["status"] == "succeeded"
    after = submit(api, model="local/tiny")
    assert wait_for(api, after["id"], "succeeded", timeout=60)["status"] == "succeeded"


def test_an_unreachable_database_fails_readiness_and_answers_503(
    cluster: Cluster, db_proxy: TcpProxy
) -> None:
    replica = cluster.add_replica(PIXELGATE_DATABASE_URL=cluster.database.url(db_proxy.port))
    api = client(replica.url)
    before = api.post(
        "/v1/inference/images/generate", json={"model": "local/tiny", "prompt": "before"}
    )
    assert before.status_code == 200

    db_proxy.cut()
    ready = httpx.get(f"{replica.url}/readyz")
    refused = api.post("/v1/inference/images/generate", json={"model": "local/tiny", "prompt": "x"})
    db_proxy.restore()

    assert ready.status_code == 503
    assert ready.json()["checks"]["database"].startswith("unavailable")
    assert ready.json()["checks"]["redis"] == "ok"
    assert refused.status_code == 503
    assert refused.json()["error"]["code"] == "SERVICE_UNAVAILABLE"
    assert refused.headers["retry-after"] == "5"
    deadline = time.monotonic() + 20
    while httpx.get(f"{replica.url}/readyz").status_code != 200 and time.monotonic() < deadline:
        time.sleep(0.2)
    again = api.post("/v1/inference/images/generate", json={"model": "local/tiny", "prompt": "y"})
    assert again.status_code == 200
    listed = api.get("/v1/jobs", params={"limit": 100}).json()["data"]
    assert before.json()["data"]["job_id"] in [job["id"] for job in listed]
    replica.stop()
    cluster.replicas.remove(replica)


def test_workers_report_heartbeats_and_metrics_count_the_broker_queue(cluster: Cluster) -> None:
    cluster.ensure_workers(2)
    workers = wait_for_workers(cluster.replicas[0].url, ADMIN_KEY, 2)
    assert all(worker["models"] == ["local/tiny"] for worker in workers)
    ready = httpx.get(f"{cluster.replicas[1].url}/readyz").json()
    assert ready["checks"] == {"database": "ok", "storage": "ok", "redis": "ok", "broker": "ok"}
    metrics = httpx.get(f"{cluster.replicas[0].url}/metrics").text
    assert "pixelgate_queue_depth" in metrics


def _worker_of(api: httpx.Client, job_id: str) -> str:
    """The worker running a job, from the workers' heartbeats."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        for worker in api.get("/v1/admin/workers", params={"within_seconds": 5}).json()["data"]:
            if job_id in worker["running"]:
                return str(worker["id"])
        time.sleep(0.2)
    raise AssertionError(json.dumps(api.get("/v1/admin/workers").json()))
