"""Access tokens for Google Cloud APIs (Vertex AI), from a service account's JSON key file.

The OAuth 2.0 JWT bearer flow (RFC 7523, developers.google.com/identity/protocols/oauth2/
service-account): a JWT signed RS256 with the key file's `private_key`, claims `iss` (the
account's `client_email`), `scope`, `aud` (the file's `token_uri`), `iat` and `exp` (at most an
hour later), with header `kid` (`private_key_id`); it is posted url-encoded to `token_uri` as
`grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=<jwt>`. The answer is
`{"access_token", "expires_in", "token_type": "Bearer"}`; an error is `{"error",
"error_description"}`. A token is kept until a minute before it expires.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt

from pixelgate.errors import BackendError
from pixelgate.providers.base import CancelToken
from pixelgate.providers.upstream import UpstreamClient

CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
DEFAULT_TOKEN_URI = "https://oauth2.googleapis.com/token"
ASSERTION_LIFETIME_SECONDS = 3600
RENEW_BEFORE_EXPIRY_SECONDS = 60.0


@dataclass(frozen=True)
class ServiceAccount:
    client_email: str
    private_key: str
    private_key_id: str | None
    token_uri: str

    @classmethod
    def from_file(cls, path: Path) -> ServiceAccount:
        """The key file's account; a file that is not one is refused, naming what is wrong."""
        try:
            data: Any = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise ValueError(f"cannot read the service account file {path}: {exc}") from None
        if not isinstance(data, dict) or data.get("type") != "service_account":
            raise ValueError(f"{path} is not a service account key file (type service_account)")
        missing = [key for key in ("client_email", "private_key") if not data.get(key)]
        if missing:
            raise ValueError(f"the service account file {path} lacks {', '.join(missing)}")
        return cls(
            client_email=str(data["client_email"]),
            private_key=str(data["private_key"]),
            private_key_id=data.get("private_key_id"),
            token_uri=str(data.get("token_uri") or DEFAULT_TOKEN_URI),
        )

    def assertion(self, now: float, scope: str = CLOUD_PLATFORM_SCOPE) -> str:
        """The signed JWT that asks `token_uri` for an access token."""
        claims = {
            "iss": self.client_email,
            "scope": scope,
            "aud": self.token_uri,
            "iat": int(now),
            "exp": int(now) + ASSERTION_LIFETIME_SECONDS,
        }
        headers = {"kid": self.private_key_id} if self.private_key_id else None
        return jwt.encode(claims, self.private_key, algorithm="RS256", headers=headers)


class ServiceAccountTokens:
    """Access tokens of one service account, fetched when needed and kept until shortly
    before they expire."""

    def __init__(self, account: ServiceAccount, http: UpstreamClient) -> None:
        self.account = account
        self._http = http
        self._lock = threading.Lock()
        self._token: str | None = None
        self._expires_at = 0.0

    def token(self, cancel: CancelToken) -> str:
        with self._lock:
            now = time.time()
            if self._token is None or now >= self._expires_at - RENEW_BEFORE_EXPIRY_SECONDS:
                self._token, lifetime = self._fetch(now, cancel)
                self._expires_at = now + lifetime
            return self._token

    def _fetch(self, now: float, cancel: CancelToken) -> tuple[str, float]:
        response = self._http.send(
            "POST",
            self.account.token_uri,
            cancel=cancel,
            form={"grant_type": JWT_BEARER_GRANT, "assertion": self.account.assertion(now)},
        )
        body = response.json_body()
        fields = body if isinstance(body, dict) else {}
        if not response.ok:
            reason = fields.get("error_description") or fields.get("error") or response.status
            raise BackendError(
                f"Google refused pixelgate's service account {self.account.client_email} an "
                f"access token (HTTP {response.status}: {reason}); the operator should check "
                "the configured credentials file"
            )
        token, lifetime = fields.get("access_token"), fields.get("expires_in", 3600)
        if not isinstance(token, str) or not isinstance(lifetime, int | float):
            raise BackendError("Google's token endpoint sent an answer without an access token")
        return token, float(lifetime)
