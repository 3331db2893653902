"""`/docs` in headless Chromium with every request away from the server refused: Swagger UI
renders from the assets pixelgate serves, so the API docs work offline."""

from __future__ import annotations

from playwright.sync_api import Browser, Page, Route, expect

from tests.conftest import ADMIN_KEY, Server


def test_swagger_ui_renders_with_no_network_but_the_server(
    browser: Browser, server: Server
) -> None:
    context = browser.new_context(base_url=server.url)
    refused: list[str] = []

    def only_the_server(route: Route) -> None:
        if route.request.url.startswith(server.url):
            route.continue_()
        else:
            refused.append(route.request.url)
            route.abort()

    context.route("**/*", only_the_server)
    page = context.new_page()
    try:
        page.goto("/docs")
        operation = page.locator("#operations-images-images_generate")
        expect(operation).to_be_visible(timeout=30_000)
        expect(operation).to_contain_text("/v1/inference/images/generate")
        expect(page.locator("#operations-jobs-jobs_get")).to_be_visible()
        authorize_and_list_models(page)
    finally:
        context.close()
    assert refused == [], "the docs page asked for something from elsewhere"


def authorize_and_list_models(page: Page) -> None:
    """The Authorize button takes a key, and "Try it out" then sends it as the bearer token."""
    page.locator(".auth-wrapper .authorize").click()
    page.locator(".auth-container input").fill(ADMIN_KEY)
    page.locator(".auth-btn-wrapper .authorize").click()
    page.locator(".auth-btn-wrapper .btn-done").click()
    operation = page.locator("#operations-models-models_list")
    operation.locator(".opblock-summary").click()
    operation.get_by_role("button", name="Try it out").click()
    operation.get_by_role("button", name="Execute").click()
    expect(
        operation.locator(".live-responses-table td.response-col_status:not(.col_header)")
    ).to_have_text("200")
