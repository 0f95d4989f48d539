"""Model prices, token usage, and the one function that turns usage into nano-USD.

Prices are USD per million tokens, held as exact integers of femto-USD per token
(see :mod:`aegis.core.money`). A call's cost is an exact integer sum, rounded up to whole
nano-USD once, in :meth:`ModelPrice.cost_nanos`.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any, Final, Literal

from aegis.core.errors import ConfigError, UnknownModel
from aegis.core.money import FEMTOS_PER_NANO, ceil_div, parse_price_per_mtok

__all__ = ["ModelKind", "ModelPrice", "PricingTable", "Usage"]

ModelKind = Literal["chat", "embedding"]


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens a call consumed, in the provider-neutral shape Aegis bills.

    ``cached_input_tokens`` is part of ``input_tokens``; ``reasoning_tokens`` is part of
    ``output_tokens`` (thinking is billed as output). Adapters map provider fields onto this.
    """

    input_tokens: int = 0
    cached_input_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0

    def __post_init__(self) -> None:
        for name in ("input_tokens", "cached_input_tokens", "output_tokens", "reasoning_tokens"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
        if self.cached_input_tokens > self.input_tokens:
            raise ValueError("cached_input_tokens cannot exceed input_tokens")
        if self.reasoning_tokens > self.output_tokens:
            raise ValueError("reasoning_tokens cannot exceed output_tokens")


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """One model's published prices and limits."""

    model: str
    provider: str
    """``openai`` or ``gemini``; which kind of provider owns this model."""
    input_per_mtok: Decimal
    output_per_mtok: Decimal = Decimal(0)
    cached_input_per_mtok: Decimal | None = None
    """Price of cache hits; ``None`` bills them as ordinary input."""
    kind: ModelKind = "chat"
    max_output_tokens: int = 0
    """The model's largest possible output, used as the worst case when a request sets none."""
    context_window: int = 0
    long_context_threshold: int | None = None
    """Prompts longer than this many tokens bill every token at the ``long_*`` prices."""
    long_input_per_mtok: Decimal | None = None
    long_cached_input_per_mtok: Decimal | None = None
    long_output_per_mtok: Decimal | None = None
    _rates: tuple[tuple[int, int, int], tuple[int, int, int]] = field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        where = f"pricing.{self.model}"
        base = (
            parse_price_per_mtok(self.input_per_mtok, f"{where}.input"),
            parse_price_per_mtok(
                self.input_per_mtok
                if self.cached_input_per_mtok is None
                else self.cached_input_per_mtok,
                f"{where}.cached_input",
            ),
            parse_price_per_mtok(self.output_per_mtok, f"{where}.output"),
        )
        long = base
        if self.long_context_threshold is not None:
            long_input = self.long_input_per_mtok or self.input_per_mtok
            long = (
                parse_price_per_mtok(long_input, f"{where}.long_input"),
                parse_price_per_mtok(
                    self.long_cached_input_per_mtok or self.cached_input_per_mtok or long_input,
                    f"{where}.long_cached_input",
                ),
                parse_price_per_mtok(
                    self.long_output_per_mtok or self.output_per_mtok, f"{where}.long_output"
                ),
            )
        object.__setattr__(self, "_rates", (base, long))

    def cost_nanos(self, usage: Usage) -> int:
        """Exact cost of ``usage`` in nano-USD, rounded up once."""
        threshold = self.long_context_threshold
        rate_in, rate_cached, rate_out = self._rates[
            threshold is not None and usage.input_tokens > threshold
        ]
        femtos = (
            (usage.input_tokens - usage.cached_input_tokens) * rate_in
            + usage.cached_input_tokens * rate_cached
            + usage.output_tokens * rate_out
        )
        return ceil_div(femtos, FEMTOS_PER_NANO)

    def worst_case_nanos(self, input_tokens: int, output_tokens: int) -> int:
        """Upper bound of a call's cost: no cache hits, every output token used."""
        return self.cost_nanos(Usage(input_tokens=input_tokens, output_tokens=output_tokens))

    def output_tokens_affordable(self, input_tokens: int, budget_nanos: int) -> int:
        """The most output tokens whose worst case, with this input, fits in ``budget_nanos``."""
        threshold = self.long_context_threshold
        rate_in, _, rate_out = self._rates[threshold is not None and input_tokens > threshold]
        spare = budget_nanos * FEMTOS_PER_NANO - input_tokens * rate_in
        if spare < 0:
            return 0
        if rate_out == 0:
            return self.max_output_tokens
        return spare // rate_out

    def to_dict(self) -> dict[str, Any]:
        """Plain data (prices as decimal strings), the override-file shape."""
        out: dict[str, Any] = {
            "provider": self.provider,
            "kind": self.kind,
            "input": str(self.input_per_mtok),
            "output": str(self.output_per_mtok),
            "max_output_tokens": self.max_output_tokens,
            "context_window": self.context_window,
        }
        optional = {
            "cached_input": self.cached_input_per_mtok,
            "long_context_threshold": self.long_context_threshold,
            "long_input": self.long_input_per_mtok,
            "long_cached_input": self.long_cached_input_per_mtok,
            "long_output": self.long_output_per_mtok,
        }
        out.update({k: v if isinstance(v, int) else str(v) for k, v in optional.items() if v})
        return out


_PRICE_KEYS: Final = frozenset(
    {
        "provider",
        "kind",
        "input",
        "output",
        "cached_input",
        "max_output_tokens",
        "context_window",
        "long_context_threshold",
        "long_input",
        "long_cached_input",
        "long_output",
    }
)


def _price_from_dict(model: str, data: Mapping[str, Any], base: ModelPrice | None) -> ModelPrice:
    where = f"pricing.models.{model}"
    for key in data:
        if key not in _PRICE_KEYS:
            raise ConfigError(f"{where}.{key}: unknown key", field=f"{where}.{key}")

    def money(key: str) -> Decimal | None:
        if key not in data:
            return None
        value = data[key]
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise ConfigError(f"{where}.{key}: expected a price, got {value!r}", field=key)
        parse_price_per_mtok(value, f"{where}.{key}")  # validates
        return Decimal(repr(value)) if isinstance(value, float) else Decimal(str(value))

    def count(key: str) -> int | None:
        value = data.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ConfigError(f"{where}.{key}: expected a token count, got {value!r}", field=key)
        return value

    changes: dict[str, Any] = {}
    for key, attr in (
        ("input", "input_per_mtok"),
        ("output", "output_per_mtok"),
        ("cached_input", "cached_input_per_mtok"),
        ("long_input", "long_input_per_mtok"),
        ("long_cached_input", "long_cached_input_per_mtok"),
        ("long_output", "long_output_per_mtok"),
    ):
        if (price := money(key)) is not None:
            changes[attr] = price
    for key in ("max_output_tokens", "context_window", "long_context_threshold"):
        if (n := count(key)) is not None:
            changes[key] = n
    for key in ("provider", "kind"):
        if key in data:
            if not isinstance(data[key], str):
                raise ConfigError(f"{where}.{key}: expected a string", field=key)
            changes[key] = data[key]
    if changes.get("kind", "chat") not in ("chat", "embedding"):
        raise ConfigError(f"{where}.kind: expected 'chat' or 'embedding'", field="kind")
    if base is not None:
        return replace(base, model=model, **changes)
    for required in ("provider", "input_per_mtok"):
        if required not in changes:
            key = required.removesuffix("_per_mtok")
            raise ConfigError(f"{where}.{key}: is required for a new model", field=key)
    return ModelPrice(model=model, **changes)


def _removed_models(remove: Any) -> frozenset[str]:
    if not isinstance(remove, Mapping) or set(remove) - {"models"}:
        raise ConfigError("pricing.remove: expected a table with a 'models' list", field="remove")
    models = remove.get("models", [])
    if not isinstance(models, list) or not all(isinstance(m, str) for m in models):
        raise ConfigError("pricing.remove.models: expected a list of model names", field="remove")
    return frozenset(models)


class PricingTable:
    """Prices by model, with aliases for dated snapshots, an ``as_of`` date and a ``version``."""

    __slots__ = ("_aliases", "_prices", "as_of", "version")

    def __init__(
        self,
        prices: Iterable[ModelPrice],
        *,
        as_of: date,
        aliases: Mapping[str, str] | None = None,
    ) -> None:
        self._prices = {p.model: p for p in prices}
        self._aliases = dict(aliases or {})
        for alias, target in self._aliases.items():
            if target not in self._prices:
                raise ConfigError(f"pricing alias {alias!r} points at unknown model {target!r}")
        self.as_of = as_of
        self.version = "sha256:" + hashlib.sha256(self._canonical()).hexdigest()

    def _canonical(self) -> bytes:
        doc = {
            "as_of": self.as_of.isoformat(),
            "models": {m: p.to_dict() for m, p in self._prices.items()},
            "aliases": self._aliases,
        }
        return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()

    def get(self, model: str) -> ModelPrice | None:
        """The price of ``model`` (or of the model it aliases), or ``None``."""
        price = self._prices.get(model)
        if price is None:
            target = self._aliases.get(model.removeprefix("models/"))
            price = self._prices.get(target or model.removeprefix("models/"))
        return price

    def price(self, model: str) -> ModelPrice:
        """The price of ``model``; raises :class:`UnknownModel` when it has none."""
        price = self.get(model)
        if price is None:
            raise UnknownModel(model)
        return price

    def __contains__(self, model: object) -> bool:
        return isinstance(model, str) and self.get(model) is not None

    def models(self) -> list[str]:
        """Every priced model name (not aliases), sorted."""
        return sorted(self._prices)

    def to_dict(self) -> dict[str, Any]:
        """The table as override-file data."""
        return json.loads(self._canonical())  # type: ignore[no-any-return]

    def with_overrides(self, data: Mapping[str, Any]) -> PricingTable:
        """A new table with ``data`` (the override-file shape) applied over this one.

        ``{"as_of": "2026-11-01", "models": {"gpt-4o": {"input": "2.5", ...}},
        "aliases": {"my-snapshot": "gpt-4o"}}``; a model entry may change some fields of a
        known model or define a new one (``provider`` and ``input`` required).
        ``{"remove": {"models": ["gpt-4"]}}`` takes models (and the aliases naming them) out of
        the table, so calls to them are denied as unpriced.
        """
        for key in data:
            if key not in ("as_of", "models", "aliases", "remove"):
                raise ConfigError(f"pricing.{key}: unknown key", field=key)
        prices = dict(self._prices)
        removed = _removed_models(data.get("remove", {}))
        models = data.get("models", {})
        if not isinstance(models, Mapping):
            raise ConfigError("pricing.models: expected a table", field="models")
        for model, entry in models.items():
            if not isinstance(entry, Mapping):
                raise ConfigError(f"pricing.models.{model}: expected a table", field=model)
            prices[model] = _price_from_dict(model, entry, prices.get(model))
        aliases = dict(self._aliases)
        extra = data.get("aliases", {})
        if not isinstance(extra, Mapping) or not all(isinstance(v, str) for v in extra.values()):
            raise ConfigError("pricing.aliases: expected a table of model names", field="aliases")
        aliases.update(extra)
        for model in removed:
            prices.pop(model, None)
        aliases = {a: t for a, t in aliases.items() if a not in removed and t in prices}
        as_of = self.as_of
        if "as_of" in data:
            raw = data["as_of"]
            try:
                as_of = raw if isinstance(raw, date) else date.fromisoformat(str(raw))
            except ValueError:
                raise ConfigError(f"pricing.as_of: {raw!r} is not a date", field="as_of") from None
        return PricingTable(prices.values(), as_of=as_of, aliases=aliases)

    def with_overrides_file(self, path: str | Path) -> PricingTable:
        """Apply a TOML or JSON override file (chosen by its suffix)."""
        path = Path(path)
        with path.open("rb") as f:
            data = json.load(f) if path.suffix == ".json" else tomllib.load(f)
        return self.with_overrides(data)
