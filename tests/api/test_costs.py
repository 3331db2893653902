"""What each job cost, through the real server: on the job, in the list, in the synchronous
response and in the terminal event, settled as the ledger settled it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import Server
from tests.helpers import (
    SLOW,
    generate,
    make_tenant,
    read_events,
    start_with_a_broken_model,
    submit,
    wait_for,
)


def usd(amount: str) -> dict[str, str]:
    return {"amount": amount, "currency": "USD"}


@pytest.fixture(scope="module")
def costs(tmp_path_factory: pytest.TempPathFactory, models_dir: Path) -> Iterator[Server]:
    server = start_with_a_broken_model(tmp_path_factory.mktemp("costs"), models_dir)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def admin(costs: Server) -> Iterator[httpx.Client]:
    with costs.client() as client:
        yield client


TINY_AT_2_CENTS = {"local/tiny": {"default": "0.02"}}


def test_a_job_its_list_and_its_response_say_what_it_settled(admin: httpx.Client) -> None:
    client = make_tenant(admin, "payer", prices=TINY_AT_2_CENTS)

    answer = generate(client, n=3)

    assert answer.status_code == 200, answer.text
    result = answer.json()["data"]
    assert result["cost"] == usd("0.06")
    job = client.get(f"/v1/jobs/{result['job_id']}").json()["data"]
    assert job["cost"] == usd("0.06")
    assert job["result"]["cost"] == usd("0.06")
    [listed] = client.get("/v1/jobs").json()["data"]
    assert listed["cost"] == usd("0.06")
    usage = client.get("/v1/usage").json()["data"]
    assert usage["spent"] == "0.06"  # the ledger settled what the job says


def test_a_queued_job_has_no_cost_yet_and_its_last_event_carries_it(admin: httpx.Client) -> None:
    client = make_tenant(admin, "follower", prices=TINY_AT_2_CENTS)

    accepted = submit(client, n=2)
    events = read_events(client, accepted["id"])

    assert accepted["cost"] is None  # not settled while queued
    kind, data, _ = events[-1]
    assert kind == "succeeded"
    assert data["cost"] == usd("0.04")
    assert data["job"]["cost"] == usd("0.04")
    assert all("cost" not in data for kind, data, _ in events[:-1])


def test_a_failed_or_canceled_job_costs_nothing(admin: httpx.Client) -> None:
    client = make_tenant(
        admin, "unlucky", prices={**TINY_AT_2_CENTS, "acme/broken": {"default": "0.20"}}
    )

    failed = generate(client, model="acme/broken")
    running = submit(client, **SLOW)
    wait_for(client, running["id"], "running")
    assert client.get(f"/v1/jobs/{running['id']}").json()["data"]["cost"] is None
    client.post(f"/v1/jobs/{running['id']}/cancel")
    events = read_events(client, running["id"])

    assert failed.status_code == 500
    [failed_job] = client.get("/v1/jobs", params={"status": "failed"}).json()["data"]
    assert failed_job["cost"] == usd("0.00")
    assert read_events(client, failed_job["id"])[-1][1]["cost"] == usd("0.00")
    assert events[-1][0] == "canceled"
    assert events[-1][1]["cost"] == usd("0.00")
    assert client.get("/v1/usage").json()["data"]["spent"] == "0.00"


def test_a_free_model_costs_zero(admin: httpx.Client) -> None:
    client = make_tenant(admin, "thrifty")  # local/tiny has no price in the catalog

    result = generate(client).json()["data"]

    assert result["cost"] == usd("0.00")


def test_a_cache_hit_costs_what_the_tenants_cache_policy_says(admin: httpx.Client) -> None:
    free = make_tenant(admin, "hits-free", prices=TINY_AT_2_CENTS)
    charged = make_tenant(admin, "hits-charged", prices=TINY_AT_2_CENTS, cache_policy="charge")

    for client, hit_cost in ((free, "0.00"), (charged, "0.02")):
        first = generate(client, seed=5, prompt="a cost").json()["data"]
        hit = generate(client, seed=5, prompt="a cost").json()["data"]
        assert (first["cached"], hit["cached"]) == (False, True)
        assert (first["cost"], hit["cost"]) == (usd("0.02"), usd(hit_cost))
        assert client.get(f"/v1/jobs/{hit['job_id']}").json()["data"]["cost"] == usd(hit_cost)
