"""Benchmark of the local engine: serving overhead, batching throughput, memory residency.

    .venv/bin/python bench/local_engine.py [--steps 2] [--size 32] [--threads 2]

Builds Stable Diffusion pipelines with random weights at a real architecture's width (UNet
channels 320/640, CLIP width 768), then measures in one run:

1. serving overhead: one request at a time, pixelgate end to end (HTTP, job record, storage,
   link) against a direct pipeline call in this process; goal <= 1.05;
2. throughput: 8 concurrent compatible requests to pixelgate (batched) against 8 sequential
   direct calls, in images per second; goal >= 1.5;
3. memory: the server's peak RSS while three such models are used in turn under a budget that
   fits two (the least recently used one is evicted).

It prints one table. A script, not a test: it takes minutes and needs the machine to itself.
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
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pixelgate.providers.local_diffusion import local_folder_name  # noqa: E402
from pixelgate.providers.tiny_model import build_tiny_pipeline  # noqa: E402

MODELS = ("bench/sd-a", "bench/sd-b", "bench/sd-c")
UNET_CHANNELS = (320, 640)
TEXT_WIDTH = 768
ADMIN_KEY = "pg_bench_admin_key_0123456789"
CONCURRENT = 8


def build(models_dir: Path) -> None:
    for model in MODELS:
        target = models_dir / local_folder_name(model)
        if not (target / "model_index.json").exists():
            build_tiny_pipeline(target, unet_channels=UNET_CHANNELS, text_width=TEXT_WIDTH)


def catalog(path: Path, size: int, steps: int) -> None:
    entries = [
        f"""[[models]]
id = "{model}"
provider = "diffusers"
family = "diffusion"
source = "{model}"
capabilities = ["generate", "edit", "inpaint"]
limits = {{ max_n = 8, min_size = 16, max_size = 512, size_multiple = 8, max_steps = 50 }}
defaults = {{ width = {size}, height = {size}, num_steps = {steps}, guidance_scale = 5.0 }}
prices = {{ default = "0" }}
"""
        for model in MODELS
    ]
    path.write_text("\n".join(entries))


def direct(models_dir: Path, size: int, steps: int, threads: int) -> dict[str, Any]:
    """Plain diffusers in this process: solo call latency, and 8 sequential calls."""
    import torch
    from diffusers import DiffusionPipeline

    from pixelgate.providers.devices import pipeline_bytes

    torch.set_num_threads(threads)
    pipeline = DiffusionPipeline.from_pretrained(models_dir / local_folder_name(MODELS[0]))
    pipeline.set_progress_bar_config(disable=True)

    def call(seed: int) -> None:
        pipeline(
            prompt=f"a lighthouse {seed}",
            width=size,
            height=size,
            num_inference_steps=steps,
            guidance_scale=5.0,
            generator=[torch.Generator("cpu").manual_seed(seed)],
        )

    call(0)  # warm-up
    solo = []
    for seed in range(1, 4):
        started = time.perf_counter()
        call(seed)
        solo.append(time.perf_counter() - started)
    started = time.perf_counter()
    for seed in range(100, 100 + CONCURRENT):
        call(seed)
    sequential = time.perf_counter() - started
    result = {
        "solo_s": statistics.median(solo),
        "images_per_s": CONCURRENT / sequential,
        "model_mb": pipeline_bytes(pipeline) / 2**20,
    }
    return result  # the pipeline goes with this frame, before the server starts


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rss_mb(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def served(
    work: Path, models_dir: Path, catalog_file: Path, threads: int, budget_mb: int
) -> dict[str, Any]:
    """pixelgate serve in a child process, driven over HTTP."""
    port = free_port()
    env = {
        **os.environ,
        "PIXELGATE_DATA_DIR": str(work / "data"),
        "PIXELGATE_MODELS_DIR": str(models_dir),
        "PIXELGATE_CATALOG_FILE": str(catalog_file),
        "PIXELGATE_ADMIN_KEY": ADMIN_KEY,
        "PIXELGATE_TORCH_THREADS": str(threads),
        "PIXELGATE_MAX_BATCH_SIZE": str(CONCURRENT),
        "PIXELGATE_MODEL_MEMORY_BUDGET_MB": str(budget_mb),
        "PIXELGATE_LOG_LEVEL": "WARNING",
    }
    log = (work / "server.log").open("wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "pixelgate", "serve", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                raise RuntimeError((work / "server.log").read_text()[-3000:])
            time.sleep(0.2)
        headers = {"Authorization": f"Bearer {ADMIN_KEY}", "Cache-Control": "no-cache"}
        with httpx.Client(base_url=url, headers=headers, timeout=600) as client:

            def generate(model: str, seed: int) -> None:
                response = client.post(
                    "/v1/inference/images/generate",
                    json={"model": model, "prompt": f"a lighthouse {seed}", "seed": seed},
                )
                response.raise_for_status()

            generate(MODELS[0], 0)  # load and warm up
            solo = []
            for seed in range(1, 4):
                started = time.perf_counter()
                generate(MODELS[0], seed)
                solo.append(time.perf_counter() - started)
            started = time.perf_counter()
            with ThreadPoolExecutor(CONCURRENT) as pool:
                list(pool.map(lambda seed: generate(MODELS[0], seed), range(100, 108)))
            together = time.perf_counter() - started
            memory = []
            for model in (*MODELS[1:], MODELS[0]):  # three models, a budget for two
                generate(model, 7)
                memory.append(rss_mb(server.pid, "VmRSS"))
            peak = rss_mb(server.pid, "VmHWM")
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(30)
    return {
        "solo_s": statistics.median(solo),
        "images_per_s": CONCURRENT / together,
        "rss_after_each_mb": memory,
        "peak_rss_mb": peak,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--size", type=int, default=32, help="image width and height")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pixelgate-bench-") as tmp:
        work = Path(tmp)
        models_dir = work / "models"
        build(models_dir)
        catalog(work / "catalog.toml", args.size, args.steps)
        plain = direct(models_dir, args.size, args.steps, args.threads)
        budget = int(plain["model_mb"] * 2.5)
        gate = served(work, models_dir, work / "catalog.toml", args.threads, budget)
    overhead = gate["solo_s"] / plain["solo_s"]
    speedup = gate["images_per_s"] / plain["images_per_s"]
    rows = [
        ("serving overhead (pixelgate / direct, 1 request)", f"{overhead:.3f}", "<= 1.05"),
        ("  direct call, median s", f"{plain['solo_s']:.2f}", ""),
        ("  pixelgate end to end, median s", f"{gate['solo_s']:.2f}", ""),
        (
            f"throughput, {CONCURRENT} concurrent (pixelgate / sequential)",
            f"{speedup:.2f}",
            ">= 1.5",
        ),
        ("  direct sequential, images/s", f"{plain['images_per_s']:.3f}", ""),
        ("  pixelgate batched, images/s", f"{gate['images_per_s']:.3f}", ""),
        ("model size, MB (weights)", f"{plain['model_mb']:.0f}", ""),
        ("memory budget, MB (fits two)", f"{budget}", ""),
        (
            "RSS after models b, c, a, MB",
            " / ".join(f"{v:.0f}" for v in gate["rss_after_each_mb"]),
            "",
        ),
        ("peak RSS, three models, MB", f"{gate['peak_rss_mb']:.0f}", ""),
    ]
    print(
        f"pixelgate local engine: UNet {UNET_CHANNELS}, text width {TEXT_WIDTH}, "
        f"{args.size}x{args.size}, {args.steps} steps, guidance 5, {args.threads} torch threads"
    )
    width = max(len(name) for name, _, _ in rows)
    print(f"{'measure'.ljust(width)}  {'value':>18}  goal")
    for name, value, goal in rows:
        print(f"{name.ljust(width)}  {value:>18}  {goal}")


if __name__ == "__main__":
    main()
