"""Each tenant's webhook signing secret (`whsec_...`, Standard Webhooks): made on first read,
rotated on request. After a rotation the previous secret still signs beside the new one (two
signatures in `webhook-signature`) for `ROTATION_OVERLAP`, so receivers can switch without
dropping a delivery.

Secrets are kept encrypted, as tenants' own provider keys are: by the same `KeyVault`, under
the operator's `PIXELGATE_PROVIDER_KEYS_SECRET` (or the secret kept in the data directory),
and encrypted again under its first key by the same rotation (`reencrypt`)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from pixelgate.clock import Clock, as_utc
from pixelgate.db import Database
from pixelgate.db.tables import WebhookSecret
from pixelgate.service.provider_keys import KeyVault
from pixelgate.webhook_signatures import new_secret

ROTATION_OVERLAP = timedelta(hours=24)


class WebhookSecrets:
    def __init__(self, db: Database, clock: Clock, vault: KeyVault) -> None:
        self._db = db
        self._clock = clock
        self._vault = vault

    def current(self, tenant_id: str) -> str:
        """The tenant's secret, made now if it has none."""
        with self._db.session() as session:
            record = session.get(WebhookSecret, tenant_id)
            if record is not None:
                return self._open(record.ciphertext, tenant_id)
        try:
            with self._db.session(writes=True) as session:
                session.add(
                    WebhookSecret(
                        tenant_id=tenant_id,
                        ciphertext=self._vault.encrypt(new_secret()),
                        previous_ciphertext=None,
                        created_at=self._clock.now(),
                        rotated_at=None,
                    )
                )
        except IntegrityError:
            pass  # made at the same moment by another request: that one stands
        return self.current(tenant_id)

    def rotate(self, tenant_id: str) -> str:
        """A new secret for the tenant; the old one keeps signing for `ROTATION_OVERLAP`."""
        self.current(tenant_id)
        key = new_secret()
        with self._db.session(writes=True) as session:
            record = session.get(WebhookSecret, tenant_id, with_for_update=True)
            assert record is not None
            record.previous_ciphertext = record.ciphertext
            record.ciphertext = self._vault.encrypt(key)
            record.rotated_at = self._clock.now()
        return key

    def signing(self, tenant_id: str) -> list[str]:
        """The secrets a delivery is signed with now: the current one, and the previous one
        while the overlap after a rotation lasts."""
        with self._db.session() as session:
            record = session.get(WebhookSecret, tenant_id)
        if record is None:
            return [self.current(tenant_id)]
        keys = [self._open(record.ciphertext, tenant_id)]
        rotated = record.rotated_at
        if (
            record.previous_ciphertext
            and rotated
            and self._clock.now() - as_utc(rotated) < ROTATION_OVERLAP
        ):
            keys.append(self._open(record.previous_ciphertext, tenant_id))
        return keys

    def reencrypt(self) -> int:
        """Encrypt every stored secret (and previous secret) again under the vault's first
        key, after the operator put a new one first; how many tenants' secrets there are."""
        with self._db.session() as session:
            records = list(session.scalars(select(WebhookSecret)))
            for record in records:
                what = _what(record.tenant_id)
                record.ciphertext = self._vault.rotate(record.ciphertext, what=what)
                if record.previous_ciphertext is not None:
                    previous = self._vault.rotate(record.previous_ciphertext, what=what)
                    record.previous_ciphertext = previous
        return len(records)

    def erase(self, tenant_id: str) -> None:
        with self._db.session(writes=True) as session:
            record = session.get(WebhookSecret, tenant_id)
            if record is not None:
                session.delete(record)

    def _open(self, ciphertext: str, tenant_id: str) -> str:
        return self._vault.decrypt(ciphertext, what=_what(tenant_id))


def _what(tenant_id: str) -> str:
    return f"tenant {tenant_id!r} for signing webhooks"
