"""Connections: one SQLAlchemy engine per process; SQLite gets WAL and a busy timeout.

SQLite has one writer at a time. In WAL mode readers never wait for it, so this module must
not make them: the turn that this process's writers take (see `Database`) is taken at a unit
of work's first write, not at its start, and reads pass by it.

A unit of work that says it writes (`writes=True`) runs, on SQLite, on this process's one
writer connection: a connection keeps the pages it read while no other connection changes the
file, so writes that always go through the same one find their pages in its cache instead of
reading them again after another connection's commit (one job's two transactions: 0.71 against
0.54 ms of SQLite's own CPU, measured in `docs/benchmarks.md`)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

READY_WAIT_SECONDS = 2.0
"""How long readiness waits for SQLite's write lock before it calls the database locked."""
_READ_ONLY = ("SELECT", "PRAGMA", "EXPLAIN")
WRITER = "pixelgate_writer"
"""Marks the writer connection in its `info`: it is used under the turn only."""


class Database:
    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = _create_engine(url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self.is_sqlite = url.startswith("sqlite")
        self._turn: threading.RLock | None = None
        self._writer: Connection | None = None
        """SQLite: the connection that units of work which say they write run on, under the
        turn; made at the first such unit."""
        if self.is_sqlite:
            # SQLite has one writer; its busy handler sleeps with backoff when writers collide,
            # so this process's writers take turns here instead and wake at once. The turn is
            # taken by a unit of work's first write and given back once it has committed or
            # rolled back: a read never waits behind a writer (which may itself be waiting
            # for another process's write lock)
            self._turn = threading.RLock()
            _take_turns_at_first_write(self.engine, self._turn)

    @contextmanager
    def session(self, *, writes: bool = False) -> Iterator[Session]:
        """A unit of work: committed when the block ends, rolled back if it raises.

        `writes`: its first statement writes. It then takes this process's writer turn (see
        above) before it starts, rather than at that statement, so that it waits for the turn
        holding no connection and runs its statements in one go once it has it. A unit of work
        that may only read, or reads before it writes, leaves it False."""
        if writes and self._turn is not None:
            with (
                self.connection(writes=True) as connection,
                Session(connection, expire_on_commit=False) as session,
                session.begin(),
            ):
                yield session
            return
        with self._sessions() as session, session.begin():
            yield session

    @contextmanager
    def connection(self, *, writes: bool = False) -> Iterator[Connection]:
        """A unit of work on a Core connection, for the statements on every job's path (a
        session's unit of work costs more than they do): committed when the block ends,
        rolled back if it raises. `writes`: as for `session`; on SQLite, the block runs on the
        process's writer connection (see above)."""
        if not writes or self._turn is None:
            with self.engine.begin() as connection:
                yield connection
            return
        with self._turn:
            writer = self._writer
            if writer is None or writer.closed or writer.invalidated:
                writer = self._writer = self.engine.connect()
                writer.info[WRITER] = True  # holds the turn whenever it is used
            try:
                with writer.begin():
                    yield writer
            except BaseException:
                if writer.invalidated:  # its connection is gone (the pool forgets it, marker and
                    self._writer = None  # all): the next unit of work opens another
                    writer.close()
                raise

    def ping(self, *, wait_seconds: float = READY_WAIT_SECONDS) -> None:
        """Raise if the database cannot be reached; SQLite's, also when it cannot be read or
        its write lock not taken within `wait_seconds` (another process holds it: nothing
        could be written)."""
        if not self.is_sqlite:
            with self.engine.connect() as connection:
                connection.exec_driver_sql("SELECT 1")
            return
        raw = self.engine.raw_connection()  # the driver's own: no turn taken, none waited for
        try:
            cursor = raw.cursor()
            cursor.execute(f"PRAGMA busy_timeout={int(wait_seconds * 1000)}")
            try:
                cursor.execute("SELECT count(*) FROM sqlite_master")  # reads the file itself
                cursor.execute("BEGIN IMMEDIATE")  # the write lock, given back at once
                cursor.execute("ROLLBACK")
            finally:
                cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
                cursor.close()
        finally:
            raw.close()

    def dispose(self) -> None:
        if self._turn is not None:
            with self._turn:
                if self._writer is not None:
                    _close_writer(self._writer)
                    self._writer = None
        self.engine.dispose()


BUSY_TIMEOUT_MS = 30000
SQLITE_POOL_SIZE = 16
"""SQLite connections kept open between uses. Each may cache up to 16 MB of pages (see the
pragmas); under 32 clients' load, one connection in ten requests is opened anew past these."""


def _create_engine(url: str) -> Engine:
    if not url.startswith("sqlite"):
        # short connect timeout: a database that is down answers 503 quickly, not after minutes
        return create_engine(
            url, pool_pre_ping=True, pool_size=10, max_overflow=20, connect_args=_connect_args(url)
        )
    # a writer waiting for this process's turn holds its connection meanwhile: a pool that can
    # run out would make reads wait behind writers after all, so it never does (no limit on
    # connections past `pool_size`; the threads that use them are bounded). `pool_size` are
    # kept open between uses: opening one costs ~0.35 ms (its pragmas, the schema's first read)
    engine = create_engine(
        url,
        connect_args={"check_same_thread": False, "timeout": 30},
        pool_size=SQLITE_POOL_SIZE,
        max_overflow=-1,
    )

    @event.listens_for(engine, "connect")
    def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        # checkpoint the WAL into the database every ~40 MB instead of ~4 MB: a page written by
        # every job (a budget, an index) is copied once per checkpoint, so fewer checkpoints
        # copy far fewer pages; the WAL is cut back to 64 MB after each
        cursor.execute("PRAGMA wal_autocheckpoint=10000")
        cursor.execute("PRAGMA journal_size_limit=67108864")
        cursor.execute("PRAGMA cache_size=-16384")
        cursor.close()

    return engine


def _take_turns_at_first_write(engine: Engine, turn: threading.RLock) -> None:
    """Make each connection take `turn` before its first writing statement and give it back
    when it returns to the pool, after its transaction has ended.

    Not at SQLAlchemy's "commit" or "rollback" event: those come before the driver's COMMIT
    or ROLLBACK, while SQLite's write lock is still held, so the next writer would run into
    it and sleep in SQLite's busy handler (1 ms and up), which is what the turn is for. A
    unit of work (`Database.session`) returns its connection as it ends; a connection used
    apart (migrations) keeps the turn from its first write until it is closed."""

    @event.listens_for(engine, "before_cursor_execute")
    def _before(connection: Connection, cursor: Any, statement: str, *args: Any) -> None:
        info = connection.info
        if "turn" in info or WRITER in info:  # held already, or the writer's (held by its user)
            return
        if not statement.lstrip()[:7].upper().startswith(_READ_ONLY):
            turn.acquire()
            info["turn"] = True

    @event.listens_for(engine, "checkin")
    def _give_back(dbapi_connection: Any, record: Any) -> None:
        if record.info.pop("turn", False):
            turn.release()


def _close_writer(writer: Connection) -> None:
    """Give the writer connection back to the pool as an ordinary one."""
    writer.info.pop(WRITER, None)
    writer.close()


def _connect_args(url: str) -> dict[str, Any]:
    if url.startswith(("postgresql", "postgres")):
        return {"connect_timeout": 3}
    return {}
