"""The operators' console at `/console`: tenants, keys (shown once, revoked), usage by tenant,
model and day with charts, models and workers, all through the admin API, at a desktop's and a
phone's size."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import httpx
from playwright.sync_api import Page, expect

from tests.conftest import ADMIN_KEY, Server
from tests.helpers import generate, tenant_key
from tests.web.conftest import horizontal_overflow

Shoot = Callable[..., Path]


def sign_in_to_console(page: Page, key: str = ADMIN_KEY) -> None:
    page.goto("/console")
    page.get_by_label("Admin API key").fill(key)
    page.get_by_role("button", name="Sign in").click()


def test_a_key_without_the_admin_scope_is_sent_to_the_studio(page: Page, server: Server) -> None:
    with server.client() as admin:
        key = tenant_key(admin)

    sign_in_to_console(page, key)

    expect(page.locator("#signin-error")).to_contain_text("needs an operator's key")
    expect(page.locator("#console")).to_be_hidden()


def test_create_a_tenant_and_a_key_shown_once_then_revoke_it(page: Page, server: Server) -> None:
    tenant = "acme-" + secrets.token_hex(3)
    sign_in_to_console(page)
    expect(page.locator("#console")).to_be_visible()

    page.get_by_label("Id", exact=True).fill(tenant)
    page.get_by_label("Name", exact=True).first.fill("Acme Corp")
    page.get_by_label("Models allowed").fill("local/*")
    page.get_by_label("Prices per image (USD)").fill("local/tiny=0.05")
    page.get_by_label("Monthly budget (USD)").fill("25")
    page.get_by_role("button", name="Create tenant").click()
    row = page.locator("#tenants tbody tr", has_text=tenant)
    expect(row).to_contain_text("local/*")
    expect(row).to_contain_text("local/tiny=0.05")
    expect(row).to_contain_text("$0.00 of $25.00")

    row.get_by_role("button", name="Edit tenant Acme Corp").click()
    page.get_by_label("Images per day").fill("50")
    page.get_by_role("button", name="Save tenant").click()
    expect(row).to_contain_text("50 images/day")
    with server.client() as admin:
        record = admin.get(f"/v1/admin/tenants/{tenant}").json()["data"]
    assert record["limits"]["images_per_day"] == 50 and record["budget_monthly"] == "25.00"
    assert record["prices"] == {"local/tiny": {"default": "0.05"}}  # kept: the field unchanged

    page.locator("#key-tenant").select_option(tenant)
    page.locator("#key-name").fill("backend")
    page.get_by_label("Expires on").fill("2099-12-31")
    page.get_by_role("button", name="Create key").click()
    shown = page.locator("#new-key-value")
    expect(page.locator("#new-key")).to_be_visible()
    key = shown.inner_text()
    assert key.startswith("pg_")
    key_row = page.locator("#keys tbody tr", has_text=tenant)
    expect(key_row).to_contain_text("backend")
    expect(key_row).to_contain_text("2099-12-31")
    expect(key_row).to_contain_text(key[:6])
    assert httpx.get(f"{server.url}/v1/models", headers=auth(key)).status_code == 200

    page.reload()  # shown once: gone after a reload
    expect(page.locator("#console")).to_be_visible()
    expect(page.locator("#new-key")).to_be_hidden()
    assert key not in page.content()

    page.once("dialog", lambda dialog: dialog.accept())
    key_row.get_by_role("button", name="Revoke key backend").click()
    expect(key_row).to_contain_text("revoked")
    assert httpx.get(f"{server.url}/v1/models", headers=auth(key)).status_code == 401


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_usage_by_tenant_model_and_day_with_charts(
    sized_page: Page, server: Server, shoot: Shoot
) -> None:
    tenant = "priced-" + secrets.token_hex(3)
    with server.client() as admin:
        priced = {"prices": {"local/tiny": {"default": "0.05"}}}
        created = admin.post("/v1/admin/tenants", json={"id": tenant, "name": tenant, **priced})
        assert created.status_code == 201, created.text
        made = admin.post("/v1/admin/keys", json={"tenant_id": tenant, "name": "app"})
        key = made.json()["data"]["key"]
    with server.client(key) as client:
        response = generate(client, n=3, num_steps=2)
        assert response.status_code == 200, response.text
    page = sized_page
    sign_in_to_console(page)

    page.locator("#usage-tenant").select_option(tenant)
    page.locator("#usage-days").select_option("7")

    expect(page.locator("#usage-total")).to_have_text("$0.15 spent, 3 images in the last 7 days")
    expect(page.locator("#usage-by-model tbody tr")).to_have_text(["local/tiny$0.1531"])
    today = datetime.now(UTC).date().isoformat()
    for chart, value in (("#chart-spent", "0.15"), ("#chart-images", "3")):
        bars = page.locator(f"{chart} rect.bar")
        expect(bars).to_have_count(7)
        tallest = page.locator(f'{chart} rect.bar[data-date="{today}"]')
        assert tallest.get_attribute("data-value") == value
        assert float(tallest.get_attribute("height") or 0) > 100
    assert page.locator("#chart-images svg title").first.text_content() == (
        "Images per day: 3 in all, at most 3 a day"
    )
    expect(page.locator("#models tbody tr", has_text="local/tiny")).to_contain_text("yes")
    expect(page.locator("#models tbody tr", has_text="openai/dall-e-3")).to_contain_text(
        "PIXELGATE_OPENAI_API_KEY"
    )
    assert horizontal_overflow(page) == 0
    shoot(page, "console", full_page=True)
