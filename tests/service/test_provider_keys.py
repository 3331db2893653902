"""The vault of tenants' own provider keys: Fernet under the operator's secrets, rotation, and
what a missing or wrong secret says."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from pydantic import SecretStr
from sqlalchemy import select

from pixelgate.catalog import ModelSpec
from pixelgate.db.tables import Tenant, TenantProviderKey
from pixelgate.errors import Error, ModelAccessDenied, ValidationError
from pixelgate.service.access import Principal
from pixelgate.service.job_store import JobStatus
from pixelgate.service.jobs import ImageCommand
from pixelgate.service.provider_keys import SECRET_FILE, KeyPlan, KeyVault
from pixelgate.service.tenants import TenantChanges
from tests.service.conftest import Services

KEY = "sk-own-key-0123456789abcd"


def test_without_a_configured_secret_one_is_made_once_and_kept_private(tmp_path: Path) -> None:
    vault = KeyVault([], kept_in=tmp_path / SECRET_FILE)
    token = vault.encrypt(KEY)
    kept = tmp_path / SECRET_FILE
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    assert KEY not in token
    again = KeyVault([], kept_in=kept)  # a restart reads the same secret
    assert again.decrypt(token, what="t") == KEY


def test_the_first_secret_encrypts_every_one_decrypts_and_rotation_moves_to_the_first(
    tmp_path: Path,
) -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    token = KeyVault([old], kept_in=tmp_path / SECRET_FILE).encrypt(KEY)
    both = KeyVault([new, old], kept_in=tmp_path / SECRET_FILE)
    assert both.decrypt(token, what="t") == KEY
    rotated = both.rotate(token, what="t")
    assert KeyVault([new], kept_in=tmp_path / SECRET_FILE).decrypt(rotated, what="t") == KEY
    with pytest.raises(Error, match="PIXELGATE_PROVIDER_KEYS_SECRET lacks the key"):
        KeyVault([new], kept_in=tmp_path / SECRET_FILE).decrypt(token, what="tenant 'a'")
    assert not (tmp_path / SECRET_FILE).exists()  # a configured secret writes no file


def test_a_cluster_without_a_secret_refuses_to_store_keys(tmp_path: Path) -> None:
    vault = KeyVault([], kept_in=tmp_path / SECRET_FILE, clustered=True)
    with pytest.raises(ValidationError, match="PIXELGATE_PROVIDER_KEYS_SECRET in a cluster"):
        vault.encrypt(KEY)
    assert not (tmp_path / SECRET_FILE).exists()


def test_a_secret_that_is_no_fernet_key_is_refused_at_start(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="PIXELGATE_PROVIDER_KEYS_SECRET: each key must be"):
        KeyVault(["not-a-fernet-key"], kept_in=tmp_path / SECRET_FILE)


# -- a job on its tenant's own key, through the job service and the executor ---------------

ACME = Principal("key_acme", "acme", frozenset({"generate", "read"}))


def draw(services: Services) -> str:
    command = ImageCommand(task="generate", model="test/fixture", options={"prompt": "x"})
    return services.jobs.submit(ACME, command).id


def test_a_job_runs_on_the_key_chosen_when_it_was_accepted_never_the_servers(
    services: Services,
) -> None:
    changes = TenantChanges(provider_keys={"fixture": SecretStr(KEY)})
    services.tenants.create(tenant_id="acme", name="Acme", changes=changes)
    first, second = draw(services), draw(services)
    services.executor.run(first)
    assert services.store.load(first).status == JobStatus.SUCCEEDED  # type: ignore[union-attr]
    [task] = services.provider.tasks
    assert task.own_key is not None and task.own_key.get_secret_value() == KEY

    # removed after the second job was accepted on it: that job fails, nothing is sent
    services.tenants.update("acme", TenantChanges(provider_keys={"fixture": None}))
    services.executor.run(second)
    failed = services.store.load(second)
    assert failed is not None and failed.status == JobStatus.FAILED
    assert failed.error_code == "MODEL_UNAVAILABLE" and "was removed" in str(failed.error_message)
    assert services.provider.runs == 1
    third = draw(services)  # accepted now on the server's key
    services.executor.run(third)
    assert services.provider.tasks[-1].own_key is None


def test_own_keys_only_refuses_a_model_without_the_tenants_key(services: Services) -> None:
    services.tenants.create(
        tenant_id="acme", name="Acme", changes=TenantChanges(own_keys_only=True)
    )
    with pytest.raises(ModelAccessDenied, match="has none for provider 'fixture'"):
        draw(services)
    services.tenants.update("acme", TenantChanges(provider_keys={"fixture": SecretStr(KEY)}))
    assert services.store.load(draw(services)) is not None


def test_erasing_a_tenant_deletes_its_keys(services: Services) -> None:
    changes = TenantChanges(provider_keys={"fixture": SecretStr(KEY)})
    services.tenants.create(tenant_id="acme", name="Acme", changes=changes)
    assert services.tenants.keys.summary("acme") == {"fixture": "abcd"}
    services.eraser.erase("acme")
    assert services.tenants.keys.summary("acme") == {}
    with services.db.session() as session:
        assert session.scalars(select(TenantProviderKey)).all() == []


def test_a_request_decides_each_model_s_key_once(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    changes = TenantChanges(provider_keys={"fixture": SecretStr(KEY)})
    services.tenants.create(tenant_id="acme", name="Acme", changes=changes)
    keys, decided = services.tenants.keys, list[str]()
    plan = keys.plan

    def counted(tenant: Tenant, spec: ModelSpec) -> KeyPlan:
        decided.append(spec.id)
        return plan(tenant, spec)

    monkeypatch.setattr(keys, "plan", counted)
    command = ImageCommand(
        task="generate",
        model="test/fixture",
        options={"prompt": "x"},
        fallbacks=("test/kontext", "test/hosted-edit"),
    )

    job = services.jobs.get(ACME, services.jobs.submit(ACME, command).id)

    assert sorted(decided) == ["test/fixture", "test/hosted-edit", "test/kontext"]
    assert job.own_key and job.route is not None
    assert [candidate.own_key for candidate in job.route.candidates] == [True, True]
