"""Benchmark of cluster mode: images per second with one worker against two, same load.

    .venv/bin/python bench/cluster.py [--jobs 48] [--steps 20] [--size 64]

Starts, on loopback, a PostgreSQL database of its own (on the local server), a redis-server
of its own, one `pixelgate serve` replica and one, then two, `pixelgate worker --models
local/tiny` processes (one torch thread each). For each worker count it submits the same batch
of jobs at once and measures:

- images per second, from the first submission to the last job's end;
- how long a job waits before a worker takes it (started_at - created_at), p50 and p95.

It prints one table with the ratio two workers / one. A script, not a test: it takes a minute
or two and wants the machine to itself. On a 2-core machine the ceiling of the ratio is about
2 (one core per worker), less what the replica, Redis and PostgreSQL take.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import httpx
import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pixelgate.providers.local_diffusion import local_folder_name  # noqa: E402
from pixelgate.providers.tiny_model import build_tiny_pipeline  # noqa: E402

ADMIN_KEY = "pg_bench_admin_key_0123456789"
POSTGRES_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(check: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():  # type: ignore[operator]
                return
        except (httpx.TransportError, OSError):
            pass
        time.sleep(0.2)
    raise SystemExit(f"timed out waiting for {what}")


def run_round(
    env: dict[str, str], root: Path, workers: int, jobs: int, body: dict[str, object]
) -> dict[str, float]:
    """One API replica and `workers` workers over a fresh database and Redis."""
    database = "pixelgate_bench_" + uuid.uuid4().hex[:8]
    with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{database}"')
    redis_port = free_port()
    redis = subprocess.Popen(
        ["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    port = free_port()
    env = {
        **env,
        "PIXELGATE_DATABASE_URL": f"postgresql+psycopg://postgres@127.0.0.1:5432/{database}",
        "PIXELGATE_BROKER_URL": f"redis://127.0.0.1:{redis_port}/0",
        "PIXELGATE_REDIS_URL": f"redis://127.0.0.1:{redis_port}/1",
    }
    processes: list[subprocess.Popen[bytes]] = [redis]
    url = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
    try:
        log = (root / f"bench-{workers}.log").open("ab")
        # one host: the replica and the workers share a data directory (their results' storage)
        shared = {**env, "PIXELGATE_DATA_DIR": str(root / f"data-{workers}")}
        api_env = shared
        processes.append(
            subprocess.Popen(
                [sys.executable, "-m", "pixelgate", "serve", "--port", str(port)],
                env=api_env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
        wait_until(lambda: httpx.get(f"{url}/readyz").status_code == 200, 90, "the API replica")
        for _ in range(workers):
            worker_env = shared
            processes.append(
                subprocess.Popen(
                    [sys.executable, "-m", "pixelgate", "worker", "--models", "local/tiny"],
                    env=worker_env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
        wait_until(
            lambda: (
                len(httpx.get(f"{url}/v1/admin/workers", headers=headers).json()["data"]) >= workers
            ),
            120,
            f"{workers} workers",
        )
        with httpx.Client(base_url=url, headers=headers, timeout=120) as client:
            client.post("/v1/inference/images/generate", json={**body, "prompt": "warm up"})
            started = time.perf_counter()
            with ThreadPoolExecutor(16) as pool:
                ids = list(
                    pool.map(
                        lambda i: client.post(
                            "/v1/inference/images/generate",
                            json={**body, "prompt": f"job {i}", "seed": i, "async": True},
                        ).json()["data"]["id"],
                        range(jobs),
                    )
                )
            finished: dict[str, dict[str, object]] = {}
            while len(finished) < jobs:
                for job in client.get("/v1/jobs", params={"limit": 100}).json()["data"]:
                    if job["id"] in ids and job["status"] in ("succeeded", "failed"):
                        finished[job["id"]] = job
                time.sleep(0.5)  # light polling: the replica shares these cores
            elapsed = time.perf_counter() - started
        failed = [job for job in finished.values() if job["status"] != "succeeded"]
        if failed:
            raise SystemExit(f"{len(failed)} jobs failed: {failed[0]['error']}")
        waits = sorted(
            (_time(job["started_at"]) - _time(job["created_at"])) for job in finished.values()
        )
        runs = sorted(
            (_time(job["finished_at"]) - _time(job["started_at"])) for job in finished.values()
        )
        return {
            "images_per_second": jobs / elapsed,
            "run_p50": statistics.median(runs),
            "wait_p50": statistics.median(waits),
            "wait_p95": waits[int(0.95 * (len(waits) - 1))],
        }
    finally:
        for process in reversed(processes):
            process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
        with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


def _time(value: object) -> float:
    return datetime.fromisoformat(str(value)).timestamp()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=48)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--size", type=int, default=64)
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="pixelgate-bench-"))
    models = root / "models"
    build_tiny_pipeline(models / local_folder_name("builtin:tiny"))
    env = {
        **os.environ,
        "PIXELGATE_ADMIN_KEY": ADMIN_KEY,
        "PIXELGATE_SECRET_KEY": "bench-secret-key-0123456789abcdef",
        "PIXELGATE_MODELS_DIR": str(models),
        "PIXELGATE_TORCH_THREADS": "1",
        "PIXELGATE_LOG_LEVEL": "WARNING",
    }
    body = {"model": "local/tiny", "num_steps": args.steps, "width": args.size, "height": args.size}
    one = run_round(env, root, 1, args.jobs, body)
    two = run_round(env, root, 2, args.jobs, body)

    print(
        f"\ncluster mode, local/tiny {args.size}x{args.size}, {args.steps} steps, {args.jobs} jobs"
    )
    print(f"{'':>22} {'1 worker':>10} {'2 workers':>10} {'2 / 1':>8}")
    for name, label, digits in (
        ("images_per_second", "images/s", 2),
        ("run_p50", "job run time p50 (s)", 2),
        ("wait_p50", "queue wait p50 (s)", 2),
        ("wait_p95", "queue wait p95 (s)", 2),
    ):
        ratio = two[name] / one[name] if one[name] else float("nan")
        print(f"{label:>22} {one[name]:>10.{digits}f} {two[name]:>10.{digits}f} {ratio:>8.2f}")


if __name__ == "__main__":
    main()
