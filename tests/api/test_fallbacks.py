"""Fallbacks (issue 24 item 4), through the real server, its job system, the fake Black Forest
Labs API on loopback and the tiny local model: a model refused upstream before any work, or
one that cannot run here, hands the job to the next model; one that may have billed never
does. Money is reserved for the dearest model and settled for the one that served."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from tests.conftest import Server
from tests.helpers import generate, make_tenant, read_events, submit, wait_for
from tests.providers.conftest import BFL_KEY
from tests.providers.upstreams.bfl import FakeBFL, Plan
from tests.providers.upstreams.server import Reply

PRO = "/v1/flux-pro-1.1"
PRICES = {"local/tiny": {"default": "0.02"}}
"""The tiny model at 0.02 an image for the tenants here; flux-pro-1.1 is 0.04 (the catalog)."""

ROUTED = """
[[models]]
id = "acme/routed-flux"
provider = "bfl"
family = "flux"
source = "flux-pro-1.1"
capabilities = ["generate"]
prices = { default = "0.04" }
fallbacks = ["local/tiny"]
"""
"""An operator's model with a default route to the tiny model."""


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeBFL]:
    with FakeBFL(BFL_KEY) as fake:
        yield fake


@pytest.fixture(scope="module")
def routes(
    tmp_path_factory: pytest.TempPathFactory, models_dir: Path, upstream: FakeBFL
) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("fallbacks")
    catalog = root / "catalog.toml"
    catalog.write_text(ROUTED)
    server = Server(
        root / "data",
        models_dir,
        PIXELGATE_CATALOG_FILE=str(catalog),
        PIXELGATE_BFL_API_KEY=BFL_KEY,
        PIXELGATE_BFL_BASE_URL=upstream.url,
        PIXELGATE_BFL_POLL_INTERVAL_SECONDS="0.05",
        PIXELGATE_PROVIDER_MAX_RETRIES="0",
        PIXELGATE_PROVIDER_TIMEOUT_SECONDS="1",
    ).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def admin(routes: Server) -> Iterator[httpx.Client]:
    with routes.client() as client:
        yield client


def too_many_requests() -> Reply:
    return Reply.json({"detail": "Too many active tasks"}, 429)


def usage_of(client: httpx.Client) -> dict[str, Any]:
    usage: dict[str, Any] = client.get("/v1/usage").json()["data"]
    return usage


def test_a_model_refused_upstream_hands_the_job_to_the_next_and_pays_for_that(
    admin: httpx.Client, upstream: FakeBFL
) -> None:
    client = make_tenant(admin, "rerouted", prices=PRICES)
    upstream.script(PRO, too_many_requests(), too_many_requests())  # one request per image
    sent_before = len(upstream.requests_to(PRO))

    answer = generate(client, model="flux-pro-1.1", fallbacks=["local/tiny"], n=2)

    assert answer.status_code == 200, answer.text
    result = answer.json()["data"]
    assert (result["model"], result["requested_model"]) == ("local/tiny", "bfl/flux-pro-1.1")
    assert len(result["data"]) == 2
    assert result["cost"] == {"amount": "0.04", "currency": "USD"}  # 2 x 0.02, not 2 x 0.04
    job = client.get(f"/v1/jobs/{result['job_id']}").json()["data"]
    assert (job["model"], job["requested_model"]) == ("local/tiny", "bfl/flux-pro-1.1")
    assert [(t["model"], t["outcome"]) for t in job["tries"]] == [
        ("bfl/flux-pro-1.1", "failed"),
        ("local/tiny", "succeeded"),
    ]
    assert job["tries"][0]["error_code"] in ("RATE_LIMITED", "BACKEND_ERROR")
    assert job["fallbacks"] == []
    assert len(upstream.requests_to(PRO)) == sent_before + 2  # each sent once, refused
    usage = usage_of(client)
    assert usage["spent"] == "0.04"
    assert set(usage["by_model"]) == {"local/tiny"}  # the ledger names the model that served
    assert [(b["spent"], b["reserved"]) for b in usage["budgets"]] == [("0.04", "0.00")] * 2


def test_money_is_reserved_for_the_dearest_model_of_the_route(admin: httpx.Client) -> None:
    """0.05 covers two tiny images (0.04) but not two flux ones (0.08)."""
    client = make_tenant(admin, "thrifty", prices=PRICES, budget_total="0.05")

    refused = generate(client, model="local/tiny", fallbacks=["flux-pro-1.1"], n=2)
    served = generate(client, model="local/tiny", n=2)

    assert refused.status_code == 402, refused.text
    assert refused.json()["error"]["code"] == "BUDGET_EXCEEDED"
    assert served.status_code == 200, served.text


def test_a_model_that_may_have_billed_is_never_followed_by_a_fallback(
    admin: httpx.Client, upstream: FakeBFL
) -> None:
    """The submit is sent and not answered within the provider timeout: it may have been
    accepted (and billed), so the job fails and the tiny model never runs."""
    client = make_tenant(admin, "unanswered", prices=PRICES)
    upstream.script(PRO, Reply(delay=3.0))

    job = submit(client, model="flux-pro-1.1", fallbacks=["local/tiny"])
    ended = wait_for(client, job["id"], "succeeded", "failed", timeout=60)

    assert (ended["status"], ended["error"]["code"]) == ("failed", "TIMEOUT")
    assert ended["model"] == "bfl/flux-pro-1.1"
    assert [(t["model"], t["outcome"], t["error_code"]) for t in ended["tries"]] == [
        ("bfl/flux-pro-1.1", "failed", "TIMEOUT")
    ]
    assert ended["fallbacks"] == ["local/tiny"]  # left untried
    assert ended["cost"] == {"amount": "0.00", "currency": "USD"}


def test_a_task_the_provider_accepted_and_then_failed_is_not_served_again(
    admin: httpx.Client, upstream: FakeBFL
) -> None:
    """A provider error like any other (BACKEND_ERROR), but after BFL accepted the task: it
    may bill it, so no fallback runs."""
    client = make_tenant(admin, "accepted", prices=PRICES)
    upstream.plan = Plan(outcome="Error")
    try:
        answer = generate(client, model="flux-pro-1.1", fallbacks=["local/tiny"])
    finally:
        upstream.plan = Plan()

    assert answer.status_code == 502, answer.text
    job = client.get("/v1/jobs", params={"limit": 1}).json()["data"][0]
    assert (job["model"], job["fallbacks"]) == ("bfl/flux-pro-1.1", ["local/tiny"])
    assert [(t["outcome"], t["error_code"]) for t in job["tries"]] == [("failed", "BACKEND_ERROR")]


def test_an_unavailable_model_is_served_by_its_first_available_fallback(
    admin: httpx.Client,
) -> None:
    """No OpenAI key is configured: dall-e-3 cannot run here, so the tiny model serves."""
    client = make_tenant(admin, "keyless", prices=PRICES)

    answer = generate(client, model="dall-e-3", fallbacks=["local/tiny"])

    assert answer.status_code == 200, answer.text
    result = answer.json()["data"]
    assert (result["model"], result["requested_model"]) == ("local/tiny", "openai/dall-e-3")
    job = client.get(f"/v1/jobs/{result['job_id']}").json()["data"]
    assert [(t["model"], t["outcome"], t["error_code"]) for t in job["tries"]] == [
        ("openai/dall-e-3", "unavailable", "MODEL_UNAVAILABLE"),
        ("local/tiny", "succeeded", None),
    ]
    assert result["cost"]["amount"] == "0.02"
    without = generate(client, model="dall-e-3")
    assert without.status_code == 503, without.text  # no route: unavailable as before


def test_an_async_job_falls_back_and_its_events_say_so(
    admin: httpx.Client, upstream: FakeBFL
) -> None:
    client = make_tenant(admin, "patient", prices=PRICES)
    upstream.script(PRO, Reply.json({"detail": "upstream overloaded"}, 503))

    job = submit(client, model="flux-pro-1.1", fallbacks=["local/tiny"])
    events = read_events(client, job["id"])

    assert job["model"] == "bfl/flux-pro-1.1"
    assert job["fallbacks"] == ["local/tiny"] and job["tries"] == []
    fallback = [data for kind, data, _ in events if kind == "queued" and "fallback" in data]
    assert [data["fallback"] for data in fallback] == [
        {"from": "bfl/flux-pro-1.1", "to": "local/tiny"}
    ]
    kind, data, _ = events[-1]
    assert kind == "succeeded"
    assert data["job"]["model"] == "local/tiny"
    assert data["cost"] == {"amount": "0.02", "currency": "USD"}


def test_the_catalogs_default_route_serves_a_request_that_names_none(
    admin: httpx.Client, upstream: FakeBFL
) -> None:
    client = make_tenant(admin, "defaulted", prices=PRICES)
    upstream.script(PRO, too_many_requests())

    answer = generate(client, model="acme/routed-flux")
    upstream.script(PRO, too_many_requests())
    declined = generate(client, model="acme/routed-flux", fallbacks=[])

    assert answer.status_code == 200, answer.text
    assert answer.json()["data"]["model"] == "local/tiny"
    assert declined.status_code == 502, declined.text  # `[]`: no fallback, not the default
    job_id = client.get("/v1/jobs", params={"limit": 1}).json()["data"][0]["id"]
    job = client.get(f"/v1/jobs/{job_id}").json()["data"]
    assert (job["model"], job["status"], job["fallbacks"]) == ("acme/routed-flux", "failed", [])
    assert [t["outcome"] for t in job["tries"]] == ["failed"]


def test_options_a_fallback_does_not_take_pass_it_over(admin: httpx.Client) -> None:
    """num_steps=150 is within the tiny model's limit but not dall-e-3's family (no such
    option), so dall-e-3 is skipped, and recorded as such."""
    client = make_tenant(admin, "particular", prices=PRICES)

    answer = generate(
        client, model="local/tiny", fallbacks=["dall-e-3"], num_steps=2, negative_prompt="x"
    )

    assert answer.status_code == 200, answer.text
    job = client.get(f"/v1/jobs/{answer.json()['data']['job_id']}").json()["data"]
    skipped, served = job["tries"]
    assert (skipped["model"], skipped["outcome"]) == ("openai/dall-e-3", "skipped")
    assert skipped["error_code"] == "VALIDATION_ERROR"
    assert (served["model"], served["outcome"]) == ("local/tiny", "succeeded")


@pytest.mark.parametrize(
    ("fallbacks", "param", "words"),
    [
        (["no/such-model"], "fallbacks.0", "unknown model"),
        (["local/tiny", "u2netp"], "fallbacks.1", "does not support text-to-image"),
        (["dall-e-3", "dall-e-2", "flux-pro-1.1", "tiny"], "fallbacks", "at most 3"),
        (["flux-pro-1.1", "bfl/flux-pro-1.1"], "fallbacks.1", "named already"),
        ("local/tiny", "fallbacks", ""),
    ],
)
def test_bad_fallbacks_are_refused_naming_which(
    admin: httpx.Client, fallbacks: Any, param: str, words: str
) -> None:
    answer = generate(admin, model="dall-e-2", fallbacks=fallbacks)

    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert (error["code"], error["param"]) == ("VALIDATION_ERROR", param)
    assert words in error["message"]


def test_a_fallback_the_tenant_may_not_use_is_refused(admin: httpx.Client) -> None:
    client = make_tenant(admin, "fenced", allow_models=["local/tiny"], prices=PRICES)

    answer = generate(client, model="local/tiny", fallbacks=["flux-pro-1.1"])

    assert answer.status_code == 403, answer.text
    error = answer.json()["error"]
    assert (error["code"], error["param"]) == ("MODEL_ACCESS_DENIED", "fallbacks.0")


def test_a_multipart_edit_takes_repeated_fallbacks(admin: httpx.Client) -> None:
    """dall-e-2 cannot run here (no OpenAI key): the first of the fallbacks sent as a repeated
    form field serves, the second is left."""
    client = make_tenant(admin, "editor", prices=PRICES)
    picture = io.BytesIO()
    Image.new("RGB", (64, 64), "red").save(picture, format="PNG")

    answer = client.post(
        "/v1/inference/images/edit",
        data={
            "model": "dall-e-2",
            "prompt": "a blue circle",
            "fallbacks": ["local/tiny", "flux-kontext-pro"],
        },
        files={"image": ("red.png", picture.getvalue(), "image/png")},
    )

    assert answer.status_code == 200, answer.text
    result = answer.json()["data"]
    assert (result["model"], result["requested_model"]) == ("local/tiny", "openai/dall-e-2")
    job = client.get(f"/v1/jobs/{result['job_id']}").json()["data"]
    assert job["fallbacks"] == ["bfl/flux-kontext-pro"]


def test_the_openai_surface_takes_fallbacks_as_an_extra_body_field(admin: httpx.Client) -> None:
    client = make_tenant(admin, "openai-caller", prices=PRICES)

    answer = client.post(
        "/v1/images/generations",
        json={"model": "dall-e-3", "prompt": "a red circle", "fallbacks": ["local/tiny"]},
    )
    refused = client.post(
        "/v1/images/generations",
        json={"model": "dall-e-3", "prompt": "a red circle", "fallbacks": ["no/such"]},
    )

    assert answer.status_code == 200, answer.text
    assert len(answer.json()["data"]) == 1
    assert answer.json()["cost"] == {"amount": "0.02", "currency": "USD"}  # the tiny model's
    assert refused.status_code == 400, refused.text
    assert refused.json()["error"]["param"] == "fallbacks.0"
