"""Cross-check a price table against a published price file (genai-prices or LiteLLM JSON).

Not a live fetch: the operator downloads the file (genai-prices' ``prices/data.json``, or
LiteLLM's ``model_prices_and_context_window.json``) and :func:`compare_price_file` lists where
the two disagree, field by field, as decimal USD per million tokens. Both formats are read
with the standard library; YAML sources must be converted to JSON first.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final

from aegis.core.pricing import ModelPrice, PricingTable

__all__ = ["PriceDifference", "compare_price_file"]

_MTOK: Final = Decimal(1_000_000)
# Aegis provider name -> the provider names each format uses for it.
_GENAI_PRICES_PROVIDERS: Final = {
    "openai": ("openai",),
    "gemini": ("google",),
    "anthropic": ("anthropic",),
}
_LITELLM_PROVIDERS: Final = {
    "openai": ("openai",),
    "gemini": ("gemini",),
    "anthropic": ("anthropic",),
}
# Aegis field -> genai-prices price key.
_GENAI_KEYS: Final = {
    "input": "input_mtok",
    "cached_input": "cache_read_mtok",
    "output": "output_mtok",
    "cache_write": "cache_write_mtok",
    "audio_input": "input_audio_mtok",
    "cached_audio_input": "cache_audio_read_mtok",
    "audio_output": "output_audio_mtok",
}
# Aegis field -> LiteLLM per-token key.
_LITELLM_KEYS: Final = {
    "input": "input_cost_per_token",
    "cached_input": "cache_read_input_token_cost",
    "output": "output_cost_per_token",
    "cache_write": "cache_creation_input_token_cost",
    "audio_input": "input_cost_per_audio_token",
    "audio_output": "output_cost_per_audio_token",
    "priority_input": "input_cost_per_token_priority",
    "priority_output": "output_cost_per_token_priority",
    "flex_input": "input_cost_per_token_flex",
    "flex_output": "output_cost_per_token_flex",
}


@dataclass(frozen=True, slots=True)
class PriceDifference:
    """One field where the table and the file disagree (``None``: not given on that side)."""

    model: str
    field: str
    ours: str | None
    theirs: str | None


def _decimal(value: Any) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        # A float from JSON: its shortest repr is the decimal the file wrote.
        return Decimal(repr(value)) if isinstance(value, float) else Decimal(str(value))
    except ArithmeticError:
        return None


def _genai_price(value: Any) -> Decimal | None:
    # A tiered price is {"base": x, "tiers": [...]}: the base is the standard-context price.
    if isinstance(value, Mapping):
        return _decimal(value.get("base"))
    return _decimal(value)


def _matches(rule: Any, name: str) -> bool:
    if not isinstance(rule, Mapping):
        return False
    if "equals" in rule:
        return bool(rule["equals"] == name)
    if "starts_with" in rule:
        return isinstance(rule["starts_with"], str) and name.startswith(rule["starts_with"])
    if "or" in rule and isinstance(rule["or"], list):
        return any(_matches(r, name) for r in rule["or"])
    return False


def _genai_prices(data: list[Any]) -> Iterator[tuple[str, str, Mapping[str, Any], Any]]:
    for provider in data:
        if not isinstance(provider, Mapping):
            continue
        for model in provider.get("models") or []:
            if not isinstance(model, Mapping):
                continue
            prices = model.get("prices")
            if isinstance(prices, list):
                # Dated prices: the last entry is the one in force (genai-prices lists them in
                # order); constrained ones without a date are skipped.
                current = [p for p in prices if isinstance(p, Mapping)]
                prices = current[-1].get("prices") if current else None
            if isinstance(prices, Mapping):
                yield str(provider.get("id")), str(model.get("id")), prices, model.get("match")


def _ours(price: ModelPrice) -> dict[str, Decimal | None]:
    tiers = dict(price.service_tiers)
    priority = tiers.get("priority")
    flex = tiers.get("flex")

    def tiered(tier: Any, explicit: Decimal | None, base: Decimal) -> Decimal | None:
        if tier is None:
            return None
        return explicit if explicit is not None else base * tier.multiplier

    return {
        "input": price.input_per_mtok,
        "cached_input": price.cached_input_per_mtok,
        "output": price.output_per_mtok,
        "cache_write": price.cache_write_per_mtok,
        "audio_input": price.audio_input_per_mtok,
        "cached_audio_input": price.cached_audio_input_per_mtok,
        "audio_output": price.audio_output_per_mtok,
        "priority_input": tiered(
            priority, priority.input_per_mtok if priority else None, price.input_per_mtok
        ),
        "priority_output": tiered(
            priority, priority.output_per_mtok if priority else None, price.output_per_mtok
        ),
        "flex_input": tiered(flex, flex.input_per_mtok if flex else None, price.input_per_mtok),
        "flex_output": tiered(flex, flex.output_per_mtok if flex else None, price.output_per_mtok),
    }


def _find_genai(data: list[Any], price: ModelPrice) -> Mapping[str, Any] | None:
    providers = _GENAI_PRICES_PROVIDERS.get(price.provider, ())
    for provider, model, prices, match in _genai_prices(data):
        if provider in providers and (model == price.model or _matches(match, price.model)):
            return {f: _genai_price(prices.get(k)) for f, k in _GENAI_KEYS.items()}
    return None


def _find_litellm(data: Mapping[str, Any], price: ModelPrice) -> Mapping[str, Any] | None:
    for prefix in ("", *(f"{p}/" for p in _LITELLM_PROVIDERS.get(price.provider, ()))):
        entry = data.get(prefix + price.model)
        if isinstance(entry, Mapping):
            return {
                f: None if (d := _decimal(entry.get(k))) is None else (d * _MTOK).normalize()
                for f, k in _LITELLM_KEYS.items()
            }
    return None


def compare_price_file(table: PricingTable, data: Any) -> tuple[list[PriceDifference], list[str]]:
    """Differences between ``table`` and a parsed price file, and the table's models the file
    does not list. A field only one side gives is a difference when the other side's model
    has it at all (a file that never lists priority prices does not flag every model)."""
    differences: list[PriceDifference] = []
    missing: list[str] = []
    for model in table.models():
        price = table.price(model)
        theirs = _find_genai(data, price) if isinstance(data, list) else _find_litellm(data, price)
        if theirs is None:
            missing.append(model)
            continue
        ours = _ours(price)
        for name, value in theirs.items():
            mine = ours.get(name)
            if value is None:
                continue  # the file does not price this dimension
            if mine is None or mine.normalize() != value.normalize():
                differences.append(
                    PriceDifference(
                        model,
                        name,
                        None if mine is None else format(mine.normalize(), "f"),
                        format(value.normalize(), "f"),
                    )
                )
    return differences, missing
