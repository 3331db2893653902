"""Signed, expiring media links: `<file id>.<expiry>.<HMAC-SHA256 signature>`."""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
from datetime import UTC, datetime, timedelta

from pixelgate.clock import Clock
from pixelgate.errors import Forbidden


class MediaLinks:
    def __init__(self, secret: bytes, clock: Clock, *, ttl_seconds: int) -> None:
        self._secret = secret
        self._clock = clock
        self.ttl_seconds = ttl_seconds

    def sign(self, file_id: str) -> tuple[str, datetime]:
        # rounded up to the second: a link lives at least its TTL, never a fraction of it
        expires = math.ceil((self._clock.now() + timedelta(seconds=self.ttl_seconds)).timestamp())
        payload = f"{file_id}.{expires}"
        return f"{payload}.{self._signature(payload)}", datetime.fromtimestamp(expires, UTC)

    def verify(self, token: str) -> str:
        """The file id a token grants; Forbidden when it was tampered with or has expired."""
        file_id, _, rest = token.partition(".")
        expires, _, signature = rest.partition(".")
        payload = f"{file_id}.{expires}"
        well_formed = file_id and expires.isascii() and expires.isdigit() and signature
        if not well_formed or not hmac.compare_digest(
            signature.encode(), self._signature(payload).encode()
        ):
            raise Forbidden("Invalid media link", param="token")
        if int(expires) <= self._clock.now().timestamp():
            raise Forbidden(
                "This media link has expired; GET /v1/files/{id} gives a fresh one", param="token"
            )
        return file_id

    def _signature(self, payload: str) -> str:
        digest = hmac.new(self._secret, payload.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
