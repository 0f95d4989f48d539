"""Exact money: integer nano-USD inside, decimal strings at the edges.

One nano-USD is 10**-9 USD. Prices are USD per million tokens; a price with up to nine decimal
places is an exact integer number of femto-USD (10**-15) per token, so a call's cost is an exact
integer sum, rounded up to whole nano-USD once. Limits parsed from configuration round down.
Both directions protect the budget.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal, InvalidOperation
from typing import Final

from aegis.core.errors import ConfigError

__all__ = [
    "FEMTOS_PER_NANO",
    "NANOS_PER_USD",
    "ceil_div",
    "format_usd",
    "nanos_to_usd",
    "parse_price_per_mtok",
    "parse_usd",
]

NANOS_PER_USD: Final = 1_000_000_000
FEMTOS_PER_NANO: Final = 1_000_000
# USD per 1M tokens -> femto-USD per token: x * 10**15 / 10**6.
_FEMTOS_PER_TOKEN_PER_USD_PER_MTOK: Final = 1_000_000_000


def ceil_div(numerator: int, denominator: int) -> int:
    """Integer division rounding toward +infinity."""
    return -(-numerator // denominator)


def _to_decimal(value: object, field: str) -> Decimal:
    # bool is an int subclass; True dollars is never what anyone meant.
    if isinstance(value, bool):
        raise ConfigError(f"{field}: expected a decimal amount, got a boolean", field=field)
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, int):
        result = Decimal(value)
    elif isinstance(value, float):
        # Only at the edge (TOML/JSON numbers): the shortest repr is the decimal the user wrote.
        result = Decimal(repr(value))
    elif isinstance(value, str):
        try:
            result = Decimal(value.strip())
        except InvalidOperation:
            raise ConfigError(f"{field}: {value!r} is not a decimal amount", field=field) from None
    else:
        raise ConfigError(
            f"{field}: expected a decimal amount, got {type(value).__name__}", field=field
        )
    if not result.is_finite():
        raise ConfigError(f"{field}: {value!r} is not a finite amount", field=field)
    if result < 0:
        raise ConfigError(f"{field}: must not be negative, got {value!r}", field=field)
    return result


def parse_usd(value: object, field: str = "amount") -> int:
    """Parse a USD amount (str, int, Decimal, or a float from a config file) to nano-USD.

    Sub-nano digits round down: a limit never grows by parsing it.
    """
    amount = _to_decimal(value, field) * NANOS_PER_USD
    return int(amount.to_integral_value(rounding=ROUND_FLOOR))


def parse_price_per_mtok(value: object, field: str = "price") -> int:
    """Parse a USD-per-million-tokens price to femto-USD per token, exactly.

    A price with more than nine decimal places cannot be represented exactly; it rounds up, so
    the table can only over-charge by less than one femto-USD per token.
    """
    femtos = _to_decimal(value, field) * _FEMTOS_PER_TOKEN_PER_USD_PER_MTOK
    return int(femtos.to_integral_value(rounding=ROUND_CEILING))


def nanos_to_usd(nanos: int) -> Decimal:
    """Exact decimal USD for an amount of nano-USD."""
    return Decimal(nanos).scaleb(-9)


def format_usd(nanos: int) -> str:
    """Decimal string of a nano-USD amount without trailing zeros, e.g. ``'0.00015'``."""
    sign = "-" if nanos < 0 else ""
    whole, frac = divmod(abs(nanos), NANOS_PER_USD)
    if frac == 0:
        return f"{sign}{whole}"
    return f"{sign}{whole}.{frac:09d}".rstrip("0")
