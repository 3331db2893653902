"""Signed webhooks end to end: a real server POSTs a job's events to a receiver on loopback
(allowed by `PIXELGATE_WEBHOOK_ALLOWED_HOSTS`), signed as Standard Webhooks says (checked with
the `standardwebhooks` library itself and with pixelgate's own `verify_webhook`), in order,
retried under the same webhook-id, durable across a restart, several jobs' deliveries side by
side (a slow receiver holds one place of `PIXELGATE_WEBHOOK_CONCURRENCY`, never another job's
delivery, at most `PIXELGATE_WEBHOOK_CONCURRENCY_PER_RECEIVER` places, and one tenant's
receivers at most `PIXELGATE_WEBHOOK_CONCURRENCY_PER_TENANT`); and a webhook to a loopback
address is refused where the operator has not allowed it."""

from __future__ import annotations

import base64
import io
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet
from PIL import Image
from standardwebhooks import Webhook as StandardWebhook

import pixelgate
from tests.conftest import Server, free_port
from tests.helpers import GENERATE, error_of, png_size, tenant_key, wait_for
from tests.webhook_receiver import WebhookReceiver, hooked_batch, statuses_by_job

FAST = {"model": "local/tiny", "prompt": "a red circle", "width": 64, "height": 64, "num_steps": 2}
LOOPBACK = {
    "PIXELGATE_WEBHOOK_ALLOWED_HOSTS": "127.0.0.1",
    "PIXELGATE_WEBHOOK_BACKOFF_SECONDS": "0.2",
}
AT_ONCE = 3
"""The hooked server's `PIXELGATE_WEBHOOK_CONCURRENCY`."""
ONE_RECEIVER = 2
"""Its `PIXELGATE_WEBHOOK_CONCURRENCY_PER_RECEIVER`."""
EVENTS = ["queued", "running", "succeeded"]


@pytest.fixture(scope="module")
def hooked(tmp_path_factory: pytest.TempPathFactory, models_dir: Path) -> Iterator[Server]:
    """A server that may send webhooks to 127.0.0.1, retrying quickly, `AT_ONCE` at a time,
    waiting 30 s for an answer."""
    server = Server(
        tmp_path_factory.mktemp("hooks") / "data",
        models_dir,
        **LOOPBACK,
        PIXELGATE_WEBHOOK_CONCURRENCY=str(AT_ONCE),
        PIXELGATE_WEBHOOK_CONCURRENCY_PER_RECEIVER=str(ONE_RECEIVER),
        PIXELGATE_WEBHOOK_TIMEOUT_SECONDS="30",  # no held try times out while a test holds it
    ).start()
    yield server
    server.stop()


@pytest.fixture
def client(hooked: Server) -> Iterator[httpx.Client]:
    """A client of a new tenant of its own (a secret of its own)."""
    with hooked.client() as admin:
        key = tenant_key(admin)
    with hooked.client(key) as tenant:
        yield tenant


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as running:
        yield running


def until(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def secret_of(client: httpx.Client) -> str:
    response = client.get("/v1/webhooks/secret")
    assert response.status_code == 200, response.text
    key: str = response.json()["data"]["key"]
    return key


def test_a_job_s_events_arrive_signed_in_order_with_fresh_links(
    client: httpx.Client, receiver: WebhookReceiver
) -> None:
    secret = secret_of(client)
    assert secret.startswith("whsec_") and secret_of(client) == secret  # made once, kept
    response = client.post(
        GENERATE,
        json={**FAST, "async": True, "webhook": receiver.url, "metadata": {"order": 7},
              "webhook_events": ["queued", "running", "succeeded"]},
    )  # fmt: skip
    assert response.status_code == 202, response.text
    job_id = response.json()["data"]["id"]

    deliveries = receiver.wait_for(3)
    assert [d.document["type"] for d in deliveries] == [
        "job.queued",
        "job.running",
        "job.succeeded",
    ]
    for delivery in deliveries:
        assert delivery.path == "/hooks"
        assert delivery.headers["content-type"] == "application/json"
        # the reference implementation of the specification accepts each one
        assert StandardWebhook(secret).verify(delivery.body, delivery.headers) == delivery.document
        assert (
            pixelgate.verify_webhook(delivery.body, delivery.headers, secret)["data"]["id"]
            == job_id
        )
    assert len({d.webhook_id for d in deliveries}) == 3
    done = deliveries[-1].document["data"]
    assert done["status"] == "succeeded" and done["metadata"] == {"order": 7}
    assert done["error"] is None and done["progress"] is None
    # the cost as the job itself renders it, on the terminal event only
    assert done["cost"] == client.get(f"/v1/jobs/{job_id}").json()["data"]["cost"]
    assert set(done["cost"]) == {"amount", "currency"} and done["cost"]["currency"] == "USD"
    assert [d.document["data"]["cost"] for d in deliveries[:2]] == [None, None]
    (output,) = done["outputs"]
    assert png_size(httpx.get(output["url"]).content) == (64, 64)  # a link that works

    listed = client.get(f"/v1/jobs/{job_id}/webhooks")
    assert listed.status_code == 200, listed.text
    records = listed.json()["data"]
    assert [r["event"] for r in records] == ["queued", "running", "succeeded"]
    assert [r["id"] for r in records] == [d.webhook_id for d in deliveries]
    for record in records:
        assert record["state"] == "delivered" and record["url"] == receiver.url
        (attempt,) = record["attempts"]
        assert attempt["status_code"] == 204 and attempt["error"] is None
        assert attempt["duration_ms"] >= 0


def test_by_default_only_how_the_job_ended_is_sent(
    client: httpx.Client, receiver: WebhookReceiver
) -> None:
    job = client.post(GENERATE, json={**FAST, "async": True, "webhook": receiver.url}).json()[
        "data"
    ]
    wait_for(client, job["id"], "succeeded")
    (delivery,) = receiver.wait_for(1)
    assert delivery.document["type"] == "job.succeeded"
    time.sleep(0.5)
    assert len(receiver.received) == 1


def test_a_synchronous_request_sends_its_webhook_too(
    client: httpx.Client, receiver: WebhookReceiver
) -> None:
    response = client.post(GENERATE, json={**FAST, "webhook": receiver.url})
    assert response.status_code == 200, response.text
    (delivery,) = receiver.wait_for(1)
    assert delivery.document["data"]["id"] == response.json()["data"]["job_id"]


def test_a_failing_receiver_gets_the_delivery_again_under_the_same_id(
    client: httpx.Client,
) -> None:
    secret = secret_of(client)
    with WebhookReceiver(failures=2) as receiver:
        body = {**FAST, "async": True, "webhook": receiver.url,
                "webhook_events": ["running", "succeeded"]}  # fmt: skip
        job_id = client.post(GENERATE, json=body).json()["data"]["id"]
        running, succeeded = receiver.wait_for(2)
    # 3 tries each, the later event only once the earlier was delivered
    assert [r.document["type"] for r in receiver.received] == ["job.running"] * 3 + [
        "job.succeeded"
    ] * 3
    assert {r.webhook_id for r in receiver.received[:3]} == {running.webhook_id}
    for each in receiver.received:
        StandardWebhook(secret).verify(each.body, each.headers)
    records = client.get(f"/v1/jobs/{job_id}/webhooks").json()["data"]
    for record in records:
        assert record["state"] == "delivered"
        assert [a["status_code"] for a in record["attempts"]] == [500, 500, 204]
        assert [a["error"] for a in record["attempts"]] == ["HTTP 500", "HTTP 500", None]
    assert succeeded.document["type"] == "job.succeeded"


def test_a_canceled_job_s_delivery_says_so_without_images(
    client: httpx.Client, receiver: WebhookReceiver
) -> None:
    body = {**FAST, "num_steps": 200, "width": 128, "height": 128, "async": True,
            "webhook": receiver.url}  # fmt: skip
    job_id = client.post(GENERATE, json=body).json()["data"]["id"]
    client.post(f"/v1/jobs/{job_id}/cancel")
    (delivery,) = receiver.wait_for(1)
    data = delivery.document["data"]
    assert delivery.document["type"] == "job.canceled"
    assert data["status"] == "canceled" and data["outputs"] == []


def test_edits_and_background_removal_take_webhooks_as_form_fields(
    client: httpx.Client, receiver: WebhookReceiver
) -> None:
    picture = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 30, 30)).save(picture, format="PNG")
    response = client.post(
        "/v1/inference/images/edit",
        data={"model": "local/tiny", "prompt": "a blue square", "num_steps": "2", "async": "true",
              "webhook": receiver.url, "webhook_events": "running,succeeded"},
        files={"image": ("in.png", picture.getvalue(), "image/png")},
    )  # fmt: skip
    assert response.status_code == 202, response.text
    assert [d.document["type"] for d in receiver.wait_for(2)] == ["job.running", "job.succeeded"]


def test_a_secret_rotation_signs_with_both_secrets_for_a_while(
    client: httpx.Client, receiver: WebhookReceiver
) -> None:
    old = secret_of(client)
    rotated = client.post("/v1/webhooks/secret/rotate")
    assert rotated.status_code == 200, rotated.text
    new = rotated.json()["data"]["key"]
    assert new != old and secret_of(client) == new
    client.post(GENERATE, json={**FAST, "webhook": receiver.url})
    (delivery,) = receiver.wait_for(1)
    assert len(delivery.headers["webhook-signature"].split(" ")) == 2
    StandardWebhook(new).verify(delivery.body, delivery.headers)
    StandardWebhook(old).verify(delivery.body, delivery.headers)
    other = "whsec_" + base64.b64encode(b"x" * 32).decode()
    with pytest.raises(pixelgate.WebhookVerificationError, match="No webhook-signature"):
        pixelgate.verify_webhook(delivery.body, delivery.headers, other)


def test_secrets_are_kept_encrypted_and_sign_after_the_vault_key_is_rotated(
    make_server: Callable[..., Server], receiver: WebhookReceiver
) -> None:
    """Kept by the vault of tenants' provider keys: no `whsec_` in the database's files, and
    `POST /v1/admin/provider-keys/rotate` encrypts them again, current and previous secret,
    so they still sign once the old vault key is dropped."""
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    server = make_server(**LOOPBACK, PIXELGATE_PROVIDER_KEYS_SECRET=old).start()
    with server.client() as admin:
        key = tenant_key(admin)
    with server.client(key) as client:
        previous = secret_of(client)
        current = client.post("/v1/webhooks/secret/rotate").json()["data"]["key"]
    for path in server.data_dir.glob("pixelgate.db*"):  # the database, its journal and WAL
        stored = path.read_bytes()
        assert b"whsec_" not in stored and current.encode() not in stored
    server.stop()
    server.env["PIXELGATE_PROVIDER_KEYS_SECRET"] = f"{new}, {old}"
    server.start()
    with server.client() as admin:
        rotated = admin.post("/v1/admin/provider-keys/rotate")
    assert rotated.status_code == 200, rotated.text
    assert rotated.json()["data"]["webhook_secrets"] >= 1
    server.stop()
    server.env["PIXELGATE_PROVIDER_KEYS_SECRET"] = new  # the old vault key dropped
    server.start()
    with server.client(key) as client:
        assert secret_of(client) == current
        assert client.post(GENERATE, json={**FAST, "webhook": receiver.url}).status_code == 200
    (delivery,) = receiver.wait_for(1)
    StandardWebhook(current).verify(delivery.body, delivery.headers)
    StandardWebhook(previous).verify(delivery.body, delivery.headers)  # still in its overlap
    server.stop()


def test_invalid_webhook_fields_are_refused_naming_them(client: httpx.Client) -> None:
    def refused(**fields: Any) -> dict[str, Any]:
        return error_of(client.post(GENERATE, json={**FAST, **fields}))

    error = refused(webhook="http://127.0.0.1:9/x", webhook_events=["succeeded", "done"])
    assert error["param"] == "webhook_events.1"
    assert "'queued'" in error["message"] and "'canceled'" in error["message"]
    for url in ("ftp://example.com/x", "not a url", "http://user:pw@127.0.0.1/x"):
        error = refused(webhook=url)
        assert error["param"] == "webhook", url
        assert "PIXELGATE_WEBHOOK_ALLOWED_HOSTS" in error["message"]
    error = refused(webhook_events=["succeeded"])
    assert error["param"] == "webhook"
    error = refused(webhook="http://127.0.0.1:9/x", webhook_events=[])
    assert error["param"] == "webhook_events"


def test_a_loopback_or_private_webhook_is_refused_unless_allowed(api: httpx.Client) -> None:
    """The shared server allows no webhook host."""
    for url in ("http://127.0.0.1:8080/hook", "http://localhost/hook", "http://10.1.2.3/x",
                "http://[::1]/x", "http://169.254.169.254/latest/meta-data"):  # fmt: skip
        response = api.post(GENERATE, json={**FAST, "async": True, "webhook": url})
        error = error_of(response)
        assert error["param"] == "webhook", url
        assert "not public" in error["message"], error
    # nothing was recorded for them
    assert api.get("/v1/jobs", params={"limit": 1}).status_code == 200


def test_the_server_sends_a_delivery_it_could_not_send_before_a_restart(
    make_server: Callable[..., Server],
) -> None:
    server = make_server(**{**LOOPBACK, "PIXELGATE_WEBHOOK_BACKOFF_SECONDS": "1"}).start()
    port = free_port()  # nothing listens there yet: each try is refused
    url = f"http://127.0.0.1:{port}/hooks"
    with server.client() as admin:
        job_id = admin.post(GENERATE, json={**FAST, "webhook": url}).json()["data"]["job_id"]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            (record,) = admin.get(f"/v1/jobs/{job_id}/webhooks").json()["data"]
            if record["attempts"]:
                break
            time.sleep(0.1)
        assert record["state"] == "pending" and record["attempts"][0]["status_code"] is None
        assert record["attempts"][0]["error"]
    server.stop()
    with WebhookReceiver(port=port) as receiver:
        server.start()
        (delivery,) = receiver.wait_for(1)
        assert delivery.webhook_id == record["id"]
        with server.client() as admin:
            (after,) = admin.get(f"/v1/jobs/{job_id}/webhooks").json()["data"]
    assert after["state"] == "delivered"
    assert after["attempts"][-1]["status_code"] == 204 and len(after["attempts"]) >= 2


def test_batch_items_carry_webhooks_of_their_own(
    client: httpx.Client, receiver: WebhookReceiver
) -> None:
    requests = [
        {**FAST, "prompt": "hooked", "webhook": receiver.url},
        {**FAST, "prompt": "quiet"},
        {**FAST, "prompt": "every step", "webhook": f"{receiver.url}?item=2",
         "webhook_events": ["running", "succeeded"]},
    ]  # fmt: skip
    created = client.post("/v1/inference/images/batch", json={"requests": requests})
    assert created.status_code == 202, created.text
    taken = receiver.wait_for(3)
    time.sleep(0.5)
    assert len(receiver.received) == 3  # nothing for the item without a webhook
    by_path = sorted((item.path, item.document["type"]) for item in taken)
    assert by_path == [
        ("/hooks", "job.succeeded"),
        ("/hooks?item=2", "job.running"),
        ("/hooks?item=2", "job.succeeded"),
    ]

    bad = [{**FAST, "prompt": "ok"}, {**FAST, "prompt": "x", "webhook": "http://10.0.0.1/x"}]
    error = error_of(client.post("/v1/inference/images/batch", json={"requests": bad}))
    assert error["param"] == "requests.1.webhook"
    bad = [{**FAST, "prompt": "x", "webhook": receiver.url, "webhook_events": ["later"]}]
    error = error_of(client.post("/v1/inference/images/batch", json={"requests": bad}))
    assert error["param"] == "requests.0.webhook_events.0"


def test_background_removal_checks_its_webhook_fields(client: httpx.Client) -> None:
    picture = io.BytesIO()
    Image.new("RGB", (32, 32), (200, 30, 30)).save(picture, format="PNG")
    response = client.post(
        "/v1/inference/images/remove-background",
        data={"webhook": "http://192.168.1.1/x"},
        files={"image": ("in.png", picture.getvalue(), "image/png")},
    )
    assert error_of(response)["param"] == "webhook"
    response = client.post(
        "/v1/inference/images/remove-background",
        data={"webhook": "http://127.0.0.1:9/x", "webhook_events": "succeeded,soon"},
        files={"image": ("in.png", picture.getvalue(), "image/png")},
    )
    assert error_of(response)["param"] == "webhook_events.1"


def test_a_receiver_that_hangs_does_not_hold_another_job_s_delivery(client: httpx.Client) -> None:
    with WebhookReceiver(hold=8) as slow, WebhookReceiver() as fast:
        client.post(GENERATE, json={**FAST, "webhook": slow.url})
        assert until(lambda: slow.held == 1, 30), slow.received  # its try hangs
        client.post(GENERATE, json={**FAST, "webhook": fast.url})
        (delivery,) = fast.wait_for(1, timeout=6)  # one at a time: after the 8 s hang
        assert slow.held == 1  # it came while the other still hung
        assert delivery.document["type"] == "job.succeeded"
        slow.release()
        (held,) = slow.wait_for(1)
    assert held.document["type"] == "job.succeeded"


def test_no_more_tries_are_under_way_at_once_than_the_settings(client: httpx.Client) -> None:
    """At most `ONE_RECEIVER` to one receiver, `AT_ONCE` in all."""
    with WebhookReceiver(hold=60) as slow, WebhookReceiver(hold=60) as other:
        requests = hooked_batch(FAST, slow.url, 5, label="bound")
        created = client.post("/v1/inference/images/batch", json=requests)
        assert created.status_code == 202, created.text
        assert until(lambda: slow.held == ONE_RECEIVER, 25), slow.received
        requests = hooked_batch(FAST, other.url, 3, label="other")
        created = client.post("/v1/inference/images/batch", json=requests)
        assert created.status_code == 202, created.text
        assert until(lambda: other.held == AT_ONCE - ONE_RECEIVER, 25), other.received
        time.sleep(1.0)  # time for another try to start, were one let through
        assert slow.held == ONE_RECEIVER and len(slow.received) == ONE_RECEIVER
        assert other.held == AT_ONCE - ONE_RECEIVER and len(other.received) == 1
        for item in slow.received:  # each the first try of its delivery, still under way
            job_id = item.document["data"]["id"]
            (record,) = client.get(f"/v1/jobs/{job_id}/webhooks").json()["data"]
            assert record["id"] == item.webhook_id and record["attempts"] == []
        slow.release()
        other.release()
        taken = slow.wait_for(5)
        other.wait_for(3)
    assert slow.most_at_once == ONE_RECEIVER
    assert len({item.webhook_id for item in taken}) == 5


def test_a_receiver_that_hangs_for_many_jobs_holds_a_few_places_only(
    client: httpx.Client,
) -> None:
    """A tenant's slow receiver with more jobs than the process has places: another
    receiver's delivery still goes at once (all of them waited behind it before)."""
    with WebhookReceiver(hold=60) as slow, WebhookReceiver() as fast:
        requests = hooked_batch(FAST, slow.url, AT_ONCE + 2, label="hang")
        created = client.post("/v1/inference/images/batch", json=requests)
        assert created.status_code == 202, created.text
        assert until(lambda: slow.held == ONE_RECEIVER, 25), slow.received
        client.post(GENERATE, json={**FAST, "webhook": fast.url})
        (delivery,) = fast.wait_for(1, timeout=15)
        assert slow.held == ONE_RECEIVER  # it came while the slow receiver still hung
        assert delivery.document["type"] == "job.succeeded"
        slow.release()
        slow.wait_for(AT_ONCE + 2)


def test_a_tenant_with_many_hanging_receivers_holds_its_share_of_places_only(
    make_server: Callable[..., Server],
) -> None:
    """One receiver a place each, but a tenant's deliveries two of the three places at most:
    its three hanging receivers leave a place for another tenant's delivery."""
    server = make_server(
        **LOOPBACK,
        PIXELGATE_WEBHOOK_CONCURRENCY="3",
        PIXELGATE_WEBHOOK_CONCURRENCY_PER_RECEIVER="1",
        PIXELGATE_WEBHOOK_CONCURRENCY_PER_TENANT="2",
        PIXELGATE_WEBHOOK_TIMEOUT_SECONDS="30",
    ).start()
    with server.client() as admin:
        greedy, other = tenant_key(admin), tenant_key(admin)
    with ExitStack() as stack:
        slow = [stack.enter_context(WebhookReceiver(hold=60)) for _ in range(3)]
        fast = stack.enter_context(WebhookReceiver())
        first = stack.enter_context(server.client(greedy))
        second = stack.enter_context(server.client(other))
        for receiver in slow:
            made = first.post(GENERATE, json={**FAST, "webhook": receiver.url})
            assert made.status_code == 200, made.text

        def held() -> int:
            return sum(receiver.held for receiver in slow)

        assert until(lambda: held() == 2, 25), [len(receiver.received) for receiver in slow]
        time.sleep(1.0)  # time for the third to start, were it let through
        assert held() == 2
        made = second.post(GENERATE, json={**FAST, "webhook": fast.url})
        assert made.status_code == 200, made.text
        (delivery,) = fast.wait_for(1, timeout=15)
        assert held() == 2  # it came while the first tenant's receivers still hung
        assert delivery.document["type"] == "job.succeeded"
    server.stop()


def test_each_job_s_deliveries_keep_their_order_while_jobs_go_side_by_side(
    client: httpx.Client,
) -> None:
    with WebhookReceiver(hold=0.3) as receiver:
        requests = hooked_batch(FAST, receiver.url, 4, label="order", events=EVENTS)
        created = client.post("/v1/inference/images/batch", json=requests)
        assert created.status_code == 202, created.text
        taken = receiver.wait_for(4 * len(EVENTS))
    by_job = statuses_by_job(taken)
    assert len(by_job) == 4 and all(events == EVENTS for events in by_job.values()), by_job
    assert len(receiver.received) == 4 * len(EVENTS)
    assert receiver.most_at_once > 1  # jobs went side by side
    assert receiver.most_of_one_job == 1  # one job's never did


def test_a_try_under_way_at_shutdown_finishes_and_is_not_sent_again(
    make_server: Callable[..., Server],
) -> None:
    server = make_server(**LOOPBACK).start()
    with WebhookReceiver(hold=2) as slow:
        with server.client() as admin:
            job_id = admin.post(GENERATE, json={**FAST, "webhook": slow.url}).json()["data"][
                "job_id"
            ]
        assert until(lambda: slow.held == 1, 30), slow.received
        server.stop()  # while the receiver holds the try
        assert slow.held == 0  # answered before the process ended
        server.start()
        time.sleep(1.0)  # time for a second try, were the first one lost
        with server.client() as admin:
            (record,) = admin.get(f"/v1/jobs/{job_id}/webhooks").json()["data"]
    assert record["state"] == "delivered"
    assert [a["status_code"] for a in record["attempts"]] == [204]
    assert len(slow.received) == 1
