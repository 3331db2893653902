"""The pages by keyboard alone, with focus visible, and axe-core's WCAG 2.1 AA checks (colour
contrast included) finding nothing serious or critical, at a desktop's and a phone's size."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.conftest import ADMIN_KEY
from tests.web.conftest import AXE, SIZES, Pages, axe_violations, sign_in

Shoot = Callable[..., Path]

pytestmark = pytest.mark.skipif(
    not AXE.exists(), reason="axe-core is not installed: run scripts/setup (npm ci in tests/web)"
)

FOCUS_SHOWN = """() => {
    const element = document.activeElement;
    const style = getComputedStyle(element);
    return {
        id: element.id || element.textContent.trim().slice(0, 30),
        visible: element.matches(':focus-visible')
            && style.outlineStyle !== 'none' && parseFloat(style.outlineWidth) >= 2,
    };
}"""


def tab_to(page: Page, selector: str, most: int = 60, key: str = "Tab") -> None:
    """Tab (or `key`: Shift+Tab) until `selector` has the focus, checking the focus can be seen
    at every stop."""
    for _ in range(most):
        page.keyboard.press(key)
        focus = page.evaluate(FOCUS_SHOWN)
        assert focus["visible"], f"focus not visible on {focus['id']}"
        if page.evaluate("s => document.activeElement.matches(s)", selector):
            return
    raise AssertionError(f"{selector} not reached by {most} presses of Tab")


@pytest.mark.parametrize("size", ["desktop", "phone"])
def test_the_studio_has_no_serious_axe_violations(pages: Pages, shoot: Shoot, size: str) -> None:
    page = pages.open(SIZES[size], bypass_csp=True)  # to inject axe's script
    page.goto("/")
    page.get_by_label("API key").fill("pg_wrong")
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#signin-error")).to_be_visible()
    assert axe_violations(page) == [], "signed out, with an error"

    sign_in(page)
    page.locator("#model").select_option("local/tiny")
    page.get_by_label("Prompt", exact=True).fill("a lighthouse")
    page.locator("#opt-seed").fill("2")
    page.get_by_role("button", name="Generate").click()
    expect(page.locator("#results .card")).to_have_count(1)
    page.locator("#opt-width").fill("100")
    page.get_by_role("button", name="Generate").click()
    expect(page.locator("#opt-width-error")).to_be_visible()
    assert axe_violations(page) == [], "signed in, with a result and an error"
    shoot(page, "studio", full_page=True)

    page.locator("#results .thumb").first.click()
    expect(page.get_by_role("dialog")).to_be_visible()
    assert axe_violations(page) == [], "the lightbox"


@pytest.mark.parametrize("size", ["desktop", "phone"])
def test_the_console_has_no_serious_axe_violations(pages: Pages, size: str) -> None:
    page = pages.open(SIZES[size], bypass_csp=True)
    page.goto("/console")
    assert axe_violations(page) == [], "signed out"
    page.get_by_label("Admin API key").fill(ADMIN_KEY)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#chart-spent svg")).to_be_visible()
    assert axe_violations(page) == [], "signed in"


def test_generate_and_look_at_the_result_by_keyboard_alone(sized_page: Page) -> None:
    page = sized_page
    page.goto("/")
    tab_to(page, "#api-key")
    page.keyboard.type(ADMIN_KEY)
    page.keyboard.press("Enter")
    expect(page.get_by_text("Signed in")).to_be_visible()

    tab_to(page, "#model")
    page.keyboard.type("local/tiny")  # a closed select picks the option typed
    expect(page.locator("#model")).to_have_value("local/tiny")
    tab_to(page, "#prompt")
    page.keyboard.type("a keyboard-only picture")
    tab_to(page, "#opt-num_steps")
    page.keyboard.press("Control+A")
    page.keyboard.type("3")
    tab_to(page, "#generate")
    page.keyboard.press("Enter")
    expect(page.locator("#results .card")).to_have_count(1)

    tab_to(page, "#results .thumb")
    page.keyboard.press("Enter")
    expect(page.get_by_role("dialog")).to_be_visible()
    expect(page.get_by_role("button", name="Close")).to_be_focused()
    page.keyboard.press("Escape")
    expect(page.get_by_role("dialog")).to_be_hidden()
    expect(page.locator("#results .thumb")).to_be_focused()
    tab_to(page, "#results .card .reuse")
    page.keyboard.press("Enter")
    expect(page.get_by_label("Prompt", exact=True)).to_be_focused()

    tab_to(page, "#tab-generate", key="Shift+Tab")
    page.keyboard.press("ArrowRight")
    expect(page.get_by_role("tab", name="Remove background")).to_be_focused()
    expect(page.get_by_role("tabpanel", name="Remove background")).to_be_visible()
