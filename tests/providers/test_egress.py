"""SSRF (issue 19.1): URLs given on a provider's word (results, polling, each redirect hop) are
checked after resolution against non-public ranges, and connected to the address checked."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from pixelgate.catalog import Catalog
from pixelgate.errors import BackendError
from pixelgate.providers import CancelToken, ImageTask, egress
from pixelgate.providers.bfl import BlackForestLabsProvider
from pixelgate.providers.egress import EgressGuard, why_not_public
from pixelgate.providers.openai import OpenAIProvider
from pixelgate.providers.retries import RetryPolicy
from pixelgate.providers.upstream import UpstreamClient
from tests.providers.conftest import BFL_KEY, OPENAI_KEY, Progress, options_for
from tests.providers.upstreams.bfl import FakeBFL
from tests.providers.upstreams.images import image_bytes
from tests.providers.upstreams.openai import GENERATIONS, FakeOpenAI
from tests.providers.upstreams.server import FakeUpstream, Reply

PNG = image_bytes(8, 8)


@pytest.fixture
def internal() -> Iterator[FakeUpstream]:
    """A service on the operator's loopback that no tenant may reach through pixelgate."""
    with FakeUpstream() as fake:
        fake.host_file("/internal", PNG, "image/png")
        yield fake


@pytest.fixture
def openai_upstream() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(OPENAI_KEY) as fake:
        yield fake


def openai_provider(upstream: FakeOpenAI, make_settings: Any, **more: Any) -> OpenAIProvider:
    return OpenAIProvider.from_settings(
        make_settings(openai_api_key=OPENAI_KEY, openai_base_url=upstream.url, **more)
    )


def generate(provider: Any, catalog: Catalog, model: str) -> list[Any]:
    spec = catalog.resolve(model)
    task = ImageTask(kind="generate", options=options_for(catalog, spec))
    return list(provider.run(spec, task, progress=Progress(), cancel=CancelToken()))


def answer_with_url(upstream: FakeOpenAI, url: str) -> None:
    upstream.script(GENERATIONS, Reply.json({"created": 1, "data": [{"url": url}]}))


def test_an_openai_result_url_to_a_loopback_service_is_refused_and_never_called(
    openai_upstream: FakeOpenAI, internal: FakeUpstream, make_settings: Any, catalog: Catalog
) -> None:
    answer_with_url(openai_upstream, internal.url + "/internal")

    with pytest.raises(BackendError, match="not public; refused"):
        generate(openai_provider(openai_upstream, make_settings), catalog, "dall-e-2")

    assert internal.received == []


def test_a_result_on_the_providers_own_base_url_is_fetched(
    openai_upstream: FakeOpenAI, make_settings: Any, catalog: Catalog
) -> None:
    answer_with_url(openai_upstream, openai_upstream.host_file("/files/own.png", PNG, "image/png"))

    [image] = generate(openai_provider(openai_upstream, make_settings), catalog, "dall-e-2")

    assert image.data == PNG


def test_an_operator_may_allow_a_host_explicitly(
    openai_upstream: FakeOpenAI, internal: FakeUpstream, make_settings: Any, catalog: Catalog
) -> None:
    answer_with_url(openai_upstream, internal.url.replace("127.0.0.1", "localhost") + "/internal")
    provider = openai_provider(openai_upstream, make_settings, provider_allowed_hosts="localhost")

    [image] = generate(provider, catalog, "dall-e-2")

    assert image.data == PNG and len(internal.received) == 1


@pytest.mark.parametrize(
    "target",
    ["http://169.254.169.254/latest/meta-data/", "http://[::1]:9/", "http://10.0.0.7/x"],
)
def test_a_redirect_hop_to_a_non_public_address_is_refused_before_it_is_called(
    target: str,
    openai_upstream: FakeOpenAI,
    internal: FakeUpstream,
    make_settings: Any,
    catalog: Catalog,
) -> None:
    """The first hop is a host the operator allowed; where it redirects is checked again."""
    files = internal.url.replace("127.0.0.1", "localhost")
    internal.script("/moved", Reply(302, headers={"location": target}))
    answer_with_url(openai_upstream, files + "/moved")
    provider = openai_provider(openai_upstream, make_settings, provider_allowed_hosts="localhost")

    started = time.monotonic()
    with pytest.raises(BackendError, match="not public; refused"):
        generate(provider, catalog, "dall-e-2")

    assert time.monotonic() - started < 2.0  # refused, not tried until a connect timeout
    assert [r.path for r in internal.received] == ["/moved"]


def test_a_redirect_back_to_a_loopback_service_is_refused(
    openai_upstream: FakeOpenAI, internal: FakeUpstream, make_settings: Any, catalog: Catalog
) -> None:
    own = openai_upstream.url + "/files/moved.png"
    openai_upstream.script("/files/moved.png", Reply(302, headers={"location": internal.url}))
    answer_with_url(openai_upstream, own)

    with pytest.raises(BackendError, match="not public; refused"):
        generate(openai_provider(openai_upstream, make_settings), catalog, "dall-e-2")

    assert internal.received == []


def test_a_bfl_sample_url_to_a_loopback_service_is_refused(
    internal: FakeUpstream, make_settings: Any, catalog: Catalog
) -> None:
    with FakeBFL(BFL_KEY) as upstream:
        ready = {"status": "Ready", "result": {"sample": internal.url + "/internal"}}
        upstream.script("/v1/get_result", Reply.json(ready))
        provider = BlackForestLabsProvider.from_settings(
            make_settings(bfl_api_key=BFL_KEY, bfl_base_url=upstream.url)
        )
        with pytest.raises(BackendError, match="not public; refused"):
            generate(provider, catalog, "flux-pro-1.1")
    assert internal.received == []


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("::ffff:127.0.0.1", "loopback"),
        ("10.1.2.3", "private"),
        ("192.168.0.1", "private"),
        ("fd00::1", "private"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("224.0.0.1", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("240.0.0.1", "reserved"),
        ("100.64.0.1", "not globally routable"),
        ("8.8.8.8", None),
        ("2606:4700:4700::1111", None),
    ],
)
def test_addresses_are_judged_by_their_range(address: str, reason: str | None) -> None:
    assert why_not_public(address) == reason


def test_a_host_with_any_non_public_address_is_refused() -> None:
    guard = EgressGuard.create("p", resolver=lambda host, port: ["93.184.216.34", "10.0.0.1"])
    with pytest.raises(BackendError, match="not public"):
        guard.check("https://cdn.example/img.png")


def test_the_connection_goes_to_the_address_the_guard_checked(
    internal: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No DNS-rebinding gap: the host is resolved once, by the guard, and the transport connects
    to that answer. The name is one no real resolver knows, and this resolver would answer
    differently the second time: the fetch succeeds only by connecting to the first answer."""
    answers = iter([["127.0.0.1"], ["127.0.0.2"]])
    asked: list[str] = []

    def resolver(host: str, port: int) -> list[str]:
        asked.append(host)
        return next(answers)

    # the fake upstream is on loopback, which the guard refuses: judge every address public
    # for this one test, to see where the connection goes
    monkeypatch.setattr(egress, "why_not_public", lambda address: None)
    guard = EgressGuard.create("p", resolver=resolver)
    client = UpstreamClient("p", timeout_seconds=2.0, retry=RetryPolicy(max_retries=0), guard=guard)
    port = httpx.URL(internal.url).port

    data = client.fetch_result(f"http://files.rebind.invalid:{port}/internal", cancel=CancelToken())

    assert data == PNG
    assert asked == ["files.rebind.invalid"]
    assert internal.received[-1].headers["host"] == f"files.rebind.invalid:{port}"
