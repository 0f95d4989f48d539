"""Calling a provider SDK with a request body given as the JSON that goes over the wire.

Adapters take request bodies as wire JSON (what the proxy forwards, what users log); an SDK
method takes keyword arguments for the fields it knows and ``extra_body`` for the rest, so
any server's extensions still reach it unchanged.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any, Final

__all__ = ["sdk_kwargs"]

_REQUEST_OPTIONS: Final = frozenset({"extra_headers", "extra_query", "extra_body", "timeout"})
_PARAMS: dict[Any, frozenset[str]] = {}


def sdk_kwargs(method: Callable[..., Any], body: Mapping[str, Any]) -> dict[str, Any]:
    """Keyword arguments for ``method`` carrying ``body``: its known parameters by name, every
    other key in ``extra_body`` (the signature is read once per function)."""
    function = getattr(method, "__func__", method)
    known = _PARAMS.get(function)
    if known is None:
        names = set(inspect.signature(function).parameters) - _REQUEST_OPTIONS - {"self"}
        known = _PARAMS[function] = frozenset(names)
    kwargs: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for key, value in body.items():
        if key in known:
            kwargs[key] = value
        else:
            extra[key] = value
    if extra:
        kwargs["extra_body"] = extra
    return kwargs
