"""Checks over untrusted OpenAI request JSON; each failure is a :class:`TranslationError`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NoReturn

from .errors import TranslationError

__all__ = ["array", "fail", "is_int", "mapping", "number", "only_keys", "string", "unsupported"]


def fail(param: str, message: str, code: str = "invalid_value") -> NoReturn:
    """Reject ``param``: its value is wrong."""
    raise TranslationError(message, param=param, code=code)


def unsupported(param: str, message: str) -> NoReturn:
    """Reject ``param``: valid OpenAI, but Gemini has no equivalent."""
    raise TranslationError(message, param=param, code="unsupported_parameter")


def is_int(value: Any) -> bool:
    """An int that is not a bool."""
    return isinstance(value, int) and not isinstance(value, bool)


def number(value: Any, param: str, low: float, high: float) -> float | int:
    """``value`` as a number within ``[low, high]``."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        fail(param, f"must be a number from {low:g} to {high:g}")
    return value


def mapping(value: Any, param: str) -> Mapping[str, Any]:
    """``value`` as a JSON object."""
    if not isinstance(value, Mapping):
        fail(param, "must be an object")
    return value


def array(value: Any, param: str) -> Sequence[Any]:
    """``value`` as a JSON array."""
    if isinstance(value, str | bytes) or not isinstance(value, Sequence):
        fail(param, "must be an array")
    return value


def string(value: Any, param: str) -> str:
    """``value`` as a string."""
    if not isinstance(value, str):
        fail(param, "must be a string")
    return value


def only_keys(obj: Mapping[str, Any], allowed: frozenset[str], where: str) -> None:
    """Reject the first key of ``obj`` outside ``allowed``."""
    for key in obj:
        if key not in allowed:
            unsupported(f"{where}.{key}" if where else str(key), "is not supported")
