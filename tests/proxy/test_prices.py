"""Live prices: the price file is reloaded with the config; `aegis-proxy prices` shows the table."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import openai
import pytest
from fakes.openai_upstream import FakeUpstream, Reply
from fakes.proxy_harness import KEY, Proxy

from aegis.core import MemoryReceiptSink, Receipt, default_pricing_table, format_usd
from aegis.proxy import GATE, Settings, hash_key, load_settings, reload_config

MODEL = "gpt-4o-mini"


def write_config(path: Path, upstream: FakeUpstream, price_file: Path) -> None:
    path.write_text(
        f'[ledger]\nbackend = "memory"\n'
        f'[receipts]\nsink = "memory"\npath = "{path.parent / "receipts"}"\n'
        f'[pricing]\noverrides = "{price_file}"\n'
        f'[providers.openai]\ntype = "openai"\nbase_url = "{upstream.base_url}"\n'
        f'api_key_env = "FAKE_KEY"\n'
        f'[tenants.acme]\napi_keys = ["{hash_key(KEY)}"]\n'
    )


def price_file_text(input_usd: str, output_usd: str, extra: str = "") -> str:
    return (
        f'as_of = "2026-11-26"\n[models.{MODEL}]\ninput = "{input_usd}"\noutput = "{output_usd}"\n'
        f"{extra}"
    )


def receipts(proxy: Proxy) -> list[Receipt]:
    sink = proxy.app[GATE].sink
    assert isinstance(sink, MemoryReceiptSink)
    return sink.receipts


def expected_cost(receipt: Receipt, input_usd: str, output_usd: str) -> str:
    table = default_pricing_table().with_overrides(
        {"models": {MODEL: {"input": input_usd, "output": output_usd}}}
    )
    assert receipt.usage is not None
    return format_usd(table.price(MODEL).cost_nanos(receipt.usage))


async def chat(client: openai.AsyncOpenAI) -> None:
    await client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "hello there"}], max_tokens=20
    )


@pytest.fixture
def config(tmp_path: Path, openai_upstream: FakeUpstream) -> Path:
    (tmp_path / "prices.toml").write_text(price_file_text("1", "2"))
    path = tmp_path / "aegis.toml"
    write_config(path, openai_upstream, tmp_path / "prices.toml")
    return path


async def test_a_reload_changes_the_next_calls_cost_and_pricing_version(
    config: Path, start_proxy: Callable[[Settings], Awaitable[Proxy]]
) -> None:
    proxy = await start_proxy(load_settings(config))
    client = proxy.client()
    await chat(client)
    (config.parent / "prices.toml").write_text(price_file_text("3", "7"))
    assert reload_config(proxy.app, config)
    await chat(client)

    before, after = receipts(proxy)
    assert before.actual_usd == expected_cost(before, "1", "2")
    assert after.actual_usd == expected_cost(after, "3", "7")
    assert before.actual_usd != after.actual_usd
    assert before.pricing_version != after.pricing_version
    assert after.pricing_version == proxy.app[GATE].pricing.version
    assert after.pricing_as_of == "2026-11-26"


async def test_a_call_in_flight_keeps_the_prices_it_was_admitted_under(
    config: Path,
    start_proxy: Callable[[Settings], Awaitable[Proxy]],
    openai_upstream: FakeUpstream,
) -> None:
    proxy = await start_proxy(load_settings(config))
    old_version = proxy.app[GATE].pricing.version
    openai_upstream.fake.enqueue(Reply(text="one two three four five six", chunk_delay_s=0.02))
    stream = await proxy.client().chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "hello there"}],
        max_tokens=20,
        stream=True,
    )
    chunks = aiter(stream)
    await anext(chunks)
    (config.parent / "prices.toml").write_text(price_file_text("3", "7"))
    assert reload_config(proxy.app, config)
    async for _ in chunks:
        pass

    (receipt,) = receipts(proxy)
    assert receipt.status == "ok"
    assert receipt.pricing_version == old_version != proxy.app[GATE].pricing.version
    assert receipt.actual_usd == expected_cost(receipt, "1", "2")


async def test_a_model_the_price_file_removes_is_denied_from_the_next_reload_on(
    config: Path,
    start_proxy: Callable[[Settings], Awaitable[Proxy]],
    openai_upstream: FakeUpstream,
) -> None:
    proxy = await start_proxy(load_settings(config))
    client = proxy.client()
    await chat(client)
    (config.parent / "prices.toml").write_text(f'[remove]\nmodels = ["{MODEL}"]\n')
    assert reload_config(proxy.app, config)
    # Unpriced, the model has no owner by price, so routing refuses it before any hold.
    with pytest.raises(openai.BadRequestError) as denied:
        await chat(client)
    assert denied.value.code == "model_not_found"
    assert len(openai_upstream.fake.requests) == 1


async def test_a_removed_model_a_provider_claims_is_denied_by_the_gate_with_a_receipt(
    tmp_path: Path,
    start_proxy: Callable[[Settings], Awaitable[Proxy]],
    openai_upstream: FakeUpstream,
) -> None:
    config = tmp_path / "aegis.toml"
    (tmp_path / "prices.toml").write_text(f'[remove]\nmodels = ["{MODEL}"]\n')
    write_config(config, openai_upstream, tmp_path / "prices.toml")
    config.write_text(
        config.read_text().replace(
            'api_key_env = "FAKE_KEY"\n', 'api_key_env = "FAKE_KEY"\nmodels = ["gpt-4o*"]\n'
        )
    )
    proxy = await start_proxy(load_settings(config))
    with pytest.raises(openai.PermissionDeniedError) as denied:
        await chat(proxy.client())
    assert denied.value.code == "unknown_model"
    (receipt,) = receipts(proxy)
    assert receipt.decision.reason == "unknown_model"
    assert not openai_upstream.fake.requests


async def test_an_invalid_price_file_keeps_the_running_prices(
    config: Path, start_proxy: Callable[[Settings], Awaitable[Proxy]]
) -> None:
    proxy = await start_proxy(load_settings(config))
    version = proxy.app[GATE].pricing.version
    (config.parent / "prices.toml").write_text(f'[models.{MODEL}]\ninput = "free"\n')
    assert not reload_config(proxy.app, config)
    (config.parent / "prices.toml").write_text('[models.brand-new]\ninput = "1"\n')
    assert not reload_config(proxy.app, config)  # a new model needs its provider
    assert proxy.app[GATE].pricing.version == version
    await chat(proxy.client())
    assert receipts(proxy)[-1].pricing_version == version


def test_the_prices_command_prints_the_effective_table(config: Path) -> None:
    (config.parent / "prices.toml").write_text(
        price_file_text("3", "7", '[models.house-model]\nprovider = "openai"\ninput = "0.5"\n')
        + '[remove]\nmodels = ["gpt-4o"]\n'
    )
    done = subprocess.run(
        [sys.executable, "-m", "aegis.proxy", "prices", "--config", str(config)],
        capture_output=True,
        text=True,
        check=True,
    )
    lines = {line.split()[0]: line.split() for line in done.stdout.splitlines()[2:] if line}
    table = load_pricing_version(config)
    assert done.stdout.splitlines()[0] == f"as_of 2026-11-26  version {table}"
    cached = str(default_pricing_table().price(MODEL).cached_input_per_mtok)  # kept: not overridden
    assert lines[MODEL][1:] == ["openai", "3", cached, "7", "override", "file"]
    assert lines["house-model"][-2:] == ["override", "file"]
    assert lines["gpt-4o"][-1] == "removed"
    assert lines["gpt-4.1"][-1] == "built-in"


def load_pricing_version(config: Path) -> str:
    prices = config.parent / "prices.toml"
    return default_pricing_table().with_overrides_file(prices).version


def test_the_readme_price_file_example_applies() -> None:
    import re
    import tomllib

    readme = (Path(__file__).parents[2] / "packages/aegis-proxy/README.md").read_text()
    [example] = [b for b in re.findall(r"```toml\n(.*?)```", readme, re.S) if "[remove]" in b]
    assert "gpt-3.5-turbo" in default_pricing_table()
    table = default_pricing_table().with_overrides(tomllib.loads(example))
    assert "gpt-3.5-turbo" not in table
    assert table.price("my-mini") == table.price(MODEL)
    assert str(table.price("house-llama").cached_input_per_mtok) == "0.05"


async def test_the_served_proxy_reloads_when_only_the_price_file_changes(
    tmp_path: Path, openai_upstream: FakeUpstream
) -> None:
    import asyncio

    import aiohttp
    from fakes.proxy_harness import ProxyProcess, free_port

    from aegis.core import Usage

    port = free_port()
    prices = tmp_path / "prices.toml"
    prices.write_text(price_file_text("1", "2"))
    config = tmp_path / "aegis.toml"
    config.write_text(
        f"[server]\nport = {port}\n"
        f'[ledger]\npath = "ledger.db"\n[receipts]\nsink = "file"\npath = "receipts"\n'
        f'[pricing]\noverrides = "prices.toml"\n'
        f'[providers.openai]\ntype = "openai"\nbase_url = "{openai_upstream.base_url}"\n'
        f'api_key_env = "FAKE_KEY"\n[tenants.acme]\napi_keys = ["{hash_key(KEY)}"]\n'
    )
    env = {"FAKE_KEY": "sk-upstream", "AEGIS_RECEIPT_SECRET": "r" * 32}
    served = ProxyProcess(config, port, env, tmp_path / "proxy.log")
    await served.start()
    try:
        async with aiohttp.ClientSession() as http:

            async def cost() -> tuple[str, str]:
                async with http.post(
                    served.url + "/v1/chat/completions",
                    json={"model": MODEL, "messages": [{"role": "user", "content": "hi"}]},
                    headers={"Authorization": f"Bearer {KEY}"},
                ) as response:
                    assert response.status == 200
                    usage = (await response.json())["usage"]
                    used = Usage(
                        input_tokens=usage["prompt_tokens"],
                        output_tokens=usage["completion_tokens"],
                    )
                    table = default_pricing_table().with_overrides_file(prices)
                    return response.headers["x-aegis-cost-usd"], format_usd(
                        table.price(MODEL).cost_nanos(used)
                    )

            before, expected = await cost()
            assert before == expected
            prices.write_text(price_file_text("5", "9"))  # the config file is untouched
            for _ in range(100):
                after, expected = await cost()
                if after != before:
                    break
                await asyncio.sleep(0.1)
            assert after == expected != before
    finally:
        served.stop()
    assert "prices sha256:" in (tmp_path / "proxy.log").read_text()


def test_check_config_checks_the_price_file(config: Path) -> None:
    def check() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "aegis.proxy", "check-config", str(config)],
            capture_output=True,
            text=True,
        )

    assert check().returncode == 0
    (config.parent / "prices.toml").write_text(f'[models.{MODEL}]\ninput = "cheap"\n')
    bad = check()
    assert bad.returncode == 1
    assert f"pricing.models.{MODEL}.input" in bad.stdout


def _add_metrics_key(config: Path, key: str) -> None:
    config.write_text(
        config.read_text() + f'\n[observability]\nmetrics_keys = ["{hash_key(key)}"]\n'
    )


async def test_metrics_label_a_model_that_a_reload_priced(
    config: Path, start_proxy: Callable[[Settings], Awaitable[Proxy]]
) -> None:
    metrics_key = "aegis-sk-prices-metrics-key-0123456789"  # /metrics is closed without one
    _add_metrics_key(config, metrics_key)
    proxy = await start_proxy(load_settings(config))
    (config.parent / "prices.toml").write_text(
        price_file_text(
            "1",
            "2",
            '[models.house-model]\nprovider = "openai"\ninput = "1"\noutput = "2"\n'
            "max_output_tokens = 1000\ncontext_window = 8000\n",
        )
    )
    assert reload_config(proxy.app, config)
    await proxy.client().chat.completions.create(
        model="house-model", messages=[{"role": "user", "content": "hi"}], max_tokens=5
    )
    async with (
        aiohttp.ClientSession() as http,
        http.get(
            proxy.url + "/metrics", headers={"Authorization": f"Bearer {metrics_key}"}
        ) as response,
    ):
        text = await response.text()
    lines = [line for line in text.splitlines() if line.startswith("aegis_requests_total")]
    assert any('model="house-model"' in line for line in lines), lines
    assert not any('model="other"' in line for line in lines), lines


async def test_a_trail_written_across_a_reload_reprices_offline_with_zero_differences(
    tmp_path: Path,
    openai_upstream: FakeUpstream,
    start_proxy: Callable[[Settings], Awaitable[Proxy]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AEGIS_TEST_REPRICE_SECRET", "r" * 32)
    (tmp_path / "prices.toml").write_text(price_file_text("1", "2"))
    config = tmp_path / "aegis.toml"
    write_config(config, openai_upstream, tmp_path / "prices.toml")
    trail = tmp_path / "trail"
    receipts_toml = (
        f'sink = "file"\nkey_id = "k1"\nsecret_env = "AEGIS_TEST_REPRICE_SECRET"\n'
        f'path = "{trail}"\n'
    )
    memory = f'sink = "memory"\npath = "{tmp_path / "receipts"}"\n'
    assert memory in config.read_text()
    config.write_text(config.read_text().replace(memory, receipts_toml))
    proxy = await start_proxy(load_settings(config))
    client = proxy.client()
    await chat(client)
    await chat(client)
    (tmp_path / "prices.toml").write_text(price_file_text("3", "7"))
    assert reload_config(proxy.app, config)
    await chat(client)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AEGIS_RECEIPT")}
    env["AEGIS_RECEIPT_KEYS"] = "k1:env:AEGIS_TEST_REPRICE_SECRET"
    cli = Path(sys.executable).with_name("aegis-receipts")
    done = subprocess.run(
        [str(cli), "reprice", "--json", str(trail)], capture_output=True, text=True, env=env
    )
    doc = json.loads(done.stdout)
    assert done.returncode == 0, done.stdout + done.stderr
    assert doc["receipts"] == 3
    assert doc["differences"] == []
    assert len(doc["tables"]) == 2  # both tables in force are carried by the trail
