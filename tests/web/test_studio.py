"""The studio as a new user meets it, at a desktop's and a phone's size: the layout, plain
words, results, the editor and a server restart mid-job. Screenshots go to the `artifacts`
folder (see conftest)."""

from __future__ import annotations

import base64
import io
import re
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from PIL import Image
from playwright.sync_api import FloatRect, Page, Route, ViewportSize, expect

from tests.conftest import Server
from tests.web.conftest import DESKTOP, PHONE, Pages, horizontal_overflow, sign_in

Shoot = Callable[..., Path]


def fill_generate(page: Page, prompt: str, **options: str) -> None:
    page.locator("#model").select_option("local/tiny")
    page.get_by_label("Prompt", exact=True).fill(prompt)
    for name, value in options.items():
        page.locator(f"#opt-{name}").fill(value)


def start_job(page: Page, prompt: str, **options: str) -> None:
    """Generate, and wait until the job is seen running."""
    fill_generate(page, prompt, **options)
    page.get_by_role("button", name="Generate").click()
    expect(page.locator("#status")).to_contain_text("step")


def box(page: Page, selector: str) -> FloatRect:
    found = page.locator(selector).bounding_box()
    assert found is not None, selector
    return found


# -- 1. layout ---------------------------------------------------------------------------------


def test_form_and_result_side_by_side_on_desktop_stacked_on_a_phone(
    sized_page: Page, shoot: Shoot
) -> None:
    page = sized_page
    sign_in(page)
    fill_generate(page, "a lighthouse at dusk", seed="3")

    page.get_by_role("button", name="Generate").click()

    expect(page.locator("#results img")).to_have_count(1)
    result = box(page, "#results img")
    viewport = page.viewport_size
    assert viewport is not None
    assert 0 <= result["y"] < viewport["height"], "the result in view"
    shoot(page, "result")
    page.evaluate("window.scrollTo(0, 0)")
    form, output = box(page, ".controls"), box(page, "#output")
    if viewport == DESKTOP:
        assert output["x"] >= form["x"] + form["width"], "the result beside the form"
        assert abs(output["y"] - form["y"]) < 60
    else:
        assert output["y"] >= form["y"] + form["height"], "the result below the form"
    assert horizontal_overflow(page) == 0


def test_a_preview_of_the_current_step_shows_while_the_job_runs_then_the_result(
    sized_page: Page, shoot: Shoot
) -> None:
    page = sized_page
    sign_in(page)
    results = page.locator("#results img")
    before = results.count()
    # a prompt of its own at each size: an identical request would be served from the cache
    viewport = page.viewport_size
    assert viewport is not None
    prompt = f"a lighthouse at dusk, {viewport['width']} px"
    fill_generate(page, prompt, seed="5", num_steps="60")

    page.get_by_role("button", name="Generate").click()

    preview = page.locator("#preview-image")
    expect(preview).to_be_visible()
    expect(results).to_have_count(before)
    assert (preview.get_attribute("src") or "").startswith("data:image/jpeg;base64,")
    # decoded by the browser (the page's CSP allows data: images), 32 px: the tiny model's
    # latents of a 64 px image
    assert preview.evaluate("image => image.naturalWidth") == 32
    assert box(page, "#preview-image")["width"] >= 128, "shown large enough to see"
    shoot(page, "preview")
    expect(results).to_have_count(before + 1)
    expect(page.locator("#preview")).to_be_hidden()
    assert horizontal_overflow(page) == 0


def test_no_sideways_scrolling_from_360_to_1920_pixels(pages: Pages, shoot: Shoot) -> None:
    page = pages.open(PHONE)
    page.goto("/")
    page.get_by_label("API key").fill("pg_" + "a-very-long-wrong-key-" * 6)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#signin-error")).to_be_visible()
    fits_every_width(page, shoot, "signed-out")

    sign_in(page)
    fill_generate(page, "x" * 300, width="1000")
    page.get_by_role("button", name="Generate").click()
    expect(page.locator("#opt-width-error")).to_be_visible()
    fits_every_width(page, shoot, "signed-in-error")

    page.goto("/console")
    expect(page.locator("#chart-spent svg")).to_be_visible()
    fits_every_width(page, shoot, "console")


def fits_every_width(page: Page, shoot: Shoot, what: str) -> None:
    for width in (360, 390, 768, 1024, 1280, 1920):
        page.set_viewport_size({"width": width, "height": 800})
        assert horizontal_overflow(page) == 0, f"{what}, {width} px"
        if width in (360, 1280):
            shoot(page, f"{what}-{width}", full_page=True)


# -- 4. plain words ----------------------------------------------------------------------------


def test_labels_and_help_come_from_the_catalogs_titles_with_units(
    sized_page: Page, shoot: Shoot
) -> None:
    page = sized_page
    sign_in(page)
    page.locator("#model").select_option("local/tiny")

    labels = page.locator("#option-fields label").all_text_contents()
    assert labels[:4] == ["Number of images", "Width (px)", "Height (px)", "Steps"]
    assert "Prompt strength" in labels and "n" not in labels and "num steps" not in labels
    expect(page.locator("#opt-num_steps-hint")).to_have_text(
        "More denoising steps add detail and take longer. · 1 to 200 · default: 4"
    )
    expect(page.get_by_label("Choose an image to edit")).to_have_attribute("type", "file")
    page.get_by_label("Prompt", exact=True).fill("")
    page.get_by_role("button", name="Generate").click()
    expect(page.get_by_label("Prompt", exact=True)).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#prompt-error")).to_have_text("Prompt must not be empty.")
    assert horizontal_overflow(page) == 0
    page.get_by_label("Prompt", exact=True).scroll_into_view_if_needed()
    shoot(page, "empty-prompt")


def test_options_of_another_task_are_hidden(page: Page, tmp_path: Path) -> None:
    photo = tmp_path / "photo.png"
    Image.new("RGB", (64, 64), (40, 120, 200)).save(photo)
    sign_in(page)
    page.locator("#model").select_option("local/tiny")
    strength = page.locator("#opt-strength")

    expect(strength).to_be_hidden()  # text-to-image has no strength
    with page.expect_request("**/v1/inference/images/generate") as sent:
        fill_generate(page, "a red circle")
        page.get_by_role("button", name="Generate").click()
    assert "strength" not in (sent.value.post_data_json or {})

    page.get_by_label("Choose an image to edit").set_input_files(photo)
    expect(strength).to_be_visible()
    expect(page.get_by_label("Change (0 to 1)")).to_be_visible()
    page.get_by_role("button", name="Remove image").click()
    expect(strength).to_be_hidden()


def test_the_signed_out_page_says_where_a_key_comes_from_and_has_an_icon(page: Page) -> None:
    failures: list[str] = []
    page.on("response", lambda r: failures.append(r.url) if r.status >= 400 else None)

    page.goto("/")

    expect(page.locator("#key-help")).to_contain_text("pixelgate keys create")
    expect(page.locator("#key-help")).to_contain_text("operator console")
    icon = page.locator('link[rel="icon"]').get_attribute("href")
    assert icon is not None and page.request.get(icon).status == 200
    assert page.request.get("/favicon.ico").headers["content-type"] == "image/svg+xml"
    page.wait_for_load_state("networkidle")
    assert failures == []


# -- 2. results --------------------------------------------------------------------------------


def test_results_show_what_made_them_open_large_and_survive_a_reload(
    sized_page: Page, shoot: Shoot
) -> None:
    page = sized_page
    sign_in(page)
    fill_generate(page, "A red circle, on blue!", n="2", seed="7", num_steps="6")
    page.get_by_role("button", name="Generate").click()

    cards = page.locator("#results .card")
    expect(cards).to_have_count(2)
    expect(cards.first.locator(".prompt")).to_have_text("A red circle, on blue!")
    expect(cards.first.locator(".details")).to_contain_text("local/tiny · 64\u00d764 px")
    expect(cards.first.locator(".details")).to_contain_text("Number of images 2 · Steps 6")
    seeds = [cards.nth(i).locator(".details").inner_text().rsplit("seed ", 1)[1] for i in (0, 1)]
    assert seeds[0] == "7" and seeds[1] != "7"
    download = cards.first.get_by_role("link", name="Download")
    expect(download).to_have_attribute("download", "a-red-circle-on-blue-seed-7.png")
    with page.expect_download() as saved:
        download.click()
    assert saved.value.suggested_filename == "a-red-circle-on-blue-seed-7.png"

    # the lightbox: arrows step through the results, Escape closes and focus goes back
    opener = cards.first.get_by_role("button", name="Open image 1: A red circle, on blue!")
    opener.click()
    lightbox = page.get_by_role("dialog")
    assert horizontal_overflow(page) == 0
    expect(lightbox).to_be_visible()
    expect(page.locator("#lightbox-count")).to_have_text("1 of 2")
    shoot(page, "lightbox")
    page.keyboard.press("ArrowRight")
    expect(page.locator("#lightbox-count")).to_have_text("2 of 2")
    expect(page.locator("#lightbox-caption")).to_contain_text(f"seed {seeds[1]}")
    page.keyboard.press("ArrowRight")
    expect(page.locator("#lightbox-count")).to_have_text("1 of 2")
    page.keyboard.press("ArrowLeft")
    expect(page.locator("#lightbox-count")).to_have_text("2 of 2")
    page.keyboard.press("Escape")
    expect(lightbox).to_be_hidden()
    expect(opener).to_be_focused()

    files = cards.evaluate_all("cards => cards.map(c => c.dataset.fileId)")
    page.reload()
    expect(cards).to_have_count(2)
    assert cards.evaluate_all("cards => cards.map(c => c.dataset.fileId)") == files
    expect(cards.first.locator(".prompt")).to_have_text("A red circle, on blue!")
    shoot(page, "after-reload")
    page.get_by_role("button", name="Clear these results").click()
    expect(cards).to_have_count(0)
    page.reload()
    expect(page.locator("#results-empty")).to_be_visible()
    expect(cards).to_have_count(0)


def test_use_these_settings_refills_the_form(page: Page) -> None:
    sign_in(page)
    fill_generate(page, "a green square", seed="11", num_steps="5", guidance_scale="3")
    page.get_by_role("button", name="Generate").click()
    expect(page.locator("#results .card")).to_have_count(1)
    fill_generate(page, "something else", seed="", num_steps="9", guidance_scale="7")

    page.locator("#results .card").first.get_by_role("button", name="Use these settings").click()

    expect(page.get_by_label("Prompt", exact=True)).to_have_value("a green square")
    expect(page.locator("#opt-seed")).to_have_value("11")
    expect(page.locator("#opt-num_steps")).to_have_value("5")
    expect(page.locator("#opt-guidance_scale")).to_have_value("3")
    expect(page.get_by_label("Prompt", exact=True)).to_be_focused()


def test_edit_this_sends_a_result_to_the_editor_by_reference(page: Page) -> None:
    sign_in(page)
    fill_generate(page, "a blue disc", seed="5")
    page.get_by_role("button", name="Generate").click()
    card = page.locator("#results .card").first
    expect(card).to_be_visible()
    file_id = card.get_attribute("data-file-id")

    card.get_by_role("button", name="Edit this").click()

    expect(page.locator("#image-canvas")).to_be_visible()
    expect(page.locator("#editing-file")).to_contain_text(str(file_id))
    assert page.locator("#image-canvas").evaluate("c => [c.width, c.height]") == [64, 64]
    page.get_by_label("Prompt", exact=True).fill("the disc, but gold")
    with page.expect_request("**/v1/inference/images/edit") as sent:
        page.get_by_role("button", name="Generate").click()
    body = sent.value.post_data_json
    assert isinstance(body, dict)
    assert body["input_image_file_id"] == file_id and "input_image" not in body
    expect(page.locator("#results .card")).to_have_count(2)
    expect(page.locator("#results .card").first.locator(".prompt")).to_have_text(
        "the disc, but gold"
    )


def test_a_job_still_running_at_a_reload_is_followed_to_its_result(page: Page) -> None:
    sign_in(page)
    start_job(page, "a job across a reload", num_steps="80", seed="6")

    page.reload()

    expect(page.locator("#status")).to_contain_text("step")
    expect(page.get_by_role("button", name="Cancel")).to_be_enabled()
    expect(page.locator("#results .card")).to_have_count(1)
    expect(page.locator("#results .details")).to_contain_text("seed 6")
    expect(page.locator("#status")).to_contain_text("done")


# -- 3. the editor -----------------------------------------------------------------------------

MASK_ALPHA = """() => {
    const c = document.getElementById('mask-canvas');
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    const at = (x, y) => d[(y * c.width + x) * 4 + 3];
    return [at(32, 32), at(10, 32), at(54, 32), at(32, 5)];
}"""


def drag(page: Page, start: tuple[float, float], end: tuple[float, float]) -> None:
    """A stroke across the mask, from and to fractions of its size."""
    page.locator("#mask-canvas").scroll_into_view_if_needed()
    mask = box(page, "#mask-canvas")
    x, y = mask["x"], mask["y"]
    page.mouse.move(x + mask["width"] * start[0], y + mask["height"] * start[1])
    page.mouse.down()
    page.mouse.move(x + mask["width"] * end[0], y + mask["height"] * end[1], steps=10)
    page.mouse.up()


def test_the_mask_is_painted_erased_undone_inverted_and_cleared(
    sized_page: Page, shoot: Shoot, tmp_path: Path
) -> None:
    page = sized_page
    photo = tmp_path / "photo.png"
    Image.new("RGB", (64, 64), (40, 120, 200)).save(photo)
    png = base64.b64encode(photo.read_bytes()).decode()
    sign_in(page)
    page.locator("#model").select_option("local/tiny")
    page.evaluate(  # dropped onto the editor, as from a file manager
        """async (png) => {
            const bytes = Uint8Array.from(atob(png), ch => ch.charCodeAt(0));
            const data = new DataTransfer();
            data.items.add(new File([bytes], 'photo.png', {type: 'image/png'}));
            const zone = document.getElementById('input-image-fields');
            zone.dispatchEvent(new DragEvent('dragover', {dataTransfer: data, bubbles: true}));
            zone.dispatchEvent(new DragEvent('drop', {dataTransfer: data, bubbles: true}));
        }""",
        png,
    )
    expect(page.locator("#mask-canvas")).to_be_visible()
    page.get_by_label("Brush size").fill("40")
    expect(page.locator("#brush-size")).to_have_text("40 px")

    drag(page, (0.1, 0.5), (0.9, 0.5))  # a band across the middle
    assert page.evaluate(MASK_ALPHA) == [255, 255, 255, 0]
    page.get_by_role("button", name="Erase").click()
    expect(page.get_by_role("button", name="Erase")).to_have_attribute("aria-pressed", "true")
    drag(page, (0.5, 0.2), (0.5, 0.8))  # its centre erased
    assert page.evaluate(MASK_ALPHA) == [0, 255, 255, 0]
    shoot(page, "mask")
    page.get_by_role("button", name="Undo").click()
    assert page.evaluate(MASK_ALPHA) == [255, 255, 255, 0]
    page.get_by_role("button", name="Invert").click()
    assert page.evaluate(MASK_ALPHA) == [0, 0, 0, 255]

    page.get_by_label("Prompt", exact=True).fill("a sky above the band")
    with page.expect_request("**/v1/inference/images/edit") as sent:
        page.get_by_role("button", name="Generate").click()
    body = sent.value.post_data_json
    assert isinstance(body, dict)
    mask = Image.open(io.BytesIO(base64.b64decode(body["mask_image"]))).convert("L")
    assert (mask.getpixel((32, 32)), mask.getpixel((32, 5))) == (0, 255)  # white repaints
    expect(page.locator("#results .card")).to_have_count(1)

    page.get_by_role("button", name="Clear mask").click()
    assert page.evaluate(MASK_ALPHA) == [0, 0, 0, 0]
    page.get_by_role("button", name="Undo").click()
    assert page.evaluate(MASK_ALPHA) == [0, 0, 0, 255]


def test_an_image_pasted_goes_to_the_editor(page: Page, tmp_path: Path) -> None:
    photo = tmp_path / "photo.png"
    Image.new("RGB", (48, 32), (200, 40, 40)).save(photo)
    sign_in(page)
    page.locator("#model").select_option("local/tiny")

    page.evaluate(
        """async (png) => {
            const bytes = Uint8Array.from(atob(png), ch => ch.charCodeAt(0));
            const data = new DataTransfer();
            data.items.add(new File([bytes], 'pasted.png', {type: 'image/png'}));
            const paste = new ClipboardEvent('paste', {clipboardData: data, bubbles: true});
            document.dispatchEvent(paste);
        }""",
        base64.b64encode(photo.read_bytes()).decode(),
    )

    expect(page.locator("#image-canvas")).to_be_visible()
    assert page.locator("#image-canvas").evaluate("c => [c.width, c.height]") == [48, 32]


# -- 5. resilience -----------------------------------------------------------------------------


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_a_server_restart_mid_job_ends_with_the_result_shown(
    pages: Pages, make_server: Callable[..., Server], shoot: Shoot, viewport: ViewportSize
) -> None:
    """kill -9 the server while the page follows a job, start it again on the same port and
    data: the page reconnects, resumes the stream after the last event it saw, and shows the
    job's result (the server runs an interrupted job again)."""
    server = make_server().start()
    pages.server = server  # the pages of this test talk to a server of its own
    page = pages.open(viewport)
    resumed_from: list[str | None] = []
    page.on(
        "request",
        lambda r: (
            resumed_from.append(r.header_value("last-event-id"))
            if r.url.endswith("/events")
            else None
        ),
    )
    sign_in(page)
    start_job(page, "a picture that outlives its server", num_steps="80", seed="9")

    server.kill()
    expect(page.locator("#status")).to_contain_text("connection lost, reconnecting")
    shoot(page, "reconnecting")
    server.start()

    card = page.locator("#results .card")
    expect(card).to_have_count(1, timeout=120_000)
    expect(page.locator("#status")).to_contain_text("done")
    expect(page.locator("#error")).to_be_hidden()
    expect(card.locator(".details")).to_contain_text("seed 9")
    url = card.locator("img").get_attribute("src")
    assert url is not None and httpx.get(url).status_code == 200
    assert resumed_from[0] is None
    assert any(last is not None and last.isdigit() for last in resumed_from[1:]), resumed_from
    shoot(page, "result")


def test_a_stream_that_keeps_failing_gives_way_to_polling(page: Page) -> None:
    streams: list[str] = []
    polls: list[str] = []

    def refuse(route: Route) -> None:
        streams.append(route.request.url)
        route.abort()

    page.route("**/v1/jobs/*/events", refuse)
    page.on(
        "request",
        lambda r: polls.append(r.url) if re.search(r"/v1/jobs/[^/]+$", r.url) else None,
    )
    sign_in(page)
    fill_generate(page, "no stream at all", num_steps="100", seed="4")
    page.get_by_role("button", name="Generate").click()

    expect(page.locator("#results .card")).to_have_count(1)
    expect(page.locator("#status")).to_contain_text("done")
    assert len(streams) == 3, "three broken streams in a row, then polling only"
    assert len(polls) >= 4  # a look after each broken stream, then polls
