"""Reading provider payloads that arrive either as parsed JSON or as an SDK's objects.

Adapters read the same fields from a proxy's parsed JSON (dicts) and from an SDK's pydantic
models; :func:`wire_field` reads both, so one mapping serves both paths.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

__all__ = ["wire_field"]

_MISSING: Final[Any] = object()


def wire_field(obj: Any, key: str) -> Any:
    """``obj[key]`` of a mapping, ``obj.key`` of anything else; ``None`` when missing."""
    if isinstance(obj, dict):
        return obj.get(key)
    if obj is None:
        return None
    extra: Any = getattr(obj, "__pydantic_extra__", _MISSING)
    if extra is not _MISSING:
        # The SDKs' pydantic models keep fields in __dict__ and unknown ones in
        # __pydantic_extra__; reading those directly avoids a raised AttributeError per miss.
        value = obj.__dict__.get(key)
        if value is None and extra:
            value = extra.get(key)
        return value
    if isinstance(obj, Mapping):
        return obj.get(key)
    return getattr(obj, key, None)
