from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, inspect, text

from pixelgate.db import Database, upgrade
from pixelgate.db.tables import Base


def test_migrations_build_exactly_the_tables_the_code_declares(blank_database: Database) -> None:
    database = blank_database
    upgrade(database)
    upgrade(database)  # a second start changes nothing
    with database.engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert diff == []
    tables = set(inspect(database.engine).get_table_names())
    assert {
        "tenants", "api_keys", "jobs", "job_events", "files", "budget_accounts",
        "ledger_entries", "idempotency_keys", "workers", "alembic_version", "usage_daily",
        "job_input_blobs",
    } <= tables  # fmt: skip


def test_sqlite_runs_in_wal_mode(tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path / 'db.sqlite'}")
    with database.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


def test_upgrading_a_populated_database_keeps_every_row(blank_database: Database) -> None:
    from sqlalchemy import text

    database = blank_database
    upgrade(database, "0001")
    now = "2026-01-01 00:00:00"
    with database.engine.begin() as connection:
        connection.execute(
            text("INSERT INTO tenants (id, name, created_at) VALUES ('t1', 'T', :now)"),
            {"now": now},
        )
        connection.execute(
            text(
                "INSERT INTO jobs (id, tenant_id, task, model, status, options, response_format,"
                " attempts, cancel_requested, created_at) VALUES ('job_1', 't1', 'generate',"
                " 'local/tiny', 'succeeded', '{}', 'url', 1, false, :now)"
            ),
            {"now": now},
        )
        connection.execute(
            text(
                "INSERT INTO job_events (job_id, type, data, created_at)"
                " VALUES ('job_1', 'queued', '{}', :now)"
            ),
            {"now": now},
        )
        connection.execute(
            text(
                "INSERT INTO files (id, tenant_id, job_id, blob_key, content_type, size_bytes,"
                " width, height, created_at) VALUES ('file_1', 't1', 'job_1', 'k', 'image/png',"
                " 1, 1, 1, :now)"
            ),
            {"now": now},
        )

    upgrade(database)

    with database.engine.connect() as connection:
        cached, cache_key, bypassed = connection.execute(
            text("SELECT cached, cache_key, cache_bypassed FROM jobs")
        ).one()
        assert (bool(cached), cache_key, bool(bypassed)) == (False, None, False)
        assert connection.execute(text("SELECT cache_policy FROM tenants")).scalar() == "free"
        assert connection.execute(text("SELECT count(*) FROM job_events")).scalar() == 1
        assert connection.execute(text("SELECT count(*) FROM files")).scalar() == 1
        if database.engine.dialect.name == "sqlite":
            assert connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall() == []
            assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


def test_0008_fills_usage_by_day_from_the_ledger_and_input_blobs_from_jobs(
    blank_database: Database,
) -> None:
    from sqlalchemy import text

    database = blank_database
    upgrade(database, "0006")
    with database.engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO tenants (id, name, created_at, cache_policy)"
                " VALUES ('t1', 'T', :at, 'free')"
            ),
            {"at": "2026-03-04 10:00:00"},
        )
        inputs = (
            '{"image": {"blob_key": "' + "a" * 64 + '"}, "mask": {"blob_key": "' + "b" * 64 + '"}}'
        )
        connection.execute(
            text(
                "INSERT INTO jobs (id, tenant_id, task, model, status, options, inputs,"
                " response_format, attempts, cancel_requested, cached, cache_bypassed, created_at)"
                " VALUES ('job_1', 't1', 'edit', 'm', 'succeeded', '{}', :inputs, 'url', 1,"
                " false, false, false, :at)"
            ),
            {"inputs": inputs, "at": "2026-03-04 10:00:00"},
        )
        for kind, amount, images, at in [
            ("reserve", 30, 3, "2026-03-04 10:00:00"),
            ("settle", 20, 2, "2026-03-04 23:59:59"),
            ("settle", 5, 1, "2026-03-04 01:00:00"),
            ("settle", 7, 1, "2026-03-05 00:00:01"),
        ]:
            connection.execute(
                text(
                    "INSERT INTO ledger_entries (tenant_id, job_id, kind, amount, images, model,"
                    " period, created_at) VALUES ('t1', 'job_1', :kind, :amount, :images, 'm',"
                    " '2026-03', :at)"
                ),
                {"kind": kind, "amount": amount, "images": images, "at": at},
            )

    upgrade(database)

    with database.engine.connect() as connection:
        usage = connection.execute(
            text("SELECT day, spent, images, jobs FROM usage_daily ORDER BY day")
        ).all()
        refs = connection.execute(text("SELECT blob_key FROM job_input_blobs ORDER BY 1")).all()
    assert [tuple(row) for row in usage] == [("2026-03-04", 25, 3, 2), ("2026-03-05", 7, 1, 1)]
    assert [row[0] for row in refs] == ["a" * 64, "b" * 64]


AT = "2026-03-04 10:00:00"


def tenant_and_jobs(connection: Connection, *job_ids: str) -> None:
    """Tenant `t1` and its succeeded jobs, as rows of any revision from 0009 on."""
    connection.execute(
        text(
            "INSERT INTO tenants (id, name, created_at, cache_policy)"
            " VALUES ('t1', 'T', :at, 'free')"
        ),
        {"at": AT},
    )
    for job_id in job_ids:
        connection.execute(
            text(
                "INSERT INTO jobs (id, tenant_id, task, model, status, options,"
                " response_format, attempts, cancel_requested, cached, cache_bypassed,"
                " created_at) VALUES (:id, 't1', 'generate', 'm', 'succeeded', '{}', 'url',"
                " 1, false, false, false, :at)"
            ),
            {"id": job_id, "at": AT},
        )


def test_0012_gives_settled_jobs_their_cost_from_the_ledger(blank_database: Database) -> None:
    database = blank_database
    upgrade(database, "0009")
    at = {"at": AT}
    with database.engine.begin() as connection:
        tenant_and_jobs(connection, "job_paid", "job_free", "job_refunded")
        for job_id, kind, amount in [
            ("job_paid", "reserve", 80_000),
            ("job_paid", "settle", 40_000),
            ("job_paid", "refund", 40_000),
            ("job_refunded", "reserve", 80_000),
            ("job_refunded", "settle", 0),
            ("job_refunded", "refund", 80_000),
        ]:
            connection.execute(
                text(
                    "INSERT INTO ledger_entries (tenant_id, job_id, kind, amount, images, model,"
                    " period, created_at) VALUES ('t1', :job, :kind, :amount, 1, 'm', '2026-03',"
                    " :at)"
                ),
                {"job": job_id, "kind": kind, "amount": amount, **at},
            )

    upgrade(database)

    with database.engine.connect() as connection:
        costs = connection.execute(text("SELECT id, cost FROM jobs ORDER BY id")).all()
    assert [tuple(row) for row in costs] == [
        ("job_free", 0),
        ("job_paid", 40_000),
        ("job_refunded", 0),
    ]


def test_0014_marks_the_jobs_that_have_a_webhook(blank_database: Database) -> None:
    database = blank_database
    upgrade(database, "0013")
    with database.engine.begin() as connection:
        tenant_and_jobs(connection, "job_hooked", "job_plain")
        connection.execute(
            text(
                "INSERT INTO job_webhooks (job_id, tenant_id, url, events, base_url)"
                " VALUES ('job_hooked', 't1', 'https://hooks.test/in', '[\"succeeded\"]', '')"
            )
        )

    upgrade(database)

    with database.engine.connect() as connection:
        rows = connection.execute(text("SELECT id, has_webhook FROM jobs ORDER BY id")).all()
    assert [tuple(row) for row in rows] == [("job_hooked", True), ("job_plain", False)]


def test_0015_encrypts_the_webhook_secrets_it_finds_in_clear(
    blank_database: Database, tmp_path: Path
) -> None:
    from pixelgate.service.provider_keys import KeyVault

    database = blank_database
    upgrade(database, "0014")
    current, previous = "whsec_" + "A" * 43 + "=", "whsec_" + "B" * 43 + "="
    at = {"at": "2026-03-04 10:00:00"}
    with database.engine.begin() as connection:
        for tenant_id in ("t1", "t2"):
            connection.execute(
                text(
                    "INSERT INTO tenants (id, name, created_at, cache_policy)"
                    " VALUES (:id, 'T', :at, 'free')"
                ),
                {"id": tenant_id, **at},
            )
        connection.execute(
            text(
                "INSERT INTO webhook_secrets (tenant_id, key, previous_key, created_at,"
                " rotated_at) VALUES ('t1', :key, :previous, :at, :at),"
                " ('t2', :previous, NULL, :at, NULL)"
            ),
            {"key": current, "previous": previous, **at},
        )
    with pytest.raises(RuntimeError, match="encrypts the stored webhook signing secrets"):
        upgrade(database)  # no cipher: refused, and nothing changed
    vault = KeyVault([], kept_in=tmp_path / "provider_keys_secret")

    upgrade(database, cipher=vault)

    with database.engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT tenant_id, ciphertext, previous_ciphertext FROM webhook_secrets"
                " ORDER BY tenant_id"
            )
        ).all()
    assert [row[0] for row in rows] == ["t1", "t2"]
    assert not any("whsec_" in str(value) for row in rows for value in row)
    (_, t1, t1_previous), (_, t2, t2_previous) = rows
    assert vault.decrypt(t1, what="t1") == current
    assert vault.decrypt(t1_previous, what="t1") == previous
    assert (vault.decrypt(t2, what="t2"), t2_previous) == (previous, None)


def test_an_upgrade_that_fails_midway_leaves_the_database_as_it_was(
    blank_database: Database, tmp_path: Path
) -> None:
    """SQLite included, whose driver runs DDL outside a transaction unless told: 0014 (a table
    rebuilt) then 0015 refusing must leave neither 0014's change nor a half-built table, and
    the next start (with what 0015 needs) upgrades."""
    from pixelgate.service.provider_keys import KeyVault

    database = blank_database
    upgrade(database, "0013")
    with database.engine.begin() as connection:
        tenant_and_jobs(connection, "job_one")
        connection.execute(
            text(
                "INSERT INTO webhook_secrets (tenant_id, key, previous_key, created_at,"
                " rotated_at) VALUES ('t1', :key, NULL, '2026-03-04 10:00:00', NULL)"
            ),
            {"key": "whsec_" + "A" * 43 + "="},
        )
    with pytest.raises(RuntimeError, match="encrypts the stored webhook signing secrets"):
        upgrade(database)  # 0014 runs, then 0015 refuses: no cipher

    with database.engine.connect() as connection:
        assert connection.execute(text("SELECT version_num FROM alembic_version")).all() == [
            ("0013",)
        ]
        tables = set(inspect(connection).get_table_names())
        assert not [name for name in tables if name.startswith("_alembic_tmp")]
        columns = {column["name"] for column in inspect(connection).get_columns("jobs")}
        assert "has_webhook" not in columns  # 0014's change went with the failure
        assert connection.execute(text("SELECT id FROM jobs")).all() == [("job_one",)]

    upgrade(database, "0015", cipher=KeyVault([], kept_in=tmp_path / "provider_keys_secret"))
    with database.engine.connect() as connection:
        assert connection.execute(text("SELECT version_num FROM alembic_version")).all() == [
            ("0015",)
        ]
