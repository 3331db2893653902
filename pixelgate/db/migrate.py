"""Schema migrations with Alembic, run programmatically (no alembic.ini to find)."""

from __future__ import annotations

from importlib import resources

from alembic import command
from alembic.config import Config

from pixelgate.db.database import Database


def alembic_config(database: Database) -> Config:
    config = Config()
    config.set_main_option("script_location", str(resources.files("pixelgate.db") / "migrations"))
    config.set_main_option("sqlalchemy.url", database.url.replace("%", "%%"))
    return config


def upgrade(database: Database, revision: str = "head") -> None:
    """Bring the database to `revision`; safe to run at every start."""
    config = alembic_config(database)
    with database.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
