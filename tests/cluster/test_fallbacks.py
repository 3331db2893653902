"""Fallbacks (issue 24 item 4) in cluster mode: two API replicas with their own settings for
Black Forest Labs (a fake on loopback), a worker for flux-pro-1.1 beside the cluster's workers
for the tiny local model, all on PostgreSQL and Redis. A job whose first model's upstream
answers 503 is moved to its fallback's queue, served there, records both tries, and is billed
once, at the price of the model that served."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from tests.cluster.conftest import Cluster
from tests.cluster.services import WorkerProcess, wait_for_workers
from tests.cluster.test_batches import tenant_key
from tests.conftest import ADMIN_KEY, Server
from tests.helpers import wait_for
from tests.providers.conftest import BFL_KEY
from tests.providers.upstreams.bfl import FakeBFL
from tests.providers.upstreams.server import Reply

PRO = "/v1/flux-pro-1.1"
PRICES = {"local/tiny": {"default": "0.02"}}
"""The tiny model at 0.02 an image for the tenant here; flux-pro-1.1 is 0.04 (the catalog)."""


@dataclass
class Routed:
    upstream: FakeBFL
    replicas: list[Server]


@pytest.fixture(scope="module")
def routed(cluster: Cluster) -> Iterator[Routed]:
    """Two replicas and a flux-pro-1.1 worker of the cluster that reach the fake BFL."""
    with FakeBFL(BFL_KEY) as upstream:
        env = {
            **cluster.env,
            "PIXELGATE_BFL_API_KEY": BFL_KEY,
            "PIXELGATE_BFL_BASE_URL": upstream.url,
            "PIXELGATE_BFL_POLL_INTERVAL_SECONDS": "0.05",
            "PIXELGATE_PROVIDER_MAX_RETRIES": "0",
            "PIXELGATE_PROVIDER_TIMEOUT_SECONDS": "2",
        }
        root = cluster.root / "routed"
        replicas = [Server(root / f"api-{n}", cluster.models_dir, **env) for n in range(2)]
        worker = WorkerProcess(
            {**env, "PIXELGATE_DATA_DIR": str(root / "worker")},
            "bfl/flux-pro-1.1",
            cluster.root / "routed-worker.log",
        )
        try:
            for replica in replicas:
                replica.start()
            cluster.ensure_workers(2)  # the tiny model's
            worker.start()
            wait_for_workers(replicas[0].url, ADMIN_KEY, len(cluster.workers) + 1)
            yield Routed(upstream, replicas)
        finally:
            worker.stop()
            for replica in replicas:
                replica.stop()


def test_a_job_refused_upstream_falls_back_on_another_worker_and_is_billed_once(
    routed: Routed,
) -> None:
    key = tenant_key(routed.replicas[0].url, prices=PRICES)
    one, two = (
        httpx.Client(base_url=r.url, headers={"Authorization": f"Bearer {key}"}, timeout=60)
        for r in routed.replicas
    )
    routed.upstream.script(PRO, Reply.json({"detail": "upstream overloaded"}, 503))
    sent_before = len(routed.upstream.requests_to(PRO))

    accepted = one.post(
        "/v1/inference/images/generate",
        json={"model": "flux-pro-1.1", "prompt": "a red circle", "fallbacks": ["local/tiny"],
              "async": True},
    )  # fmt: skip
    assert accepted.status_code == 202, accepted.text
    job = wait_for(two, accepted.json()["data"]["id"], "succeeded", "failed", timeout=120)

    assert job["status"] == "succeeded", job
    assert (job["model"], job["requested_model"]) == ("local/tiny", "bfl/flux-pro-1.1")
    assert [(t["model"], t["outcome"]) for t in job["tries"]] == [
        ("bfl/flux-pro-1.1", "failed"),
        ("local/tiny", "succeeded"),
    ]
    assert job["tries"][0]["error_code"] == "BACKEND_ERROR"
    assert job["cost"] == {"amount": "0.02", "currency": "USD"}  # the tiny model's price
    assert len(routed.upstream.requests_to(PRO)) == sent_before + 1  # sent once, refused
    usage = two.get("/v1/usage").json()["data"]
    assert usage["spent"] == "0.02"  # billed once, for the model that served
    assert set(usage["by_model"]) == {"local/tiny"}
    assert all(b["reserved"] == "0.00" for b in usage["budgets"])  # the reservation settled
