"""pixelgate as an OpenAI-compatible gateway, against the LiteLLM proxy, on loopback.

Both gateways forward `POST /v1/images/generations` to the same fake OpenAI upstream (a fixed
64x64 PNG in `b64_json`, no delay). The same client load drives each in turn: `--clients`
concurrent clients (32) sending `--requests` requests (2000) after `--warmup` requests. The
upstream is also driven directly, under the same load, so each gateway's added latency is its
own latency minus the upstream's, measured in the same run. The targets take turns in
`--rounds` rounds (4; 500 requests each per round), so that the machine's drift during the
run falls on all of them alike.

    .venv/bin/python bench/gateway.py [--litellm PATH] [--requests 2000] [--clients 32] [--rounds 4]
        [--no-pin]

Each gateway runs on a core of its own (`--pin`, the default on a machine with two cores or
more: the gateway on the last core, this script's clients and the upstream on the others), so
that both get the same CPU and neither competes with the load. Each result also gives the
gateway's CPU time per request (`/proc/<pid>/stat`, the gateway's processes summed), which
the machine's drift moves far less than requests/s, and its context switches per request
(`/proc/<pid>/task/*/status`): threads handing the GIL to one another show there. `--no-pin`
lets every process run anywhere.

pixelgate runs as shipped (`pixelgate serve`: SQLite, its in-process worker, every request a
durable, billed job whose image is stored). LiteLLM runs as `litellm --config` with one model
entry aimed at the upstream. LiteLLM is not a pixelgate dependency: install it apart, e.g.
`python3.11 -m venv /work/litellm-venv && /work/litellm-venv/bin/pip install 'litellm[proxy]'`,
and pass `--litellm /work/litellm-venv/bin/litellm` (or put `litellm` on PATH).

The upstream is a bare ASGI app under uvicorn (uvloop, httptools) in its own process, so that it
is never the bottleneck; it speaks the part of OpenAI's protocol the tests' fake upstream
(`tests/providers/upstreams/openai.py`) speaks for a generation answered in base64.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

import httpx

UPSTREAM_KEY = "sk-bench-upstream-0123456789"
GATEWAY_KEY = "pg_bench_admin_key_0123456789"
LITELLM_KEY = "sk-" + "5eb1" * 16
"""LiteLLM's master key: it refuses to start without one; without a database it is the only key."""
BODY = {
    "model": "dall-e-2",
    "prompt": "a red fox in the snow",
    "size": "256x256",
    "response_format": "b64_json",
}
PATH = "/v1/images/generations"
ROOT = Path(__file__).resolve().parent.parent


# -- the upstream ----------------------------------------------------------------------------


def _png() -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 40, 40)).save(buffer, format="PNG")
    return buffer.getvalue()


def upstream_app() -> Callable[..., Awaitable[None]]:
    """OpenAI's `POST /v1/images/generations`, always answering the same PNG in b64_json."""
    answer = json.dumps(
        {"created": 1_700_000_000, "data": [{"b64_json": base64.b64encode(_png()).decode()}]}
    ).encode()
    denied = json.dumps(
        {"error": {"message": "Incorrect API key", "type": "invalid_request_error"}}
    ).encode()
    authorization = f"Bearer {UPSTREAM_KEY}".encode()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        more = True
        while more:  # drain the body
            message = await receive()
            more = message.get("more_body", False)
        ok = (b"authorization", authorization) in scope["headers"]
        if scope["path"] != PATH:
            status, body = 404, b'{"error": {"message": "Invalid URL"}}'
        else:
            status, body = (200, answer) if ok else (401, denied)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    return app


def serve_upstream(port: int) -> None:
    import uvicorn

    uvicorn.run(
        upstream_app(),
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
    )


# -- processes -------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def split_cores(pin: bool) -> tuple[set[int] | None, set[int] | None]:
    """The cores for the gateways and for the load (clients and upstream); None: anywhere."""
    cores = sorted(os.sched_getaffinity(0))
    if not pin or len(cores) < 2:
        return None, None
    return {cores[-1]}, set(cores[:-1])


Number = TypeVar("Number", int, float)
SWITCH_FIELDS = ("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")


@dataclass(frozen=True)
class Usage:
    """What a process and every process under it have spent so far."""

    cpu_seconds: float
    switches: dict[int, int]
    """Context switches so far of each thread alive now, by thread id."""

    def since(self, before: Usage) -> tuple[float, int]:
        """CPU seconds and context switches spent between `before` and this. A thread that
        ended in between takes its switches with it: the count is a floor."""
        switches = sum(count - before.switches.get(tid, 0) for tid, count in self.switches.items())
        return self.cpu_seconds - before.cpu_seconds, switches


def usage(pid: int) -> Usage:
    """The CPU time (user and system) and the threads' context switches of a process and of
    every process under it."""
    stats: dict[int, list[str]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:  # fields after the command's name: state, ppid, ..., utime (11), stime (12)
                stats[int(entry.name)] = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:  # gone meanwhile
                continue
    family, todo = set(), [pid]
    while todo:
        current = todo.pop()
        family.add(current)
        todo.extend(child for child, fields in stats.items() if int(fields[1]) == current)
    members = family & stats.keys()
    ticks = sum(int(stats[member][11]) + int(stats[member][12]) for member in members)
    switches: dict[int, int] = {}
    for member in members:
        switches.update(_thread_switches(member))
    return Usage(ticks / os.sysconf("SC_CLK_TCK"), switches)


def _thread_switches(pid: int) -> dict[int, int]:
    """Each of a process's threads' context switches, voluntary and not."""
    counts = {}
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            lines = (task / "status").read_text().splitlines()
        except OSError:  # gone meanwhile
            continue
        fields = dict(line.split(":", 1) for line in lines if ":" in line)
        counts[int(task.name)] = sum(int(fields[name]) for name in SWITCH_FIELDS if name in fields)
    return counts


@contextmanager
def process(
    command: list[str],
    *,
    ready_url: str,
    log: Path,
    env: dict[str, str] | None = None,
    cpus: set[int] | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    """Start `command` (on `cpus` only, when given), wait until `ready_url` answers 200, stop it
    (SIGTERM, then SIGKILL)."""
    with log.open("wb") as out:
        child = subprocess.Popen(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            preexec_fn=None if cpus is None else lambda: os.sched_setaffinity(0, cpus),
        )
        try:
            deadline = time.monotonic() + 180
            while True:
                if child.poll() is not None:
                    raise SystemExit(
                        f"{command[0]} exited early; see {log}:\n{log.read_text()[-3000:]}"
                    )
                try:
                    if httpx.get(ready_url, timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise SystemExit(f"{command[0]} did not get ready; see {log}")
                time.sleep(0.2)
            yield child
        finally:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
                try:
                    child.wait(20)
                except subprocess.TimeoutExpired:
                    child.kill()
                    child.wait()


# -- the load --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Result:
    name: str
    requests: int
    seconds: float
    latencies: list[float]
    errors: int
    cpu_seconds: float | None = None
    """The gateway's CPU time over these requests (None for the upstream driven directly)."""
    switches: int | None = None
    """The gateway's threads' context switches over these requests (None likewise)."""

    @property
    def throughput(self) -> float:
        return self.requests / self.seconds

    @property
    def cpu_ms_per_request(self) -> float | None:
        return None if self.cpu_seconds is None else self.cpu_seconds / self.requests * 1000

    @property
    def switches_per_request(self) -> float | None:
        return None if self.switches is None else self.switches / self.requests

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def drive(name: str, url: str, key: str, *, clients: int, requests: int) -> Result:
    """`clients` tasks, each over its own connection, send `requests` requests in all. The
    clients are made before the clock starts: making one (its TLS context) costs more CPU than
    several requests."""
    latencies: list[float] = []
    errors = 0
    remaining = requests

    async def client(http: httpx.AsyncClient) -> None:
        nonlocal remaining, errors
        while remaining > 0:
            remaining -= 1
            started = time.perf_counter()
            response = await http.post(url, json=BODY)
            elapsed = time.perf_counter() - started
            if response.status_code != 200 or not response.json()["data"][0].get("b64_json"):
                errors += 1
                if errors <= 3:
                    print(f"  {name}: HTTP {response.status_code} {response.text[:300]}")
            latencies.append(elapsed)

    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    https = [
        httpx.AsyncClient(limits=limits, timeout=120, headers={"Authorization": f"Bearer {key}"})
        for _ in range(clients)
    ]
    try:
        started = time.perf_counter()
        await asyncio.gather(*(client(http) for http in https))
        seconds = time.perf_counter() - started
    finally:
        for http in https:
            await http.aclose()
    return Result(name, requests, seconds, latencies, errors)


@dataclass(frozen=True)
class Target:
    name: str
    url: str
    key: str
    pid: int | None = None
    """The gateway's process, whose CPU time is counted."""


def measure(targets: list[Target], args: argparse.Namespace) -> list[Result]:
    """Warm every target, then drive them in turn, a round at a time: each round sends each
    target `requests / rounds` requests. Taking turns spreads the machine's drift (other work,
    a CPU slowed by its neighbours) over every target instead of landing on whichever ran last.
    A target's result adds up its rounds: requests over the time spent on them, percentiles
    over all its latencies."""
    for target in targets:
        asyncio.run(
            drive(target.name, target.url, target.key, clients=args.clients, requests=args.warmup)
        )
    share = args.requests // args.rounds
    rounds: dict[str, list[Result]] = {target.name: [] for target in targets}
    for number in range(1, args.rounds + 1):
        line = []
        for target in targets:
            before = usage(target.pid) if target.pid is not None else None
            result = asyncio.run(
                drive(target.name, target.url, target.key, clients=args.clients, requests=share)
            )
            if target.pid is not None and before is not None:
                spent, switched = usage(target.pid).since(before)
                result = replace(result, cpu_seconds=spent, switches=switched)
            rounds[target.name].append(result)
            line.append(f"{target.name} {result.throughput:.0f} req/s")
        print(f"  round {number}: " + ", ".join(line), flush=True)
    totals = [
        Result(
            name,
            sum(result.requests for result in results),
            sum(result.seconds for result in results),
            [latency for result in results for latency in result.latencies],
            sum(result.errors for result in results),
            _total([result.cpu_seconds for result in results]),
            _total([result.switches for result in results]),
        )
        for name, results in rounds.items()
    ]
    for result in totals:
        cpu, switches = result.cpu_ms_per_request, result.switches_per_request
        print(
            f"  {result.name}: {result.throughput:.0f} req/s, p50 {result.percentile(0.5):.1f} ms, "
            f"p99 {result.percentile(0.99):.1f} ms, {result.errors} errors"
            + ("" if cpu is None else f", {cpu:.2f} ms of CPU a request")
            + ("" if switches is None else f", {switches:.1f} context switches a request"),
            flush=True,
        )
    return totals


def _total(values: list[Number | None]) -> Number | None:
    """The rounds' values added up (None when a round has none)."""
    present = [value for value in values if value is not None]
    return None if len(present) < len(values) else sum(present)


def table(upstream: Result, pixelgate: Result, litellm: Result | None) -> str:
    def added(result: Result, q: float) -> float:
        return result.percentile(q) - upstream.percentile(q)

    def cpu(result: Result) -> str:
        value = result.cpu_ms_per_request
        return "" if value is None else f"{value:.2f}"

    def switches(result: Result) -> str:
        value = result.switches_per_request
        return "" if value is None else f"{value:.1f}"

    rows = [
        "| | requests/s | p50 ms | p99 ms | added p50 ms | added p99 ms | CPU ms a request "
        "| context switches a request | errors |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        f"| upstream, direct | {upstream.throughput:.0f} | {upstream.percentile(0.5):.1f} | "
        f"{upstream.percentile(0.99):.1f} | | | | | {upstream.errors} |",
    ]
    for result in (pixelgate, litellm):
        if result is not None:
            rows.append(
                f"| {result.name} | {result.throughput:.0f} | {result.percentile(0.5):.1f} | "
                f"{result.percentile(0.99):.1f} | {added(result, 0.5):.1f} | "
                f"{added(result, 0.99):.1f} | {cpu(result)} | {switches(result)} | "
                f"{result.errors} |"
            )
    if litellm is not None:
        speed = pixelgate.throughput / litellm.throughput
        p50 = added(pixelgate, 0.5) / added(litellm, 0.5)
        p99 = added(pixelgate, 0.99) / added(litellm, 0.99)
        mine, theirs = pixelgate.cpu_ms_per_request, litellm.cpu_ms_per_request
        cpu_ratio = "" if mine is None or theirs is None else f"{mine / theirs:.2f}x"
        rows.append(
            f"| pixelgate / LiteLLM | **{speed:.2f}x** (goal ≥ 3x) | | | "
            f"**{p50:.2f}x** (goal ≤ 0.25x) | {p99:.2f}x | {cpu_ratio} | | |"
        )
    return "\n".join(rows)


def find_litellm(given: str | None) -> str | None:
    for candidate in (given, os.environ.get("LITELLM_BIN"), shutil.which("litellm")):
        if candidate and Path(candidate).exists():
            return candidate
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument(
        "--rounds", type=int, default=4, help="turns each target takes; requests are split evenly"
    )
    parser.add_argument("--litellm", help="the litellm executable (LiteLLM's proxy)")
    parser.add_argument("--only", choices=["pixelgate", "litellm"], help="run one gateway only")
    parser.add_argument(
        "--no-pin",
        dest="pin",
        action="store_false",
        help="let the gateways, the clients and the upstream share every core",
    )
    parser.add_argument("--upstream", type=int, help=argparse.SUPPRESS)  # the child process
    args = parser.parse_args()
    if args.upstream:
        serve_upstream(args.upstream)
        return
    litellm_bin = find_litellm(args.litellm)
    if litellm_bin is None and args.only != "pixelgate":
        raise SystemExit(
            "LiteLLM's proxy is not installed. It is not a pixelgate dependency; "
            "install it apart:\n"
            "  python3.11 -m venv /work/litellm-venv\n"
            "  /work/litellm-venv/bin/pip install 'litellm[proxy]'\n"
            "then run with --litellm /work/litellm-venv/bin/litellm "
            "(or --only pixelgate to skip it)."
        )
    work = Path(tempfile.mkdtemp(prefix="pixelgate-bench-"))
    upstream_port = free_port()
    upstream_url = f"http://127.0.0.1:{upstream_port}"
    gateway_cpus, load_cpus = split_cores(args.pin)
    if load_cpus is not None:
        os.sched_setaffinity(0, load_cpus)  # this script's clients, and the upstream it starts
    cores = "any core" if gateway_cpus is None else f"gateways on cores {sorted(gateway_cpus)}"
    print(
        f"{args.clients} clients, {args.requests} requests after {args.warmup} warm-up, "
        f"in {args.rounds} rounds; {cores}; in {work}"
    )
    with _upstream(upstream_port, work), ExitStack() as gateways:
        targets = [Target("upstream, direct", upstream_url + PATH, UPSTREAM_KEY)]
        if args.only != "litellm":
            targets.append(gateways.enter_context(_pixelgate(upstream_url, work, gateway_cpus)))
        if args.only != "pixelgate" and litellm_bin is not None:
            targets.append(
                gateways.enter_context(_litellm(litellm_bin, upstream_url, work, gateway_cpus))
            )
        results = {result.name: result for result in measure(targets, args)}
    if "pixelgate" in results:
        print()
        print(
            table(results["upstream, direct"], results["pixelgate"], results.get("LiteLLM proxy"))
        )
    shutil.rmtree(work, ignore_errors=True)


@contextmanager
def _upstream(port: int, work: Path) -> Iterator[None]:
    """The upstream in its own process; ready when it answers (401 without a key)."""
    log = (work / "upstream.log").open("wb")
    child = subprocess.Popen(
        [sys.executable, __file__, "--upstream", str(port)], stdout=log, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.post(f"http://127.0.0.1:{port}{PATH}", timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or child.poll() is not None:
                    raise SystemExit("the upstream did not start") from None
                time.sleep(0.1)
        yield
    finally:
        child.send_signal(signal.SIGTERM)
        child.wait(10)
        log.close()


@contextmanager
def _pixelgate(upstream_url: str, work: Path, cpus: set[int] | None) -> Iterator[Target]:
    port = free_port()
    env = {
        "PIXELGATE_DATA_DIR": str(work / "pixelgate-data"),
        "PIXELGATE_ADMIN_KEY": GATEWAY_KEY,
        "PIXELGATE_OPENAI_BASE_URL": upstream_url,
        "PIXELGATE_OPENAI_API_KEY": UPSTREAM_KEY,
    }
    command = [sys.executable, "-m", "pixelgate", "serve", "--port", str(port)]
    with process(
        command,
        ready_url=f"http://127.0.0.1:{port}/readyz",
        log=work / "pixelgate.log",
        env=env,
        cpus=cpus,
    ) as child:
        yield Target("pixelgate", f"http://127.0.0.1:{port}{PATH}", GATEWAY_KEY, child.pid)


@contextmanager
def _litellm(
    litellm_bin: str, upstream_url: str, work: Path, cpus: set[int] | None
) -> Iterator[Target]:
    port = free_port()
    config = work / "litellm.yaml"
    config.write_text(
        "model_list:\n"
        "  - model_name: dall-e-2\n"
        "    litellm_params:\n"
        "      model: openai/dall-e-2\n"
        f"      api_base: {upstream_url}/v1\n"
        f"      api_key: {UPSTREAM_KEY}\n"
        "general_settings:\n"
        f"  master_key: {LITELLM_KEY}\n"
    )
    command = [litellm_bin, "--config", str(config), "--port", str(port), "--num_workers", "1"]
    with process(
        command,
        ready_url=f"http://127.0.0.1:{port}/health/liveliness",
        log=work / "litellm.log",
        cpus=cpus,
    ) as child:
        yield Target("LiteLLM proxy", f"http://127.0.0.1:{port}{PATH}", LITELLM_KEY, child.pid)


if __name__ == "__main__":
    main()
