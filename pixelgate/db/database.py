"""Connections: one SQLAlchemy engine per process; SQLite gets WAL and a busy timeout."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker


class Database:
    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = _create_engine(url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        # SQLite has one writer; its busy handler sleeps with backoff when writers collide,
        # so this process's units of work take turns here instead and wake at once
        self._turns: AbstractContextManager[object] = (
            threading.RLock() if url.startswith("sqlite") else nullcontext()
        )

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A unit of work: committed when the block ends, rolled back if it raises."""
        with self._turns, self._sessions() as session, session.begin():
            yield session

    def ping(self) -> None:
        """Raise if the database cannot be reached."""
        with self.engine.connect() as connection:
            connection.exec_driver_sql("SELECT 1")

    def dispose(self) -> None:
        self.engine.dispose()


def _create_engine(url: str) -> Engine:
    if not url.startswith("sqlite"):
        # short connect timeout: a database that is down answers 503 quickly, not after minutes
        return create_engine(
            url, pool_pre_ping=True, pool_size=10, max_overflow=20, connect_args=_connect_args(url)
        )
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

    @event.listens_for(engine, "connect")
    def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        # checkpoint the WAL into the database every ~40 MB instead of ~4 MB: a page written by
        # every job (a budget, an index) is copied once per checkpoint, so fewer checkpoints
        # copy far fewer pages; the WAL is cut back to 64 MB after each
        cursor.execute("PRAGMA wal_autocheckpoint=10000")
        cursor.execute("PRAGMA journal_size_limit=67108864")
        cursor.execute("PRAGMA cache_size=-16384")
        cursor.close()

    return engine


def _connect_args(url: str) -> dict[str, Any]:
    if url.startswith(("postgresql", "postgres")):
        return {"connect_timeout": 3}
    return {}
