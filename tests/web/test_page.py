"""The web page in headless Debian Chromium, driven by Playwright, against a real server."""

from __future__ import annotations

import base64
import io
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from PIL import Image
from playwright.sync_api import Page, expect

from tests.conftest import ADMIN_KEY, Server
from tests.helpers import generate, tenant_key
from tests.rembg_server import disc_picture, is_cut_out, rembg_server
from tests.web.conftest import sign_in


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, models_dir: Path) -> Iterator[Server]:
    instance = rembg_server(tmp_path_factory.mktemp("web") / "data", models_dir)
    yield instance
    instance.stop()


def record_statuses(page: Page) -> None:
    """Keep every text the status line shows, to look at after the job ended."""
    page.evaluate(
        """() => {
            window.statuses = [];
            new MutationObserver(() => window.statuses.push(
                document.getElementById('status').textContent
            )).observe(document.getElementById('status'), {childList: true, subtree: true});
        }"""
    )


def test_a_wrong_key_is_refused_in_the_api_words(page: Page) -> None:
    page.goto("/")
    page.get_by_label("API key").fill("pg_wrong")
    page.get_by_role("button", name="Sign in").click()

    expect(page.locator("#signin-error")).to_have_text(
        "That key was not accepted. Invalid API key."
    )
    expect(page.get_by_label("API key")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#app")).to_be_hidden()


def test_the_form_shows_the_models_options_with_limits_and_defaults(page: Page) -> None:
    sign_in(page)
    page.locator("#model").select_option("local/tiny")

    width = page.locator("#opt-width")
    expect(width).to_have_value("64")
    assert (width.get_attribute("min"), width.get_attribute("max")) == ("32", "256")
    assert width.get_attribute("step") == "8"
    expect(page.locator("#opt-width-hint")).to_have_text(
        "The image's width. · 32 to 256, multiples of 8 · default: 64"
    )
    assert page.locator("#opt-num_steps").get_attribute("max") == "200"
    expect(page.locator("#opt-output_format")).to_have_value("png")
    assert page.locator("#option-fields [data-option]").evaluate_all(
        "inputs => inputs.map(i => i.name)"
    ) == [
        "n", "width", "height", "num_steps", "guidance_scale", "negative_prompt", "seed",
        "output_format", "strength",
    ]  # fmt: skip

    unavailable = page.locator("#model option[value='openai/dall-e-3']")
    expect(unavailable).to_be_disabled()
    expect(unavailable).to_have_text("openai/dall-e-3 (unavailable)")


def test_generate_with_local_tiny_shows_progress_then_the_image(page: Page) -> None:
    sign_in(page)
    page.locator("#model").select_option("local/tiny")
    page.get_by_label("Prompt", exact=True).fill("a red circle")
    page.locator("#opt-num_steps").fill("40")
    page.locator("#opt-seed").fill("7")
    record_statuses(page)

    page.get_by_role("button", name="Generate").click()

    result = page.locator("#results img")
    expect(result).to_have_count(1)
    expect(page.locator("#status")).to_have_text(re.compile("done$"))
    statuses: list[str] = page.evaluate("window.statuses")
    assert any(" step " in text and "of 40" in text for text in statuses), statuses
    assert result.evaluate("img => img.naturalWidth") == 64
    expect(page.locator("#results .prompt")).to_have_text("a red circle")
    expect(page.locator("#results .details")).to_have_text(
        "local/tiny · 64\u00d764 px · Steps 40 · seed 7"
    )
    expect(page.locator("#gallery img").first).to_be_visible()
    assert ADMIN_KEY not in page.evaluate("JSON.stringify(localStorage)")
    assert page.evaluate("sessionStorage.getItem('pixelgate.apiKey')") == ADMIN_KEY


def test_cancel_stops_a_running_job(page: Page) -> None:
    sign_in(page)
    page.locator("#model").select_option("local/tiny")
    page.get_by_label("Prompt", exact=True).fill("a slow picture")
    for name, value in (("num_steps", "200"), ("width", "128"), ("height", "128")):
        page.locator(f"#opt-{name}").fill(value)

    page.get_by_role("button", name="Generate").click()
    expect(page.locator("#status")).to_contain_text("step")
    page.get_by_role("button", name="Cancel").click()

    expect(page.locator("#status")).to_contain_text("canceled")
    expect(page.locator("#results img")).to_have_count(0)
    expect(page.get_by_role("button", name="Generate")).to_be_enabled()


def test_paint_a_mask_and_inpaint(page: Page, tmp_path: Path) -> None:
    photo = tmp_path / "photo.png"
    Image.new("RGB", (64, 64), (40, 120, 200)).save(photo)
    sign_in(page)
    page.locator("#model").select_option("local/tiny")
    page.get_by_label("Prompt", exact=True).fill("a yellow sun")
    page.locator("#input-image").set_input_files(photo)
    mask = page.locator("#mask-canvas")
    expect(mask).to_be_visible()
    expect(page.locator("#opt-width")).to_be_disabled()
    mask.scroll_into_view_if_needed()
    box = mask.bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + box["width"] * 0.3, box["y"] + box["height"] * 0.5)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.7, box["y"] + box["height"] * 0.5, steps=8)
    page.mouse.up()

    with page.expect_request("**/v1/inference/images/edit") as sent:
        page.get_by_role("button", name="Generate").click()
    expect(page.locator("#results img")).to_have_count(1)

    body = sent.value.post_data_json
    assert isinstance(body, dict)
    assert body["model"] == "local/tiny" and "width" not in body
    painted = Image.open(io.BytesIO(base64.b64decode(body["mask_image"]))).convert("L")
    assert painted.size == (64, 64)
    assert painted.getpixel((32, 32)) == 255  # painted: repaint
    assert painted.getpixel((32, 5)) == 0  # untouched: keep
    image = Image.open(io.BytesIO(base64.b64decode(body["input_image"])))
    assert image.convert("RGB").getpixel((5, 5)) == (40, 120, 200)


def test_remove_a_background(page: Page, tmp_path: Path) -> None:
    photo = tmp_path / "disc.jpg"
    photo.write_bytes(disc_picture("JPEG"))
    sign_in(page)

    page.get_by_role("tab", name="Remove background").click()
    page.get_by_label("Picture").set_input_files(photo)
    page.get_by_role("button", name="Remove background").click()

    cutout = page.locator("#cutout-results img")
    expect(cutout).to_have_count(1)
    url = cutout.get_attribute("src")
    assert url is not None
    assert is_cut_out(Image.open(io.BytesIO(httpx.get(url).content)))
    expect(page.locator("#cutout-results a")).to_have_text("Download")
    expect(page.locator("#gallery img.cutout").first).to_be_visible()


def test_remove_background_without_a_picture_shows_the_api_error(page: Page) -> None:
    sign_in(page)
    page.get_by_role("tab", name="Remove background").click()
    page.get_by_role("button", name="Remove background").click()

    expect(page.locator("#cutout-error")).to_have_text("Background removal needs an input image.")


def test_a_validation_error_is_shown_in_plain_words_next_to_its_field(page: Page) -> None:
    sign_in(page)
    page.locator("#model").select_option("local/tiny")
    page.get_by_label("Prompt", exact=True).fill("a red circle")
    width = page.get_by_label("Width (px)")
    width.fill("100")

    page.get_by_role("button", name="Generate").click()

    words = "100 is not allowed; use multiples of 8 in [32, 256]."
    expect(page.locator("#error")).to_have_text(f"Please check Width (px): {words}")
    expect(width).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#opt-width-error")).to_have_text(words)
    assert width.get_attribute("aria-describedby") == "opt-width-error opt-width-hint"
    width.fill("96")  # typing in the field takes the mark away
    expect(width).not_to_have_attribute("aria-invalid", "true")
    expect(page.locator("#opt-width-error")).to_have_count(0)


def test_the_gallery_pages_the_callers_files_and_deletes_one(page: Page, server: Server) -> None:
    with server.client() as admin:
        key = tenant_key(admin)
    with server.client(key) as client:
        for number in range(3):  # 15 files: a page of 12, then 3 more
            body = {"prompt": f"gallery {number}", "n": 5, "width": 64, "height": 64}
            assert generate(client, **body, num_steps=2).status_code == 200
    sign_in(page, key)
    gallery = page.locator("#gallery li")

    expect(gallery).to_have_count(12)
    expect(gallery.first).to_contain_text("gallery 2")
    page.get_by_role("button", name="Load more").click()
    expect(gallery).to_have_count(15)
    expect(gallery.last).to_contain_text("gallery 0")
    expect(page.get_by_role("button", name="Load more")).to_be_hidden()

    first = gallery.first
    file_id = first.get_attribute("data-file-id")
    link = first.locator("img").get_attribute("src")
    page.once("dialog", lambda dialog: dialog.accept())
    first.get_by_role("button", name="Delete").click()

    expect(gallery).to_have_count(14)
    expect(page.locator(f'#gallery li[data-file-id="{file_id}"]')).to_have_count(0)
    assert link is not None and httpx.get(link).status_code == 404
    with server.client(key) as client:
        assert client.get(f"/v1/files/{file_id}").status_code == 404
    page.get_by_role("button", name="Refresh").click()
    expect(gallery).to_have_count(12)
    expect(page.get_by_role("button", name="Load more")).to_be_visible()
