"""The Google Imagen adapter against a fake `:predict` endpoint on loopback: the Gemini API with
a key, Vertex AI with an access token or a service account (a fake OAuth token endpoint checks
the signed assertion)."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from pixelgate.catalog import Catalog
from pixelgate.errors import (
    BackendError,
    Canceled,
    ModelUnavailable,
    MustProvideFile,
    ValidationError,
)
from pixelgate.providers import CancelToken, GeneratedImage, ImageInput, ImageTask
from pixelgate.providers.imagen import ImagenProvider
from tests.providers.conftest import Progress, options_for
from tests.providers.upstreams.imagen import TOKEN_PATH, FakeImagen, google_error
from tests.providers.upstreams.images import image_bytes, size_of
from tests.providers.upstreams.server import Reply

GOOGLE_KEY = "AIza-test-google-0123456789"
PRIVATE_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def upstream() -> Iterator[FakeImagen]:
    with FakeImagen(api_key=GOOGLE_KEY, public_key=PRIVATE_KEY.public_key()) as fake:
        yield fake


@pytest.fixture
def gemini(upstream: FakeImagen, make_settings: Any) -> ImagenProvider:
    return ImagenProvider.from_settings(
        make_settings(google_api_key=GOOGLE_KEY, google_base_url=upstream.url)
    )


def vertex_settings(upstream: FakeImagen, **more: Any) -> dict[str, Any]:
    return {
        "google_vertex_project": upstream.project,
        "google_vertex_region": upstream.region,
        "google_vertex_base_url": upstream.url,
        **more,
    }


@pytest.fixture
def vertex(upstream: FakeImagen, make_settings: Any) -> ImagenProvider:
    return ImagenProvider.from_settings(
        make_settings(**vertex_settings(upstream, google_vertex_access_token=upstream.access_token))
    )


def service_account_file(tmp_path: Path, upstream: FakeImagen) -> Path:
    pem = PRIVATE_KEY.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    path = tmp_path / "service-account.json"
    path.write_text(
        json.dumps(
            {
                "type": "service_account",
                "project_id": upstream.project,
                "private_key_id": "key-1",
                "private_key": pem,
                "client_email": upstream.account_email,
                "token_uri": upstream.url + TOKEN_PATH,
            }
        )
    )
    return path


def run(
    provider: ImagenProvider,
    catalog: Catalog,
    model: str,
    *,
    kind: str = "generate",
    image: ImageInput | None = None,
    mask: ImageInput | None = None,
    cancel: CancelToken | None = None,
    progress: Progress | None = None,
    **options: Any,
) -> list[GeneratedImage]:
    spec = catalog.resolve(model)
    task = ImageTask(
        kind=kind,  # type: ignore[arg-type]
        options=options_for(catalog, spec, **options),
        image=image,
        mask=mask,
    )
    return provider.run(spec, task, progress=progress or Progress(), cancel=cancel or CancelToken())


def picture(width: int = 64, height: int = 48) -> ImageInput:
    return ImageInput(image_bytes(width, height), "image/png", width, height)


def white_mask(width: int = 64, height: int = 48) -> ImageInput:
    return ImageInput(image_bytes(width, height, color=(255,) * 3), "image/png", width, height)


def test_gemini_api_generation_sends_the_documented_request(
    gemini: ImagenProvider, upstream: FakeImagen, catalog: Catalog, progress: Progress
) -> None:
    images = run(
        gemini,
        catalog,
        "imagen4",
        progress=progress,
        n=3,
        aspect_ratio="16:9",
        person_generation="dont_allow",
        safety_setting="block_only_high",
    )

    [request] = upstream.received
    assert request.path == "/v1beta/models/imagen-4.0-generate-001:predict"
    assert request.headers["x-goog-api-key"] == GOOGLE_KEY
    assert "authorization" not in request.headers
    assert request.json == {
        "instances": [{"prompt": "a red fox in the snow"}],
        "parameters": {
            "sampleCount": 3,
            "aspectRatio": "16:9",
            "personGeneration": "dont_allow",
            "safetySetting": "block_only_high",
            "outputOptions": {"mimeType": "image/png"},
            "includeRaiReason": True,
        },
    }
    assert [image.data for image in images] == upstream.made
    assert (images[0].width, images[0].height, images[0].seed) == (64, 36, None)
    assert progress.calls == [(0, 1), (1, 1)]


def test_gemini_api_takes_no_seed_so_an_unwatermarked_request_is_refused_unsent(
    gemini: ImagenProvider, upstream: FakeImagen, catalog: Catalog
) -> None:
    with pytest.raises(ValidationError) as caught:
        run(gemini, catalog, "imagen3", add_watermark=False, seed=7)

    assert caught.value.param == "add_watermark"
    assert "Vertex AI" in caught.value.message
    assert upstream.received == []


def test_a_seed_needs_the_watermark_off(catalog: Catalog) -> None:
    spec = catalog.resolve("imagen4")
    with pytest.raises(ValidationError) as caught:
        catalog.validate_options(spec, {"prompt": "fox", "seed": 7})
    assert caught.value.param == "seed"
    assert "add_watermark" in caught.value.message


@pytest.mark.parametrize(
    ("model", "options", "param"),
    [
        ("imagen4", {"aspect_ratio": "2:1"}, "aspect_ratio"),
        ("imagen4", {"n": 5}, "n"),
        ("imagen4-ultra", {"n": 2}, "n"),
        ("imagen3", {"person_generation": "everyone"}, "person_generation"),
        ("imagen3", {"safety_setting": "off"}, "safety_setting"),
        ("imagen3", {"negative_prompt": "blur"}, "negative_prompt"),
        ("imagen3-edit", {"edit_mode": "upscale"}, "edit_mode"),
        ("imagen3-edit", {"mask_dilation": 2}, "mask_dilation"),
    ],
)
def test_options_are_checked_against_the_family(
    catalog: Catalog, model: str, options: dict[str, Any], param: str
) -> None:
    spec = catalog.resolve(model)
    with pytest.raises(ValidationError) as caught:
        catalog.validate_options(spec, {"prompt": "fox", **options})
    assert caught.value.param == param


def test_vertex_ai_generation_with_an_access_token_and_a_seed(
    vertex: ImagenProvider, upstream: FakeImagen, catalog: Catalog
) -> None:
    [image] = run(vertex, catalog, "imagen3", add_watermark=False, seed=42, output_format="jpeg")

    [request] = upstream.received
    assert request.path == (
        "/v1/projects/pixel-project/locations/europe-west4/publishers/google/models/"
        "imagen-3.0-generate-002:predict"
    )
    assert request.headers["authorization"] == f"Bearer {upstream.access_token}"
    assert request.json["parameters"] | {} == {
        "sampleCount": 1,
        "aspectRatio": "1:1",
        "personGeneration": "allow_adult",
        "safetySetting": "block_medium_and_above",
        "outputOptions": {"mimeType": "image/jpeg"},
        "includeRaiReason": True,
        "addWatermark": False,
        "seed": 42,
    }
    assert (image.seed, image.content_type, image.data) == (42, "image/jpeg", upstream.made[0])


def test_a_job_fixes_a_seed_only_for_an_unwatermarked_request(catalog: Catalog) -> None:
    """The service fixes a seed for every job of a family that has one (`with_seed`); a
    watermarked Imagen image cannot be reproduced, and the API refuses a seed with it."""
    spec = catalog.resolve("imagen4-fast")
    assert options_for(catalog, spec).with_seed(1234).seed_value is None
    unmarked = options_for(catalog, spec, add_watermark=False).with_seed(1234)
    assert unmarked.seed_value == 1234


def test_a_service_account_gets_one_token_for_many_requests(
    upstream: FakeImagen, make_settings: Any, catalog: Catalog, tmp_path: Path
) -> None:
    credentials = service_account_file(tmp_path, upstream)
    provider = ImagenProvider.from_settings(
        make_settings(**vertex_settings(upstream, google_vertex_credentials_file=credentials))
    )

    run(provider, catalog, "imagen4")
    run(provider, catalog, "imagen4", n=2)

    token_requests = upstream.requests_to(TOKEN_PATH)
    assert len(token_requests) == 1 and upstream.tokens_issued == 1
    assert token_requests[0].content_type == "application/x-www-form-urlencoded"
    predictions = [r for r in upstream.received if r.path.endswith(":predict")]
    assert len(predictions) == 2
    assert {r.headers["authorization"] for r in predictions} == {f"Bearer {upstream.access_token}"}
    assert len(upstream.made) == 3


def test_a_refused_service_account_is_a_backend_error(
    upstream: FakeImagen, make_settings: Any, catalog: Catalog, tmp_path: Path
) -> None:
    credentials = service_account_file(tmp_path, upstream)
    upstream.account_email = "someone-else@example.iam.gserviceaccount.com"
    provider = ImagenProvider.from_settings(
        make_settings(**vertex_settings(upstream, google_vertex_credentials_file=credentials))
    )

    with pytest.raises(BackendError, match="refused pixelgate's service account"):
        run(provider, catalog, "imagen4")
    assert not [r for r in upstream.received if r.path.endswith(":predict")]


def test_an_unreadable_credentials_file_makes_the_models_unavailable(
    upstream: FakeImagen, make_settings: Any, catalog: Catalog, tmp_path: Path
) -> None:
    bad = tmp_path / "key.json"
    bad.write_text('{"type": "authorized_user"}')
    provider = ImagenProvider.from_settings(
        make_settings(**vertex_settings(upstream, google_vertex_credentials_file=bad))
    )
    reason = provider.unavailable_reason(catalog.resolve("imagen4"))
    assert reason is not None and "not a service account key file" in reason


def test_inpaint_insertion_sends_the_image_and_the_mask_as_reference_images(
    vertex: ImagenProvider, upstream: FakeImagen, catalog: Catalog
) -> None:
    image, mask = picture(), white_mask()
    [edited] = run(
        vertex,
        catalog,
        "imagen3-edit",
        kind="edit",
        image=image,
        mask=mask,
        negative_prompt="blurry",
        base_steps=35,
        mask_dilation=0.03,
    )

    [request] = upstream.received
    assert request.path.endswith("/models/imagen-3.0-capability-001:predict")
    [instance] = request.json["instances"]
    assert instance == {
        "prompt": "a red fox in the snow",
        "referenceImages": [
            {
                "referenceType": "REFERENCE_TYPE_RAW",
                "referenceId": 1,
                "referenceImage": {
                    "bytesBase64Encoded": base64.b64encode(image.data).decode(),
                    "mimeType": "image/png",
                },
            },
            {
                "referenceType": "REFERENCE_TYPE_MASK",
                "referenceId": 2,
                "maskImageConfig": {"maskMode": "MASK_MODE_USER_PROVIDED", "dilation": 0.03},
                "referenceImage": {
                    "bytesBase64Encoded": base64.b64encode(mask.data).decode(),
                    "mimeType": "image/png",
                },
            },
        ],
    }
    parameters = request.json["parameters"]
    assert parameters["editMode"] == "EDIT_MODE_INPAINT_INSERTION"
    assert (parameters["negativePrompt"], parameters["baseSteps"]) == ("blurry", 35)
    assert size_of(edited.data) == (64, 48)


@pytest.mark.parametrize(
    ("edit_mode", "mask_mode", "expected"),
    [
        ("background-swap", None, "MASK_MODE_BACKGROUND"),
        ("inpaint-removal", "foreground", "MASK_MODE_FOREGROUND"),
    ],
)
def test_a_mask_imagen_computes_is_sent_without_bytes(
    vertex: ImagenProvider,
    upstream: FakeImagen,
    catalog: Catalog,
    edit_mode: str,
    mask_mode: str | None,
    expected: str,
) -> None:
    run(vertex, catalog, "imagen3-edit", kind="edit", image=picture(),
        edit_mode=edit_mode, mask_mode=mask_mode)  # fmt: skip

    request = upstream.received[0].json
    mask = request["instances"][0]["referenceImages"][1]
    assert mask == {
        "referenceType": "REFERENCE_TYPE_MASK",
        "referenceId": 2,
        "maskImageConfig": {"maskMode": expected},
    }
    assert (
        request["parameters"]["editMode"]
        == {
            "background-swap": "EDIT_MODE_BGSWAP",
            "inpaint-removal": "EDIT_MODE_INPAINT_REMOVAL",
        }[edit_mode]
    )


def test_outpainting_without_a_mask_asks_for_one_and_sends_nothing(
    vertex: ImagenProvider, upstream: FakeImagen, catalog: Catalog
) -> None:
    with pytest.raises(MustProvideFile) as caught:
        run(vertex, catalog, "imagen3-edit", kind="edit", image=picture(), edit_mode="outpaint")
    assert caught.value.param == "mask"
    assert "background or foreground" in caught.value.message
    assert upstream.received == []


def test_a_mask_beside_a_computed_mask_mode_is_refused(
    vertex: ImagenProvider, upstream: FakeImagen, catalog: Catalog
) -> None:
    with pytest.raises(ValidationError) as caught:
        run(vertex, catalog, "imagen3-edit", kind="edit", image=picture(), mask=white_mask(),
            mask_mode="background")  # fmt: skip
    assert caught.value.param == "mask_mode"
    assert upstream.received == []


def test_editing_needs_vertex_ai(gemini: ImagenProvider, catalog: Catalog) -> None:
    reason = gemini.unavailable_reason(catalog.resolve("imagen3-edit"))
    assert reason is not None
    assert "Vertex AI only" in reason and "PIXELGATE_GOOGLE_VERTEX_PROJECT" in reason
    assert gemini.unavailable_reason(catalog.resolve("imagen4")) is None


def test_unconfigured_the_models_name_the_settings(
    upstream: FakeImagen, make_settings: Any, catalog: Catalog
) -> None:
    provider = ImagenProvider.from_settings(make_settings(google_base_url=upstream.url))
    reason = provider.unavailable_reason(catalog.resolve("imagen4"))
    assert reason == (
        "provider 'google' has no API key (set PIXELGATE_GOOGLE_API_KEY), or "
        "PIXELGATE_GOOGLE_VERTEX_PROJECT for Vertex AI"
    )
    with pytest.raises(ModelUnavailable):
        run(provider, catalog, "imagen4")
    half = ImagenProvider.from_settings(make_settings(google_vertex_project="p"))
    assert "PIXELGATE_GOOGLE_VERTEX_CREDENTIALS_FILE" in str(
        half.unavailable_reason(catalog.resolve("imagen4"))
    )
    assert upstream.received == []


def test_the_responsible_ai_filter_is_a_backend_error(
    gemini: ImagenProvider, upstream: FakeImagen, catalog: Catalog
) -> None:
    upstream.script(
        upstream.gemini_path("imagen-3.0-generate-002"),
        google_error(
            400,
            "Image generation failed with the following error: The prompt could not be "
            "submitted. This prompt contains sensitive words that violate Google's "
            "Responsible AI practices.",
            "INVALID_ARGUMENT",
        ),
    )
    with pytest.raises(BackendError, match="Google's safety filter refused the request"):
        run(gemini, catalog, "imagen3")


def test_other_400s_are_the_callers_input(
    gemini: ImagenProvider, upstream: FakeImagen, catalog: Catalog
) -> None:
    upstream.script(
        upstream.gemini_path("imagen-3.0-generate-002"),
        google_error(400, "Invalid value at 'parameters.sampleCount'", "INVALID_ARGUMENT"),
    )
    with pytest.raises(ValidationError, match="sampleCount"):
        run(gemini, catalog, "imagen3")


def test_every_image_withheld_names_the_reasons_and_some_withheld_returns_the_rest(
    gemini: ImagenProvider, upstream: FakeImagen, catalog: Catalog
) -> None:
    path = upstream.gemini_path("imagen-3.0-generate-002")
    reason = "Your current safety filter threshold filtered out 1 generated image."
    image = {"bytesBase64Encoded": base64.b64encode(image_bytes(64, 64)).decode()}
    withheld = {"raiFilteredReason": reason}
    upstream.script(
        path,
        Reply.json({"predictions": [withheld]}),
        Reply.json({}),
        Reply.json({"predictions": [image | {"mimeType": "image/png"}, withheld]}),
    )

    with pytest.raises(BackendError, match="withheld every image: Your current safety"):
        run(gemini, catalog, "imagen3", n=1)
    with pytest.raises(BackendError, match="no image came back"):
        run(gemini, catalog, "imagen3", n=1)
    assert len(run(gemini, catalog, "imagen3", n=2)) == 1


def test_429_is_retried_after_retry_after_and_5xx_gives_up_after_the_retries(
    vertex: ImagenProvider, upstream: FakeImagen, catalog: Catalog
) -> None:
    path = upstream.vertex_path("imagen-4.0-generate-001")
    upstream.script(
        path, google_error(429, "Quota exceeded", "RESOURCE_EXHAUSTED", retry_after="1")
    )
    started = time.monotonic()
    [image] = run(vertex, catalog, "imagen4")
    assert time.monotonic() - started >= 0.18  # Retry-After capped at the configured 0.2 s
    assert image.data == upstream.made[0]
    assert len(upstream.requests_to(path)) == 2

    failing = google_error(503, "The service is currently unavailable.", "UNAVAILABLE")
    upstream.script(path, failing, failing, failing)
    with pytest.raises(BackendError) as caught:
        run(vertex, catalog, "imagen4")
    assert caught.value.message == (
        "The google provider answered HTTP 503: The service is currently unavailable."
    )
    assert len(upstream.requests_to(path)) == 5


def test_a_refused_token_is_a_backend_error_that_does_not_show_it(
    upstream: FakeImagen, make_settings: Any, catalog: Catalog
) -> None:
    provider = ImagenProvider.from_settings(
        make_settings(**vertex_settings(upstream, google_vertex_access_token="ya29.wrong"))
    )
    with pytest.raises(BackendError) as caught:
        run(provider, catalog, "imagen4")
    assert "HTTP 401" in caught.value.message and "ya29.wrong" not in caught.value.message


def test_cancel_before_the_call_sends_nothing(
    vertex: ImagenProvider, upstream: FakeImagen, catalog: Catalog, cancel: CancelToken
) -> None:
    cancel.cancel()
    with pytest.raises(Canceled):
        run(vertex, catalog, "imagen4", cancel=cancel)
    assert upstream.received == []
