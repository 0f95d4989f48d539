from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from aegis.core import ConfigError, ModelPrice, UnknownModel, Usage, default_pricing_table


def test_cached_input_bills_at_the_cached_price() -> None:
    price = default_pricing_table().price("gpt-4o")  # $2.50 in, $1.25 cached, $10 out
    usage = Usage(input_tokens=1000, cached_input_tokens=600, output_tokens=100)
    assert price.cost_nanos(usage) == 400 * 2500 + 600 * 1250 + 100 * 10_000


def test_reasoning_tokens_bill_as_output_and_are_not_counted_twice() -> None:
    price = default_pricing_table().price("o3")  # $2 in, $8 out
    usage = Usage(input_tokens=10, output_tokens=500, reasoning_tokens=450)
    assert price.cost_nanos(usage) == 10 * 2000 + 500 * 8000


def test_model_without_cached_price_bills_cache_hits_as_input() -> None:
    price = default_pricing_table().price("gpt-3.5-turbo")
    assert price.cost_nanos(Usage(input_tokens=100, cached_input_tokens=100)) == 100 * 500


def test_long_context_tier_prices_every_token_at_the_higher_rate() -> None:
    pro = default_pricing_table().price("gemini-2.5-pro")
    short = Usage(input_tokens=200_000, output_tokens=1000)
    long = Usage(input_tokens=200_001, output_tokens=1000)
    assert pro.cost_nanos(short) == 200_000 * 1250 + 1000 * 10_000
    assert pro.cost_nanos(long) == 200_001 * 2500 + 1000 * 15_000


def test_dated_snapshots_price_as_their_model() -> None:
    table = default_pricing_table()
    assert table.price("gpt-4o-mini-2024-07-18") is table.price("gpt-4o-mini")
    assert table.price("models/gemini-2.5-flash") is table.price("gemini-2.5-flash")
    # An older snapshot with its own price is not folded into the alias.
    assert table.price("gpt-4o-2024-05-13").input_per_mtok == Decimal("5.00")


def test_unknown_model_raises() -> None:
    with pytest.raises(UnknownModel) as info:
        default_pricing_table().price("gpt-17-ultra")
    assert info.value.model == "gpt-17-ultra"
    assert "gpt-17-ultra" not in default_pricing_table()


def test_default_table_covers_chat_and_embeddings_of_every_provider() -> None:
    table = default_pricing_table()
    kinds = {(table.price(m).provider, table.price(m).kind) for m in table.models()}
    assert kinds == {
        ("openai", "chat"),
        ("openai", "embedding"),
        ("gemini", "chat"),
        ("gemini", "embedding"),
        ("anthropic", "chat"),
    }
    for model in table.models():
        price = table.price(model)
        if price.kind == "chat":
            assert price.max_output_tokens > 0, model


def test_version_names_the_content() -> None:
    a = default_pricing_table()
    assert a.version == default_pricing_table().version
    b = a.with_overrides({"models": {"gpt-4o": {"input": "2.00"}}})
    assert b.version != a.version
    assert b.price("gpt-4o").input_per_mtok == Decimal("2.00")
    assert b.price("gpt-4o").output_per_mtok == Decimal("10.00")  # untouched fields kept


def test_override_file_adds_models_and_aliases(tmp_path: Path) -> None:
    path = tmp_path / "prices.toml"
    path.write_text(
        'as_of = "2026-11-01"\n'
        '[models.my-llama]\nprovider = "openai"\ninput = 0.2\noutput = "0.4"\n'
        "max_output_tokens = 4096\n"
        '[aliases]\n"my-llama-v2" = "my-llama"\n'
    )
    table = default_pricing_table().with_overrides_file(path)
    assert table.as_of == date(2026, 11, 1)
    assert table.price("my-llama-v2").cost_nanos(Usage(input_tokens=10, output_tokens=10)) == 6000
    as_json = tmp_path / "prices.json"
    as_json.write_text(json.dumps({"models": {"o3": {"output": "6"}}}))
    assert default_pricing_table().with_overrides_file(as_json).price("o3").output_per_mtok == 6


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"models": {"x": {"input": "1"}}}, "provider"),
        ({"models": {"gpt-4o": {"inptu": "1"}}}, "inptu"),
        ({"models": {"gpt-4o": {"input": "-1"}}}, "input"),
        ({"models": {"gpt-4o": {"max_output_tokens": -5}}}, "max_output_tokens"),
        ({"colour": 1}, "colour"),
        ({"as_of": "yesterday"}, "as_of"),
    ],
)
def test_bad_overrides_are_rejected_with_the_field(data: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigError) as info:
        default_pricing_table().with_overrides(data)
    assert field in str(info.value)


def test_worst_case_and_affordable_output_agree() -> None:
    price = ModelPrice(
        model="m",
        provider="openai",
        input_per_mtok=Decimal("1"),
        output_per_mtok=Decimal("3"),
        max_output_tokens=1000,
    )
    budget = price.worst_case_nanos(100, 250)
    assert price.output_tokens_affordable(100, budget) == 250
    assert price.output_tokens_affordable(100, budget - 1) == 249
    assert price.output_tokens_affordable(100, 99_000) == 0
