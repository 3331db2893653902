from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

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
        "ledger_entries", "idempotency_keys", "workers", "alembic_version",
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
