"""`aegis-proxy prices --check FILE`: the table cross-checked against genai-prices and LiteLLM
price files (the shapes those projects publish), listing every difference."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from fakes.openai_upstream import FakeUpstream
from fakes.proxy_harness import KEY

from aegis.core import compare_price_file, default_pricing_table
from aegis.proxy import hash_key


def write_config(path: Path, upstream: FakeUpstream) -> None:
    path.write_text(
        f'[ledger]\nbackend = "memory"\n'
        f'[receipts]\nsink = "memory"\npath = "{path.parent / "receipts"}"\n'
        f'[providers.openai]\ntype = "openai"\nbase_url = "{upstream.base_url}"\n'
        f'api_key_env = "FAKE_KEY"\n'
        f'[tenants.acme]\napi_keys = ["{hash_key(KEY)}"]\n'
    )


# genai-prices' prices/data.json: providers, each with models, match rules and prices per Mtok
# (dated prices as a list, tiered ones as base + tiers).
GENAI_PRICES = [
    {
        "id": "openai",
        "models": [
            {
                "id": "gpt-4o",
                "match": {"or": [{"equals": "gpt-4o"}, {"equals": "gpt-4o-2024-08-06"}]},
                "prices": {"input_mtok": 2.5, "cache_read_mtok": 1.25, "output_mtok": 10},
            },
            {
                "id": "gpt-4o-mini",
                "match": {"equals": "gpt-4o-mini"},
                "prices": [
                    {"prices": {"input_mtok": 0.1, "output_mtok": 0.5}},
                    {
                        "constraint": {"start_date": "2026-01-01"},
                        "prices": {
                            "input_mtok": 0.15,
                            "cache_read_mtok": 0.075,
                            "output_mtok": 0.6,
                        },
                    },
                ],
            },
            {
                "id": "gpt-4o-audio-preview",
                "match": {"starts_with": "gpt-4o-audio-preview"},
                "prices": {"input_audio_mtok": 2.5, "output_mtok": 10},
            },
        ],
    },
    {
        "id": "google",
        "models": [
            {
                "id": "gemini-2.5-pro",
                "match": {"equals": "gemini-2.5-pro"},
                "prices": {
                    "input_mtok": {"base": 1.25, "tiers": [{"start": 200000, "price": 2.5}]},
                    "cache_read_mtok": {"base": 0.125, "tiers": [{"start": 200000, "price": 0.25}]},
                    "output_mtok": {"base": 10, "tiers": [{"start": 200000, "price": 15}]},
                },
            }
        ],
    },
]

# LiteLLM's model_prices_and_context_window.json: per-token floats, Gemini under "gemini/".
LITELLM = {
    "gpt-4.1": {
        "litellm_provider": "openai",
        "mode": "chat",
        "input_cost_per_token": 2e-06,
        "cache_read_input_token_cost": 5e-07,
        "output_cost_per_token": 8e-06,
        "input_cost_per_token_priority": 3.5e-06,
        "output_cost_per_token_priority": 1.4e-05,
        "max_input_tokens": 1047576,
        "max_output_tokens": 32768,
    },
    "gemini/gemini-2.5-flash": {
        "litellm_provider": "gemini",
        "mode": "chat",
        "input_cost_per_token": 3e-07,
        "input_cost_per_audio_token": 1e-06,
        "cache_read_input_token_cost": 7.5e-08,
        "output_cost_per_token": 2.5e-06,
    },
}


def test_genai_prices_file_differences_are_listed_field_by_field() -> None:
    differences, missing = compare_price_file(default_pricing_table(), GENAI_PRICES)
    found = {(d.model, d.field): (d.ours, d.theirs) for d in differences}
    # The file prices gpt-4o-audio-preview's audio input as text: $2.50, ours is $40.
    assert found == {("gpt-4o-audio-preview", "audio_input"): ("40", "2.5")}
    # Dated prices: the one in force (the last) is compared; tiered ones by their base.
    assert "gpt-4o-mini" not in missing
    assert "gemini-2.5-pro" not in missing
    assert "gpt-5" in missing


def test_litellm_file_differences_are_listed_field_by_field() -> None:
    differences, _ = compare_price_file(default_pricing_table(), LITELLM)
    found = {(d.model, d.field): (d.ours, d.theirs) for d in differences}
    # 2.5 Flash cache hits: LiteLLM says $0.075, the published price (ours) is $0.03.
    assert found == {("gemini-2.5-flash", "cached_input"): ("0.03", "0.075")}


def test_the_prices_command_checks_a_file(tmp_path: Path, openai_upstream: FakeUpstream) -> None:
    config = tmp_path / "aegis.toml"
    write_config(config, openai_upstream)
    price_file = tmp_path / "model_prices_and_context_window.json"
    price_file.write_text(json.dumps(LITELLM))
    done = subprocess.run(
        [sys.executable, "-m", "aegis.proxy", "prices", "--config", str(config), "--check",
         str(price_file), "--json"],
        capture_output=True,
        text=True,
        check=False,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    doc = json.loads(done.stdout)
    assert doc["differences"] == [
        {"model": "gemini-2.5-flash", "field": "cached_input", "ours": "0.03", "theirs": "0.075"}
    ]
    same = tmp_path / "same.json"
    same.write_text(json.dumps({"gpt-4.1": LITELLM["gpt-4.1"]}))
    done = subprocess.run(
        [sys.executable, "-m", "aegis.proxy", "prices", "--config", str(config), "--check",
         str(same)],
        capture_output=True,
        text=True,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 difference(s)" in done.stdout
