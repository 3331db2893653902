"""Local models run in a worker process of their own: a crash there costs one attempt of the
jobs it was running, never the API; the worker is recycled after a number of jobs or past a
memory ceiling; the default model is loaded and warmed up at start, and /readyz says when."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from pixelgate.catalog import Catalog
from pixelgate.engine.model_launch import start_host
from pixelgate.engine.model_process import ModelProcess
from pixelgate.settings import load_settings
from tests.conftest import Server
from tests.helpers import submit, wait_for

LONG = {"model": "local/tiny", "num_steps": 60, "width": 128, "height": 128}
"""A job of a few seconds: long enough to be killed mid-call."""


def model_workers(server: Server) -> list[int]:
    """The pids of the server's model worker processes now."""
    assert server.process is not None
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == server.process.pid and b"pixelgate.engine.model_host" in command:
            found.append(int(entry.name))
    return found


def model_worker_pid(server: Server, timeout: float = 60) -> int:
    """The pid of the server's model worker process, once it has one."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := model_workers(server):
            return found[0]
        time.sleep(0.05)
    raise AssertionError("the server has no model worker process")


def wait_for_progress(api: httpx.Client, job_id: str, *, attempt: int = 1) -> None:
    """Until the job's `attempt`th run has made two steps: the model is mid-call. (The event
    stream replays the job's history: each run starts with a `running` event.)"""
    event = ""
    runs = 0
    with api.stream("GET", f"/v1/jobs/{job_id}/events", timeout=60) as response:
        for line in response.iter_lines():
            if line.startswith("event:"):
                event = line.split(":", 1)[1].strip()
                runs += event == "running"
            elif line.startswith("data:") and event == "progress" and runs == attempt:
                step: int = json.loads(line.split(":", 1)[1])["step"]
                if step >= 2:
                    return
    raise AssertionError(f"run {attempt} of job {job_id} never got to step 2")


def tenant_client(api: httpx.Client, tenant_id: str, price: str) -> httpx.Client:
    created = api.post(
        "/v1/admin/tenants",
        json={
            "id": tenant_id,
            "name": tenant_id,
            "budget_total": "10",
            "prices": {"local/tiny": {"default": price}},
        },
    )
    assert created.status_code == 201, created.text
    key = api.post("/v1/admin/keys", json={"tenant_id": tenant_id, "name": "app"})
    return httpx.Client(
        base_url=str(api.base_url),
        headers={"Authorization": f"Bearer {key.json()['data']['key']}"},
        timeout=60,
    )


def test_a_killed_model_worker_costs_one_attempt_and_the_job_is_billed_once(
    make_server: Any,
) -> None:
    server: Server = make_server().start()
    with server.client() as admin, tenant_client(admin, "crash", "0.25") as api:
        job = submit(api, **LONG, seed=5)
        wait_for_progress(api, job["id"])
        victim = model_worker_pid(server)

        answers: list[int] = []
        stop = threading.Event()

        def keep_asking() -> None:
            while not stop.is_set():
                answers.append(httpx.get(f"{server.url}/healthz", timeout=5).status_code)
                time.sleep(0.05)

        watcher = threading.Thread(target=keep_asking)
        watcher.start()
        os.kill(victim, signal.SIGKILL)
        try:
            done = wait_for(api, job["id"], "succeeded", "failed", timeout=120)
        finally:
            stop.set()
            watcher.join()

        assert done["status"] == "succeeded", done
        assert done["attempts"] == 2
        assert model_worker_pid(server) != victim  # a new worker took over
        assert answers and set(answers) == {200}  # the API answered all along
        usage = api.get("/v1/usage").json()["data"]
        assert usage["images"] == 1
        assert usage["by_model"] == {"local/tiny": {"spent": "0.25", "images": 1, "jobs": 1}}
        budget = {b["period"]: b for b in usage["budgets"]}["total"]
        assert (budget["spent"], budget["reserved"]) == ("0.25", "0.00")
        image = httpx.get(done["result"]["data"][0]["url"])
        assert image.status_code == 200 and image.content.startswith(b"\x89PNG")


def test_a_job_whose_worker_dies_at_every_attempt_fails_with_a_clear_error(
    make_server: Any,
) -> None:
    server: Server = make_server(PIXELGATE_MAX_ATTEMPTS="2").start()
    with server.client() as admin, tenant_client(admin, "doomed", "0.25") as api:
        job = submit(api, **LONG)
        for attempt in (1, 2):
            wait_for_progress(api, job["id"], attempt=attempt)
            victim = model_worker_pid(server)
            os.kill(victim, signal.SIGKILL)
            deadline = time.monotonic() + 30
            while model_worker_pid(server) == victim and time.monotonic() < deadline:
                time.sleep(0.05)
        failed = wait_for(api, job["id"], "failed", timeout=60)

        assert failed["attempts"] == 2
        assert failed["error"]["code"] == "WORKER_CRASHED"
        assert "killed by SIGKILL" in failed["error"]["message"]
        budget = {b["period"]: b for b in api.get("/v1/usage").json()["data"]["budgets"]}
        assert (budget["total"]["spent"], budget["total"]["reserved"]) == ("0.00", "0.00")
        assert api.get("/healthz").status_code == 200


def recycled(server: Server, times: int) -> list[int]:
    """Waits until the server's log tells of `times` recycled workers and their successors;
    the pids of every model worker process it started."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        log = server.log_path.read_text()
        started = [int(pid) for pid in re.findall(r"model worker process (\d+) started", log)]
        if log.count("recycling model worker process") >= times and len(started) > times:
            return started
        time.sleep(0.1)
    raise AssertionError(f"fewer than {times} workers were recycled and replaced")


def test_the_worker_is_recycled_after_its_job_count(make_server: Any) -> None:
    server: Server = make_server(PIXELGATE_MODEL_WORKER_MAX_JOBS="2").start()
    with server.client() as api:
        for seed in range(4):
            job = wait_for(api, submit(api, seed=seed)["id"], "succeeded", "failed")
            assert job["status"] == "succeeded", job
            if seed == 1:
                started = recycled(server, 1)
                assert len(set(started)) == 2  # the first, and its successor, ready for job 3
    assert len(set(recycled(server, 2))) == 3


def test_the_worker_is_recycled_past_its_memory_ceiling(make_server: Any) -> None:
    # any model takes more than 1 MB: every job ends past the ceiling
    server: Server = make_server(PIXELGATE_MODEL_WORKER_MAX_MEMORY_MB="1").start()
    with server.client() as api:
        for seed in (1, 2):
            job = wait_for(api, submit(api, seed=seed)["id"], "succeeded", "failed")
            assert job["status"] == "succeeded", job
            started = recycled(server, seed)
    assert len(set(started)) == 3


def test_the_default_model_is_warm_before_the_server_says_ready(make_server: Any) -> None:
    server: Server = make_server(PIXELGATE_PRELOAD_MODELS='["pixelgate/shapes"]').start()
    with server.client() as api:
        ready = api.get("/readyz").json()
        assert ready["checks"]["models"] == "ok"
        started = time.monotonic()
        response = api.post(
            "/v1/inference/images/generate",
            json={"model": "pixelgate/shapes", "prompt": "a red circle on a white background"},
        )
        took = time.monotonic() - started
    assert response.status_code == 200, response.text
    assert took < 10  # no loading on the request's path (a load plus imports takes longer)
    assert "loaded model pixelgate/shapes" in server.log_path.read_text()


def test_with_nothing_to_preload_the_first_job_starts_the_model_worker(make_server: Any) -> None:
    server: Server = make_server(PIXELGATE_PRELOAD_MODELS="[]").start()
    with server.client() as api:
        assert api.get("/readyz").status_code == 200
        before = model_workers(server)  # no torch imported for a server that may never need it
        job = wait_for(api, submit(api, seed=5)["id"], "succeeded", "failed")

    assert before == []
    assert job["status"] == "succeeded", job
    assert model_worker_pid(server, timeout=1)


def test_stopping_does_not_wait_for_an_idle_model_worker_s_imports(tmp_path: Path) -> None:
    engine = ModelProcess.from_settings(load_settings(None, data_dir=tmp_path))
    engine.launch()  # it imports torch and diffusers first: seconds before it reads a message
    started = time.monotonic()
    engine.stop()
    took = time.monotonic() - started

    assert took < 1.0  # killed: it holds no work, only memory


def test_a_model_worker_started_ahead_is_adopted_and_loads_the_models(tmp_path: Path) -> None:
    head_start = start_host()  # what `pixelgate serve` does before it reads its settings
    engine = ModelProcess.from_settings(load_settings(None, data_dir=tmp_path))
    shapes = Catalog.load().resolve("pixelgate/shapes")
    try:
        engine.launch(head_start)
        engine.preload([(shapes, None)], wait=True)

        assert engine.readiness() == "ok"
        assert head_start.process.poll() is None  # the one started ahead did the work
    finally:
        engine.stop()
    assert head_start.process.returncode is not None


def test_a_model_worker_started_ahead_but_not_needed_is_ended(tmp_path: Path) -> None:
    engine = ModelProcess.from_settings(load_settings(None, data_dir=tmp_path))
    engine.launch()
    head_start = start_host()
    try:
        engine.launch(head_start)  # there is one already

        assert head_start.process.poll() is not None
    finally:
        engine.stop()


def test_a_server_whose_settings_are_wrong_leaves_no_model_worker_behind(tmp_path: Path) -> None:
    config = tmp_path / "pixelgate.toml"
    config.write_text('port = "eighty"\n')
    data_dir = tmp_path / "data"
    env = {**os.environ, "PIXELGATE_DATA_DIR": str(data_dir)}
    env = {key: value for key, value in env.items() if key != "PIXELGATE_PRELOAD_MODELS"}

    log = tmp_path / "serve.log"
    with log.open("wb") as output:  # not a pipe: a worker left behind would hold it open
        result = subprocess.run(
            [sys.executable, "-m", "pixelgate", "serve", "--config", str(config)],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            timeout=60,
        )

    assert result.returncode != 0
    assert "port" in log.read_text()
    assert started_with(f"PIXELGATE_DATA_DIR={data_dir}") == []


def started_with(variable: str) -> list[int]:
    """The pids of model worker processes whose environment holds `variable` (NAME=value)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            command = (entry / "cmdline").read_bytes()
            environment = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"pixelgate.engine.model_host" in command and variable.encode() in environment:
            found.append(int(entry.name))
    return found
