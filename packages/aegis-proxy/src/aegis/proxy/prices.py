"""Live prices: the bundled table with the configured price file on top, swapped on reload.

A reload builds the whole new table first (an invalid price file keeps the running one), then
hands it to the Router and the Gate in one synchronous step, so the next call sees it and a
call already admitted keeps the table it was admitted under (its permit holds it).
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from aegis.core import ConfigError, PricingTable, default_pricing_table
from aegis.proxy.config import Settings
from aegis.proxy.operator import OPERATOR
from aegis.proxy.state import GATE, ROUTER

__all__ = ["PriceRow", "apply_pricing", "format_prices", "load_pricing", "price_rows"]


@dataclass(frozen=True, slots=True)
class PriceRow:
    """One model of the effective table, as ``aegis-proxy prices`` shows it."""

    model: str
    provider: str
    input_per_mtok: str
    output_per_mtok: str
    cached_input_per_mtok: str
    source: str
    """``built-in``, ``override file`` or ``removed`` (by the override file)."""


def _read(path: Path) -> Mapping[str, Any]:
    with path.open("rb") as f:
        data = json.load(f) if path.suffix == ".json" else tomllib.load(f)
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path}: expected a table", field="pricing.overrides")
    return data


def load_pricing(settings: Settings) -> tuple[PricingTable, Mapping[str, Any]]:
    """The effective table and the price file's data (empty without one).

    Raises :class:`ConfigError` for an unreadable or invalid price file.
    """
    table = default_pricing_table()
    path = settings.pricing_overrides
    if path is None:
        return table, {}
    try:
        data = _read(path)
    except (OSError, ValueError) as exc:
        # tomllib and json errors are ValueErrors; neither the message nor the path is secret.
        raise ConfigError(f"pricing.overrides: {path}: {exc}", field="pricing.overrides") from exc
    return table.with_overrides(data), data


def apply_pricing(app: web.Application, table: PricingTable) -> None:
    """Make ``table`` the price list of the next call (routing and admission alike)."""
    app[ROUTER].pricing = table
    gate = app.get(GATE)
    if gate is not None:
        gate.pricing = table
    operator = app.get(OPERATOR)
    if operator is not None:
        operator.stats.pricing = table  # metrics label the newly priced models too


def price_rows(table: PricingTable, overrides: Mapping[str, Any]) -> list[PriceRow]:
    """Every priced model with its source, then the models the price file removed."""
    overridden = overrides.get("models", {})
    removed = overrides.get("remove", {}).get("models", [])
    rows = []
    for model in table.models():
        price = table.price(model)
        cached = price.cached_input_per_mtok
        rows.append(
            PriceRow(
                model=model,
                provider=price.provider,
                input_per_mtok=str(price.input_per_mtok),
                output_per_mtok=str(price.output_per_mtok),
                cached_input_per_mtok="-" if cached is None else str(cached),
                source="override file" if model in overridden else "built-in",
            )
        )
    rows.extend(PriceRow(m, "-", "-", "-", "-", "removed") for m in sorted(removed))
    return rows


def format_prices(table: PricingTable, overrides: Mapping[str, Any]) -> str:
    """The effective table as text: a header with ``as_of`` and ``version``, one model a line."""
    head = ("model", "provider", "input/Mtok", "cached/Mtok", "output/Mtok", "source")
    lines = [
        (
            r.model,
            r.provider,
            r.input_per_mtok,
            r.cached_input_per_mtok,
            r.output_per_mtok,
            r.source,
        )
        for r in price_rows(table, overrides)
    ]
    widths = [max(len(row[i]) for row in (head, *lines)) for i in range(len(head))]
    out = [f"as_of {table.as_of.isoformat()}  version {table.version}", ""]
    out += [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        for row in (head, *lines)
    ]
    return "\n".join(out)
