"""Shared fixtures: the tiny model built once, and real servers on free ports."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

pytest_plugins = ["tests.databases"]

ADMIN_KEY = "pg_test_admin_key_0123456789"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The built-in tiny model, built once per test run and shared by every server."""
    from pixelgate.providers.local_diffusion import local_folder_name
    from pixelgate.providers.tiny_model import build_tiny_pipeline

    root = tmp_path_factory.mktemp("models")
    build_tiny_pipeline(root / local_folder_name("builtin:tiny"))
    return root


class Server:
    """`pixelgate serve` in a child process, on a free port, over its own data directory."""

    def __init__(self, data_dir: Path, models_dir: Path, **env: str) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.admin_key = ADMIN_KEY
        self.env = {
            **os.environ,
            "PIXELGATE_DATA_DIR": str(data_dir),
            "PIXELGATE_MODELS_DIR": str(models_dir),
            "PIXELGATE_ADMIN_KEY": ADMIN_KEY,
            "PIXELGATE_TORCH_THREADS": "1",
            # the model worker starts on a server's first local job, not at start
            "PIXELGATE_PRELOAD_MODELS": "[]",
            **env,
        }
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = data_dir.parent / f"server-{self.port}.log"

    def start(self, timeout: float = 60.0) -> Server:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "pixelgate", "serve", "--port", str(self.port)],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log_path.read_text()[-4000:]}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"server did not get ready:\n{self.log_path.read_text()[-4000:]}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def kill(self) -> None:
        """`kill -9`: no shutdown code runs."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()
        self.process = None

    def client(self, key: str | None = ADMIN_KEY, **kwargs: object) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60, **kwargs)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory, models_dir: Path) -> Iterator[Server]:
    """One server shared by the tests that only read or add their own jobs."""
    instance = Server(tmp_path_factory.mktemp("shared") / "data", models_dir).start()
    yield instance
    instance.stop()


@pytest.fixture
def make_server(tmp_path: Path, models_dir: Path) -> Iterator[Callable[..., Server]]:
    """A factory of servers of one's own (for restarts, kills, special settings)."""
    started: list[Server] = []

    def factory(**env: str) -> Server:
        instance = Server(tmp_path / f"data-{len(started)}", models_dir, **env)
        started.append(instance)
        return instance

    yield factory
    for instance in started:
        instance.stop()


@pytest.fixture
def anyio_backend() -> str:
    """Async tests (`pytest.mark.anyio`) run on asyncio, as the server does."""
    return "asyncio"


@pytest.fixture
def api(server: Server) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client
