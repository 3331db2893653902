"""What a request may ask of webhooks: the events it may name, and the URLs it may send them
to. A URL is checked like a URL a provider returns (`providers.egress`): http(s), no
credentials, and resolving to public addresses only, unless the operator allows its host in
`PIXELGATE_WEBHOOK_ALLOWED_HOSTS`. The sender checks it again at each try (`webhook_sender`),
so a name that resolves elsewhere by then (DNS rebinding) is refused too."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal, get_args

from pixelgate.errors import ValidationError
from pixelgate.providers.egress import Destination, EgressGuard, Refused, Resolver, resolve

WebhookEvent = Literal["queued", "running", "progress", "succeeded", "failed", "canceled"]
EVENTS: tuple[str, ...] = get_args(WebhookEvent)
DEFAULT_EVENTS: tuple[str, ...] = ("succeeded", "failed", "canceled")
"""What a webhook gets when its request names no events: how the job ended."""
MAX_URL_LENGTH = 2000
ALLOW_SETTING = "PIXELGATE_WEBHOOK_ALLOWED_HOSTS"


@dataclass(frozen=True)
class Webhook:
    """A request's webhook: where, which events, and the base of the links its deliveries
    carry (the public URL, else the URL the request came to)."""

    url: str
    events: tuple[str, ...] = DEFAULT_EVENTS
    base_url: str = ""


def webhook_of(
    url: str | None, events: Sequence[str] | None, *, param_prefix: str = ""
) -> Webhook | None:
    """The webhook a request's `webhook` and `webhook_events` fields ask for (None without a
    URL; events without a URL are refused). Names are checked here; the target is checked by
    `WebhookTargets.check` where the request is accepted."""
    if url is None:
        if events is not None:
            raise ValidationError(
                "webhook_events needs a webhook URL to send them to", param=param_prefix + "webhook"
            )
        return None
    chosen = tuple(dict.fromkeys(events)) if events is not None else DEFAULT_EVENTS
    unknown = [event for event in chosen if event not in EVENTS]
    if unknown:
        raise ValidationError(
            f"Unknown webhook event {unknown[0]!r}; allowed: {', '.join(EVENTS)}",
            param=param_prefix + "webhook_events",
        )
    if not chosen:
        raise ValidationError(
            f"webhook_events is empty; name at least one of {', '.join(EVENTS)}, or leave it out "
            f"for {', '.join(DEFAULT_EVENTS)}",
            param=param_prefix + "webhook_events",
        )
    return Webhook(url, chosen)


class WebhookTargets:
    """The egress guard for webhook URLs."""

    def __init__(self, *, allowed_hosts: Iterable[str] = (), resolver: Resolver = resolve) -> None:
        self._guard = EgressGuard.create(
            "webhook", allowed_hosts=allowed_hosts, resolver=resolver, allow_setting=ALLOW_SETTING
        )

    def check(self, url: str, *, param: str = "webhook") -> None:
        """Refuse, naming `param`, a URL pixelgate may not POST to."""
        if len(url) > MAX_URL_LENGTH:
            raise ValidationError(
                f"Invalid {param}: longer than {MAX_URL_LENGTH} characters", param=param
            )
        try:
            self._guard.examine(url)
        except Refused as exc:
            why = f" ({exc.reason})" if exc.reason else ""
            raise ValidationError(
                f"Invalid {param}: {exc.what}{why}. Allowed: an http(s) URL without credentials "
                f"whose host resolves to public addresses, or a host the operator lists in "
                f"{ALLOW_SETTING}",
                param=param,
            ) from None

    def destination(self, url: str) -> Destination:
        """Where a delivery connects now; raises `Refused` when the URL may not be called."""
        return self._guard.examine(url)
