"""Shared fixtures: the tiny model built once, and real servers on free ports."""

from __future__ import annotations

import fcntl
import os
import shutil
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

SLOWEST_FILES = (
    "tests/deploy/test_container_image.py",
    "tests/engine/test_model_process.py",
    "tests/cluster/test_cluster.py",
    "tests/engine/test_batching.py",
    "tests/web/test_page.py",
    "tests/web/test_studio.py",
    "tests/api/openai/test_one_body.py",
    "tests/packaging/test_client_install.py",
    "tests/e2e/test_shapes_meaning.py",
    "tests/api/test_media.py",
    "tests/clients/test_typescript.py",
    "tests/shapes/test_training.py",
    "tests/e2e/test_crash_recovery.py",
    "tests/api/test_tenancy.py",
    "tests/api/test_edit.py",
    "tests/api/openai/test_images.py",
    "tests/api/test_generate.py",
    "tests/e2e/test_models_cache.py",
    "tests/api/openai/test_errors.py",
    "tests/api/test_hosted_jobs.py",
    "tests/api/test_jobs.py",
    "tests/e2e/test_quickstart.py",
    "tests/providers/test_served_providers.py",
    "tests/web/test_accessibility.py",
)
"""The test files that take longest, longest first (`pytest --durations=0`, summed by file).
scripts/test hands whole files to parallel workers in collection order (`--dist loadfile
--no-loadscope-reorder`): these go out first, so that no worker is left alone at the end
with one of them while the others have finished."""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return  # one process: the order makes no difference to the time
    rank = {path: index for index, path in enumerate(SLOWEST_FILES)}
    items.sort(key=lambda item: rank.get(item.nodeid.partition("::")[0], len(rank)))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The temporary folder of the whole test run: under pytest-xdist, the parent of every
    worker's own (each worker's session has a folder of its own inside it)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def built_once(
    tmp_path_factory: pytest.TempPathFactory, name: str, build: Callable[[Path], None]
) -> Path:
    """The folder `build` makes, made by one process of the test run; the others (xdist
    workers) wait for it instead of paying for the same build again."""
    target = run_folder(tmp_path_factory) / name
    with (target.parent / f"{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if not target.exists():
            staging = target.parent / f"{name}.building"
            shutil.rmtree(staging, ignore_errors=True)
            build(staging)
            staging.rename(target)
    return target


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The built-in tiny model, built once per test run. Each session (each xdist worker) has
    a copy of its own, which its servers share: tests add models beside it."""
    from pixelgate.providers.local_diffusion import local_folder_name

    def build(folder: Path) -> None:
        from pixelgate.providers.tiny_model import build_tiny_pipeline

        build_tiny_pipeline(folder / local_folder_name("builtin:tiny"))

    root = tmp_path_factory.mktemp("models")
    shutil.copytree(built_once(tmp_path_factory, "tiny-models", build), root, dirs_exist_ok=True)
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
        self.started = False
        """Whether it has ever been ready: after that its port is its own (restarts keep it)."""

    def start(self, timeout: float = 60.0) -> Server:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path.touch()
        logged_before = self.log_path.stat().st_size
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
                output = self.log_path.read_bytes()[logged_before:].decode(errors="replace")
                if "address already in use" in output and not self.started:
                    # another process (a parallel test worker's) took the free port between
                    # its choice and this server's bind: a first start may take another
                    self.port = free_port()
                    self.url = f"http://127.0.0.1:{self.port}"
                    return self.start(max(deadline - time.monotonic(), 1.0))
                raise RuntimeError(f"server exited early:\n{output[-4000:]}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    self.started = True
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
