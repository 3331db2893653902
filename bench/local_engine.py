"""pixelgate's local engine against the same pipeline called directly, and against Aquiles-Image.

pixelgate is a black box here: `pixelgate serve` in a child process with its shipped defaults
(no batch size, thread count or other tuning set; only where its data, models and operator
catalog live, and the device), driven over HTTP on its native route
(`POST /v1/inference/images/generate`, `response_format: b64_json`, so each image comes back in
the answer; `Cache-Control: no-cache`, so no result comes from the cache). Each request names
only the model, a prompt and a seed: size, steps and guidance are the catalog entry's defaults.

The anchors do the same work in this process, the way a server would run it: the pipeline is
loaded and called from a worker thread (a one-thread `ThreadPoolExecutor`), with diffusers' and
torch's defaults (torch's default thread count and backends; fp32 on CPU, on CUDA the dtype
pixelgate picks: bf16 where supported, else fp16), the same scheduler, steps, guidance and size,
one CPU `torch.Generator` per image as pixelgate passes them, under `torch.inference_mode()`,
images returned as PIL images.

    direct             one pipeline call of one prompt
    direct batch of 8  one pipeline call of 8 prompts, each with its own seed
    8 sequential       8 one-prompt calls, one after another
    direct, compiled   (`--compile`, default on CUDA) the same, the denoiser `torch.compile`d
    Aquiles-Image      (`--aquiles PYTHON`) its server on the same folder, driven the same way
                       on its OpenAI route (cases of at least 256x256 only)

Measurements, for each case:

1. one request at a time: pixelgate end to end against one direct call (and Aquiles). Taken
   in interleaved pairs (direct, pixelgate, direct, pixelgate, ...; the order rotates each
   pair, so neither side always goes first), `--pairs` of them (5) after a warm-up; the ratio
   is taken within each pair and its median and spread (min-max) are printed;
2. 8 concurrent compatible requests (n=1, each its own prompt and seed) to pixelgate, against
   one direct batched call of 8 and against 8 sequential direct calls (and 8 concurrent
   requests to Aquiles), in images/s, again in interleaved rounds with rotating order;
3. beside each measurement, the CPU seconds an image cost the side that did the work (this
   process for the direct anchors, the server's process tree for a server, from /proc): on a
   machine shared with other work it tells a side that waited for a CPU from one that worked;
   the load average and CPU pressure before and after each case are printed too;
4. memory: the resident memory of pixelgate's process and every process under it (summed
   from /proc; models may live in a child process), after each case (models stay loaded), and
   on CUDA the GPU memory of those processes (nvidia-smi);
5. cold start (`--cold-start` alone, or as the last section of a full run): `pixelgate serve`
   on a fresh data dir with only `PIXELGATE_DATA_DIR` and `PIXELGATE_ADMIN_KEY` set, from just
   before `Popen` to the first `pixelgate/shapes` image received over HTTP (the request is
   retried from the moment the port accepts connections), 3 times, best and median; also when
   `/readyz` first answered 200 and, when its body has a check about models, when that check
   said they were ready. pixelgate's bytecode is compiled first, as installing it does (pip
   compiles every module): a checkout run with PYTHONDONTWRITEBYTECODE=1 would otherwise
   compile every module it imports from source at each start, in both processes.

Targets, printed beside each ratio: one request pixelgate / direct <= 1.05 (and faster than
Aquiles-Image where measured); 8 concurrent requests >= 0.9x one direct batched call of 8 and
>= 1.5x eight sequential direct calls.

Modes (run from the repository root with pixelgate's venv; nothing is downloaded):

    # CPU, the default cases (tiny SD 1.x 256x256, pixelgate/shapes 64x64, small FLUX.1
    # 256x256) and cold start; about 15 minutes on 2 cores shared with other work
    .venv/bin/python bench/local_engine.py [--aquiles /tmp/aq/bin/python] [--json out.json]

    # cold start only (about a minute)
    .venv/bin/python bench/local_engine.py --cold-start

    # CUDA, real-size architectures with random weights (SD 2.1 / SD-Turbo UNet at 512x512,
    # SDXL UNet at 1024x1024, FLUX.1-schnell transformer at 1024x1024), direct with and
    # without torch.compile; --cases picks some, --server-compile compiles pixelgate's denoiser
    .venv/bin/python bench/local_engine.py --device cuda --scale real [--cases bench/sd-turbo]
        [--server-compile] [--channels-last] [--dtype bf16|fp16]

    # the CUDA mode's code path on a CPU, toy widths and sizes (about 4 minutes); then the
    # compiled anchors on one case (about 4 minutes: inductor compiles C++ for each shape)
    .venv/bin/python bench/local_engine.py --device cpu --scale tiny --pairs 2 --no-cold-start
    .venv/bin/python bench/local_engine.py --device cpu --scale tiny --pairs 2 --no-cold-start \
        --compile --server-compile --cases bench/sd-turbo

Aquiles-Image is not a pixelgate dependency: install it apart (see
`/work/shared/peers/README.md`: a venv of its own, e.g. /tmp/aq) and pass its Python with
`--aquiles`; without it that column is skipped with a note. It runs through
`bench/aquiles_cpu.py` (a copy of the peers' shim that lets version 0.8.3 run on a CPU), with
its defaults except the case's steps and guidance, `--batch-timeout 0.01` and
`--max-concurrent-infer 8` (its default, 4, answers a fifth concurrent request with 429); its
batch size defaults to 4, as pixelgate's does.

`--torch-threads N` gives every side N torch threads; it is not a shipped default (a machine
whose cores other work shares punishes 2-thread calls far more than 1-thread ones), so say so
beside any number measured with it.

A script, not a test: it needs the machine to itself as far as possible; the interleaving is
there because on a shared machine it rarely has it.
"""

from __future__ import annotations

import argparse
import base64
import compileall
import gc
import importlib.util
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from local_models import SCALES, Case, Scale, cases, folder_name
from machine import cpu_pressure, process_tree

ADMIN_KEY = "pg_bench_admin_key_0123456789"
AQUILES_KEY = "sk-bench-aquiles"
CONCURRENT = 8
SHIM = Path(__file__).resolve().parent / "aquiles_cpu.py"
COLD_PROMPT = "a red circle on a white background"
READY_WORDS = {"ok", "ready", "warm", "loaded"}
"""A readiness check's values that say its models are loaded."""


# -- numbers ---------------------------------------------------------------------------------


@dataclass
class Series:
    """Repeated measurements of one thing (seconds, images/s or a ratio)."""

    values: list[float] = field(default_factory=list)

    def add(self, value: float) -> None:
        self.values.append(value)

    @property
    def median(self) -> float:
        return statistics.median(self.values) if self.values else float("nan")

    def spread(self, digits: int = 2) -> str:
        if not self.values:
            return ""
        return f"{min(self.values):.{digits}f}-{max(self.values):.{digits}f}"


def ratios(numerators: Series, denominators: Series) -> Series:
    """Pair by pair: each ratio compares two measurements taken side by side."""
    return Series([a / b for a, b in zip(numerators.values, denominators.values, strict=True)])


# -- processes -------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def tree_cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process and its descendants (live ones)."""
    ticks = 0
    for member in process_tree(pid):
        try:
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def tree_rss_mb(pid: int) -> float:
    """Resident memory of a process and its descendants, summed (shared pages count twice)."""
    total = 0
    for member in process_tree(pid):
        try:
            for line in Path(f"/proc/{member}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


def tree_gpu_mb(pid: int) -> float | None:
    """GPU memory held by a process and its descendants (nvidia-smi); None without it."""
    if shutil.which("nvidia-smi") is None:
        return None
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    family = process_tree(pid)
    used = 0.0
    for line in out.splitlines():
        parts = [part.strip() for part in line.split(",")]
        if len(parts) == 2 and parts[0].isdigit() and int(parts[0]) in family:
            used += float(parts[1])
    return used


def clean_env(extra: dict[str, str]) -> dict[str, str]:
    """This environment without any PIXELGATE_ setting (so none leaks into the server), plus
    `extra`."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("PIXELGATE_")}
    return {**env, **extra}


@contextmanager
def child(
    command: list[str], *, env: dict[str, str], log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """Run `command`; on the way out SIGTERM it (SIGKILL after 30 s) and its descendants."""
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
        try:
            yield process
        finally:
            family = process_tree(process.pid) - {process.pid}
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            for pid in family:  # anything it left behind
                with suppress(OSError):
                    os.kill(pid, signal.SIGKILL)


def wait_until(
    check: Callable[[], bool],
    process: subprocess.Popen[bytes],
    log: Path,
    what: str,
    timeout: float,
) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if process.poll() is not None:
            raise SystemExit(f"{what} exited early; see {log}:\n{log.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            raise SystemExit(f"{what} did not get ready in {timeout:.0f} s; see {log}")
        time.sleep(0.1)


# -- the sides -------------------------------------------------------------------------------


class Counter:
    """Fresh prompts and seeds, so that no two requests are alike."""

    def __init__(self) -> None:
        self._next = 1000
        self._lock = threading.Lock()

    def take(self, count: int) -> list[int]:
        with self._lock:
            start = self._next
            self._next += count
        return list(range(start, start + count))


def prompt(number: int) -> str:
    return f"a big blue square to the left of a small yellow triangle on black, take {number}"


class Direct:
    """The pipeline called directly, loaded and called from one worker thread."""

    def __init__(
        self,
        path: Path,
        case: Case,
        device: str,
        dtype: Any,
        *,
        compile_denoiser: bool,
        channels_last: bool,
        threads: int | None,
    ) -> None:
        self.case = case
        self.device = device
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="direct")
        self.pipeline = self.pool.submit(self._load, path, dtype, channels_last, threads).result()
        self.denoiser_name = "unet" if hasattr(self.pipeline, "unet") else "transformer"
        self.eager = getattr(self.pipeline, self.denoiser_name)
        self.compiled = None
        if compile_denoiser:
            import torch

            self.compiled = torch.compile(self.eager)

    @staticmethod
    def _load(path: Path, dtype: Any, channels_last: bool, threads: int | None) -> Any:
        import torch
        from diffusers import DiffusionPipeline

        if threads:  # in the thread that calls the pipeline: OpenMP's setting is per thread
            torch.set_num_threads(threads)
        pipeline = DiffusionPipeline.from_pretrained(path, dtype=dtype, local_files_only=True)
        pipeline.set_progress_bar_config(disable=True)
        if channels_last:  # what pixelgate does on a CPU
            for name in ("unet", "vae"):
                if getattr(pipeline, name, None) is not None:
                    getattr(pipeline, name).to(memory_format=torch.channels_last)
        return pipeline

    def to(self, device: str) -> None:
        self.pool.submit(self.pipeline.to, device).result()

    def call(self, seeds: Sequence[int], *, compiled: bool = False) -> float:
        """Seconds for one pipeline call of `len(seeds)` prompts, as the caller waits for it."""
        started = time.perf_counter()
        images = self.pool.submit(self._run, list(seeds), compiled).result()
        elapsed = time.perf_counter() - started
        assert len(images) == len(seeds)
        return elapsed

    def _run(self, seeds: list[int], compiled: bool) -> list[Any]:
        import torch

        denoiser = self.compiled if compiled and self.compiled is not None else self.eager
        if getattr(self.pipeline, self.denoiser_name) is not denoiser:
            setattr(self.pipeline, self.denoiser_name, denoiser)
        with torch.inference_mode():
            output = self.pipeline(
                prompt=[prompt(seed) for seed in seeds],
                num_images_per_prompt=1,
                width=self.case.width,
                height=self.case.height,
                num_inference_steps=self.case.steps,
                guidance_scale=self.case.guidance,
                generator=[torch.Generator("cpu").manual_seed(seed) for seed in seeds],
            )
        return list(output.images)

    def weights_mb(self) -> float:
        import torch

        total = 0
        for component in self.pipeline.components.values():
            if isinstance(component, torch.nn.Module):
                for tensor in (*component.parameters(), *component.buffers()):
                    total += tensor.numel() * tensor.element_size()
        return total / 2**20

    def close(self) -> None:
        self.pool.shutdown()
        del self.pipeline, self.eager, self.compiled
        gc.collect()
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except ImportError:
            pass


class Served:
    """A server driven over HTTP: one request at a time, or `CONCURRENT` at once."""

    name = "pixelgate"

    def __init__(self, url: str, key: str, pid: int, clients: ThreadPoolExecutor) -> None:
        self.pid = pid
        self.http = httpx.Client(
            base_url=url,
            headers={"Authorization": f"Bearer {key}", "Cache-Control": "no-cache"},
            timeout=1800,
            limits=httpx.Limits(max_connections=CONCURRENT * 2),
        )
        self.clients = clients

    def cpu(self) -> float:
        """CPU seconds the server and every process under it have spent so far."""
        return tree_cpu_seconds(self.pid)

    def body(self, case: Case, seed: int) -> tuple[str, dict[str, Any]]:
        return "/v1/inference/images/generate", {
            "model": case.model,
            "prompt": prompt(seed),
            "seed": seed,
            "response_format": "b64_json",
        }

    def images(self, answer: dict[str, Any]) -> list[dict[str, Any]]:
        return list(answer["data"]["data"])

    def one(self, case: Case, seed: int) -> float:
        path, body = self.body(case, seed)
        started = time.perf_counter()
        response = self.http.post(path, json=body)
        elapsed = time.perf_counter() - started
        if response.status_code != 200:
            raise RuntimeError(f"{self.name}: HTTP {response.status_code}: {response.text[:500]}")
        images = self.images(response.json())
        if len(images) != 1 or not base64.b64decode(images[0]["b64_json"]):
            raise RuntimeError(f"{self.name}: no image in {response.text[:300]}")
        return elapsed

    def together(self, case: Case, seeds: Sequence[int]) -> float:
        """Seconds from sending `len(seeds)` requests at once to the last answer."""
        started = time.perf_counter()
        list(self.clients.map(lambda seed: self.one(case, seed), seeds))
        return time.perf_counter() - started


class AquilesServed(Served):
    name = "Aquiles-Image"

    def __init__(self, url: str, model: str, pid: int, clients: ThreadPoolExecutor) -> None:
        super().__init__(url, AQUILES_KEY, pid, clients)
        self.model = model

    def body(self, case: Case, seed: int) -> tuple[str, dict[str, Any]]:
        return "/v1/images/generations", {
            "model": self.model,
            "prompt": prompt(seed),
            "size": case.size,
            "n": 1,
            "response_format": "b64_json",
        }

    def images(self, answer: dict[str, Any]) -> list[dict[str, Any]]:
        return list(answer["data"])


@contextmanager
def pixelgate_server(
    work: Path,
    models_dir: Path,
    catalog: Path,
    device: str,
    compile_denoiser: bool,
    threads: int | None,
) -> Iterator[tuple[str, int]]:
    port = free_port()
    env = {
        "PIXELGATE_DATA_DIR": str(work / "pixelgate-data"),
        "PIXELGATE_MODELS_DIR": str(models_dir),
        "PIXELGATE_CATALOG_FILE": str(catalog),
        "PIXELGATE_ADMIN_KEY": ADMIN_KEY,
        "PIXELGATE_DEVICE": device,
    }
    if compile_denoiser:
        env["PIXELGATE_TORCH_COMPILE"] = "true"
    if threads:
        env["PIXELGATE_TORCH_THREADS"] = str(threads)
    log = work / "pixelgate.log"
    command = [sys.executable, "-m", "pixelgate", "serve", "--port", str(port)]
    with child(command, env=clean_env(env), log=log) as process:
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: _answers(f"{url}/readyz"), process, log, "pixelgate serve", 300)
        yield url, process.pid


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.TransportError:
        return False


@contextmanager
def aquiles_server(
    python: str, work: Path, folder: Path, case: Case, threads: int | None
) -> Iterator[tuple[str, int]]:
    port = free_port()
    env = clean_env({"XDG_DATA_HOME": str(work / "aquiles-data"), "HF_HUB_OFFLINE": "1"})
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    command = [
        python,
        str(SHIM),
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--model",
        str(folder),
        "--auto-pipeline",
        "--auto-pipeline-type",
        "t2i",
        "--set-steps",
        str(case.steps),
        "--guidance-scale",
        str(case.guidance),
        "--batch-timeout",
        "0.01",
        "--max-concurrent-infer",
        str(CONCURRENT),
        "--api-key",
        AQUILES_KEY,
        "--force",
    ]
    log = work / f"aquiles-{folder.name}.log"
    with child(command, env=env, log=log) as process:
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: _answers(f"{url}/v1/model/type"), process, log, "Aquiles-Image", 600)
        yield url, process.pid


# -- one case --------------------------------------------------------------------------------


@dataclass
class CaseResult:
    case: Case
    series: dict[str, Series]
    weights_mb: float
    rss_mb: float | None = None
    gpu_mb: float | None = None
    load: str = ""
    """The machine's load before and after the case."""
    notes: list[str] = field(default_factory=list)


ONE = ("direct", "direct, compiled", "pixelgate", "Aquiles-Image")
MANY = (
    "direct batch of 8",
    "8 sequential direct",
    "direct, compiled, batch of 8",
    "pixelgate, 8 concurrent",
    "Aquiles-Image, 8 concurrent",
)


@dataclass(frozen=True)
class Measure:
    """One thing to time, and the CPU clock of whoever does its work."""

    run: Callable[[], float]
    """Runs it once; the seconds the caller waited."""
    cpu: Callable[[], float]
    """CPU seconds spent so far by the side that does the work."""
    images: int


def measure_case(
    case: Case,
    direct: Direct,
    servers: list[Served],
    pairs: int,
    counter: Counter,
    log: Callable[[str], None],
) -> dict[str, Series]:
    """Series of seconds (one request) or images/s (8 at once) per anchor, and for each the CPU
    seconds an image cost (`<name> cpu`), measured in interleaved pairs."""
    compiled = direct.compiled is not None
    mine = time.process_time  # the direct side works in this process
    one = {"direct": Measure(lambda: direct.call(counter.take(1)), mine, 1)}
    many = {
        "direct batch of 8": Measure(lambda: direct.call(counter.take(CONCURRENT)), mine, 8),
        "8 sequential direct": Measure(
            lambda: sum(direct.call(counter.take(1)) for _ in range(CONCURRENT)), mine, 8
        ),
    }
    if compiled:
        one["direct, compiled"] = Measure(
            lambda: direct.call(counter.take(1), compiled=True), mine, 1
        )
        many["direct, compiled, batch of 8"] = Measure(
            lambda: direct.call(counter.take(CONCURRENT), compiled=True), mine, 8
        )
    for server in servers:
        one[server.name], many[f"{server.name}, 8 concurrent"] = _requests(server, case, counter)
    # warm-up: loads, first-call costs, and (compiled) a graph for each batch shape seen
    log("  warm-up")
    rounds = 2 if compiled else 1
    for name in one:
        for _ in range(2):
            one[name].run()
    for name in many:
        if name != "8 sequential direct":
            for _ in range(rounds):
                many[name].run()
    series = {name: Series() for table in (one, many) for name in table}
    series |= {f"{name} cpu": Series() for name in list(series)}
    for number in range(pairs):
        line = []
        for table in (one, many):
            names = list(table)
            shift = number % len(names)
            for name in names[shift:] + names[:shift]:  # who goes first rotates
                measure = table[name]
                before = measure.cpu()
                seconds = measure.run()
                series[f"{name} cpu"].add((measure.cpu() - before) / measure.images)
                value = seconds if table is one else CONCURRENT / seconds
                series[name].add(value)
                line.append(f"{name} {value:.3f}{' s' if table is one else ' img/s'}")
        log(f"  pair {number + 1}: " + ", ".join(line))
    return series


def _requests(server: Served, case: Case, counter: Counter) -> tuple[Measure, Measure]:
    """One request to `server`, and `CONCURRENT` at once, each with fresh prompts and seeds."""
    return (
        Measure(lambda: server.one(case, counter.take(1)[0]), server.cpu, 1),
        Measure(lambda: server.together(case, counter.take(CONCURRENT)), server.cpu, CONCURRENT),
    )


# -- reporting -------------------------------------------------------------------------------


def report(result: CaseResult, device: str, dtype: str, server_compiled: bool) -> str:
    case, series = result.case, result.series
    lines = [
        f"### {case.model}: {case.title}",
        "",
        f"{case.size}, {case.steps} steps, guidance {case.guidance}, {device} {dtype}, "
        f"weights {result.weights_mb:.0f} MB; {len(series['direct'].values)} interleaved pairs",
        "",
        "| measure | median | min-max | CPU s an image, median |",
        "| --- | ---: | ---: | ---: |",
    ]
    for label, names in (("one request, {}, s", ONE), ("{}, images/s", MANY)):
        for name in names:
            if name in series:
                values, cpu = series[name], series[f"{name} cpu"]
                lines.append(
                    f"| {label.format(name)} | {values.median:.3f} | {values.spread(3)} "
                    f"| {cpu.median:.3f} |"
                )
    lines += [
        "",
        "| ratio (within each pair) | median | min-max | target | met |",
        "| --- | ---: | ---: | --- | --- |",
    ]
    anchor = "direct, compiled" if server_compiled and "direct, compiled" in series else "direct"

    def row(label: str, value: Series, target: str, ok: Callable[[float], bool]) -> None:
        met = "yes" if ok(value.median) else "**no**"
        lines.append(f"| {label} | **{value.median:.3f}** | {value.spread(3)} | {target} | {met} |")

    row(
        f"one request, pixelgate / {anchor} (time)",
        ratios(series["pixelgate"], series[anchor]),
        "≤ 1.05",
        lambda v: v <= 1.05,
    )
    if anchor != "direct":
        lines.append(
            "| one request, pixelgate / direct eager (time) | "
            f"{ratios(series['pixelgate'], series['direct']).median:.3f} | | | |"
        )
    if "Aquiles-Image" in series:
        aquiles = ratios(series["pixelgate"], series["Aquiles-Image"])
        row("one request, pixelgate / Aquiles-Image (time)", aquiles, "< 1", lambda v: v < 1)
        lines.append(
            "| one request, Aquiles-Image / direct (time) | "
            f"{ratios(series['Aquiles-Image'], series['direct']).median:.3f} | | | |"
        )
    concurrent = series["pixelgate, 8 concurrent"]
    batch = "direct, compiled, batch of 8" if anchor != "direct" else "direct batch of 8"
    row(
        f"8 concurrent, pixelgate / {batch} (images/s)",
        ratios(concurrent, series[batch]),
        "≥ 0.9",
        lambda v: v >= 0.9,
    )
    row(
        "8 concurrent, pixelgate / 8 sequential direct (images/s)",
        ratios(concurrent, series["8 sequential direct"]),
        "≥ 1.5",
        lambda v: v >= 1.5,
    )
    if "Aquiles-Image, 8 concurrent" in series:
        lines.append(
            "| 8 concurrent, pixelgate / Aquiles-Image (images/s) | "
            f"{ratios(concurrent, series['Aquiles-Image, 8 concurrent']).median:.3f} | "
            f"{ratios(concurrent, series['Aquiles-Image, 8 concurrent']).spread(3)} | | |"
        )
    if result.load:
        lines += ["", f"Machine: {result.load}."]
    for note in result.notes:
        lines += ["", f"Note: {note}"]
    return "\n".join(lines)


# -- cold start ------------------------------------------------------------------------------


@dataclass
class ColdStart:
    port_s: float | None = None
    ready_s: float | None = None
    warm_s: float | None = None
    warm_check: str | None = None
    image_s: float | None = None
    cpu_s: float | None = None
    """CPU seconds the server and its model worker process had used when the image came: on
    a shared machine, the work done apart from the waiting for a core."""
    readiness: list[str] = field(default_factory=list)
    """Each distinct /readyz answer seen, with when: status, and the checks' values."""


def compile_bytecode() -> None:
    """Compile the bytecode of the pixelgate package that `python -m pixelgate` runs here, as
    `pip install` does: with PYTHONDONTWRITEBYTECODE=1 (set in some shells and CI), a checkout
    would compile every module it imports from source at each start, which no installed
    pixelgate does (compiling all 188 modules takes about 0.25 CPU s; a cold start used 0-0.5
    CPU s more without it, within the noise of its 6.3-7.0)."""
    spec = importlib.util.find_spec("pixelgate")
    assert spec is not None and spec.submodule_search_locations
    for folder in spec.submodule_search_locations:
        compileall.compile_dir(folder, quiet=1)


def cold_start(work: Path, device: str) -> ColdStart:
    """`pixelgate serve` on a fresh data dir, shipped defaults, to the first shapes image."""
    data = Path(tempfile.mkdtemp(prefix="cold-", dir=work))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = clean_env({"PIXELGATE_DATA_DIR": str(data), "PIXELGATE_ADMIN_KEY": ADMIN_KEY})
    if device != "cpu":
        env["PIXELGATE_DEVICE"] = device
    result = ColdStart()
    done = threading.Event()
    command = [sys.executable, "-m", "pixelgate", "serve", "--port", str(port)]
    started = time.perf_counter()
    with child(command, env=env, log=data.with_suffix(".log")) as process:

        def readiness() -> None:
            with httpx.Client(timeout=5) as http:
                last = ""
                while not done.is_set():
                    try:
                        response = http.get(f"{url}/readyz")
                    except httpx.TransportError:
                        time.sleep(0.05)
                        continue
                    now = time.perf_counter() - started
                    try:
                        checks = response.json().get("checks") or {}
                    except ValueError:
                        checks = {}
                    seen = f"{response.status_code} {json.dumps(checks, sort_keys=True)}"
                    if seen != last:
                        result.readiness.append(f"{now:.2f} s: {seen}")
                        last = seen
                    if response.status_code == 200 and result.ready_s is None:
                        result.ready_s = now
                    about_models = {k: v for k, v in checks.items() if "model" in k or "warm" in k}
                    if (
                        about_models
                        and result.warm_s is None
                        and all(
                            str(value).lower() in READY_WORDS for value in about_models.values()
                        )
                    ):
                        result.warm_s, result.warm_check = now, json.dumps(about_models)
                    if result.image_s is not None and (result.warm_s or not about_models):
                        return
                    time.sleep(0.05)

        watcher = threading.Thread(target=readiness, daemon=True)
        while not accepts(port):
            if process.poll() is not None:
                raise SystemExit(f"pixelgate serve exited; see {data.with_suffix('.log')}")
            time.sleep(0.02)
        result.port_s = time.perf_counter() - started
        watcher.start()
        headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
        body = {"model": "pixelgate/shapes", "prompt": COLD_PROMPT, "response_format": "b64_json"}
        with httpx.Client(base_url=url, headers=headers, timeout=600) as http:
            deadline = time.monotonic() + 600
            while time.monotonic() < deadline:
                try:
                    response = http.post("/v1/inference/images/generate", json=body)
                except httpx.TransportError:
                    time.sleep(0.05)
                    continue
                if response.status_code == 200 and response.json()["data"]["data"][0]["b64_json"]:
                    result.image_s = time.perf_counter() - started
                    result.cpu_s = tree_cpu_seconds(process.pid)
                    break
                time.sleep(0.05)
        watcher.join(30)
        done.set()
    return result


def cold_report(runs: list[ColdStart]) -> str:
    def cell(values: list[float | None]) -> tuple[str, str]:
        present = [value for value in values if value is not None]
        if not present:
            return "-", "-"
        return f"{min(present):.2f}", f"{statistics.median(present):.2f}"

    rows = [
        ("port accepts connections", [run.port_s for run in runs]),
        ("`/readyz` first 200", [run.ready_s for run in runs]),
        ("readiness says models ready", [run.warm_s for run in runs]),
        ("first `pixelgate/shapes` image received", [run.image_s for run in runs]),
        ("CPU seconds the server's processes had used by then", [run.cpu_s for run in runs]),
    ]
    lines = [
        f"### Cold start, {len(runs)} runs (seconds from just before `Popen`)",
        "",
        "| event | best | median | each run |",
        "| --- | ---: | ---: | --- |",
    ]
    for label, values in rows:
        best, median = cell(values)
        each = " / ".join("-" if value is None else f"{value:.2f}" for value in values)
        lines.append(f"| {label} | {best} | {median} | {each} |")
    warm = next((run.warm_check for run in runs if run.warm_check), None)
    lines.append("")
    lines.append(
        f"Readiness check about models: {warm}"
        if warm
        else "`/readyz` has no check about models: no 'models ready' time."
    )
    lines.append("")
    lines.append("/readyz answers seen in the first run: " + "; ".join(runs[0].readiness[:8]))
    return "\n".join(lines)


# -- main ------------------------------------------------------------------------------------


def torch_dtype(device: str, name: str) -> Any:
    """fp32 on CPU; on CUDA what pixelgate picks (bf16 where supported, else fp16) or `name`."""
    import torch

    if device == "cpu":
        return torch.float32
    if name == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[name]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--scale", choices=SCALES, help="small on CPU, real on CUDA by default")
    parser.add_argument("--cases", help="comma-separated model ids of the scale's cases")
    parser.add_argument("--pairs", type=int, default=5, help="interleaved pairs (at least 5)")
    parser.add_argument("--aquiles", help="the Python of a venv with aquiles-image installed")
    parser.add_argument(
        "--dtype",
        choices=["auto", "bf16", "fp16", "fp32"],
        default="auto",
        help="the direct side's dtype on CUDA (auto: pixelgate's)",
    )
    parser.add_argument(
        "--compile",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="add the compiled direct anchor (default on CUDA)",
    )
    parser.add_argument(
        "--server-compile",
        action="store_true",
        help="start pixelgate with PIXELGATE_TORCH_COMPILE=true",
    )
    parser.add_argument(
        "--channels-last",
        action="store_true",
        help="direct side: the UNet and VAE in channels-last memory format (as pixelgate on a CPU)",
    )
    parser.add_argument(
        "--torch-threads",
        type=int,
        help="not a shipped default: this many torch threads on every side (PIXELGATE_TORCH_THREADS"
        " for pixelgate, OMP_NUM_THREADS for Aquiles-Image), for a machine shared with other work",
    )
    parser.add_argument("--cold-start", action="store_true", help="measure cold start only")
    parser.add_argument("--cold-runs", type=int, default=3)
    parser.add_argument("--no-cold-start", dest="with_cold", action="store_false")
    parser.add_argument("--json", type=Path, help="also write the measurements here")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs)")
    args = parser.parse_args()
    scale: Scale = args.scale or ("real" if args.device == "cuda" else "small")
    compile_direct = args.compile if args.compile is not None else args.device == "cuda"
    work = Path(tempfile.mkdtemp(prefix="pixelgate-local-bench-"))
    started = time.monotonic()

    def log(line: str) -> None:
        print(f"[{time.monotonic() - started:6.0f} s] {line}", flush=True)

    output: dict[str, Any] = {"device": args.device, "scale": scale, "cases": {}}
    try:
        if not args.cold_start:
            output["cases"] = engine(args, scale, compile_direct, work, log)
        if args.cold_start or args.with_cold:
            log(f"cold start, {args.cold_runs} runs")
            compile_bytecode()
            runs = []
            for number in range(args.cold_runs):
                runs.append(cold_start(work, args.device))
                log(f"  run {number + 1}: {runs[-1]}")
            print()
            print(cold_report(runs))
            output["cold_start"] = [run.__dict__ for run in runs]
    finally:
        if args.keep:
            print(f"work folder kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps(output, indent=2, default=str))
    log("done")


def engine(
    args: argparse.Namespace,
    scale: Scale,
    compile_direct: bool,
    work: Path,
    log: Callable[[str], None],
) -> dict[str, Any]:
    import torch

    if args.pairs < 5:
        log(f"note: {args.pairs} pairs is fewer than the 5 the method asks for (a smoke test)")
    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)
    dtype = torch_dtype(args.device, args.dtype)
    dtype_name = str(dtype).removeprefix("torch.")
    chosen = cases(scale, args.device, dtype)
    if args.cases:
        wanted = args.cases.split(",")
        chosen = [case for case in chosen if case.model in wanted]
        if not chosen:
            raise SystemExit(f"no case named {wanted}; this scale has {cases(scale, 'cpu', dtype)}")
    models_dir = work / "models"
    for case in chosen:
        if case.build is not None:
            log(f"building {case.model} ({case.title}) on {args.device} in {dtype_name}")
            case.build(models_dir / folder_name(case.model))
            if args.device == "cuda":
                torch.cuda.empty_cache()
    catalog = work / "catalog.toml"
    catalog.write_text("\n".join(case.catalog_entry() for case in chosen if case.build))
    aquiles = args.aquiles if args.aquiles and Path(args.aquiles).exists() else None
    absent = (
        f"Aquiles-Image not measured: {args.aquiles or 'no --aquiles given'} "
        f"{'does not exist' if args.aquiles else ''}".strip()
    )
    print(
        f"pixelgate local engine, {args.device}, {dtype_name}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} torch threads "
        f"({'set by --torch-threads' if args.torch_threads else 'torch default'}), scale {scale}, "
        f"direct compiled: {compile_direct}, pixelgate compiled: {args.server_compile}, "
        f"{os.cpu_count()} CPUs, {cpu_pressure()}",
        flush=True,
    )
    reports, results = [], {}
    counter = Counter()
    with (
        ThreadPoolExecutor(CONCURRENT, thread_name_prefix="client") as clients,
        pixelgate_server(
            work, models_dir, catalog, args.device, args.server_compile, args.torch_threads
        ) as (
            url,
            server_pid,
        ),
    ):
        pixelgate = Served(url, ADMIN_KEY, server_pid, clients)
        for case in chosen:
            folder = case.shipped or models_dir / folder_name(case.model)
            log(f"{case.model}: loading the direct pipeline")
            direct = Direct(
                folder,
                case,
                args.device,
                dtype,
                compile_denoiser=compile_direct,
                channels_last=args.channels_last,
                threads=args.torch_threads,
            )
            if args.device != "cpu":
                direct.to(args.device)
            result = CaseResult(case, {}, direct.weights_mb())
            with _maybe_aquiles(aquiles, work, folder, case, clients, args.torch_threads) as peer:
                servers: list[Served] = [pixelgate] + ([peer] if peer else [])
                if case.aquiles and not peer:
                    result.notes.append(absent)
                elif peer is None and aquiles:
                    result.notes.append(
                        "Aquiles-Image not measured: it takes sizes of at least 256x256, "
                        "and this benchmark gives it Stable Diffusion folders only"
                    )
                before = cpu_pressure()
                result.series = measure_case(case, direct, servers, args.pairs, counter, log)
                result.load = f"before: {before}; after: {cpu_pressure()}"
            direct.close()
            result.rss_mb = tree_rss_mb(server_pid)
            result.gpu_mb = tree_gpu_mb(server_pid) if args.device == "cuda" else None
            reports.append(report(result, args.device, dtype_name, args.server_compile))
            results[case.model] = {
                "series": {name: s.values for name, s in result.series.items()},
                "weights_mb": result.weights_mb,
                "server_rss_mb": result.rss_mb,
                "server_gpu_mb": result.gpu_mb,
            }
            print(reports[-1] + "\n", flush=True)
    print("\n## Results\n")
    print("\n\n".join(reports))
    print("\n### Memory: pixelgate's process tree (RSS summed), after each case\n")
    print("| after | weights MB (fp on disk) | server RSS MB | server GPU MB |")
    print("| --- | ---: | ---: | ---: |")
    for model, numbers in results.items():
        gpu = numbers["server_gpu_mb"]
        print(
            f"| {model} | {numbers['weights_mb']:.0f} | {numbers['server_rss_mb']:.0f} | "
            f"{'' if gpu is None else f'{gpu:.0f}'} |"
        )
    print()
    return results


@contextmanager
def _maybe_aquiles(
    python: str | None,
    work: Path,
    folder: Path,
    case: Case,
    clients: ThreadPoolExecutor,
    threads: int | None,
) -> Iterator[AquilesServed | None]:
    if python is None or not case.aquiles:
        yield None
        return
    with aquiles_server(python, work, folder, case, threads) as (url, pid):
        yield AquilesServed(url, str(folder), pid, clients)


if __name__ == "__main__":
    main()
