"""A request's cost against the number of jobs stored (issue 20, item 1): pixelgate with
`--history` (100,000) jobs on record against pixelgate on an empty database, on SQLite and on
PostgreSQL.

Per database engine, two `pixelgate serve` processes run side by side, as shipped (embedded
mode, its in-process worker, `local/tiny` preloaded), each on a database of its own: one
empty, one seeded with the history. Both are driven over HTTP with the bootstrap admin key
(the `default` tenant), one request at a time, in five cases:

    cached repeat      the same seeded `local/tiny` request again (`response_format: url`),
                       served from the result cache
    uncached generate  a `local/tiny` request with a fresh prompt and seed and
                       `Cache-Control: no-cache`: a job computed by the model
    job list           `GET /v1/jobs?limit=20`
    file list          `GET /v1/files?limit=20` (item 3: each file with its job's prompt)
    usage report       `GET /v1/usage` (item 5: the last 30 days, by model and by day)

The history is the default tenant's, written by bulk inserts of valid rows into pixelgate's
own tables (`pixelgate.db.tables`): half of it cache hits of the cached repeat's request (each
a succeeded `cached` job with its own file record over the same stored bytes, and its event),
as a popular request leaves them; the other half computed `local/tiny` jobs, each with its
own cache key, file record and events (queued, running, then succeeded, or failed for one in
twenty, with no file), created over the past 30 days; and their usage by day
(`usage_daily`), as settling them would have summed it. PostgreSQL is then analyzed, as its
autovacuum would; SQLite is not (pixelgate never analyzes it).

Measured in `--pairs` (15) interleaved pairs: in each, every case is measured on one server
and then the other (the order alternates pair by pair), each measurement the median of
`--repeats` (5) requests; the ratio history / empty is taken within each pair, and the median
ratio and its spread (min-max) are printed with the medians of each side, against the target
(each within 1.1x). Beside each, the CPU time a request cost the server (its processes'
threads, from /proc/<pid>/task/*/schedstat; on PostgreSQL with the database's processes that
serve its connections): time spent waiting for a CPU, which other work on a shared machine
adds to latency, is not in it. The load average and CPU pressure are printed before and after.
The servers run the pixelgate this script imports (`PYTHONPATH` picks a checkout), and each
run prints the schema revision they migrated the database to.

    .venv/bin/python bench/history.py [--history 100000] [--pairs 15] [--repeats 5]
        [--engines sqlite,postgresql]

`--history 0` is the control: two servers on empty databases, measured alike; its ratios
show how far two identical sides drift apart on this machine.

PostgreSQL is the local server (`--postgres`, postgresql://postgres@127.0.0.1:5432: trust
auth); each run creates its two databases and drops them at the end. Nothing is downloaded:
`local/tiny` is built from random weights on first use.
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import cpu_pressure, process_tree

ADMIN_KEY = "pg_bench_admin_key_0123456789"
MODEL = "local/tiny"
GENERATE = "/v1/inference/images/generate"
CACHED_BODY = {"model": MODEL, "prompt": "a red circle", "seed": 7, "response_format": "url"}
TARGET = 1.1
CHUNK = 5000
"""Rows per bulk insert."""


# -- numbers ---------------------------------------------------------------------------------


@dataclass
class Series:
    values: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.values) if self.values else float("nan")

    def spread(self) -> str:
        return f"{min(self.values):.2f}-{max(self.values):.2f}" if self.values else ""


def cpu_seconds(pid: int) -> float:
    """CPU time of a process's live threads, in nanoseconds' resolution (schedstat), where
    /proc/<pid>/stat counts clock ticks of 10 ms: a cached repeat costs less than one."""
    total = 0
    with suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with suppress(OSError, ValueError):
                total += int((task / "schedstat").read_text().split()[0])
    return total / 1e9


def backends(database_url: str) -> set[int]:
    """The PostgreSQL server processes connected to the database, but for this script's own."""
    import psycopg

    url = database_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(url, autocommit=True) as connection:
        rows = connection.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
            " AND pid <> pg_backend_pid()"
        ).fetchall()
    return {int(row[0]) for row in rows}


# -- servers ---------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    name: str
    url: str
    database_url: str
    http: httpx.Client
    pid: int
    counter: int = 0

    def cpu(self) -> float:
        """CPU seconds spent so far by this server's processes and, on PostgreSQL, by the
        database's server processes that serve its connections."""
        pids = process_tree(self.pid)
        if not self.database_url.startswith("sqlite"):
            pids |= backends(self.database_url)
        return sum(cpu_seconds(pid) for pid in pids)

    def cached_repeat(self) -> float:
        return self._timed("POST", GENERATE, CACHED_BODY, cached=True)

    def uncached_generate(self) -> float:
        self.counter += 1
        body = {
            "model": MODEL,
            "prompt": f"a blue square number {self.counter}",
            "seed": 100_000 + self.counter,
            "response_format": "url",
        }
        no_cache = {"Cache-Control": "no-cache"}
        return self._timed("POST", GENERATE, body, headers=no_cache, cached=False)

    def job_list(self) -> float:
        return self._timed("GET", "/v1/jobs?limit=20", None)

    def file_list(self) -> float:
        return self._timed("GET", "/v1/files?limit=20", None)

    def usage_report(self) -> float:
        return self._timed("GET", "/v1/usage", None)

    def _timed(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None,
        *,
        headers: dict[str, str] | None = None,
        cached: bool | None = None,
    ) -> float:
        started = time.perf_counter()
        response = self.http.request(method, path, json=body, headers=headers)
        elapsed = time.perf_counter() - started
        if response.status_code != 200:
            raise RuntimeError(f"{self.name}: HTTP {response.status_code}: {response.text[:500]}")
        if cached is not None and response.json()["data"].get("cached") is not cached:
            raise RuntimeError(f"{self.name}: expected cached={cached}: {response.text[:300]}")
        return elapsed


@contextmanager
def serve(work: Path, name: str, database_url: str) -> Iterator[Server]:
    """`pixelgate serve` on its own data folder and database, `local/tiny` preloaded."""
    data = work / name.replace(" ", "-").replace(",", "")
    data.mkdir()
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("PIXELGATE_")}
    env |= {
        "PIXELGATE_DATA_DIR": str(data),
        "PIXELGATE_MODELS_DIR": str(work / "models"),
        "PIXELGATE_DATABASE_URL": database_url,
        "PIXELGATE_ADMIN_KEY": ADMIN_KEY,
        "PIXELGATE_PRELOAD_MODELS": f'["{MODEL}"]',
        "PIXELGATE_DEVICE": "cpu",
    }
    log = data.with_suffix(".log")
    command = [sys.executable, "-m", "pixelgate", "serve", "--port", str(port)]
    with log.open("wb") as out:
        # run from the folder of the pixelgate this script imported, so that `-m pixelgate`
        # serves that code (the working directory comes first on a `-m` module's path)
        process = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=source_root()
        )
        url = f"http://127.0.0.1:{port}"
        http = httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=120
        )
        try:
            deadline = time.monotonic() + 300
            while not _ready(http):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"pixelgate serve ({name}) did not start; see {log}")
                time.sleep(0.2)
            yield Server(name, url, database_url, http, process.pid)
        finally:
            http.close()
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def source_root() -> Path:
    import pixelgate

    return Path(pixelgate.__file__).resolve().parent.parent


def _ready(http: httpx.Client) -> bool:
    try:
        return http.get("/readyz", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


@contextmanager
def postgres_database(admin_url: str, role: str) -> Iterator[str]:
    import psycopg

    name = f"pixelgate_history_{role}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(f"{admin_url}/postgres", autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{admin_url.replace('postgresql://', 'postgresql+psycopg://')}/{name}"
    finally:
        with psycopg.connect(f"{admin_url}/postgres", autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# -- the history -----------------------------------------------------------------------------


def seed_history(database_url: str, jobs: int) -> float:
    """Write `jobs` jobs of the default tenant (see the module's docstring); seconds taken."""
    from sqlalchemy import insert, select

    from pixelgate.db import Database
    from pixelgate.db.rows import table
    from pixelgate.db.tables import Job, JobEvent, StoredFile
    from pixelgate.service.billing import add_usage_statement

    started = time.perf_counter()
    db = Database(database_url)
    with db.session() as session:
        hit = session.scalars(
            select(Job).where(
                Job.cached.is_(False), Job.cache_key.is_not(None), Job.cache_bypassed.is_(False)
            )
        ).one()
        blob = session.scalars(select(StoredFile).where(StoredFile.job_id == hit.id)).one()
    now = datetime.now(UTC)
    start = now - timedelta(days=30)
    step = (now - timedelta(minutes=10) - start) / max(jobs, 1)
    job_rows: list[dict[str, Any]] = []
    event_rows: list[dict[str, Any]] = []
    file_rows: list[dict[str, Any]] = []
    images_by_day: Counter[str] = Counter()
    jobs_by_day: Counter[str] = Counter()

    def flush() -> None:
        with db.engine.begin() as connection:
            connection.execute(insert(table(Job)), job_rows)
            if file_rows:
                connection.execute(insert(table(StoredFile)), file_rows)
            connection.execute(insert(table(JobEvent)), event_rows)
        for rows in (job_rows, event_rows, file_rows):
            rows.clear()

    for number in range(jobs):
        at = start + step * number
        job_id = "job_" + secrets.token_hex(12)
        file_id = "file_" + secrets.token_hex(12)
        copy = number % 2 == 0
        failed = not copy and number % 20 == 1
        seed = 1_000_000 + number
        options = hit.options if copy else {**hit.options, "seed": seed, "prompt": f"p{number}"}
        image = {"file_id": file_id, "seed": options.get("seed"), "revised_prompt": None}
        job_rows.append(
            {
                "id": job_id,
                "tenant_id": hit.tenant_id,
                "api_key_id": hit.api_key_id,
                "task": "generate",
                "model": hit.model,
                "status": "failed" if failed else "succeeded",
                "options": options,
                "prompt": options["prompt"],
                "inputs": None,
                "response_format": "url",
                "metadata": None,
                "result": None if failed else {"created": int(at.timestamp()), "images": [image]},
                "error_code": "BACKEND_ERROR" if failed else None,
                "error_message": "the model failed" if failed else None,
                "error_param": None,
                "attempts": 0 if copy else 1,
                "cancel_requested": False,
                "worker_id": None if copy else "bench-worker",
                "lease_expires_at": None,
                "enqueued_at": at,
                "cache_key": hit.cache_key if copy else secrets.token_hex(32),
                "cached": copy,
                "cache_bypassed": False,
                "created_at": at,
                "started_at": at,
                "finished_at": at + (timedelta(0) if copy else timedelta(milliseconds=80)),
            }
        )
        day = at.date().isoformat()
        jobs_by_day[day] += 1
        if not failed:
            images_by_day[day] += 1
            file_rows.append(
                {
                    "id": file_id,
                    "tenant_id": hit.tenant_id,
                    "job_id": job_id,
                    "blob_key": blob.blob_key,
                    "content_type": blob.content_type,
                    "size_bytes": blob.size_bytes,
                    "width": blob.width,
                    "height": blob.height,
                    "created_at": at,
                    "expires_at": at + timedelta(days=30),
                }
            )
        ends = [("succeeded", {"cached": True})] if copy else [
            ("queued", {}), ("running", {"attempt": 1}),
            ("failed" if failed else "succeeded", {}),
        ]  # fmt: skip
        event_rows.extend(
            {"job_id": job_id, "type": kind, "data": data, "created_at": at} for kind, data in ends
        )
        if len(job_rows) >= CHUNK:
            flush()
    if job_rows:
        flush()
    usage_rows = [
        {
            "tenant_id": hit.tenant_id,
            "day": day,
            "model": hit.model,
            "spent": 0,
            "images": images_by_day[day],
            "jobs": count,
        }
        for day, count in sorted(jobs_by_day.items())
    ]
    with db.engine.begin() as connection:  # today's row may exist: the warm-up's job
        connection.execute(add_usage_statement(db.engine.dialect.name), usage_rows)
    if not db.is_sqlite:
        with db.engine.connect() as connection:
            connection.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("ANALYZE")
    db.dispose()
    return time.perf_counter() - started


def stored(database_url: str) -> tuple[int, str]:
    """Jobs on record, and the schema's revision (the migrations the server ran: this
    checkout's, when its code is the one served)."""
    from sqlalchemy import func, select, text

    from pixelgate.db import Database
    from pixelgate.db.tables import Job

    db = Database(database_url)
    with db.session() as session:
        count = int(session.scalar(select(func.count()).select_from(Job)) or 0)
        revision = str(session.scalar(text("SELECT version_num FROM alembic_version")))
    db.dispose()
    return count, revision


# -- measuring -------------------------------------------------------------------------------

CASES: dict[str, Callable[[Server], float]] = {
    "cached repeat": Server.cached_repeat,
    "uncached generate": Server.uncached_generate,
    "GET /v1/jobs?limit=20": Server.job_list,
    "GET /v1/files?limit=20": Server.file_list,
    "GET /v1/usage": Server.usage_report,
}


SERIES = ("empty", "history", "ratio", "cpu empty", "cpu history", "cpu ratio")


def measure(empty: Server, full: Server, pairs: int, repeats: int) -> dict[str, dict[str, Series]]:
    """Per case: each side's median latency (ms) and the ratio, pair by pair; and the same of
    the CPU time a request cost the side (ms; its mean over the pair's requests)."""
    results = {case: {name: Series() for name in SERIES} for case in CASES}
    for pair in range(pairs):
        order = [("empty", empty), ("history", full)]
        if pair % 2:
            order.reverse()
        for case, run in CASES.items():
            taken: dict[str, float] = {}
            spent: dict[str, float] = {}
            for side, server in order:
                before = server.cpu()
                taken[side] = statistics.median(run(server) for _ in range(repeats))
                spent[side] = (server.cpu() - before) / repeats
                results[case][side].values.append(taken[side] * 1000)
                results[case][f"cpu {side}"].values.append(spent[side] * 1000)
            results[case]["ratio"].values.append(taken["history"] / taken["empty"])
            results[case]["cpu ratio"].values.append(spent["history"] / spent["empty"])
    return results


def report(engine: str, history: int, results: dict[str, dict[str, Series]]) -> str:
    lines = [
        f"{engine}: {history:,} jobs stored against an empty database (medians; latency and "
        "the server's CPU time per request, in ms)",
        "",
        "| case | empty | history | history / empty (spread) | target "
        "| CPU empty | CPU history | CPU history / empty (spread) |",
        "|---|---:|---:|---:|---|---:|---:|---:|",
    ]
    for case, series in results.items():
        ratio, cpu = series["ratio"], series["cpu ratio"]
        met = "met" if ratio.median <= TARGET else "MISSED"
        lines.append(
            f"| {case} | {series['empty'].median:.1f} | {series['history'].median:.1f} "
            f"| {ratio.median:.2f}x ({ratio.spread()}) | <= {TARGET}x: {met} "
            f"| {series['cpu empty'].median:.1f} | {series['cpu history'].median:.1f} "
            f"| {cpu.median:.2f}x ({cpu.spread()}) |"
        )
    return "\n".join(lines)


def warm_up(server: Server) -> None:
    """The cached repeat computed once (then served), the other cases run a few times."""
    server.http.post(GENERATE, json=CACHED_BODY).raise_for_status()
    for _ in range(3):
        server.cached_repeat()
        server.uncached_generate()
        server.job_list()


def run_engine(engine: str, args: argparse.Namespace, work: Path) -> str:
    with ExitStack() as stack:
        if engine == "sqlite":
            urls = [f"sqlite:///{work / engine}-{side}.db" for side in ("empty", "history")]
        else:
            urls = [
                stack.enter_context(postgres_database(args.postgres, side))
                for side in ("empty", "history")
            ]
        empty = stack.enter_context(serve(work, f"{engine} empty", urls[0]))
        warm_up(empty)
        full = stack.enter_context(serve(work, f"{engine} history", urls[1]))
        warm_up(full)
        seconds = seed_history(full.database_url, args.history)
        count, revision = stored(full.database_url)
        print(
            f"{engine}: seeded {args.history:,} jobs in {seconds:.0f} s "
            f"({count:,} stored; schema revision {revision})"
        )
        warm_up(full)
        print(f"{engine}: measuring; {cpu_pressure()}", flush=True)
        results = measure(empty, full, args.pairs, args.repeats)
        print(f"{engine}: measured; {cpu_pressure()}", flush=True)
        return report(engine, args.history, results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--history", type=int, default=100_000)
    parser.add_argument("--pairs", type=int, default=15)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--engines", default="sqlite,postgresql")
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432")
    args = parser.parse_args()
    print(f"pixelgate from {source_root()}; {cpu_pressure()}", flush=True)
    reports = []
    with tempfile.TemporaryDirectory(prefix="pixelgate-history-") as folder:
        for engine in args.engines.split(","):
            reports.append(run_engine(engine, args, Path(folder)))
            print(reports[-1] + "\n", flush=True)
    print("\n\n".join(reports))


if __name__ == "__main__":
    with suppress(KeyboardInterrupt):
        main()
