"""Every billed dimension of Usage/ModelPrice, costed by hand with Decimal."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from decimal import ROUND_CEILING, Decimal

import pytest

from aegis.core import BillingTerms, ConfigError, ModelPrice, PricingTable, TierPrice, Usage

D = Decimal
MTOK = D(1_000_000)


def nanos(usd: Decimal) -> int:
    """USD to nano-USD, rounded up (the published formula's result, as Aegis must bill it)."""
    return int((usd * 10**9).to_integral_value(rounding=ROUND_CEILING))


PRICE = ModelPrice(
    model="m",
    provider="openai",
    input_per_mtok=D("1.25"),
    cached_input_per_mtok=D("0.125"),
    output_per_mtok=D("10"),
    cache_write_per_mtok=D("1.5625"),
    cache_write_1h_per_mtok=D("2.5"),
    audio_input_per_mtok=D("40"),
    cached_audio_input_per_mtok=D("2.5"),
    audio_output_per_mtok=D("80"),
    tool_calls_per_1k=(("web_search", D("10")), ("file_search", D("2.5"))),
    service_tiers=(
        (
            "priority",
            TierPrice(
                input_per_mtok=D("2.5"),
                cached_input_per_mtok=D("0.25"),
                output_per_mtok=D("20"),
                multiplier=D(2),
            ),
        ),
        ("flex", TierPrice(multiplier=D("0.5"))),
    ),
    max_output_tokens=128_000,
    context_window=400_000,
    max_input_tokens=272_000,
)


def test_every_dimension_costed_by_hand() -> None:
    usage = Usage(
        input_tokens=10_000,
        cached_input_tokens=3_000,
        cached_audio_input_tokens=500,
        cache_write_tokens=1_000,
        cache_write_1h_tokens=700,
        audio_input_tokens=2_000,
        output_tokens=5_000,
        reasoning_tokens=1_000,
        audio_output_tokens=1_200,
        tool_calls=(("web_search", 2), ("file_search", 3)),
    )
    # plain text input: 10000 - 3000 cached - 1000 - 700 writes - (2000 - 500) uncached audio
    expected = (
        (
            D(3_800) * D("1.25")
            + D(2_500) * D("0.125")
            + D(500) * D("2.5")
            + D(1_000) * D("1.5625")
            + D(700) * D("2.5")
            + D(1_500) * D("40")
            + D(3_800) * D("10")
            + D(1_200) * D("80")
        )
        / MTOK
        + D(2) * D("10") / 1000
        + D(3) * D("2.5") / 1000
    )
    assert PRICE.cost_nanos(usage) == nanos(expected)


def test_service_tiers_by_hand() -> None:
    base = Usage(input_tokens=1_000, cached_input_tokens=400, output_tokens=300)
    priority = replace(base, service_tier="priority")
    flex = replace(base, service_tier="flex", tool_calls=(("web_search", 1),))
    assert PRICE.cost_nanos(priority) == nanos(
        (D(600) * D("2.5") + D(400) * D("0.25") + D(300) * D("20")) / MTOK
    )
    # Flex halves token prices, not the tool fee.
    assert PRICE.cost_nanos(flex) == nanos(
        (D(600) * D("0.625") + D(400) * D("0.0625") + D(300) * D("5")) / MTOK + D("0.01")
    )
    # Batch is unlisted here: billed at standard.
    assert PRICE.cost_nanos(replace(base, service_tier="batch")) == PRICE.cost_nanos(base)


def test_unlisted_priority_bills_twice_standard() -> None:
    plain = ModelPrice(
        model="p", provider="gemini", input_per_mtok=D("0.3"), output_per_mtok=D("2.5")
    )
    usage = Usage(input_tokens=1_000, output_tokens=1_000, service_tier="priority")
    assert plain.cost_nanos(usage) == nanos((D(1_000) * D("0.6") + D(1_000) * D("5")) / MTOK)


def test_unpriced_dimensions_fall_back_to_plain_text() -> None:
    plain = ModelPrice(
        model="p",
        provider="anthropic",
        input_per_mtok=D("3"),
        cached_input_per_mtok=D("0.3"),
        output_per_mtok=D("15"),
    )
    usage = Usage(
        input_tokens=1_000,
        cached_input_tokens=100,
        cache_write_tokens=200,
        cache_write_1h_tokens=300,
        audio_input_tokens=50,
        cached_audio_input_tokens=10,
        output_tokens=100,
        audio_output_tokens=20,
        tool_calls=(("web_search", 4),),
    )
    # writes and audio at input, cached audio at cached, audio out at output, unpriced tool: 0
    expected = (D(900) * D("3") + D(100) * D("0.3") + D(100) * D("15")) / MTOK
    assert plain.cost_nanos(usage) == nanos(expected)


def test_zero_price_is_not_absent() -> None:
    free_cache = ModelPrice(
        model="z",
        provider="openai",
        input_per_mtok=D(1),
        cached_input_per_mtok=D(0),
        output_per_mtok=D(1),
    )
    full = ModelPrice(model="z", provider="openai", input_per_mtok=D(1), output_per_mtok=D(1))
    usage = Usage(input_tokens=1_000_000, cached_input_tokens=1_000_000)
    assert free_cache.cost_nanos(usage) == 0
    assert full.cost_nanos(usage) == 10**9
    day = PricingTable([free_cache], as_of=date(2026, 12, 3))
    other = PricingTable([full], as_of=day.as_of)
    assert day.version != other.version


def test_worst_case_under_terms() -> None:
    terms = BillingTerms(service_tier="priority", tool_calls=(("web_search", 3),), audio_input=True)
    # audio input at $40 is dearer than priority text input $2.50; output at priority $20.
    expected = (D(1_000) * D("40") * 2 + D(500) * D("20")) / MTOK + D(3) * D("10") / 1000
    assert PRICE.worst_case_nanos(1_000, 500, terms) == nanos(expected)
    budget = PRICE.worst_case_nanos(1_000, 500, terms)
    assert PRICE.output_tokens_affordable(1_000, budget, terms) == 500
    assert PRICE.input_limit == 272_000


def test_override_file_shape_round_trips() -> None:
    table = PricingTable([PRICE], as_of=date(2026, 12, 3))
    again = PricingTable([], as_of=table.as_of).with_overrides(table.to_dict())
    assert again.version == table.version
    assert again.price("m") == PRICE


@pytest.mark.parametrize(
    "kwargs",
    [
        {"input_tokens": 10, "cached_input_tokens": 6, "cache_write_tokens": 5},
        {"input_tokens": 10, "audio_input_tokens": 4, "cached_audio_input_tokens": 5},
        {"output_tokens": 10, "reasoning_tokens": 6, "audio_output_tokens": 5},
        {"service_tier": "turbo"},
        {"tool_calls": (("Web Search", 1),)},
        {"tool_calls": (("web_search", -1),)},
    ],
)
def test_inconsistent_usage_is_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=r"must|cannot"):
        Usage(**kwargs)  # type: ignore[arg-type]


def test_tool_calls_are_normalized() -> None:
    usage = Usage(tool_calls=(("web_search", 1), ("file_search", 0), ("web_search", 2)))
    assert usage.tool_calls == (("web_search", 3),)
    assert usage.tool_call_count("web_search") == 3


def test_provider_must_be_known() -> None:
    with pytest.raises(ConfigError):
        ModelPrice(model="x", provider="acme", input_per_mtok=D(1))
