"""The safety checks: the real open_nsfw classifier over outputs, and the prompt block-list.
Both off by default; on, globally or per tenant."""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw
from sqlalchemy import func, select

from pixelgate.catalog import Catalog
from pixelgate.db.tables import StoredFile
from pixelgate.errors import ValidationError
from pixelgate.providers import GeneratedImage, ProviderRegistry
from pixelgate.service.access import Principal
from pixelgate.service.execution import JobExecutor
from pixelgate.service.jobs import ImageCommand
from pixelgate.service.safety import NsfwClassifier, Safety, blocked_pattern
from pixelgate.service.tenants import TenantChanges
from tests.conftest import Server
from tests.helpers import generate
from tests.installed_weights import safety_model_file
from tests.service.conftest import FIXTURE_MODEL, Services

CALLER = Principal("key_test", "default", frozenset({"admin"}))


def png(colour: tuple[int, int, int]) -> bytes:
    image = Image.new("RGB", (96, 96), colour)
    ImageDraw.Draw(image).ellipse((24, 24, 72, 72), fill=(15, 15, 15))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def classifier() -> NsfwClassifier:
    return NsfwClassifier(safety_model_file(), threads=1)


def executor_with(services: Services, safety: Safety) -> JobExecutor:
    """The services' executor, with the safety check on; the provider draws real pictures."""
    services.provider.behaviour = lambda task, progress, cancel: [
        GeneratedImage(png((200, 40, 40)), "image/png", 96, 96, seed=task.options.seed_value)
    ]
    catalog = Catalog([*Catalog.load(), FIXTURE_MODEL])
    collaborators = replace(
        services.collaborators, catalog=catalog, providers=ProviderRegistry([services.provider])
    )
    return JobExecutor(
        collaborators,
        worker_id="test-worker",
        lease_seconds=30,
        max_attempts=1,
        requeue=services.queue.enqueue,
        keys=services.tenants.keys,
        safety=safety,
    )


def run_job(services: Services, executor: JobExecutor) -> tuple[str, str | None, str | None, int]:
    """Submit and run one job; its status, error code and message, and how many files exist."""
    command = ImageCommand(task="generate", model="test/fixture", options={"prompt": "x"})
    job = services.jobs.submit(CALLER, command)
    executor.run(job.id)
    job = services.jobs.get(CALLER, job.id)
    with services.db.session() as session:
        files = session.scalar(select(func.count()).select_from(StoredFile)) or 0
    return job.status, job.error_code, job.error_message, files


# -- the classifier -----------------------------------------------------------------------


def test_plain_pictures_score_as_safe(classifier: NsfwClassifier) -> None:
    noise = Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8))
    buffer = io.BytesIO()
    noise.save(buffer, format="WEBP")
    pictures = [png((255, 255, 255)), png((20, 60, 200)), buffer.getvalue()]

    scores = classifier.scores(pictures)

    assert len(scores) == 3
    assert all(0.0 < score < 0.2 for score in scores), scores
    assert classifier.scores(pictures[:1]) == pytest.approx(scores[:1], abs=1e-5)


# -- the output check, in the executor ------------------------------------------------------


def test_off_by_default_every_image_is_kept(services: Services, classifier: NsfwClassifier) -> None:
    executor = executor_with(services, Safety(services.tenants, classifier))

    assert run_job(services, executor) == ("succeeded", None, None, 1)


def test_a_flagged_image_is_withheld_and_the_job_fails(
    services: Services, classifier: NsfwClassifier
) -> None:
    # any image scores above 0: with the threshold at 0 every image is flagged
    executor = executor_with(services, Safety(services.tenants, classifier, threshold=0.0))

    status, code, message, files = run_job(services, executor)

    assert (status, code, files) == ("failed", "BACKEND_ERROR", 0)
    assert message is not None and "safety filter" in message


def test_an_image_under_the_threshold_passes(
    services: Services, classifier: NsfwClassifier
) -> None:
    executor = executor_with(services, Safety(services.tenants, classifier, threshold=0.5))

    assert run_job(services, executor) == ("succeeded", None, None, 1)


def test_a_tenant_threshold_wins_over_the_global_one(
    services: Services, classifier: NsfwClassifier
) -> None:
    strict_tenant = executor_with(services, Safety(services.tenants, classifier, threshold=None))
    services.tenants.update("default", TenantChanges(safety_threshold=0.0))
    assert run_job(services, strict_tenant)[:2] == ("failed", "BACKEND_ERROR")

    lenient_tenant = executor_with(services, Safety(services.tenants, classifier, threshold=0.0))
    services.tenants.update("default", TenantChanges(safety_threshold=0.9))
    assert run_job(services, lenient_tenant)[:2] == ("succeeded", None)


def test_with_the_check_on_a_missing_classifier_fails_closed(
    services: Services, tmp_path: Path
) -> None:
    missing = NsfwClassifier(tmp_path / "nowhere.onnx")
    executor = executor_with(services, Safety(services.tenants, missing, threshold=0.5))

    status, code, message, files = run_job(services, executor)

    assert (status, code, files) == ("failed", "BACKEND_ERROR", 0)
    assert message is not None and "nowhere.onnx" in message and "safety filter" in message


# -- the prompt block-list ------------------------------------------------------------------


def test_the_block_list_refuses_whole_words_and_phrases_in_any_case(services: Services) -> None:
    safety = Safety(
        services.tenants, NsfwClassifier(Path("unused")), blocked_terms=["gore", "blood bath"]
    )

    for prompt in ("GORE everywhere", "a scene of gore.", "a Blood   Bath at dawn"):
        with pytest.raises(ValidationError) as caught:
            safety.check_prompt(prompt, "default")
        assert caught.value.param == "prompt"
        assert "blocked term" in caught.value.message
    for prompt in ("a gorgeous sunset", "bloodbath", "a bath of blood orange"):
        safety.check_prompt(prompt, "default")


def test_no_block_list_by_default(services: Services) -> None:
    safety = Safety(services.tenants, NsfwClassifier(Path("unused")))

    safety.check_prompt("gore and blood bath", "default")
    assert blocked_pattern([]) is None
    assert blocked_pattern(["  "]) is None


# -- through the real server ------------------------------------------------------------------


def test_a_server_with_a_threshold_withholds_generated_images(
    make_server: Callable[..., Server],
) -> None:
    server = make_server(
        PIXELGATE_SAFETY_THRESHOLD="0",
        PIXELGATE_SAFETY_MODEL_FILE=str(safety_model_file()),
    ).start()
    with server.client() as api:
        response = generate(api, width=64, height=64, num_steps=2)
        jobs = api.get("/v1/jobs", params={"status": "failed"}).json()["data"]

    assert response.status_code == 502, response.text
    error = response.json()["error"]
    assert error["code"] == "BACKEND_ERROR"
    assert "safety filter" in error["message"]
    assert jobs[0]["error"]["code"] == "BACKEND_ERROR"
