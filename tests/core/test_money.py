from __future__ import annotations

import random
from decimal import Decimal

import pytest

from aegis.core import ConfigError, ModelPrice, Usage, format_usd, nanos_to_usd, parse_usd


def test_parse_usd_is_exact_for_decimal_strings() -> None:
    assert parse_usd("10") == 10_000_000_000
    assert parse_usd("0.000000001") == 1
    assert parse_usd(Decimal("1.5")) == 1_500_000_000
    assert parse_usd(3) == 3_000_000_000


def test_parse_usd_takes_the_decimal_a_config_float_was_written_as() -> None:
    # 0.1 + 0.2 as binary floats is 0.30000000000000004; the edge must not carry that in.
    assert parse_usd(0.3) == 300_000_000
    assert parse_usd(0.1) == 100_000_000


def test_parse_usd_rounds_sub_nano_limits_down() -> None:
    assert parse_usd("0.0000000019") == 1


@pytest.mark.parametrize("bad", ["ten", "-1", "NaN", "Infinity", True, None, [1]])
def test_parse_usd_rejects_non_amounts(bad: object) -> None:
    with pytest.raises(ConfigError):
        parse_usd(bad, "limit_usd")


def test_format_usd_round_trips() -> None:
    for nanos in (0, 1, 10, 150, 1_000_000_000, 1_234_567_891, 999_999_999):
        assert parse_usd(format_usd(nanos)) == nanos
        assert nanos_to_usd(nanos) == Decimal(format_usd(nanos))
    assert format_usd(1_500_000_000) == "1.5"
    assert format_usd(75) == "0.000000075"


def test_costs_round_up_to_the_next_nano() -> None:
    # gpt-4o-mini output is $0.60/Mtok = 600 nano-USD per token: exact.
    mini = ModelPrice(
        model="m",
        provider="openai",
        input_per_mtok=Decimal("0.15"),
        output_per_mtok=Decimal("0.60"),
    )
    assert mini.cost_nanos(Usage(input_tokens=1, output_tokens=1)) == 150 + 600
    # $0.075/Mtok is 75 nano-USD per token; $0.0001/Mtok is 0.1 nano per token: rounds up once.
    tiny = ModelPrice(model="t", provider="openai", input_per_mtok=Decimal("0.0001"))
    assert tiny.cost_nanos(Usage(input_tokens=1)) == 1
    assert tiny.cost_nanos(Usage(input_tokens=10)) == 1
    assert tiny.cost_nanos(Usage(input_tokens=11)) == 2


def test_a_million_tiny_charges_add_up_exactly() -> None:
    price = ModelPrice(
        model="m",
        provider="openai",
        input_per_mtok=Decimal("0.15"),
        cached_input_per_mtok=Decimal("0.075"),
        output_per_mtok=Decimal("0.60"),
    )
    rng = random.Random(7)
    total = 0
    expected_input = expected_cached = expected_output = 0
    for _ in range(1_000_000):
        inp = rng.randrange(1, 50)
        cached = rng.randrange(0, inp + 1)
        out = rng.randrange(0, 20)
        total += price.cost_nanos(
            Usage(input_tokens=inp, cached_input_tokens=cached, output_tokens=out)
        )
        expected_input += inp - cached
        expected_cached += cached
        expected_output += out
    # Every price here is a whole number of nano-USD per token, so nothing rounds: the sum of
    # a million charges equals the price of the summed usage, to the nano.
    exact = expected_input * 150 + expected_cached * 75 + expected_output * 600
    assert total == exact
    assert (
        nanos_to_usd(total)
        == (
            Decimal(expected_input) * Decimal("0.15")
            + Decimal(expected_cached) * Decimal("0.075")
            + Decimal(expected_output) * Decimal("0.60")
        )
        / 1_000_000
    )
