"""Debian's Chromium, driven by Playwright (never a browser Playwright downloads), the page
sizes the web pages are checked at, and where the tests leave their screenshots."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, ViewportSize, expect, sync_playwright

from tests.conftest import ADMIN_KEY, Server

CHROMIUM = "/usr/bin/chromium"
TIMEOUT_MS = 60_000
expect.set_options(timeout=TIMEOUT_MS)  # the first job loads the model on 2 busy cores

DESKTOP: ViewportSize = {"width": 1280, "height": 800}
PHONE: ViewportSize = {"width": 390, "height": 844}
SIZES = {"desktop": DESKTOP, "phone": PHONE}

AXE = Path(__file__).parent / "node_modules" / "axe-core" / "axe.min.js"
"""axe-core from npm (tests/web/package.json; scripts/setup runs `npm ci` here)."""


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield instance
        instance.close()


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The screenshots the tests take, to look at after a run (under pytest's base temp)."""
    return tmp_path_factory.mktemp("artifacts", numbered=False)


class Pages:
    """New pages on a server, each in its own browser context, that fail their test when they
    fetch anything from elsewhere or the page throws."""

    def __init__(self, browser: Browser, server: Server) -> None:
        self.browser = browser
        self.server = server
        self.contexts: list[BrowserContext] = []
        self.outside: list[str] = []
        self.errors: list[str] = []

    def open(self, viewport: ViewportSize = DESKTOP, **options: Any) -> Page:
        context = self.browser.new_context(
            base_url=self.server.url, viewport=viewport, accept_downloads=True, **options
        )
        context.set_default_timeout(TIMEOUT_MS)
        self.contexts.append(context)
        page = context.new_page()
        url = self.server.url
        page.on(
            "request",
            lambda request: (
                None if request.url.startswith(url) else self.outside.append(request.url)
            ),
        )
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        return page

    def close(self) -> None:
        for context in self.contexts:
            context.close()


@pytest.fixture
def pages(browser: Browser, server: Server) -> Iterator[Pages]:
    opened = Pages(browser, server)
    yield opened
    opened.close()
    assert opened.outside == [], "a page fetched something from elsewhere"
    assert opened.errors == [], "a page threw"


@pytest.fixture
def page(pages: Pages) -> Page:
    return pages.open()


@pytest.fixture(params=list(SIZES))
def sized_page(pages: Pages, request: pytest.FixtureRequest) -> Page:
    """A page at each size in turn (the test runs once per size; `page.viewport_size` says
    which)."""
    return pages.open(SIZES[request.param])


@pytest.fixture
def shoot(artifacts: Path, request: pytest.FixtureRequest) -> Callable[..., Path]:
    """`shoot(page, "what")` saves a screenshot named after the test and returns its path."""

    def take(page: Page, what: str, *, full_page: bool = False) -> Path:
        name = request.node.name.replace("[", "-").replace("]", "")
        path = artifacts / f"{name}-{what}.png"
        page.screenshot(path=path, full_page=full_page)
        return path

    return take


def sign_in(page: Page, key: str = ADMIN_KEY) -> None:
    page.goto("/")
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_text("Signed in")).to_be_visible()


def horizontal_overflow(page: Page) -> int:
    """How many pixels the page is wider than the window (0: no sideways scrolling)."""
    return int(page.evaluate("document.scrollingElement.scrollWidth - window.innerWidth"))


def axe_violations(page: Page) -> list[dict[str, Any]]:
    """The serious and critical WCAG 2.1 A/AA violations axe-core finds in the page as it is
    (colour contrast included). The page's context must bypass the page's CSP, which refuses
    the injected script as it refuses any script not served by pixelgate."""
    page.add_script_tag(path=AXE)
    found = page.evaluate(
        """async () => (await axe.run(document, {
            runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']},
        })).violations.map(v => ({
            id: v.id, impact: v.impact, help: v.help,
            nodes: v.nodes.map(n => n.target.join(' ') + ': ' + n.failureSummary).slice(0, 5),
        }))"""
    )
    serious = [v for v in found if v["impact"] in ("serious", "critical")]
    return json.loads(json.dumps(serious))  # type: ignore[no-any-return]
