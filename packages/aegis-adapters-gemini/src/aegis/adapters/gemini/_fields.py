"""Field access over Gemini REST JSON, which accepts both spellings of every field name.

Gemini parses requests as proto3 JSON: ``maxOutputTokens`` and ``max_output_tokens`` name the
same field (google-genai itself sends nested fields in snake_case). Readers look up the
lowerCamelCase name, then the snake_case one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from functools import cache
from typing import Any

__all__ = ["field", "proto_int", "snake"]

_UPPER = re.compile(r"([A-Z])")


@cache
def snake(name: str) -> str:
    """``maxOutputTokens`` -> ``max_output_tokens``."""
    return _UPPER.sub(lambda m: "_" + m.group(1).lower(), name)


def field(obj: Mapping[str, Any], name: str) -> Any:
    """``obj[name]`` under either spelling of ``name`` (lowerCamelCase given), else ``None``."""
    value = obj.get(name)
    if value is None:
        value = obj.get(snake(name))
    return value


_INT32_DIGITS = 10
"""Digits of the largest int32 (the type of every count Gemini reads)."""


def proto_int(value: Any) -> int | None:
    """``value`` read as proto3 JSON reads an integer field, or ``None`` when it cannot be.

    The proto3 JSON mapping accepts a number or a string holding one, and a float with an
    integral value (``8``, ``"8"``, ``8.0``, ``"8.0"``, ``"8e0"`` are all 8); ``true``,
    fractions, and values beyond int32 are not integers to it.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value.bit_length() < 32 else None
    if isinstance(value, float):
        return int(value) if value.is_integer() and abs(value) < 2**31 else None
    if not isinstance(value, str) or value != value.strip():
        return None
    try:
        number = Decimal(value)
    except InvalidOperation:
        return None
    # adjusted() bounds the magnitude before any conversion ("1e999999" stays cheap).
    if not number.is_finite() or number.adjusted() >= _INT32_DIGITS:
        return None
    if number != number.to_integral_value():
        return None
    whole = int(number)
    return whole if abs(whole) < 2**31 else None
