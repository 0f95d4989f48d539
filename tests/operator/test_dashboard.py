"""The dashboard in a real headless Chromium (Debian's ``/usr/bin/chromium``, driven by
Playwright; ``make test`` installs it), against a proxy that served traffic."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import openai
import pytest
from fakes.openai_upstream import FakeUpstream
from fakes.proxy_harness import KEY, OTHER_KEY, Proxy
from playwright.async_api import Browser, ConsoleMessage, Page, async_playwright, expect

from aegis.proxy import Settings

StartProxy = Callable[[Settings], Awaitable[Proxy]]
GetJson = Callable[..., Awaitable[tuple[int, Any]]]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).parent / "artifacts"  # git-ignored


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


async def _traffic(proxy: Proxy) -> None:
    hi: list[Any] = [{"role": "user", "content": "hi"}]
    acme = proxy.client()
    for model in ("gpt-4o-mini", "gpt-4o-mini", "gpt-4o"):
        await acme.chat.completions.create(model=model, messages=hi, max_tokens=40)
    stream = await acme.chat.completions.create(model="gpt-4o-mini", messages=hi, stream=True)
    async for _chunk in stream:
        pass
    with pytest.raises(openai.RateLimitError):
        await acme.chat.completions.create(model="gpt-4o", messages=hi, max_tokens=16_000)
    await proxy.client(OTHER_KEY).chat.completions.create(
        model="gpt-4o-mini", messages=hi, max_tokens=10
    )


_PAGE_FETCH = """key => fetch("/admin/usage?limit=50", {headers: {Authorization: "Bearer " + key}})
    .then(r => r.json()).then(j => j.tenants.map(t => [t.tenant_id, t.since_start.spend_usd]))"""


async def _texts(page: Page, selector: str) -> list[str]:
    texts: list[str] = await page.eval_on_selector_all(
        selector, "nodes => nodes.map(n => n.textContent)"
    )
    return texts


async def _open(page: Page, url: str, key: str) -> None:
    await page.goto(url)
    await page.fill("#key", key)
    await page.click("#login-form button[type=submit]")


async def test_dashboard_shows_what_the_admin_api_returns(
    tmp_path: Path,
    openai_upstream: FakeUpstream,
    start_proxy: StartProxy,
    settings_for: Callable[..., Settings],
    get_json: GetJson,
    admin_key: str,
    browser: Browser,
) -> None:
    settings = settings_for(
        tmp_path,
        openai_upstream,
        receipts="file",
        budgets={
            "per_window": [
                {"window": "day", "limit_usd": "0.05"},
                {"window": "month", "limit_usd": "1"},
            ]
        },
    )
    proxy = await start_proxy(settings)
    await _traffic(proxy)

    page = await browser.new_page(viewport={"width": 1400, "height": 1300})
    problems: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type in ("error", "warning"):
            problems.append(f"{message.type}: {message.text}")

    page.on("console", on_console)
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    await _open(page, proxy.url + "/dashboard?refresh=1", admin_key)
    # Selectors and expect(), never string predicates: Playwright polls those with eval, which
    # the dashboard's CSP forbids (the wait then fails whenever its first check is too early).
    await page.wait_for_selector("#status[data-loaded='true']", state="attached")
    await page.wait_for_selector("[data-field=trail-state]")

    _, usage = await get_json(proxy, "/admin/usage", admin_key)
    tenants = [t["tenant_id"] for t in usage["tenants"]]
    assert tenants == ["acme", "beta"]
    shown: list[str] = await page.eval_on_selector_all(
        "[data-tenant]", "nodes => nodes.map(n => n.dataset.tenant)"
    )
    assert shown == tenants
    for tenant in usage["tenants"]:
        card = f"[data-tenant='{tenant['tenant_id']}']"
        since = tenant["since_start"]
        assert await _texts(page, f"{card} [data-field=spend]") == [since["spend_usd"]]
        assert await _texts(page, f"{card} [data-field=requests]") == [str(since["requests"])]
        denied = str(since["outcomes"].get("denied", 0))
        assert await _texts(page, f"{card} [data-field=denied]") == [denied]
        for field, key in (
            ("budget-spent", "spent_usd"),
            ("budget-reserved", "reserved_usd"),
            ("budget-limit", "limit_usd"),
        ):
            expected = [b[key] for b in tenant["budgets"]]
            assert await _texts(page, f"{card} [data-field={field}]") == expected
        models = [m["model"] for m in since["models"]]
        assert (
            await page.eval_on_selector_all(
                f"{card} [data-model]", "rows => rows.map(r => r.dataset.model)"
            )
            == models[:5]
        )
    acme = usage["tenants"][0]
    assert acme["since_start"]["outcomes"] == {"ok": 4, "denied": 1}
    assert [b["budget"] for b in acme["budgets"]] == ["day", "month"]
    assert await _texts(page, "[data-tenant=acme] [data-field=denials]") == ["day: 1"]
    assert await page.locator("[data-tenant=acme] .chart .col").count() >= 1

    _, receipts = await get_json(proxy, "/admin/receipts?limit=25", admin_key)
    ids = await page.eval_on_selector_all(
        "#receipts tr", "rows => rows.map(r => r.dataset.receipt)"
    )
    assert ids == [r["receipt_id"] for r in receipts["receipts"]]
    assert len(ids) == 6
    assert set(await _texts(page, "#receipts [data-field=verification]")) == {"verified"}
    assert await _texts(page, "[data-field=trail-state]") == ["intact"]

    # It refreshes by itself: new traffic shows up without touching the page.
    await proxy.client(OTHER_KEY).chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "more"}], max_tokens=30
    )
    _, after = await get_json(proxy, "/admin/usage/beta", admin_key)
    spend = page.locator("[data-tenant='beta'] [data-field=spend]")
    try:
        await expect(spend).to_have_text(after["since_start"]["spend_usd"], timeout=10_000)
    except AssertionError as error:
        # What the page last painted, and what it would be answered now, to tell a page that
        # stopped refreshing from one that was answered stale.
        status = await page.text_content("#status")
        seen = await page.evaluate(_PAGE_FETCH, admin_key)
        raise AssertionError(f"{error}\nstatus: {status!r}; the page's own fetch: {seen}") from None
    assert await _texts(page, "[data-tenant=beta] [data-field=requests]") == ["2"]

    # The key lives in this tab's sessionStorage: a reload needs no login.
    await page.reload()
    await page.wait_for_selector("#status[data-loaded='true']", state="attached")
    assert await page.locator("#login").is_hidden()

    screenshot = tmp_path / "dashboard.png"
    await page.screenshot(path=str(screenshot), full_page=True)
    assert screenshot.stat().st_size > 10_000
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copy(screenshot, ARTIFACTS / "dashboard.png")
    assert problems == []


async def test_dashboard_refuses_a_tenant_key(
    tmp_path: Path,
    openai_upstream: FakeUpstream,
    start_proxy: StartProxy,
    settings_for: Callable[..., Settings],
    browser: Browser,
) -> None:
    proxy = await start_proxy(settings_for(tmp_path, openai_upstream))
    page = await browser.new_page()
    await _open(page, proxy.url + "/dashboard", KEY)
    await expect(page.locator("#login-error")).not_to_have_text("")
    assert await page.text_content("#login-error") == "tenant keys cannot use the admin API"
    assert await page.locator("#main").is_hidden()
    assert await page.locator("[data-tenant]").count() == 0
    stored = await page.evaluate("sessionStorage.getItem('aegis-admin-key')")
    assert stored is None
