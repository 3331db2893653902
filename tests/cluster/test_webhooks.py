"""Webhooks in cluster mode: both API replicas and both workers run a sender over one
PostgreSQL outbox; each delivery is sent once (or once per failed try), in order per job,
whichever process sends it."""

from __future__ import annotations

import time
from collections import Counter

import httpx
from standardwebhooks import Webhook as StandardWebhook

from tests.cluster.conftest import Cluster
from tests.cluster.test_batches import FAST, tenant_key
from tests.webhook_receiver import WebhookReceiver, hooked_batch, statuses_by_job

EVENTS = ["queued", "running", "succeeded"]


def test_each_delivery_is_sent_once_in_order_across_processes(cluster: Cluster) -> None:
    cluster.ensure_workers(2)
    key = tenant_key(cluster.replicas[0].url)
    headers = {"Authorization": f"Bearer {key}"}
    one, two = (
        httpx.Client(base_url=replica.url, headers=headers, timeout=60)
        for replica in cluster.replicas[:2]
    )
    secret = two.get("/v1/webhooks/secret").json()["data"]["key"]
    with WebhookReceiver(failures=1) as receiver:
        requests = hooked_batch(FAST, receiver.url, 4, label="hooked", events=EVENTS)
        batch = one.post("/v1/inference/images/batch", json=requests)
        assert batch.status_code == 202, batch.text
        single = two.post(
            "/v1/inference/images/generate",
            json={**FAST, "prompt": "alone", "async": True, "webhook": receiver.url,
                  "webhook_events": EVENTS},
        )  # fmt: skip
        assert single.status_code == 202, single.text
        taken = receiver.wait_for(5 * len(EVENTS), timeout=180)
        time.sleep(1.5)  # time for a duplicate to arrive, were one sent
        received = list(receiver.received)

    # every delivery tried exactly twice: the failed try and the one taken, never more
    tries = Counter(item.webhook_id for item in received)
    assert len(tries) == 5 * len(EVENTS) and set(tries.values()) == {2}, tries
    for item in taken:
        StandardWebhook(secret).verify(item.body, item.headers)
    by_job = statuses_by_job(taken)
    assert len(by_job) == 5
    assert all(statuses == EVENTS for statuses in by_job.values()), by_job
    job_id = single.json()["data"]["id"]
    records = one.get(f"/v1/jobs/{job_id}/webhooks").json()["data"]
    assert [record["state"] for record in records] == ["delivered"] * 3
    assert [[a["status_code"] for a in r["attempts"]] for r in records] == [[500, 204]] * 3
