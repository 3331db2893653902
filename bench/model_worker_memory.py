"""Memory that model code keeps, and the model worker's recycling that returns it.

    .venv/bin/python bench/model_worker_memory.py [--edits 6] [--ceiling-mb 700]

Starts `pixelgate serve` twice (a fresh data dir each, `local/tiny` preloaded): once as shipped,
once with `PIXELGATE_MODEL_WORKER_MAX_MEMORY_MB` set. Each server gets the same battery of
edits of a 4096x4096 input image (decoded and resized in the model worker), then the resident
memory of the server's whole process tree (the API and its model worker) is read from /proc.
As shipped, what the worker grew to stays; with the ceiling, the worker is replaced once idle
and the memory goes back to what a fresh worker takes.
"""

from __future__ import annotations

import argparse
import io
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

ADMIN_KEY = "pg_bench_memory_key_0123456789"


def tree_rss_mb(pid: int) -> float:
    """Resident memory of `pid` and its children, in MB."""
    pids = [pid]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                pids.append(int(entry.name))
    total_kb = 0
    for each in pids:
        for line in Path(f"/proc/{each}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total_kb += int(line.split()[1])
    return total_kb / 1024


def measure(edits: int, image: bytes, **settings: str) -> tuple[float, float]:
    """RSS after start and after the edits (settled for 5 s), in MB."""
    port = _free_port()
    env = {
        **{key: value for key, value in os.environ.items() if not key.startswith("PIXELGATE_")},
        "PIXELGATE_DATA_DIR": tempfile.mkdtemp(prefix="pixelgate-memory-"),
        "PIXELGATE_ADMIN_KEY": ADMIN_KEY,
        "PIXELGATE_LOG_LEVEL": "WARNING",
        "PIXELGATE_PRELOAD_MODELS": '["local/tiny"]',
        "PIXELGATE_MAX_REQUEST_BYTES": str(200 * 2**20),
        "PIXELGATE_MAX_INPUT_BYTES": str(150 * 2**20),
        **settings,
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "pixelgate", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    headers = {"Authorization": f"Bearer {ADMIN_KEY}", "Cache-Control": "no-cache"}
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=300) as api:
            while True:
                try:
                    if api.get("/readyz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.2)
            started = tree_rss_mb(server.pid)
            for seed in range(edits):
                response = api.post(
                    "/v1/inference/images/edit",
                    files={"image": ("big.png", image, "image/png")},
                    data={"model": "local/tiny", "prompt": "x", "seed": str(seed)},
                )
                response.raise_for_status()
            time.sleep(5)
            return started, tree_rss_mb(server.pid)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(30)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--edits", type=int, default=6)
    parser.add_argument("--ceiling-mb", type=int, default=700)
    args = parser.parse_args()
    pixels = np.random.default_rng(0).integers(0, 255, (4096, 4096, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG", compress_level=0)
    shipped = measure(args.edits, buffer.getvalue())
    ceiling = str(args.ceiling_mb)
    recycled = measure(args.edits, buffer.getvalue(), PIXELGATE_MODEL_WORKER_MAX_MEMORY_MB=ceiling)
    print(f"{args.edits} edits of a 4096x4096 PNG on local/tiny; RSS of the server's process tree")
    print("| server | after start, MB | after the edits, MB |")
    print("| --- | ---: | ---: |")
    print(f"| as shipped | {shipped[0]:.0f} | {shipped[1]:.0f} |")
    print(f"| worker ceiling {args.ceiling_mb} MB | {recycled[0]:.0f} | {recycled[1]:.0f} |")


if __name__ == "__main__":
    main()
