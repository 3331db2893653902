"""The job path alone, in process: `JobService.run` for a hosted model, as the OpenAI route
calls it, with no HTTP server in front, so that a change to the service layer shows apart from
the event loop's and uvicorn's costs (which `bench/gateway.py` includes, with their noise).

The runtime is the one `pixelgate serve` builds (SQLite, the in-process worker); `dall-e-2`
points at the gateway benchmark's fake OpenAI upstream (`bench/gateway.py --upstream`), run in
a process of its own. After `--warmup` requests it sends `--requests` one at a time (the
latency of one request), then twice as many, `--clients` at once, and reports requests/s, this
process's CPU a request and its threads' context switches a request (the upstream's excluded).

    PYTHONPATH=$PWD .venv/bin/python bench/job_path.py [--requests 300] [--clients 32]

To compare two trees, run each from its own checkout, interleaved, several times.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.gateway import GATEWAY_KEY, PATH, UPSTREAM_KEY, free_port


@contextmanager
def upstream() -> Iterator[str]:
    port = free_port()
    script = Path(__file__).with_name("gateway.py")
    child = subprocess.Popen(
        [sys.executable, str(script), "--upstream", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.post(url + PATH, timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or child.poll() is not None:
                    raise SystemExit("the upstream did not start") from None
                time.sleep(0.1)
        yield url
    finally:
        child.terminate()
        child.wait(10)


def context_switches() -> int:
    """This process's context switches so far, over its live threads."""
    total = 0
    for task in Path("/proc/self/task").iterdir():
        try:
            lines = (task / "status").read_text().splitlines()
        except OSError:
            continue  # a thread that ended meanwhile
        total += sum(int(line.split()[1]) for line in lines if "ctxt_switches:" in line)
    return total


async def measure(args: argparse.Namespace) -> str:
    from pixelgate.runtime import Runtime
    from pixelgate.service.jobs import ImageCommand
    from pixelgate.settings import Settings

    runtime = Runtime(Settings())
    runtime.start()
    try:
        principal = runtime.access.authenticate(f"Bearer {GATEWAY_KEY}")
        command = ImageCommand(
            task="generate",
            model="dall-e-2",
            options={"prompt": "a red fox in the snow", "size": "256x256"},
            response_format="b64_json",
        )

        async def stays() -> bool:
            return False

        async def one() -> None:
            await runtime.jobs.run(
                principal, command, timeout=30, disconnected=stays, answer=runtime.jobs.outputs
            )

        for _ in range(args.warmup):
            await one()
        started = time.perf_counter()
        for _ in range(args.requests):
            await one()
        alone_ms = (time.perf_counter() - started) / args.requests * 1000

        turns = asyncio.Semaphore(args.clients)

        async def client() -> None:
            async with turns:
                await one()

        count = 2 * args.requests
        cpu, switches, started = time.process_time(), context_switches(), time.perf_counter()
        await asyncio.gather(*(client() for _ in range(count)))
        seconds = time.perf_counter() - started
        cpu_ms = (time.process_time() - cpu) / count * 1000
        switched = (context_switches() - switches) / count
    finally:
        runtime.stop()
    return (
        f"one at a time {alone_ms:.2f} ms a request; {args.clients} at once "
        f"{count / seconds:.0f} requests/s, {cpu_ms:.2f} ms of CPU and {switched:.1f} context "
        "switches a request"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--clients", type=int, default=32)
    args = parser.parse_args()
    with upstream() as url, tempfile.TemporaryDirectory(prefix="pixelgate-job-path-") as work:
        os.environ.update(
            PIXELGATE_DATA_DIR=work,
            PIXELGATE_ADMIN_KEY=GATEWAY_KEY,
            PIXELGATE_OPENAI_BASE_URL=url,
            PIXELGATE_OPENAI_API_KEY=UPSTREAM_KEY,
        )
        import uvloop

        print(uvloop.run(measure(args)), flush=True)


if __name__ == "__main__":
    main()
