"""The databases the data-layer tests run against: SQLite (embedded) and PostgreSQL (cluster).

PostgreSQL is the machine's local server: one fresh database per test run, its tables emptied
between tests, dropped at the end.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import text

from pixelgate.db import Database, upgrade
from pixelgate.db.tables import Base

POSTGRES_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
ENGINES = ["sqlite", "postgresql"]


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    name = "pixelgate_unit_" + uuid.uuid4().hex[:10]
    with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    migrated = Database(url)
    upgrade(migrated)
    migrated.dispose()
    yield url
    with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def open_database(engine: str, tmp_path: Path, request: pytest.FixtureRequest) -> Database:
    """A migrated, empty database of the given engine."""
    if engine == "sqlite":
        database = Database(f"sqlite:///{tmp_path / 'db.sqlite'}")
        upgrade(database)
        return database
    database = Database(request.getfixturevalue("postgres_database"))
    tables = ", ".join(f'"{table.name}"' for table in Base.metadata.sorted_tables)
    with database.engine.begin() as connection:
        connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    return database


@pytest.fixture(params=ENGINES)
def blank_database(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Database]:
    """An empty database with no tables at all, for migration tests."""
    if request.param == "sqlite":
        database = Database(f"sqlite:///{tmp_path / 'db.sqlite'}")
        yield database
        database.dispose()
        return
    name = "pixelgate_blank_" + uuid.uuid4().hex[:10]
    with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    database = Database(f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}")
    yield database
    database.dispose()
    with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
