"""Each tenant's webhook signing secret (`whsec_...`, Standard Webhooks): made on first read,
rotated on request. After a rotation the previous secret still signs beside the new one (two
signatures in `webhook-signature`) for `ROTATION_OVERLAP`, so receivers can switch without
dropping a delivery."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.exc import IntegrityError

from pixelgate.clock import Clock, as_utc
from pixelgate.db import Database
from pixelgate.db.tables import WebhookSecret
from pixelgate.webhook_signatures import new_secret

ROTATION_OVERLAP = timedelta(hours=24)


class WebhookSecrets:
    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    def current(self, tenant_id: str) -> str:
        """The tenant's secret, made now if it has none."""
        with self._db.session() as session:
            record = session.get(WebhookSecret, tenant_id)
            if record is not None:
                return record.key
        try:
            with self._db.session(writes=True) as session:
                session.add(
                    WebhookSecret(
                        tenant_id=tenant_id,
                        key=new_secret(),
                        previous_key=None,
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
        with self._db.session(writes=True) as session:
            record = session.get(WebhookSecret, tenant_id, with_for_update=True)
            assert record is not None
            record.previous_key = record.key
            record.key = new_secret()
            record.rotated_at = self._clock.now()
            return record.key

    def signing(self, tenant_id: str) -> list[str]:
        """The secrets a delivery is signed with now: the current one, and the previous one
        while the overlap after a rotation lasts."""
        with self._db.session() as session:
            record = session.get(WebhookSecret, tenant_id)
        if record is None:
            return [self.current(tenant_id)]
        keys = [record.key]
        rotated = record.rotated_at
        if (
            record.previous_key
            and rotated
            and self._clock.now() - as_utc(rotated) < ROTATION_OVERLAP
        ):
            keys.append(record.previous_key)
        return keys

    def erase(self, tenant_id: str) -> None:
        with self._db.session(writes=True) as session:
            record = session.get(WebhookSecret, tenant_id)
            if record is not None:
                session.delete(record)
