"""Tenants' own provider keys (issue 24.3), end to end: the real server, its admin API and job
system, and a fake OpenAI API on loopback that accepts the server's key and the tenants' own,
and records which one each request carried."""

from __future__ import annotations

import sqlite3
import stat
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet

from tests.conftest import Server
from tests.helpers import generate
from tests.providers.upstreams.imagen import FakeImagen
from tests.providers.upstreams.openai import GENERATIONS, FakeOpenAI

SERVER_KEY = "sk-server-key-0000000000000000"
KEY_A = "sk-tenant-a-own-key-1111111111aaaa"
KEY_C = "sk-tenant-c-own-key-3333333333cccc"
ROTATED_KEY = "sk-tenant-r-own-key-7777777777rrrr"
REFUSED_KEY = "sk-tenant-x-refused-9999999999xxxx"
GEMINI_KEY = "AIza-tenant-g-own-key-5555555555gggg"
REFUSED_SERVER_KEY = "sk-server-refused-8888888888ssss"
SECRETS = (KEY_A, KEY_C, ROTATED_KEY, REFUSED_KEY, GEMINI_KEY, REFUSED_SERVER_KEY)
DALLE = "openai/dall-e-3"
DALLE_PRICE = "0.04"


class Answers:
    """Every answer the tests' clients read, to show that no key is ever in one."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    def hook(self, response: httpx.Response) -> None:
        response.read()
        self.texts.append(f"{response.headers}\n{response.text}")


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(SERVER_KEY, KEY_A, KEY_C, ROTATED_KEY) as fake:
        yield fake


@pytest.fixture(scope="module")
def gemini() -> Iterator[FakeImagen]:
    with FakeImagen(api_key=GEMINI_KEY) as fake:
        yield fake


@pytest.fixture(scope="module")
def answers() -> Answers:
    return Answers()


def openai_server(data_dir: Path, models_dir: Path, upstream: FakeOpenAI, **env: str) -> Server:
    return Server(
        data_dir,
        models_dir,
        PIXELGATE_OPENAI_BASE_URL=upstream.url,
        PIXELGATE_LOG_LEVEL="DEBUG",
        **env,
    )


@pytest.fixture(scope="module")
def keyed(
    tmp_path_factory: pytest.TempPathFactory, models_dir: Path, upstream: FakeOpenAI
) -> Iterator[Server]:
    """A server with its own OpenAI key."""
    data_dir = tmp_path_factory.mktemp("keyed") / "data"
    server = openai_server(data_dir, models_dir, upstream, PIXELGATE_OPENAI_API_KEY=SERVER_KEY)
    yield server.start()
    server.stop()


@pytest.fixture(scope="module")
def keyless(
    tmp_path_factory: pytest.TempPathFactory,
    models_dir: Path,
    upstream: FakeOpenAI,
    gemini: FakeImagen,
) -> Iterator[Server]:
    """A server with no OpenAI or Google key of its own."""
    data_dir = tmp_path_factory.mktemp("keyless") / "data"
    server = openai_server(data_dir, models_dir, upstream, PIXELGATE_GOOGLE_BASE_URL=gemini.url)
    yield server.start()
    server.stop()


def admin(server: Server, answers: Answers) -> httpx.Client:
    return server.client(event_hooks={"response": [answers.hook]})


def new_tenant(client: httpx.Client, name: str, **fields: Any) -> tuple[str, str]:
    """A tenant of its own and a key of it: (tenant id, API key)."""
    made = client.post("/v1/admin/tenants", json={"name": name, **fields})
    assert made.status_code == 201, made.text
    tenant_id = made.json()["data"]["id"]
    key = client.post("/v1/admin/keys", json={"tenant_id": tenant_id, "name": "app"})
    assert key.status_code == 201, key.text
    return tenant_id, key.json()["data"]["key"]


def set_keys(client: httpx.Client, tenant_id: str, keys: dict[str, Any]) -> httpx.Response:
    return client.patch(f"/v1/admin/tenants/{tenant_id}", json={"provider_keys": keys})


def draw(server: Server, key: str, answers: Answers, prompt: str) -> httpx.Response:
    with server.client(key, event_hooks={"response": [answers.hook]}) as client:
        return generate(client, model=DALLE, prompt=prompt)


def key_sent_for(upstream: FakeOpenAI, prompt: str) -> str:
    [request] = [r for r in upstream.requests_to(GENERATIONS) if r.json["prompt"] == prompt]
    return str(request.headers["authorization"]).removeprefix("Bearer ")


def spent(client: httpx.Client, tenant_id: str) -> tuple[str, int]:
    [usage] = client.get("/v1/admin/usage", params={"tenant_id": tenant_id}).json()["data"]
    return usage["spent"], usage["images"]


def test_each_tenant_is_served_with_its_own_key_and_the_others_with_the_servers(
    keyed: Server, upstream: FakeOpenAI, answers: Answers
) -> None:
    with admin(keyed, answers) as client:
        a, a_key = new_tenant(client, "A")
        b, b_key = new_tenant(client, "B")
        shown = set_keys(client, a, {"openai": KEY_A})
        assert shown.status_code == 200, shown.text
        assert shown.json()["data"]["provider_keys"] == {"openai": {"set": True, "last4": "aaaa"}}
        assert client.get(f"/v1/admin/tenants/{b}").json()["data"]["provider_keys"] == {}

        # at once, so one tenant's key would show up in another's request if it leaked
        prompts = [(a_key, f"a fox {i}") if i % 2 else (b_key, f"a hen {i}") for i in range(8)]
        with ThreadPoolExecutor(8) as pool:
            done = list(pool.map(lambda job: draw(keyed, job[0], answers, job[1]), prompts))
        assert [answer.status_code for answer in done] == [200] * 8, [a.text for a in done]
        for key, prompt in prompts:
            assert key_sent_for(upstream, prompt) == (KEY_A if key == a_key else SERVER_KEY)

        # billing: the tenant's own key is free here (its provider bills it), counted all the same
        assert spent(client, a) == ("0.00", 4)
        assert spent(client, b) == (f"{float(DALLE_PRICE) * 4:.2f}", 4)
        client.patch(f"/v1/admin/tenants/{a}", json={"own_keys_billing": "charge"})
        assert draw(keyed, a_key, answers, "a charged fox").status_code == 200
        assert key_sent_for(upstream, "a charged fox") == KEY_A
        assert spent(client, a) == (DALLE_PRICE, 5)

        # removed: back to the server's key
        removed = set_keys(client, a, {"openai": None})
        assert removed.json()["data"]["provider_keys"] == {}
        assert draw(keyed, a_key, answers, "a fox after").status_code == 200
        assert key_sent_for(upstream, "a fox after") == SERVER_KEY


def test_a_tenants_key_makes_a_providers_models_available_to_it_alone(
    keyless: Server, upstream: FakeOpenAI, answers: Answers
) -> None:
    with admin(keyless, answers) as client:
        a, a_key = new_tenant(client, "A")
        _, b_key = new_tenant(client, "B")
        assert set_keys(client, a, {"openai": KEY_A}).status_code == 200

    def native(key: str) -> dict[str, Any]:
        with keyless.client(key, event_hooks={"response": [answers.hook]}) as caller:
            models = caller.get("/v1/models").json()["data"]
        return {model["id"]: model for model in models}

    def openai_list(key: str) -> set[str]:
        with keyless.client(key, event_hooks={"response": [answers.hook]}) as caller:
            return {model["id"] for model in caller.get("/oai/v1/models").json()["data"]}

    assert native(a_key)[DALLE]["available"] is True
    assert native(b_key)[DALLE]["available"] is False
    assert "PIXELGATE_OPENAI_API_KEY" in native(b_key)[DALLE]["unavailable_reason"]
    assert DALLE in openai_list(a_key)
    assert DALLE not in openai_list(b_key)

    assert draw(keyless, a_key, answers, "a keyless fox").status_code == 200
    assert key_sent_for(upstream, "a keyless fox") == KEY_A
    refused = draw(keyless, b_key, answers, "no key hen")
    assert refused.status_code == 503
    assert refused.json()["error"]["code"] == "MODEL_UNAVAILABLE"


def test_a_tenants_gemini_key_reaches_imagen_through_the_gemini_api(
    keyless: Server, gemini: FakeImagen, answers: Answers
) -> None:
    with admin(keyless, answers) as client:
        tenant_id, key = new_tenant(client, "G")
        assert set_keys(client, tenant_id, {"google": GEMINI_KEY}).status_code == 200
    with keyless.client(key, event_hooks={"response": [answers.hook]}) as caller:
        answer = generate(caller, model="imagen4", prompt="a gemini fox")
        models = {m["id"]: m for m in caller.get("/v1/models").json()["data"]}
    assert answer.status_code == 200, answer.text
    [request] = gemini.requests_to(gemini.gemini_path("imagen-4.0-generate-001"))
    assert request.headers["x-goog-api-key"] == GEMINI_KEY
    # editing runs on Vertex AI only, which a Gemini key cannot reach
    edit = models["google/imagen-3-edit"]
    assert edit["available"] is False and "Vertex" in edit["unavailable_reason"]


def test_a_tenant_limited_to_its_own_keys_may_use_only_the_models_it_has_a_key_for(
    keyed: Server, upstream: FakeOpenAI, answers: Answers
) -> None:
    with admin(keyed, answers) as client:
        c, c_key = new_tenant(client, "C", own_keys_only=True)
        assert client.get(f"/v1/admin/tenants/{c}").json()["data"]["own_keys_only"] is True

        refused = draw(keyed, c_key, answers, "not on the server's key")
        assert refused.status_code == 403, refused.text
        error = refused.json()["error"]
        assert error["code"] == "MODEL_ACCESS_DENIED" and error["param"] == "model"
        assert DALLE in error["message"] and "own_keys_only" in error["message"]
        assert "'openai'" in error["message"]
        assert not [
            r for r in upstream.requests_to(GENERATIONS) if "server's key" in r.json["prompt"]
        ]

        assert set_keys(client, c, {"openai": KEY_C}).status_code == 200
        assert draw(keyed, c_key, answers, "on its own key").status_code == 200
        assert key_sent_for(upstream, "on its own key") == KEY_C
        with keyed.client(c_key) as caller:
            local = generate(caller, model="local/tiny", prompt="a local dot")
            models = {m["id"]: m for m in caller.get("/v1/models").json()["data"]}
        assert local.status_code == 403 and "local/tiny" in local.json()["error"]["message"]
        assert models["local/tiny"]["available"] is False
        assert "own_keys_only" in models["local/tiny"]["unavailable_reason"]
        assert models[DALLE]["available"] is True


def test_an_unknown_provider_or_a_bad_key_is_refused_naming_it_and_nothing_is_stored(
    keyed: Server, answers: Answers
) -> None:
    with admin(keyed, answers) as client:
        tenant_id, _ = new_tenant(client, "D")
        for provider in ("nope", "azure-openai", "openai-compatible", "local"):
            answer = set_keys(client, tenant_id, {"openai": KEY_A, provider: "sk-0123456789"})
            assert answer.status_code == 400, answer.text
            error = answer.json()["error"]
            assert error["code"] == "VALIDATION_ERROR"
            assert error["param"] == f"provider_keys.{provider}"
            assert "bfl, fal, google, openai, stability" in error["message"]
        short = set_keys(client, tenant_id, {"openai": "sk-1"})
        assert short.status_code == 400 and short.json()["error"]["param"] == "provider_keys.openai"
        # the valid key sent beside each refused one was not stored either
        shown = client.get(f"/v1/admin/tenants/{tenant_id}").json()["data"]
        assert shown["provider_keys"] == {}


def test_a_key_the_provider_refuses_fails_the_job_naming_whose_key_it_was(
    keyed: Server,
    make_server: Callable[..., Server],
    upstream: FakeOpenAI,
    answers: Answers,
) -> None:
    """The fake answers 401 to a key it was not given. A tenant's own key it refuses is named as
    the tenant's, so that nobody checks the operator's key for it; the operator's key refused
    is named as the operator's."""
    with admin(keyed, answers) as client:
        tenant_id, key = new_tenant(client, "X")
        assert set_keys(client, tenant_id, {"openai": REFUSED_KEY}).status_code == 200
    failed = draw(keyed, key, answers, "refused key")
    assert failed.status_code == 502, failed.text
    error = failed.json()["error"]
    assert error["code"] == "BACKEND_ERROR"
    assert "The tenant's own openai key was refused" in error["message"]
    assert "HTTP 401" in error["message"] and "provider_keys.openai" in error["message"]
    assert "pixelgate's" not in error["message"]

    operator = make_server(
        PIXELGATE_OPENAI_BASE_URL=upstream.url, PIXELGATE_OPENAI_API_KEY=REFUSED_SERVER_KEY
    ).start()
    with admin(operator, answers) as client:
        _, key = new_tenant(client, "Y")
    failed = draw(operator, key, answers, "refused server key")
    assert failed.status_code == 502, failed.text
    error = failed.json()["error"]
    assert error["code"] == "BACKEND_ERROR"
    assert "refused pixelgate's API key" in error["message"] and "HTTP 401" in error["message"]
    assert "tenant's own" not in error["message"]


def test_keys_are_encrypted_at_rest_under_a_secret_kept_in_the_data_directory(
    keyed: Server, answers: Answers
) -> None:
    with admin(keyed, answers) as client:
        tenant_id, _ = new_tenant(client, "E")
        assert set_keys(client, tenant_id, {"openai": KEY_A}).status_code == 200
    secret = keyed.data_dir / "provider_keys_secret"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    with sqlite3.connect(keyed.data_dir / "pixelgate.db") as db:
        [(stored,)] = db.execute(
            "SELECT ciphertext FROM tenant_provider_keys WHERE tenant_id = ?", (tenant_id,)
        ).fetchall()
    assert KEY_A not in stored
    assert Fernet(secret.read_text().strip().encode()).decrypt(stored.encode()).decode() == KEY_A
    for path in keyed.data_dir.glob("pixelgate.db*"):  # the database, its journal and WAL
        assert KEY_A.encode() not in path.read_bytes()


def test_rotation_encrypts_every_key_under_the_first_secret(
    make_server: Callable[..., Server], upstream: FakeOpenAI, answers: Answers
) -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    server = make_server(
        PIXELGATE_OPENAI_BASE_URL=upstream.url, PIXELGATE_PROVIDER_KEYS_SECRET=old
    ).start()
    with admin(server, answers) as client:
        tenant_id, key = new_tenant(client, "R")
        assert set_keys(client, tenant_id, {"openai": ROTATED_KEY}).status_code == 200
    server.stop()
    server.env["PIXELGATE_PROVIDER_KEYS_SECRET"] = f"{new}, {old}"
    server.start()
    with admin(server, answers) as client:
        rotated = client.post("/v1/admin/provider-keys/rotate")
        assert rotated.status_code == 200, rotated.text
        assert rotated.json()["data"]["rotated"] == 1
    server.stop()
    server.env["PIXELGATE_PROVIDER_KEYS_SECRET"] = new  # the old secret dropped
    server.start()
    assert draw(server, key, answers, "after rotation").status_code == 200
    assert key_sent_for(upstream, "after rotation") == ROTATED_KEY


def test_no_key_is_ever_in_an_answer_or_a_log_line(
    keyed: Server, keyless: Server, answers: Answers
) -> None:
    """Runs last in this module: every answer its tests read, and both servers' logs."""
    assert len(answers.texts) > 20
    logs = keyed.log_path.read_text() + keyless.log_path.read_text()
    assert "upstream openai POST" in logs  # the upstream calls are logged, headers too
    for secret in SECRETS:
        assert not [text for text in answers.texts if secret in text]
        assert secret not in logs


def test_a_fallback_runs_on_the_tenants_own_key_for_its_provider(
    keyless: Server, upstream: FakeOpenAI, answers: Answers
) -> None:
    """Which key serves is decided per model of a job's route: a fallback to a provider the
    tenant has its own key for runs on that key (free under the default billing), and a tenant
    limited to its own keys may not name a fallback it has no key for."""
    with admin(keyless, answers) as client:
        f, f_key = new_tenant(client, "F")
        assert set_keys(client, f, {"openai": KEY_A}).status_code == 200
        d, d_key = new_tenant(client, "D", own_keys_only=True)
        assert set_keys(client, d, {"openai": KEY_C}).status_code == 200

    with keyless.client(f_key, event_hooks={"response": [answers.hook]}) as caller:
        # imagen4 has no key on this server and none of the tenant's: the fallback serves
        answer = generate(caller, model="imagen4", prompt="a fallback fox", fallbacks=[DALLE])
    assert answer.status_code == 200, answer.text
    result = answer.json()["data"]
    assert (result["model"], result["requested_model"]) == (DALLE, "google/imagen-4")
    assert result["cost"] == {"amount": "0.00", "currency": "USD"}
    assert key_sent_for(upstream, "a fallback fox") == KEY_A

    with keyless.client(d_key, event_hooks={"response": [answers.hook]}) as caller:
        refused = generate(caller, model=DALLE, prompt="a limited fox", fallbacks=["local/tiny"])
    assert refused.status_code == 403, refused.text
    error = refused.json()["error"]
    assert (error["code"], error["param"]) == ("MODEL_ACCESS_DENIED", "fallbacks.0")
    assert not [r for r in upstream.requests_to(GENERATIONS) if r.json["prompt"] == "a limited fox"]
