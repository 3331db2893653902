"""The CPU image, built from the Dockerfile and run (issue 22): buildah builds it on a base made
from Debian's packages (scripts/debian-base; no registry is reachable here), with the torch that
scripts/setup installs (pip's own sources, as configured on this machine), then runs its
default command. The server answers /readyz, draws a `pixelgate/shapes` image and removes a
background over HTTP, runs as its non-root user, and the image's health check passes against it
(and fails against a port nobody serves).

Each phase's time is printed (`pytest -s`). The base's root file system is kept in
`~/.cache/pixelgate/container-base` (PIXELGATE_BASE_CACHE) between runs; a fresh machine makes
it, about 30 s. Where the kernel mounts overlay for buildah, its storage is kept too, in
`~/.cache/pixelgate/container-storage`, and the build reuses the layers that the Dockerfile's
inputs leave as they were (`--layers`): a change to pixelgate's source alone rebuilds in about
30 s, not the 3 to 4 minutes of installing torch and the rest and compiling rembg's kernels.
One run at a time uses that storage (a lock), and each leaves only what the images it tagged
use."""

from __future__ import annotations

import base64
import configparser
import fcntl
import io
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from pixelgate.paths import default_models_dir
from pixelgate.shapes.checker import score
from tests.conftest import ADMIN_KEY, free_port
from tests.helpers import wait_ready

ROOT = Path(__file__).resolve().parents[2]
IMAGE = "localhost/pixelgate:test"
BUILD_STAGE = "localhost/pixelgate-build:test"
BASE = "localhost/pixelgate-base:bookworm"

pytestmark = pytest.mark.timeout(900)


def builder_missing() -> str | None:
    """Why no image can be built here, or None when buildah and mmdebstrap can."""
    for tool in ("buildah", "mmdebstrap"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (scripts/setup installs Debian's buildah, mmdebstrap)"
    if os.geteuid() != 0:
        return "building the image needs root (buildah with chroot isolation, mmdebstrap)"
    return None


@dataclass
class Buildah:
    """buildah on a storage of this test's own, timing each phase."""

    environment: dict[str, str]
    kept: bool
    """Whether the storage is kept between runs: a build reuses its layers (`--layers`)."""
    phases: dict[str, float] = field(default_factory=dict)

    def __call__(self, *arguments: str, phase: str | None = None) -> str:
        started = time.monotonic()
        done = subprocess.run(
            ["buildah", *arguments], env=self.environment, capture_output=True, text=True
        )
        assert done.returncode == 0, f"buildah {arguments[0]}: {done.stdout[-4000:]}{done.stderr}"
        if phase:
            self.phases[phase] = time.monotonic() - started
        return done.stdout.strip()


def storage(folder: Path, driver: str) -> dict[str, str]:
    """The environment for buildah on a storage in `folder` with `driver`."""
    folder.mkdir(parents=True, exist_ok=True)
    conf = folder / "storage.conf"
    conf.write_text(
        f'[storage]\ndriver = "{driver}"\n'
        f'graphroot = "{folder / "graph"}"\nrunroot = "{folder / "run"}"\n'
    )
    return {**os.environ, "CONTAINERS_STORAGE_CONF": str(conf)}


def overlay_mounts(environment: dict[str, str]) -> bool:
    """Whether buildah mounts a container on overlay with `environment`'s storage."""
    probe = (
        'c=$(buildah from scratch) || exit 1; buildah mount "$c"; s=$?; buildah rm "$c"; exit $s'
    )
    return subprocess.run(["sh", "-c", probe], env=environment, capture_output=True).returncode == 0


def pip_sources(folder: Path) -> list[str]:
    """`-v` options giving the build this machine's pip configuration (indexes, find-links,
    certificate, constraints): a pip.conf of pip's settings here, and each local path it names.
    """
    listed = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True, check=True
    ).stdout
    config = configparser.ConfigParser(interpolation=None)
    paths: set[Path] = set()
    for line in listed.splitlines():
        name, _, quoted = line.partition("=")
        scope, _, key = name.rpartition(".")
        section = "global" if scope in (":env:", "") else scope
        value = quoted.strip().strip("'\"")
        if not config.has_section(section):
            config.add_section(section)
        config.set(section, key, value)
        for word in value.split():
            path = Path(word.removeprefix("file://"))
            if path.is_absolute() and path.exists():
                # a local PEP 503 index links its files from above its `simple/` folder
                paths.add(path.parent if path.name == "simple" else path)
    conf = folder / "pip.conf"
    with conf.open("w") as out:
        config.write(out)
    volumes = [f"{conf}:/etc/pip.conf:ro"]
    volumes += [f"{path}:{path}:ro" for path in sorted(paths)]
    return [option for volume in volumes for option in ("-v", volume)]


@pytest.fixture(scope="module")
def buildah(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Buildah]:
    """buildah on overlay in a storage kept between runs (a build there reuses the layers whose
    inputs are unchanged), held by this run alone; or, where overlay does not mount, on vfs in
    a temporary storage (vfs copies the whole file system for each layer: none are kept)."""
    missing = builder_missing()
    if missing:
        pytest.skip(f"no OCI builder can run here: {missing}")
    kept = default_models_dir().parent / "container-storage"
    kept.mkdir(parents=True, exist_ok=True)
    with (kept / "lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        environment = storage(kept / "overlay", "overlay")
        if overlay_mounts(environment):
            tool = Buildah(environment, kept=True)
        else:
            temporary = tmp_path_factory.mktemp("containers")
            tool = Buildah(storage(temporary / "vfs", "vfs"), kept=False)
        yield tool
        subprocess.run(["buildah", "rm", "--all"], env=tool.environment, capture_output=True)
        if tool.kept:
            # the layers no tagged image uses: earlier builds' (the images' tags have moved on)
            tool("rmi", "--prune", phase="prune")
        else:
            subprocess.run(
                ["buildah", "rmi", "--all", "--force"], env=tool.environment, capture_output=True
            )
            shutil.rmtree(temporary, ignore_errors=True)
        print(
            "\ncontainer image phases (s):",
            json.dumps({k: round(v, 1) for k, v in tool.phases.items()}),
        )


@pytest.fixture(scope="module")
def image(buildah: Buildah, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The Dockerfile built as the CPU image; its Docker-format configuration."""
    cache = os.environ.get("PIXELGATE_BASE_CACHE") or str(
        default_models_dir().parent / "container-base"
    )
    started = time.monotonic()
    made = subprocess.run(
        [str(ROOT / "scripts" / "debian-base"), BASE],
        env={**buildah.environment, "PIXELGATE_BASE_CACHE": cache},
        capture_output=True,
        text=True,
    )
    assert made.returncode == 0, made.stdout + made.stderr
    buildah.phases["base"] = time.monotonic() - started
    options = [
        "--isolation=chroot",
        "--format=docker",  # OCI's format has no HEALTHCHECK
        f"--layers={str(buildah.kept).lower()}",
        f"--build-arg=BASE={BASE}",
        "--build-arg=TORCH_INDEX=",  # the torch of scripts/setup: pip's own sources
        *pip_sources(tmp_path_factory.mktemp("pip")),
    ]
    if buildah.kept:
        # the stage that installs pixelgate, tagged too, so that pruning keeps its layers
        # (those of the requirements under it above all) for the next run
        stage = ["--target=build", f"--tag={BUILD_STAGE}"]
        buildah("build", *options, *stage, str(ROOT), phase="build-stage")
    buildah("build", *options, f"--tag={IMAGE}", str(ROOT), phase="build")
    inspected = json.loads(buildah("inspect", "--type=image", IMAGE))
    config: dict[str, Any] = inspected["Docker"]["config"]
    return config


@dataclass
class Running:
    container: str
    url: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path


@pytest.fixture(scope="module")
def running(
    buildah: Buildah, image: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Running]:
    """The image's own command in a container of it, on a free port of this machine (chroot
    isolation shares the machine's network), with a known admin key."""
    container = buildah("from", "--quiet", IMAGE, phase="container")
    port = free_port()
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    command = [*image["Entrypoint"], *image["Cmd"]]
    settings = {"PIXELGATE_HOST": "127.0.0.1", "PIXELGATE_PORT": str(port)}
    settings["PIXELGATE_ADMIN_KEY"] = ADMIN_KEY
    options = [f"--env={name}={value}" for name, value in settings.items()]
    with log.open("wb") as out:
        process = subprocess.Popen(
            ["buildah", "run", "--isolation=chroot", *options, container, "--", *command],
            env=buildah.environment,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    started = time.monotonic()
    try:
        wait_ready(url, process, log, timeout=180)
        buildah.phases["ready"] = time.monotonic() - started
        yield Running(container, url, port, process, log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def listener_uid(port: int) -> int:
    """The user owning the socket listening on 127.0.0.1:`port` (/proc/net/tcp)."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1] == f"0100007F:{port:04X}" and fields[3] == "0A":  # LISTEN
            return int(fields[7])
    raise AssertionError(f"nothing listens on 127.0.0.1:{port}")


def test_the_image_serves_and_draws_a_shapes_image(running: Running) -> None:
    admin = httpx.Client(
        base_url=running.url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=120
    )
    response = admin.post(
        "/v1/inference/images/generate",
        json={
            "model": "pixelgate/shapes",
            "prompt": "a red circle",
            "seed": 7,
            "response_format": "b64_json",
        },
    )
    assert response.status_code == 200, response.text
    [result] = response.json()["data"]["data"]
    drawn = Image.open(io.BytesIO(base64.b64decode(result["b64_json"])))
    assert drawn.size == (64, 64)
    assert score(drawn.convert("RGB"), "a red circle").objects


def test_the_image_removes_a_background_with_kernels_compiled_at_build(
    running: Running, buildah: Buildah
) -> None:
    cache = Path(buildah("mount", running.container)) / "opt/pixelgate/numba-cache"
    compiled = {path: path.stat().st_mtime_ns for path in cache.rglob("*.nbi")}
    assert compiled, "the image holds no compiled numba kernels"
    picture = Image.new("RGB", (64, 64), "white")
    picture.paste((200, 30, 30), (16, 16, 48, 48))
    png = io.BytesIO()
    picture.save(png, format="PNG")
    started = time.monotonic()
    removed = httpx.post(
        f"{running.url}/v1/inference/images/remove-background",
        headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        files={"image": ("square.png", png.getvalue(), "image/png")},
        timeout=180,
    )
    buildah.phases["remove-background"] = time.monotonic() - started
    assert removed.status_code == 200, removed.text
    # the kernels were read from the image's cache, not compiled again for this container
    assert {path: path.stat().st_mtime_ns for path in cache.rglob("*.nbi")} == compiled


def test_the_server_runs_as_the_images_non_root_user(
    running: Running, image: dict[str, Any], buildah: Buildah
) -> None:
    assert image["User"] == "10001:10001"
    # a `buildah run` beside the server's own in the same container printed nothing once (exit
    # 0, a loaded machine): an empty answer is asked again, any other is the answer
    uid = ""
    for _ in range(3):
        uid = buildah("run", "--isolation=chroot", running.container, "--", "id", "-u")
        if uid:
            break
    assert uid == "10001"
    assert listener_uid(running.port) == 10001


def test_the_images_health_check_follows_readiness(
    running: Running, image: dict[str, Any], buildah: Buildah
) -> None:
    kind, *check = image["Healthcheck"]["Test"]
    assert kind == "CMD"

    def health(port: int) -> int:
        return subprocess.run(
            [
                "buildah",
                "run",
                "--isolation=chroot",
                f"--env=PIXELGATE_PORT={port}",
                running.container,
                "--",
                *check,
            ],
            env=buildah.environment,
            capture_output=True,
        ).returncode

    assert health(running.port) == 0
    assert health(free_port()) != 0
