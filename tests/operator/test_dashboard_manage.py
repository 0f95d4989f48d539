"""The dashboard's management part in a real headless Chromium: create a tenant, issue a key,
edit its budget and revoke the key, each checked against the real proxy with the openai SDK."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import openai
import pytest
from fakes.openai_upstream import FakeUpstream
from fakes.proxy_harness import Proxy
from playwright.async_api import Browser, ConsoleMessage, async_playwright

from aegis.proxy import Settings

StartProxy = Callable[[Settings], Awaitable[Proxy]]
GetJson = Callable[..., Awaitable[tuple[int, Any]]]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"]
HI: list[Any] = [{"role": "user", "content": "hi"}]


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield browser
        finally:
            await browser.close()


async def test_create_a_tenant_issue_a_key_edit_the_budget_and_revoke_it(
    tmp_path: Path,
    openai_upstream: FakeUpstream,
    start_proxy: StartProxy,
    settings_for: Callable[..., Settings],
    get_json: GetJson,
    admin_key: str,
    browser: Browser,
) -> None:
    proxy = await start_proxy(settings_for(tmp_path, openai_upstream, receipts="file"))
    page = await browser.new_page(viewport={"width": 1400, "height": 1300})
    problems: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type in ("error", "warning"):
            problems.append(f"{message.type}: {message.text}")

    page.on("console", on_console)
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    await page.goto(proxy.url + "/dashboard?refresh=60")
    await page.fill("#key", admin_key)
    await page.click("#login-form button[type=submit]")
    await page.wait_for_function("document.getElementById('status').dataset.loaded === 'true'")
    await page.wait_for_selector("#manage-tenant option", state="attached")

    # Create a tenant.
    await page.fill("#new-tenant", "web-shop")
    await page.fill("#new-tenant-day", "2")
    await page.fill("#new-tenant-models", "gpt-4o*")
    await page.click("#tenant-form button[type=submit]")
    # Waits go through selectors: the page's CSP forbids the eval that polling functions need.
    await page.locator("#manage-message", has_text="created web-shop").wait_for()
    assert await page.input_value("#manage-tenant") == "web-shop"
    status, tenant = await get_json(proxy, "/admin/tenants/web-shop", admin_key)
    assert status == 200
    assert tenant["source"] == "store"
    assert tenant["policy"]["budgets"]["per_window"][0]["limit_usd"] == "2"
    assert tenant["policy"]["model"]["allow_models"] == ["gpt-4o*"]

    # Issue a key: shown once, and it works.
    await page.fill("#key-name", "checkout")
    await page.click("#key-form button[type=submit]")
    await page.wait_for_selector("[data-field=new-key]")
    key = (await page.text_content("[data-field=new-key]")) or ""
    assert key.startswith("aegis-sk-")
    await proxy.client(key).chat.completions.create(model="gpt-4o-mini", messages=HI, max_tokens=10)
    assert await page.locator("[data-testid=keys] tr").count() == 1
    assert await page.text_content("[data-testid=keys] [data-field=key-state]") == "active"
    stored = await page.evaluate("JSON.stringify(sessionStorage)")
    assert key not in stored  # the page keeps the admin key only

    # Edit the budget: below one call's worst case, so the next call is refused.
    await page.fill("#edit-day", "0.000001")
    await page.click("#budget-form button[type=submit]")
    await page.locator("#manage-message", has_text="saved: web-shop").wait_for()
    with pytest.raises(openai.RateLimitError):
        await proxy.client(key).chat.completions.create(
            model="gpt-4o-mini", messages=HI, max_tokens=10
        )
    _, tenant = await get_json(proxy, "/admin/tenants/web-shop", admin_key)
    assert tenant["version"] == 2

    # Revoke it.
    await page.click("[data-testid=keys] [data-action=revoke]")
    await page.locator("[data-testid=keys] [data-field=key-state]", has_text="revoked").wait_for()
    with pytest.raises(openai.AuthenticationError):
        await proxy.client(key).chat.completions.create(
            model="gpt-4o-mini", messages=HI, max_tokens=10
        )

    # A config-file tenant is shown read-only; a bad input is said plainly.
    await page.select_option("#manage-tenant", "acme")
    await page.locator("#manage-detail", has_text="managed in the config file").wait_for()
    await page.fill("#new-tenant", "bad id")
    await page.click("#tenant-form button[type=submit]")
    await page.locator("#manage-message.error", has_text="tenant_id must").wait_for()
    assert problems == [] or all("400" in p for p in problems), problems
