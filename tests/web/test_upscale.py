"""The studio's Upscale tab and "Upscale this" on a result, in Chromium against a real server
(the model-free Lanczos upscaler)."""

from __future__ import annotations

import io
from pathlib import Path

import httpx
from PIL import Image
from playwright.sync_api import Page, expect

from tests.web.conftest import DESKTOP, Pages, axe_violations, sign_in


def small_picture(path: Path) -> Path:
    Image.linear_gradient("L").resize((24, 16)).convert("RGB").save(path)
    return path


def test_upscale_a_chosen_picture_four_times(page: Page, tmp_path: Path) -> None:
    sign_in(page)
    page.get_by_role("tab", name="Upscale").click()
    expect(page.get_by_role("tabpanel", name="Upscale")).to_be_visible()
    page.get_by_label("Upscaler").select_option("pixelgate/lanczos")
    page.get_by_label("Image to upscale").set_input_files(small_picture(tmp_path / "s.png"))
    page.get_by_label("Enlarge by").select_option("4")
    with page.expect_request("**/v1/inference/images/upscale") as sent:
        page.get_by_role("button", name="Upscale", exact=True).click()

    body = sent.value.post_data_json
    assert isinstance(body, dict)
    assert (body["model"], body["factor"], body["async"]) == ("pixelgate/lanczos", 4, True)
    upscaled = page.locator("#upscale-results img")
    expect(upscaled).to_have_count(1)
    expect(page.locator("#upscale-status")).to_contain_text("done")
    url = upscaled.get_attribute("src")
    assert url is not None
    assert Image.open(io.BytesIO(httpx.get(url).content)).size == (96, 64)
    expect(page.locator("#upscale-results .prompt")).to_have_text(
        "s upscaled 4\N{MULTIPLICATION SIGN}"
    )


def test_upscale_this_sends_a_result_by_reference(page: Page) -> None:
    sign_in(page)
    page.locator("#model").select_option("local/tiny")
    page.get_by_label("Prompt", exact=True).fill("a small disc")
    page.get_by_role("button", name="Generate").click()
    card = page.locator("#results .card").first
    expect(card).to_be_visible()
    file_id = card.get_attribute("data-file-id")

    card.get_by_role("button", name="Upscale this").click()

    expect(page.get_by_role("tabpanel", name="Upscale")).to_be_visible()
    expect(page.locator("#upscale-source")).to_contain_text(str(file_id))
    expect(page.get_by_label("Enlarge by")).to_be_focused()
    with page.expect_request("**/v1/inference/images/upscale") as sent:
        page.get_by_role("button", name="Upscale", exact=True).click()
    body = sent.value.post_data_json
    assert isinstance(body, dict)
    assert body["image_file_id"] == file_id and "image" not in body
    expect(page.locator("#upscale-results img")).to_have_count(1)


def test_a_refused_upscale_shows_the_api_error_and_the_tab_passes_axe(pages: Pages) -> None:
    page = pages.open(DESKTOP, bypass_csp=True)  # to inject axe's script
    sign_in(page)
    page.get_by_role("tab", name="Upscale").click()
    page.get_by_role("button", name="Upscale", exact=True).click()

    expect(page.locator("#upscale-error")).to_have_text("Upscaling needs an input image.")
    assert axe_violations(page) == [], "the Upscale tab, with an error"
