"""Field access over Gemini REST JSON, which accepts both spellings of every field name.

Gemini parses requests as proto3 JSON: ``maxOutputTokens`` and ``max_output_tokens`` name the
same field (google-genai itself sends nested fields in snake_case). Readers look up the
lowerCamelCase name, then the snake_case one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import cache
from typing import Any

__all__ = ["field", "snake"]

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
