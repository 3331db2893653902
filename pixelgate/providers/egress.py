"""Which addresses pixelgate may call on a provider's word (SSRF).

A provider's configured base URL is the operator's choice and is trusted. A URL the provider
*returns* (a result to download, a task to poll, each hop of a redirect) is not: its host is
resolved here, every address it resolves to must be public (not loopback, private, link-local,
shared, multicast, reserved or unspecified), and the connection then goes to the very address
that was checked (`Destination.address`), so a second DNS answer cannot swap in another one
(DNS rebinding).

Exceptions, explicit: a URL on the configured base URL's own origin (scheme, host, port) is the
provider itself; a host the operator lists in `PIXELGATE_PROVIDER_ALLOWED_HOSTS` (e.g. an
internal mirror, or the loopback fakes of the tests) is called as named.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import httpx

from pixelgate.errors import BackendError

log = logging.getLogger(__name__)

Resolver = Callable[[str, int], list[str]]
"""A host and port to the addresses they resolve to."""

Origin = tuple[str, str, int]


def resolve(host: str, port: int) -> list[str]:
    """Every address `host` resolves to (A and AAAA), in the resolver's order."""
    answers = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(answer[4][0]) for answer in answers))


def why_not_public(address: str) -> str | None:
    """Why an address may not be called on a provider's word; None when it is public."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    for reason, flag in (
        ("loopback", ip.is_loopback),
        ("unspecified", ip.is_unspecified),
        ("link-local", ip.is_link_local),
        ("multicast", ip.is_multicast),
        ("reserved", ip.is_reserved),
        ("private", ip.is_private),
    ):
        if flag:
            return reason
    return None if ip.is_global else "not globally routable"


def key_may_go_to(url: str, base_url: str, domains: Iterable[str]) -> bool:
    """Whether a provider's key may be sent to a URL the provider returned (a task to poll,
    cancel or read): the configured base URL's own scheme, host and port, or https on the
    default port of a host under one of the provider's own `domains`."""
    try:
        target, base = httpx.URL(url), httpx.URL(base_url)
    except httpx.InvalidURL:
        return False
    if target.userinfo:
        return False
    host = target.host.lower()
    if (target.scheme, host, target.port) == (base.scheme, base.host.lower(), base.port):
        return True
    under_domain = any(host == d or host.endswith(f".{d}") for d in domains)
    return target.scheme == "https" and target.port is None and under_domain


def origin_of(url: httpx.URL) -> Origin:
    return (url.scheme, url.host.lower(), url.port or (443 if url.scheme == "https" else 80))


@dataclass(frozen=True)
class Destination:
    """Where one request goes: `address` is the checked address to connect to, or None to
    connect by name (a trusted origin or an allowed host)."""

    url: httpx.URL
    address: str | None


@dataclass(frozen=True, kw_only=True)
class EgressGuard:
    provider: str
    trusted_origins: frozenset[Origin] = frozenset()
    """The configured base URL's origin: the provider itself."""
    allowed_hosts: frozenset[str] = frozenset()
    """Host names or addresses the operator allows whatever they resolve to."""
    resolver: Resolver = field(default=resolve, compare=False)
    allow_setting: str = "PIXELGATE_PROVIDER_ALLOWED_HOSTS"
    """The setting that allows a host, named in the log when one is refused."""

    @classmethod
    def create(
        cls,
        provider: str,
        *,
        base_url: str | None = None,
        allowed_hosts: Iterable[str] = (),
        resolver: Resolver = resolve,
        allow_setting: str = "PIXELGATE_PROVIDER_ALLOWED_HOSTS",
    ) -> EgressGuard:
        trusted = frozenset({origin_of(httpx.URL(base_url))}) if base_url else frozenset()
        return cls(
            provider=provider,
            trusted_origins=trusted,
            allowed_hosts=frozenset(host.strip().lower().strip("[]") for host in allowed_hosts),
            resolver=resolver,
            allow_setting=allow_setting,
        )

    def check(self, url: str | httpx.URL) -> Destination:
        """Where a URL given on the provider's word may be called; raises `BackendError` when it
        may not (not http(s), or resolving to an address that is not public)."""
        try:
            return self.examine(url)
        except Refused as exc:
            raise BackendError(
                f"The {self.provider} provider returned {exc.what}; refused"
            ) from exc

    def examine(self, url: str | httpx.URL) -> Destination:
        """`check`'s work, for any caller: raises `Refused` saying what the URL is."""
        try:
            target = httpx.URL(url)
        except httpx.InvalidURL:
            raise Refused("a URL that cannot be read") from None
        if target.scheme not in ("http", "https") or not target.host:
            raise Refused("a URL that is not http(s)")
        if target.userinfo:
            raise Refused("a URL with credentials in it")
        origin = origin_of(target)
        if origin in self.trusted_origins or origin[1] in self.allowed_hosts:
            return Destination(target, None)
        try:
            addresses = self.resolver(origin[1], origin[2])
        except OSError:
            addresses = []
        if not addresses:
            raise Refused("a URL whose host does not resolve")
        for address in addresses:
            reason = why_not_public(address)
            if reason is not None:
                log.warning(
                    "%s: refused %s://%s:%d, which resolves to %s (%s); allow the host with "
                    "%s if it is meant",
                    self.provider, origin[0], origin[1], origin[2], address, reason,
                    self.allow_setting,
                )  # fmt: skip
                raise Refused("a URL to an address that is not public", reason=reason)
        return Destination(target, addresses[0])


class Refused(Exception):
    """A URL the guard does not let pixelgate call; `what` says what it is."""

    def __init__(self, what: str, *, reason: str | None = None) -> None:
        super().__init__(what)
        self.what = what
        self.reason = reason
        """Why an address is not public (`loopback`, `private`, ...), where that was it."""
