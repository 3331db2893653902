from __future__ import annotations

import stat
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from pixelgate.db.tables import ApiKey
from pixelgate.errors import Forbidden, Unauthorized, ValidationError
from pixelgate.service.tenants import TenantChanges
from tests.service.conftest import Services


def test_a_created_key_authenticates_and_is_stored_only_as_a_hash(services: Services) -> None:
    record, key = services.access.create_key(
        tenant_id="default", name="ci", scopes=frozenset({"generate", "read"})
    )
    principal = services.access.authenticate(f"Bearer {key}")
    assert (principal.tenant_id, principal.key_id) == ("default", record.id)
    with services.db.session() as session:
        stored = session.scalars(select(ApiKey.key_hash)).all()
    assert key not in stored
    assert record.key_hash in stored


def test_revoked_and_expired_keys_are_refused(services: Services) -> None:
    revoked, revoked_key = services.access.create_key(
        tenant_id="default", name="old", scopes=frozenset({"read"})
    )
    with services.db.session() as session:
        session.execute(
            update(ApiKey).where(ApiKey.id == revoked.id).values(revoked_at=services.clock.now())
        )
    with pytest.raises(Unauthorized, match="revoked"):
        services.access.authenticate(f"Bearer {revoked_key}")

    _, expiring_key = services.access.create_key(
        tenant_id="default",
        name="temp",
        scopes=frozenset({"read"}),
        expires_at=services.clock.now() + timedelta(minutes=5),
    )
    services.access.authenticate(f"Bearer {expiring_key}")
    services.clock.advance(300)
    with pytest.raises(Unauthorized, match="expired"):
        services.access.authenticate(f"Bearer {expiring_key}")


def test_scopes_are_enforced(services: Services) -> None:
    _, key = services.access.create_key(tenant_id="default", name="r", scopes=frozenset({"read"}))
    principal = services.access.authenticate(f"Bearer {key}")
    principal.require("read")
    with pytest.raises(Forbidden, match="generate"):
        principal.require("generate")


def test_the_bootstrap_admin_key_is_made_once_and_kept_private(
    services: Services, tmp_path: Path
) -> None:
    key = services.access.bootstrap_admin(None, tmp_path)
    assert key is not None
    assert services.access.bootstrap_admin(None, tmp_path) is None
    key_file = tmp_path / "admin_key"
    assert key_file.read_text().strip() == key
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert "admin" in services.access.authenticate(f"Bearer {key}").scopes


def test_an_admin_key_of_another_tenant_made_before_the_split_acts_for_its_tenant_only(
    services: Services,
) -> None:
    """Issue 19.5: such a key minted keys for every tenant; it now administers its own."""
    services.tenants.create(tenant_id="tenant-b", name="B", changes=TenantChanges())
    record, key = services.access.create_key(
        tenant_id="default", name="old", scopes=frozenset({"admin"})
    )
    with services.db.session() as session:  # as an older release stored it
        session.execute(update(ApiKey).where(ApiKey.id == record.id).values(tenant_id="tenant-b"))
    principal = services.access.authenticate(f"Bearer {key}")

    assert not principal.is_global_admin and principal.is_admin
    principal.require_admin_of("tenant-b")
    principal.require("generate")
    with pytest.raises(Forbidden):
        principal.require_admin_of("default")
    with pytest.raises(Forbidden):
        principal.require("admin")
    with pytest.raises(ValidationError):
        services.access.create_key(tenant_id="tenant-b", name="x", scopes=frozenset({"admin"}))
