"""Checks over untrusted OpenAI request JSON; each failure is a :class:`TranslationError`
(aegis-core's :class:`~aegis.core.JsonChecks`, bound to this package's error)."""

from __future__ import annotations

from typing import Final

from aegis.core import JsonChecks

from .errors import TranslationError

__all__ = [
    "CHECKS",
    "array",
    "fail",
    "is_int",
    "mapping",
    "number",
    "only_keys",
    "string",
    "unsupported",
]

CHECKS: Final = JsonChecks(TranslationError)
fail: Final = CHECKS.fail
unsupported: Final = CHECKS.unsupported
is_int: Final = JsonChecks.is_int
number: Final = CHECKS.number
mapping: Final = CHECKS.mapping
array: Final = CHECKS.array
string: Final = CHECKS.string
only_keys: Final = CHECKS.only_keys
