"""The README's pictures of the web pages, made again from a real server and Debian's Chromium:

    PYTHONPATH=. .venv/bin/python -m tests.web.screenshots [docs/images]

Writes studio-desktop.png (1280x800), studio-phone.png (390x844) and console.png (1280x800).
The images are drawn by `pixelgate/shapes`, the model that ships with pixelgate."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from playwright.sync_api import Browser, Page, ViewportSize, expect, sync_playwright

from tests.conftest import ADMIN_KEY, Server
from tests.web.conftest import CHROMIUM, DESKTOP, PHONE

PROMPTS = [
    ("a big red circle above a small yellow square on blue", "11"),
    ("a small white triangle to the left of a big green circle on black", "5"),
    ("a big orange square to the right of a small blue triangle on white", "8"),
]
TENANT = {"id": "acme", "name": "Acme Studio", "prices": {"pixelgate/shapes": {"default": "0.02"}}}


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        server = Server(Path(scratch) / "data", Path(scratch) / "models").start()
        try:
            key = seed_usage(server)
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(
                    executable_path=CHROMIUM,
                    args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
                )
                studio(browser, server, key, DESKTOP, out / "studio-desktop.png")
                studio(browser, server, key, PHONE, out / "studio-phone.png")
                console(browser, server, out / "console.png")
                browser.close()
        finally:
            server.stop()


def seed_usage(server: Server) -> str:
    """A priced tenant with a few jobs, so the console has usage to chart; its key."""
    with server.client() as admin:
        admin.post("/v1/admin/tenants", json=TENANT).raise_for_status()
        made = admin.post("/v1/admin/keys", json={"tenant_id": "acme", "name": "studio"})
        made.raise_for_status()
        key = str(made.json()["data"]["key"])
    with server.client(key) as client:
        for prompt, seed in PROMPTS:
            body = {"model": "pixelgate/shapes", "prompt": prompt, "seed": int(seed), "n": 2}
            client.post("/v1/inference/images/generate", json=body).raise_for_status()
    return key


def open_page(browser: Browser, server: Server, viewport: ViewportSize) -> Page:
    context = browser.new_context(base_url=server.url, viewport=viewport, device_scale_factor=1)
    context.set_default_timeout(60_000)
    return context.new_page()


def studio(browser: Browser, server: Server, key: str, viewport: ViewportSize, path: Path) -> None:
    page = open_page(browser, server, viewport)
    page.goto("/")
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    page.locator("#model").select_option("pixelgate/shapes")
    for prompt, seed in PROMPTS[:2] if viewport is DESKTOP else PROMPTS[:1]:
        page.get_by_label("Prompt", exact=True).fill(prompt)
        page.locator("#opt-seed").fill(seed)
        page.locator("#opt-width").fill("128")
        page.locator("#opt-height").fill("128")
        page.get_by_role("button", name="Generate").click()
        expect(page.locator("#status")).to_contain_text("done")
    if viewport is DESKTOP:
        page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=path)
    page.context.close()


def console(browser: Browser, server: Server, path: Path) -> None:
    page = open_page(browser, server, DESKTOP)
    page.goto("/console")
    page.get_by_label("Admin API key").fill(ADMIN_KEY)
    page.get_by_role("button", name="Sign in").click()
    page.locator("#usage-days").select_option("7")
    expect(page.locator("#usage-total")).to_contain_text("in the last 7 days")
    page.screenshot(path=path)
    page.context.close()


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/images"))
