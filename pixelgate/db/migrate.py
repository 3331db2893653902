"""Schema migrations with Alembic, run programmatically (no alembic.ini to find)."""

from __future__ import annotations

from importlib import resources
from typing import Any, Protocol

from alembic import command
from alembic.config import Config

from pixelgate.db.database import Database

CIPHER = "cipher"
"""The `Config.attributes` entry a data migration that encrypts finds its `Cipher` under."""


class Cipher(Protocol):
    """What encrypts stored secrets (`service.provider_keys.KeyVault`), for migrations that
    encrypt rows written in clear before."""

    def encrypt(self, key: str) -> str: ...

    def decrypt(self, token: str, *, what: str) -> str: ...


def alembic_config(database: Database) -> Config:
    config = Config()
    config.set_main_option("script_location", str(resources.files("pixelgate.db") / "migrations"))
    config.set_main_option("sqlalchemy.url", database.url.replace("%", "%%"))
    return config


def upgrade(database: Database, revision: str = "head", *, cipher: Cipher | None = None) -> None:
    """Bring the database to `revision`; safe to run at every start. `cipher`: what encrypts
    the secrets a migration finds in clear (none: a migration that finds some refuses)."""
    config = alembic_config(database)
    config.attributes[CIPHER] = cipher
    with database.engine.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        driver: Any = connection.connection.driver_connection  # sqlite3's, on SQLite
        isolation = driver.isolation_level if sqlite else None
        if sqlite:
            # Python's sqlite3 opens a transaction before DML only, so DDL would commit as it
            # runs and a migration failing midway would leave a half-built schema (a rebuilt
            # table's `_alembic_tmp_` copy) behind: it opens none, and the BEGIN below holds
            # every statement of the upgrade, DDL included
            driver.isolation_level = None
            # SQLite alters a table by rebuilding it; references to it must not block that (a
            # pragma that only takes effect outside a transaction)
            connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
            connection.commit()  # SQLAlchemy's own transaction, begun by the pragma
        try:
            with connection.begin():
                if sqlite:
                    connection.exec_driver_sql("BEGIN")
                if connection.dialect.name == "postgresql":
                    # replicas starting together migrate one at a time
                    connection.exec_driver_sql("SELECT pg_advisory_xact_lock(7274283)")
                config.attributes["connection"] = connection
                command.upgrade(config, revision)
        finally:
            if sqlite:
                connection.exec_driver_sql("PRAGMA foreign_keys=ON")
                connection.commit()
                driver.isolation_level = isolation  # back to the pool as it came
