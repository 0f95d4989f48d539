"""Model prices, token usage, and the one function that turns usage into nano-USD.

Prices are USD per million tokens (tool fees: USD per thousand calls), held as exact integers
of femto-USD per token or per call (see :mod:`aegis.core.money`). A call's cost is an exact
integer sum over every billed dimension, rounded up to whole nano-USD once, in
:meth:`ModelPrice.cost_nanos`.
"""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any, Final, Literal

from aegis.core.errors import ConfigError, UnknownModel
from aegis.core.money import FEMTOS_PER_NANO, ceil_div, parse_price_per_mtok

__all__ = [
    "PROVIDERS",
    "SERVICE_TIERS",
    "STANDARD_TERMS",
    "TOOL_KINDS",
    "BillingTerms",
    "ModelKind",
    "ModelPrice",
    "PricingTable",
    "ServiceTier",
    "TierPrice",
    "Usage",
]

ModelKind = Literal["chat", "embedding"]
ServiceTier = Literal["standard", "priority", "flex", "batch"]

PROVIDERS: Final = ("openai", "gemini", "anthropic")
"""Providers a :class:`ModelPrice` may belong to."""
SERVICE_TIERS: Final[tuple[ServiceTier, ...]] = ("standard", "priority", "flex", "batch")
"""Processing tiers a provider bills differently. Adapters map wire names onto these
(OpenAI's ``default``/``auto``/``scale`` are ``standard``)."""
TOOL_KINDS: Final = ("web_search", "file_search", "grounding")
"""Tool-call kinds the built-in table prices. ``web_search`` counts searches run (OpenAI web
search calls, Gemini 3 search queries); ``file_search`` counts OpenAI file search calls;
``grounding`` counts grounded prompts (Gemini 2.x bills per prompt, not per query). Other kinds
(lower-case words) are allowed so a price override can bill a tool the table does not know."""

_TOOL_KIND: Final = re.compile(r"[a-z][a-z0-9_]*\Z")
# Femto-USD per call for a price of 1 USD per thousand calls: 10**15 / 10**3.
_FEMTOS_PER_CALL_PER_USD_PER_1K: Final = 10**12
# parse_price_per_mtok gives femto-USD per token for USD per 10**6 tokens (x * 10**9); a price
# per 10**3 calls is the same number times 10**3 per call.
_PER_1K_FROM_PER_MTOK: Final = _FEMTOS_PER_CALL_PER_USD_PER_1K // 10**9


def _tool_calls(value: object, where: str) -> tuple[tuple[str, int], ...]:
    """Normalize tool-call counts: sorted by kind, one entry per kind, no zero counts."""
    pairs = value.items() if isinstance(value, Mapping) else value
    if not isinstance(pairs, Iterable):
        raise ValueError(f"{where} must be (kind, count) pairs")
    merged: dict[str, int] = {}
    for pair in pairs:
        kind, count = pair
        if not isinstance(kind, str) or not _TOOL_KIND.match(kind):
            raise ValueError(f"{where}: tool kind must be a lower-case word, got {kind!r}")
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise ValueError(f"{where}.{kind} must be a non-negative integer, got {count!r}")
        merged[kind] = merged.get(kind, 0) + count
    return tuple(sorted((k, n) for k, n in merged.items() if n))


_USAGE_COUNTS: Final = (
    "input_tokens",
    "cached_input_tokens",
    "output_tokens",
    "reasoning_tokens",
    "cache_write_tokens",
    "cache_write_1h_tokens",
    "audio_input_tokens",
    "cached_audio_input_tokens",
    "audio_output_tokens",
)


@dataclass(frozen=True, slots=True)
class Usage:
    """What a call consumed, in the provider-neutral shape Aegis bills.

    Every ``*_input_tokens`` count is part of ``input_tokens`` and every output count part of
    ``output_tokens``, so the totals stay the provider's totals. Input tokens are read from
    cache (``cached_input_tokens``), written to a 5-minute or 1-hour cache
    (``cache_write_tokens``, ``cache_write_1h_tokens``), or neither; each of those may be audio
    (``audio_input_tokens``, of which ``cached_audio_input_tokens`` were cache hits). Output is
    text (of which ``reasoning_tokens`` is thinking, billed as output) or audio
    (``audio_output_tokens``). ``tool_calls`` counts billed tool calls by kind (see
    :data:`TOOL_KINDS`); ``service_tier`` is the tier the provider says it served.
    """

    input_tokens: int = 0
    cached_input_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    cache_write_tokens: int = 0
    cache_write_1h_tokens: int = 0
    audio_input_tokens: int = 0
    cached_audio_input_tokens: int = 0
    audio_output_tokens: int = 0
    tool_calls: tuple[tuple[str, int], ...] = ()
    service_tier: ServiceTier = "standard"

    def __post_init__(self) -> None:
        for name in _USAGE_COUNTS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
        if self.service_tier not in SERVICE_TIERS:
            raise ValueError(
                f"service_tier must be one of {SERVICE_TIERS}, got {self.service_tier!r}"
            )
        object.__setattr__(self, "tool_calls", _tool_calls(self.tool_calls, "tool_calls"))
        if self.cached_input_tokens > self.input_tokens:
            raise ValueError("cached_input_tokens cannot exceed input_tokens")
        if self.cached_audio_input_tokens > min(self.cached_input_tokens, self.audio_input_tokens):
            raise ValueError(
                "cached_audio_input_tokens cannot exceed cached_input_tokens or audio_input_tokens"
            )
        classified = (
            self.cached_input_tokens
            + self.cache_write_tokens
            + self.cache_write_1h_tokens
            + self.audio_input_tokens
            - self.cached_audio_input_tokens
        )
        if classified > self.input_tokens:
            raise ValueError(
                "cached, cache-write and uncached audio input tokens cannot exceed input_tokens"
            )
        if self.reasoning_tokens + self.audio_output_tokens > self.output_tokens:
            raise ValueError(
                "reasoning_tokens plus audio_output_tokens cannot exceed output_tokens"
            )

    def tool_call_count(self, kind: str) -> int:
        """How many ``kind`` tool calls the call made."""
        return dict(self.tool_calls).get(kind, 0)


@dataclass(frozen=True, slots=True)
class BillingTerms:
    """What a request says about how it will be billed, beyond its token bounds.

    The Gate reserves a call's worst case under these terms: the tier asked for (a priority
    request reserves at the priority price), the most tool calls of each kind the request allows
    (each reserves its per-call fee), and whether input or output may be audio (then every token
    of that side reserves at the dearer of the text and audio prices).
    """

    service_tier: ServiceTier = "standard"
    tool_calls: tuple[tuple[str, int], ...] = ()
    audio_input: bool = False
    audio_output: bool = False
    cache_writes: bool = False
    """Input may be written to a cache (then it reserves at the dearest cache-write price)."""

    def __post_init__(self) -> None:
        if self.service_tier not in SERVICE_TIERS:
            raise ValueError(
                f"service_tier must be one of {SERVICE_TIERS}, got {self.service_tier!r}"
            )
        object.__setattr__(self, "tool_calls", _tool_calls(self.tool_calls, "tool_calls"))


STANDARD_TERMS: Final = BillingTerms()


@dataclass(frozen=True, slots=True)
class TierPrice:
    """A service tier's prices: explicit input/cached/output prices, a multiplier, or both.

    Token prices the tier does not list explicitly are the standard ones times ``multiplier``
    (flex and batch are 0.5 of standard on every token dimension). Tool fees are not tiered.
    """

    multiplier: Decimal = Decimal(1)
    input_per_mtok: Decimal | None = None
    cached_input_per_mtok: Decimal | None = None
    output_per_mtok: Decimal | None = None

    def to_dict(self) -> dict[str, str]:
        out = {"multiplier": str(self.multiplier)}
        for key, value in (
            ("input", self.input_per_mtok),
            ("cached_input", self.cached_input_per_mtok),
            ("output", self.output_per_mtok),
        ):
            if value is not None:
                out[key] = str(value)
        return out


# A tier the table does not list is billed at standard prices, except priority: a provider may
# start serving a model at priority before the table knows its price, and priority costs up to
# 2x standard on OpenAI's published list, so an unlisted priority tier bills at 2x rather than
# under-charge.
_UNLISTED_PRIORITY: Final = TierPrice(multiplier=Decimal(2))

# Per-token rates in femto-USD, one tuple per tier and context band:
# (input, cached input, output, cache write 5m, cache write 1h, audio input, cached audio input,
# audio output).
_Rates = tuple[int, int, int, int, int, int, int, int]


def _dims(p: Mapping[str, Decimal | None], long: bool) -> tuple[Decimal, ...]:
    """The eight per-token prices of one tier and context band, with the documented fallbacks.

    Unlisted cache-write and audio prices bill as plain input (audio output as plain output);
    cached audio without its own price bills as cached text when audio has no price of its own,
    else at the audio input price, so a missing entry never bills below what the provider may.
    """
    if long:
        inp = _first(p["long_input"], p["input"])
        cached = _first(p["long_cached_input"], p["cached_input"], inp)
        out = _first(p["long_output"], p["output"])
    else:
        inp = _first(p["input"])
        cached = _first(p["cached_input"], inp)
        out = _first(p["output"])
    audio_in = _first(p["audio_input"], inp)
    cached_audio = _first(p["cached_audio_input"], cached if p["audio_input"] is None else audio_in)
    return (
        inp,
        cached,
        out,
        _first(p["cache_write"], inp),
        _first(p["cache_write_1h"], inp),
        audio_in,
        cached_audio,
        _first(p["audio_output"], out),
    )


def _first(*values: Decimal | None) -> Decimal:
    for value in values:
        if value is not None:
            return value
    raise AssertionError("no price")  # input and output are never None


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """One model's published prices, limits and lifecycle."""

    model: str
    provider: str
    """``openai``, ``gemini`` or ``anthropic``: which kind of provider owns this model."""
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
    cache_write_per_mtok: Decimal | None = None
    """Price of input written to a 5-minute cache; ``None`` bills it as plain input."""
    cache_write_1h_per_mtok: Decimal | None = None
    """Price of input written to a 1-hour cache; ``None`` bills it as plain input."""
    audio_input_per_mtok: Decimal | None = None
    """Price of audio input; ``None`` bills it as text input."""
    cached_audio_input_per_mtok: Decimal | None = None
    """Price of audio cache hits; ``None``: cached text if audio has no own price, else audio."""
    audio_output_per_mtok: Decimal | None = None
    """Price of audio output; ``None`` bills it as text output."""
    tool_calls_per_1k: tuple[tuple[str, Decimal], ...] = ()
    """USD per thousand tool calls by kind; a kind not listed is not billed by this model."""
    service_tiers: tuple[tuple[ServiceTier, TierPrice], ...] = ()
    """Prices of non-standard tiers. An unlisted flex or batch tier bills at standard, an
    unlisted priority tier at twice standard."""
    max_input_tokens: int | None = None
    """The most input tokens a request may carry, where smaller than the context window
    (gpt-5: 272k input of a 400k window); ``None`` means the context window."""
    deprecated: date | None = None
    """The day the provider announced the model's shutdown (still served)."""
    retired: date | None = None
    """The day the provider stops serving it; from then on calls are refused."""
    successor: str | None = None
    """The model the provider names as the replacement."""
    _rates: Mapping[str, tuple[_Rates, _Rates]] = field(init=False, repr=False, compare=False)
    _fees: Mapping[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        where = f"pricing.{self.model}"
        if self.provider not in PROVIDERS:
            raise ConfigError(
                f"{where}.provider: expected one of {PROVIDERS}, got {self.provider!r}",
                field="provider",
            )
        fees = {
            kind: parse_price_per_mtok(price, f"{where}.tool_calls_per_1k.{kind}")
            * _PER_1K_FROM_PER_MTOK
            for kind, price in self.tool_calls_per_1k
        }
        try:
            _tool_calls(((k, 1) for k in fees), f"{where}.tool_calls_per_1k")
        except ValueError as exc:
            raise ConfigError(str(exc), field="tool_calls_per_1k") from None
        object.__setattr__(self, "tool_calls_per_1k", tuple(sorted(self.tool_calls_per_1k)))
        tiers = dict(self.service_tiers)
        for tier in tiers:
            if tier not in SERVICE_TIERS or tier == "standard":
                raise ConfigError(f"{where}.service_tiers: unknown tier {tier!r}", field=tier)
        object.__setattr__(self, "service_tiers", tuple(sorted(tiers.items())))
        tiers.setdefault("priority", _UNLISTED_PRIORITY)
        tiers["standard"] = TierPrice()
        rates = {name: self._tier_rates(tier, f"{where}.{name}") for name, tier in tiers.items()}
        for name in SERVICE_TIERS:
            rates.setdefault(name, rates["standard"])
        object.__setattr__(self, "_rates", rates)
        object.__setattr__(self, "_fees", fees)

    def _tier_rates(self, tier: TierPrice, where: str) -> tuple[_Rates, _Rates]:
        m = tier.multiplier

        def scaled(value: Decimal | None, explicit: Decimal | None = None) -> Decimal | None:
            if explicit is not None:
                return explicit
            return None if value is None else value * m

        prices = {
            "input": scaled(self.input_per_mtok, tier.input_per_mtok),
            "cached_input": scaled(self.cached_input_per_mtok, tier.cached_input_per_mtok),
            "output": scaled(self.output_per_mtok, tier.output_per_mtok),
            "long_input": scaled(self.long_input_per_mtok),
            "long_cached_input": scaled(self.long_cached_input_per_mtok),
            "long_output": scaled(self.long_output_per_mtok),
            "cache_write": scaled(self.cache_write_per_mtok),
            "cache_write_1h": scaled(self.cache_write_1h_per_mtok),
            "audio_input": scaled(self.audio_input_per_mtok),
            "cached_audio_input": scaled(self.cached_audio_input_per_mtok),
            "audio_output": scaled(self.audio_output_per_mtok),
        }
        names = ("input", "cached", "output", "cw", "cw1h", "audio", "cached_audio", "audio_out")

        def band(long: bool) -> _Rates:
            values = [
                parse_price_per_mtok(v, f"{where}.{n}")
                for n, v in zip(names, _dims(prices, long), strict=True)
            ]
            return (
                values[0],
                values[1],
                values[2],
                values[3],
                values[4],
                values[5],
                values[6],
                values[7],
            )

        base = band(False)
        return base, band(True) if self.long_context_threshold is not None else base

    def _band(self, tier: ServiceTier, input_tokens: int) -> _Rates:
        threshold = self.long_context_threshold
        return self._rates[tier][threshold is not None and input_tokens > threshold]

    def tool_fee_femtos(self, kind: str) -> int:
        """The fee of one ``kind`` tool call in femto-USD (0 when this model bills none)."""
        return self._fees.get(kind, 0)

    def cost_nanos(self, usage: Usage) -> int:
        """Exact cost of ``usage`` in nano-USD, rounded up once."""
        r_in, r_cached, r_out, r_cw, r_cw1h, r_audio, r_cached_audio, r_audio_out = self._band(
            usage.service_tier, usage.input_tokens
        )
        cached_audio = usage.cached_audio_input_tokens
        audio = usage.audio_input_tokens - cached_audio
        cached_text = usage.cached_input_tokens - cached_audio
        plain = (
            usage.input_tokens
            - usage.cached_input_tokens
            - usage.cache_write_tokens
            - usage.cache_write_1h_tokens
            - audio
        )
        femtos = (
            plain * r_in
            + cached_text * r_cached
            + usage.cache_write_tokens * r_cw
            + usage.cache_write_1h_tokens * r_cw1h
            + audio * r_audio
            + cached_audio * r_cached_audio
            + (usage.output_tokens - usage.audio_output_tokens) * r_out
            + usage.audio_output_tokens * r_audio_out
            + sum(n * self._fees.get(kind, 0) for kind, n in usage.tool_calls)
        )
        return ceil_div(femtos, FEMTOS_PER_NANO)

    def _worst_rates(self, input_tokens: int, terms: BillingTerms) -> tuple[int, int]:
        r_in, _, r_out, r_cw, r_cw1h, r_audio, _, r_audio_out = self._band(
            terms.service_tier, input_tokens
        )
        # Every token at the dearest rate it could be billed at; cache hits only lower a cost.
        rate_in = max(r_in, r_cw, r_cw1h) if terms.cache_writes else r_in
        if terms.audio_input:
            rate_in = max(rate_in, r_audio)
        rate_out = max(r_out, r_audio_out) if terms.audio_output else r_out
        return rate_in, rate_out

    def _fees_femtos(self, terms: BillingTerms) -> int:
        return sum(n * self._fees.get(kind, 0) for kind, n in terms.tool_calls)

    def worst_case_nanos(
        self, input_tokens: int, output_tokens: int, terms: BillingTerms = STANDARD_TERMS
    ) -> int:
        """Upper bound of a call's cost under ``terms``: every token at its dearest rate, every
        output token used, every allowed tool call made."""
        rate_in, rate_out = self._worst_rates(input_tokens, terms)
        femtos = input_tokens * rate_in + output_tokens * rate_out + self._fees_femtos(terms)
        return ceil_div(femtos, FEMTOS_PER_NANO)

    def output_tokens_affordable(
        self, input_tokens: int, budget_nanos: int, terms: BillingTerms = STANDARD_TERMS
    ) -> int:
        """The most output tokens whose worst case, with this input, fits in ``budget_nanos``."""
        rate_in, rate_out = self._worst_rates(input_tokens, terms)
        spare = budget_nanos * FEMTOS_PER_NANO - input_tokens * rate_in - self._fees_femtos(terms)
        if spare < 0:
            return 0
        if rate_out == 0:
            return self.max_output_tokens
        return spare // rate_out

    def is_retired(self, day: date) -> bool:
        """Whether the provider has stopped serving the model by ``day``."""
        return self.retired is not None and day >= self.retired

    @property
    def input_limit(self) -> int:
        """The most input tokens a request to this model can carry (0: unknown)."""
        return self.context_window if self.max_input_tokens is None else self.max_input_tokens

    def to_dict(self) -> dict[str, Any]:
        """Plain data (prices as decimal strings), the override-file shape.

        Every field that is set appears, zero included: a zero ``cached_input`` bills cache
        hits at $0 and an absent one at the full input price, so the two must not serialize
        alike (the table's version hash is over this form).
        """
        out: dict[str, Any] = {
            "provider": self.provider,
            "kind": self.kind,
            "input": str(self.input_per_mtok),
            "output": str(self.output_per_mtok),
            "max_output_tokens": self.max_output_tokens,
            "context_window": self.context_window,
        }
        optional: dict[str, Decimal | int | None] = {
            "cached_input": self.cached_input_per_mtok,
            "long_context_threshold": self.long_context_threshold,
            "long_input": self.long_input_per_mtok,
            "long_cached_input": self.long_cached_input_per_mtok,
            "long_output": self.long_output_per_mtok,
            "cache_write": self.cache_write_per_mtok,
            "cache_write_1h": self.cache_write_1h_per_mtok,
            "audio_input": self.audio_input_per_mtok,
            "cached_audio_input": self.cached_audio_input_per_mtok,
            "audio_output": self.audio_output_per_mtok,
            "max_input_tokens": self.max_input_tokens,
        }
        out.update(
            {k: v if isinstance(v, int) else str(v) for k, v in optional.items() if v is not None}
        )
        if self.tool_calls_per_1k:
            out["tool_calls_per_1k"] = {k: str(v) for k, v in self.tool_calls_per_1k}
        if self.service_tiers:
            out["service_tiers"] = {k: v.to_dict() for k, v in self.service_tiers}
        for key, day in (("deprecated", self.deprecated), ("retired", self.retired)):
            if day is not None:
                out[key] = day.isoformat()
        if self.successor is not None:
            out["successor"] = self.successor
        return out


_MONEY_KEYS: Final = (
    ("input", "input_per_mtok"),
    ("output", "output_per_mtok"),
    ("cached_input", "cached_input_per_mtok"),
    ("long_input", "long_input_per_mtok"),
    ("long_cached_input", "long_cached_input_per_mtok"),
    ("long_output", "long_output_per_mtok"),
    ("cache_write", "cache_write_per_mtok"),
    ("cache_write_1h", "cache_write_1h_per_mtok"),
    ("audio_input", "audio_input_per_mtok"),
    ("cached_audio_input", "cached_audio_input_per_mtok"),
    ("audio_output", "audio_output_per_mtok"),
)
_COUNT_KEYS: Final = (
    "max_output_tokens",
    "context_window",
    "long_context_threshold",
    "max_input_tokens",
)
_PRICE_KEYS: Final = frozenset(
    {
        "provider",
        "kind",
        "successor",
        "deprecated",
        "retired",
        "tool_calls_per_1k",
        "service_tiers",
        *(k for k, _ in _MONEY_KEYS),
        *_COUNT_KEYS,
    }
)


def _decimal(value: object, where: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ConfigError(f"{where}: expected a price, got {value!r}", field=where)
    parse_price_per_mtok(value, where)  # validates: finite, not negative
    return Decimal(repr(value)) if isinstance(value, float) else Decimal(str(value))


def _day(value: object, where: str) -> date | None:
    if value is None or isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise ConfigError(f"{where}: {value!r} is not a date", field=where) from None


def _tier_from_dict(data: object, where: str) -> TierPrice:
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: expected a table", field=where)
    keys = {"multiplier", "input", "cached_input", "output"}
    for key in data:
        if key not in keys:
            raise ConfigError(f"{where}.{key}: unknown key", field=f"{where}.{key}")
    got = {k: _decimal(data[k], f"{where}.{k}") for k in keys if k in data}
    return TierPrice(
        multiplier=got.get("multiplier", Decimal(1)),
        input_per_mtok=got.get("input"),
        cached_input_per_mtok=got.get("cached_input"),
        output_per_mtok=got.get("output"),
    )


def _price_from_dict(model: str, data: Mapping[str, Any], base: ModelPrice | None) -> ModelPrice:
    where = f"pricing.models.{model}"
    for key in data:
        if key not in _PRICE_KEYS:
            raise ConfigError(f"{where}.{key}: unknown key", field=f"{where}.{key}")

    def count(key: str) -> int | None:
        value = data.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ConfigError(f"{where}.{key}: expected a token count, got {value!r}", field=key)
        return value

    changes: dict[str, Any] = {}
    for key, attr in _MONEY_KEYS:
        if key in data:
            changes[attr] = _decimal(data[key], f"{where}.{key}")
    for key in _COUNT_KEYS:
        if (n := count(key)) is not None:
            changes[key] = n
    for key in ("provider", "kind", "successor"):
        if key in data:
            if not isinstance(data[key], str):
                raise ConfigError(f"{where}.{key}: expected a string", field=key)
            changes[key] = data[key]
    for key in ("deprecated", "retired"):
        if key in data:
            changes[key] = _day(data[key], f"{where}.{key}")
    # A listed fee or tier table replaces the model's whole table, so an override file reads as
    # the complete set it installs.
    if "tool_calls_per_1k" in data:
        fees = data["tool_calls_per_1k"]
        if not isinstance(fees, Mapping):
            raise ConfigError(f"{where}.tool_calls_per_1k: expected a table", field="tool_calls")
        changes["tool_calls_per_1k"] = tuple(
            (str(k), _decimal(v, f"{where}.tool_calls_per_1k.{k}")) for k, v in fees.items()
        )
    if "service_tiers" in data:
        tiers = data["service_tiers"]
        if not isinstance(tiers, Mapping):
            raise ConfigError(f"{where}.service_tiers: expected a table", field="service_tiers")
        changes["service_tiers"] = tuple(
            (k, _tier_from_dict(v, f"{where}.service_tiers.{k}")) for k, v in tiers.items()
        )
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
        # The receipts' canonical form (sorted keys, no white space, UTF-8): the version is
        # then the SHA-256 of exactly the bytes a trail's price record signs.
        return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()

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

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PricingTable:
        """A table from its :meth:`to_dict` form (a trail's price record, a price file)."""
        if "as_of" not in data:
            raise ConfigError("pricing.as_of: is required", field="as_of")
        return cls([], as_of=date(1970, 1, 1)).with_overrides(data)

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
