from __future__ import annotations

import pytest

from pixelgate.clock import ManualClock
from pixelgate.errors import Forbidden
from pixelgate.service.media import MediaLinks


def links(clock: ManualClock, secret: bytes = b"s" * 32) -> MediaLinks:
    return MediaLinks(secret, clock, ttl_seconds=3600)


def test_a_signed_link_grants_its_file_until_it_expires() -> None:
    clock = ManualClock()
    token, expires_at = links(clock).sign("file_1")
    assert links(clock).verify(token) == "file_1"
    assert (expires_at - clock.now()).total_seconds() == 3600
    clock.advance(3599)
    assert links(clock).verify(token) == "file_1"
    clock.advance(1)
    with pytest.raises(Forbidden, match="expired"):
        links(clock).verify(token)


def test_a_link_signed_within_a_second_lives_at_least_its_ttl() -> None:
    clock = ManualClock()
    clock.advance(0.9)
    short = MediaLinks(b"s" * 32, clock, ttl_seconds=1)
    token, expires_at = short.sign("file_1")
    assert (expires_at - clock.now()).total_seconds() >= 1
    clock.advance(0.99)
    assert short.verify(token) == "file_1"


def test_a_link_signed_with_another_secret_is_refused() -> None:
    clock = ManualClock()
    token, _ = links(clock, b"a" * 32).sign("file_1")
    with pytest.raises(Forbidden, match="Invalid media link"):
        links(clock, b"b" * 32).verify(token)


@pytest.mark.parametrize("token", ["", "file_1", "file_1.123", "file_1.abc.sig", "..", "a.1.b"])
def test_malformed_tokens_are_refused(token: str) -> None:
    with pytest.raises(Forbidden):
        links(ManualClock()).verify(token)
