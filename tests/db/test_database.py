"""SQLite under another process's write lock: reads go on, readiness notices (issue 19.18).
This process's writers take turns, each after the last one's COMMIT."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import event, text
from sqlalchemy.pool import QueuePool

from pixelgate.db import Database

HOLD_SECONDS = 4.0
WRITERS = 40
"""As many writers as the API's threads (AnyIO's 40) can run at once."""


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'db.sqlite'}")
    with database.session() as session:
        session.execute(text("CREATE TABLE t (x INTEGER)"))
        session.execute(text("INSERT INTO t VALUES (1)"))
    yield database
    database.dispose()


@pytest.fixture
def write_lock_elsewhere(database: Database) -> Iterator[subprocess.Popen[str]]:
    """Another process (as `pixelgate` CLI or a second server would be) holds the write lock."""
    path = database.url.removeprefix("sqlite:///")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sqlite3, sys, time\n"
            f"c = sqlite3.connect({path!r}, isolation_level=None)\n"
            "c.execute('BEGIN IMMEDIATE'); c.execute('INSERT INTO t VALUES (2)')\n"
            "print('held', flush=True)\n"
            f"time.sleep({HOLD_SECONDS}); c.execute('COMMIT')\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline() == "held\n"
    yield holder
    holder.wait(30)


@pytest.mark.parametrize("writes", [False, True], ids=["turn at first write", "turn first"])
def test_a_read_does_not_wait_behind_a_writer_waiting_for_another_process(
    database: Database, write_lock_elsewhere: subprocess.Popen[str], writes: bool
) -> None:
    def write() -> None:  # this process's writer waits for the other process's lock
        with database.session(writes=writes) as session:
            session.execute(text("INSERT INTO t VALUES (3)"))

    writer = threading.Thread(target=write)
    writer.start()
    time.sleep(0.3)
    assert writer.is_alive()
    started = time.monotonic()
    with database.session() as session:
        assert session.execute(text("SELECT count(*) FROM t")).scalar() == 1
    took = time.monotonic() - started
    writer.join(30)
    assert took < 1.0, f"a read waited {took:.1f}s behind a writer"
    with database.session() as session:
        assert session.execute(text("SELECT count(*) FROM t")).scalar() == 3


def test_a_unit_of_work_that_writes_first_waits_for_the_turn_holding_no_connection(
    database: Database, write_lock_elsewhere: subprocess.Popen[str]
) -> None:
    def write(value: int, *, writes: bool) -> None:
        with database.session(writes=writes) as session:
            session.execute(text("INSERT INTO t VALUES (:value)"), {"value": value})

    first = threading.Thread(target=write, args=(6,), kwargs={"writes": False})
    first.start()  # takes the turn at its INSERT, then waits for the other process's lock
    time.sleep(0.3)
    second = threading.Thread(target=write, args=(7,), kwargs={"writes": True})
    second.start()
    time.sleep(0.3)
    assert first.is_alive() and second.is_alive()
    pool = database.engine.pool
    assert isinstance(pool, QueuePool)
    assert pool.checkedout() == 1, "the second writer took a connection before its turn"
    first.join(30)
    second.join(30)
    with database.session() as session:
        assert session.execute(text("SELECT count(*) FROM t")).scalar() == 4


def test_a_read_does_not_wait_for_a_connection_held_by_writers_waiting_their_turn(
    database: Database, write_lock_elsewhere: subprocess.Popen[str]
) -> None:
    """Each writer waiting for this process's turn holds a pooled connection: a pool that can
    run out (SQLAlchemy's default, 15) would make a read wait behind them after all."""

    def write(value: int) -> None:
        with database.session() as session:
            session.execute(text("INSERT INTO t VALUES (:value)"), {"value": value})

    writers = [threading.Thread(target=write, args=(10 + n,)) for n in range(WRITERS)]
    for writer in writers:
        writer.start()
    time.sleep(0.5)
    assert all(writer.is_alive() for writer in writers)
    started = time.monotonic()
    with database.session() as session:
        assert session.execute(text("SELECT count(*) FROM t")).scalar() == 1
    took = time.monotonic() - started
    for writer in writers:
        writer.join(30)
    assert took < 1.0, f"a read waited {took:.1f}s for a connection"
    with database.session() as session:
        assert session.execute(text("SELECT count(*) FROM t")).scalar() == 2 + WRITERS


def test_the_next_writer_is_let_in_after_the_commit_not_before(database: Database) -> None:
    """SQLAlchemy's "commit" event comes before the driver's COMMIT: a turn given back there
    let the next writer run into SQLite's write lock, to sleep in SQLite's busy handler (1 ms
    and up, at worst the 30 s timeout) instead of waiting for the turn and waking at once."""
    committing = threading.Event()
    statements: list[float] = []  # how long each of the second writer's statements took
    second: threading.Thread | None = None

    @event.listens_for(database.engine, "commit")
    def _slow_commit(connection: object) -> None:  # runs before the driver's COMMIT
        if threading.current_thread() is threading.main_thread():
            committing.set()
            time.sleep(0.5)

    @event.listens_for(database.engine, "before_cursor_execute")
    def _started(*args: object) -> None:  # runs after the turn is taken (listened to later)
        if threading.current_thread() is second:
            statements.append(time.monotonic())

    @event.listens_for(database.engine, "after_cursor_execute")
    def _ended(*args: object) -> None:
        if threading.current_thread() is second:
            statements[-1] = time.monotonic() - statements[-1]

    def write_second() -> None:
        committing.wait(10)
        with database.session() as session:
            session.execute(text("INSERT INTO t VALUES (5)"))

    second = threading.Thread(target=write_second)
    second.start()
    with database.session() as session:
        session.execute(text("INSERT INTO t VALUES (4)"))
    second.join(30)
    assert statements and max(statements) < 0.2, f"the second writer's statements: {statements}"
    with database.session() as session:
        assert session.execute(text("SELECT count(*) FROM t")).scalar() == 3


def test_readiness_notices_a_database_locked_by_another_process(
    database: Database, write_lock_elsewhere: subprocess.Popen[str]
) -> None:
    started = time.monotonic()
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        database.ping(wait_seconds=0.5)
    assert time.monotonic() - started < 2.0
    write_lock_elsewhere.wait(30)
    database.ping(wait_seconds=0.5)  # the lock gone: ready again


def test_sqlite_is_in_wal_mode_so_readers_never_block_on_a_writer(database: Database) -> None:
    with database.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"


def test_units_of_work_that_write_run_on_one_connection(database: Database) -> None:
    """SQLite: every unit of work that says it writes, Core or ORM, runs on the process's one
    writer connection, whose page cache no other connection's commit makes stale."""
    seen = []
    for _ in range(3):
        with database.connection(writes=True) as connection:
            connection.execute(text("INSERT INTO t VALUES (4)"))
            seen.append(connection.connection.driver_connection)
        with database.session(writes=True) as session:
            session.execute(text("INSERT INTO t VALUES (5)"))
            seen.append(session.connection().connection.driver_connection)
    assert len({id(driver) for driver in seen}) == 1
    with database.connection() as connection:  # a read: a pooled connection of its own
        assert connection.connection.driver_connection is not seen[0]
        assert connection.execute(text("SELECT count(*) FROM t")).scalar() == 7


@pytest.mark.parametrize("unit", ["connection", "session"])
def test_a_unit_of_work_on_the_writer_that_raises_leaves_nothing_and_the_next_commits(
    database: Database, unit: str
) -> None:
    def write(value: int, *, fail: bool) -> None:
        work = database.connection if unit == "connection" else database.session
        with work(writes=True) as connection:
            connection.execute(text("INSERT INTO t VALUES (:value)"), {"value": value})
            if fail:
                raise RuntimeError("refused")

    with pytest.raises(RuntimeError):
        write(8, fail=True)
    write(9, fail=False)
    with database.connection() as connection:
        assert connection.execute(text("SELECT x FROM t ORDER BY x")).scalars().all() == [1, 9]
