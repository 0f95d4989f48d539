"""Tenant policies as data: budgets, routing, allowed models and capabilities.

A policy loads from the seed's dict shape (snake_case)::

    {
        "budgets": {
            "per_run_usd": "0.50",
            "per_window": [{"window": "day", "limit_usd": "10", "hard_stop": True,
                            "alert_at": [0.5, 0.8, 1.0]}],
        },
        "routing": {"primary_provider": "openai", "fallback_providers": ["gemini"]},
        "model": {"allow_models": ["gpt-4o*", "gemini-2.5-*"]},
        "capabilities": ["llm:invoke", "llm:stream"],
        "limits": [{"model": "gpt-4o*", "rpm": 60, "tpm": 100_000, "max_in_flight": 8}],
    }

Unknown keys and wrong types are rejected with a :class:`PolicyError` naming the tenant and the
field. A policy's ``version`` is a hash of its normalized content, so receipts can name exactly
which rules allowed a call.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, Final, Protocol, cast

from aegis.core.errors import PolicyError
from aegis.core.money import format_usd, parse_usd
from aegis.core.windows import WINDOWS, Window

__all__ = [
    "CAPABILITIES",
    "InMemoryPolicyProvider",
    "Policy",
    "PolicyProvider",
    "RateLimit",
    "Routing",
    "TomlPolicyProvider",
    "WindowBudget",
]

CAPABILITIES: Final = frozenset({"llm:invoke", "llm:stream", "embeddings:create"})
DEFAULT_RESERVATION_TTL_S: Final = 900
_MODEL_CACHE_SIZE: Final = 1024


@dataclass(frozen=True, slots=True)
class WindowBudget:
    """A spending limit over one calendar window."""

    window: Window
    """``minute``, ``hour``, ``day`` or ``month``, calendar-aligned in UTC."""
    limit_nanos: int
    """The limit in nano-USD."""
    hard_stop: bool = True
    """Deny calls that could pass the limit; a soft budget only reports."""
    alert_at: tuple[Decimal, ...] = ()
    """Fractions of the limit whose crossing by committed spend fires an alert, ascending."""


@dataclass(frozen=True, slots=True)
class RateLimit:
    """Request and token rates and calls in flight for the models matching ``model``."""

    model: str = "*"
    """Glob pattern (``fnmatch``, case-sensitive) of the models the limit counts together."""
    rpm: int | None = None
    """Requests per calendar minute (UTC)."""
    tpm: int | None = None
    """Tokens (input + output) per calendar minute; the output side is reserved from the
    call's output limit and reconciled to the real count when the call is charged."""
    max_in_flight: int | None = None
    """Calls admitted and not yet settled."""


@dataclass(frozen=True, slots=True)
class Routing:
    """Where a tenant's calls go, and where they go when that fails."""

    primary_provider: str | None = None
    """Provider used when the model does not name its own."""
    fallback_providers: tuple[str, ...] = ()
    """Providers tried in order on a retryable failure."""
    fallback_models: Mapping[str, str] = field(default_factory=dict)
    """Model name to use on a fallback provider, keyed by the requested model."""


@dataclass(frozen=True, slots=True)
class Policy:
    """Everything the Gate needs to decide about one tenant's calls."""

    tenant_id: str
    per_run_nanos: int | None = None
    """Limit on one run's cumulative spend (a request without a run is its own run)."""
    per_run_alert_at: tuple[Decimal, ...] = ()
    """Alert thresholds of the per-run budget, as fractions of its limit."""
    per_window: tuple[WindowBudget, ...] = ()
    routing: Routing = field(default_factory=Routing)
    allow_models: tuple[str, ...] = ("*",)
    """Glob patterns (``fnmatch``, case-sensitive) of the models the tenant may call."""
    capabilities: frozenset[str] = CAPABILITIES
    clamp_max_tokens: bool = False
    """When the budget cannot hold the worst case, lower the call's output limit instead of
    denying it (never below ``min_output_tokens``)."""
    min_output_tokens: int = 16
    reservation_ttl_s: int = DEFAULT_RESERVATION_TTL_S
    """How long a reservation outlives a holder that died before settling it."""
    limits: tuple[RateLimit, ...] = ()
    """Rate limits; a call counts against every one whose pattern matches its model."""
    default_max_output_tokens: tuple[tuple[str, int], ...] = ()
    """``(model pattern, tokens)``: the output bound of a call that sets none (the first
    matching pattern; reasoning or thinking included), instead of the model's maximum. The
    request is rewritten to carry it, so the provider cannot exceed it."""
    unseen_input_tokens: int | None = None
    """Input reserved for what a request makes the model read without holding it
    (``previous_response_id``, search results, ``cachedContent``); ``None``: the model's whole
    input limit. Real usage beyond the bound is charged and flagged on the receipt."""
    version: str = ""
    """``sha256:`` of the normalized policy; computed when loaded."""
    _model_cache: dict[str, bool] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def allows_model(self, model: str) -> bool:
        """Whether the tenant may call ``model``."""
        allowed = self._model_cache.get(model)
        if allowed is None:
            # Glob matching on every call adds up; client model names are unbounded, the cache
            # is not.
            if len(self._model_cache) >= _MODEL_CACHE_SIZE:
                self._model_cache.clear()
            allowed = any(fnmatchcase(model, pattern) for pattern in self.allow_models)
            self._model_cache[model] = allowed
        return allowed

    def default_output_tokens(self, model: str) -> int | None:
        """The policy's output bound for ``model`` when a request sets none, if any."""
        for pattern, tokens in self.default_max_output_tokens:
            if fnmatchcase(model, pattern):
                return tokens
        return None

    def to_dict(self) -> dict[str, Any]:
        """The normalized dict form (amounts as decimal strings); loads back to an equal policy."""
        windows: list[dict[str, Any]] = []
        for b in self.per_window:
            window: dict[str, Any] = {
                "window": b.window,
                "limit_usd": format_usd(b.limit_nanos),
                "hard_stop": b.hard_stop,
            }
            if b.alert_at:  # absent when unset, so older policies keep their version
                window["alert_at"] = [format(t, "f") for t in b.alert_at]
            windows.append(window)
        budgets: dict[str, Any] = {"per_window": windows}
        if self.per_run_nanos is not None:
            budgets["per_run_usd"] = format_usd(self.per_run_nanos)
        if self.per_run_alert_at:
            budgets["per_run_alert_at"] = [format(t, "f") for t in self.per_run_alert_at]
        routing: dict[str, Any] = {
            "fallback_providers": list(self.routing.fallback_providers),
            "fallback_models": dict(self.routing.fallback_models),
        }
        if self.routing.primary_provider is not None:
            routing["primary_provider"] = self.routing.primary_provider
        limits = [
            {
                k: v
                for k, v in (
                    ("model", lim.model),
                    ("rpm", lim.rpm),
                    ("tpm", lim.tpm),
                    ("max_in_flight", lim.max_in_flight),
                )
                if v is not None
            }
            for lim in self.limits
        ]
        # Absent when unset, so policies without limits keep their version.
        extra: dict[str, Any] = {"limits": limits} if limits else {}
        model: dict[str, Any] = {"allow_models": list(self.allow_models)}
        if self.default_max_output_tokens:
            model["default_max_output_tokens"] = dict(self.default_max_output_tokens)
        if self.unseen_input_tokens is not None:
            model["unseen_input_tokens"] = self.unseen_input_tokens
        return {
            **extra,
            "budgets": budgets,
            "routing": routing,
            "model": model,
            "capabilities": sorted(self.capabilities),
            "clamp_max_tokens": self.clamp_max_tokens,
            "min_output_tokens": self.min_output_tokens,
            "reservation_ttl_s": self.reservation_ttl_s,
        }

    @classmethod
    def from_dict(cls, tenant_id: str, data: Mapping[str, Any]) -> Policy:
        """Validate and load a policy; raises :class:`PolicyError` naming tenant and field."""
        return _PolicyParser(tenant_id).parse(data)


class PolicyProvider(Protocol):
    """Source of tenant policies. ``None`` means the tenant is unknown (and is denied)."""

    async def get_policy(self, *, tenant_id: str) -> Policy | None:
        """Return the tenant's current policy; must be cheap, it runs on every call."""
        ...


class InMemoryPolicyProvider:
    """Policies held in a dict; ``replace`` swaps the whole set atomically."""

    __slots__ = ("_policies",)

    def __init__(self, policies: Mapping[str, Policy | Mapping[str, Any]] | None = None) -> None:
        self._policies: dict[str, Policy] = _load_all(policies or {})

    async def get_policy(self, *, tenant_id: str) -> Policy | None:
        return self._policies.get(tenant_id)

    def replace(self, policies: Mapping[str, Policy | Mapping[str, Any]]) -> None:
        """Swap in a new set of policies; validated fully before anything changes."""
        self._policies = _load_all(policies)


class TomlPolicyProvider:
    """Policies from a TOML file with one ``[tenants.ID]`` table per tenant.

    The file is read at construction and by :meth:`reload`; a file that fails validation leaves
    the previous policies in place and raises.
    """

    __slots__ = ("_inner", "path")

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._inner = InMemoryPolicyProvider(self._read())

    def _read(self) -> dict[str, Policy]:
        with self.path.open("rb") as f:
            data = tomllib.load(f)
        tenants = data.get("tenants", {})
        if not isinstance(tenants, dict):
            raise PolicyError("*", "tenants", "must be a table of tenant tables")
        policies: dict[str, Policy] = {}
        for tenant_id, body in tenants.items():
            if not isinstance(body, dict):
                raise PolicyError(tenant_id, "tenants." + tenant_id, "must be a table")
            # Keys and other per-tenant settings of the proxy live beside the policy.
            policy_fields = {k: v for k, v in body.items() if k not in _NON_POLICY_TENANT_KEYS}
            policies[tenant_id] = Policy.from_dict(tenant_id, policy_fields)
        return policies

    def reload(self) -> None:
        """Re-read the file; on error the old policies stay and the error propagates."""
        self._inner.replace(self._read())

    async def get_policy(self, *, tenant_id: str) -> Policy | None:
        return await self._inner.get_policy(tenant_id=tenant_id)


_NON_POLICY_TENANT_KEYS: Final = frozenset({"api_keys", "name"})


def _load_all(policies: Mapping[str, Policy | Mapping[str, Any]]) -> dict[str, Policy]:
    loaded: dict[str, Policy] = {}
    for tenant_id, policy in policies.items():
        if isinstance(policy, Policy):
            if policy.tenant_id != tenant_id:
                raise PolicyError(tenant_id, "tenant_id", f"policy is for {policy.tenant_id!r}")
            loaded[tenant_id] = policy
        else:
            loaded[tenant_id] = Policy.from_dict(tenant_id, policy)
    return loaded


def _policy_version(policy: Policy) -> str:
    body = json.dumps(policy.to_dict(), sort_keys=True, separators=(",", ":")).encode()
    return "sha256:" + hashlib.sha256(body).hexdigest()


class _PolicyParser:
    """Validation with error messages that name the tenant and the dotted field."""

    def __init__(self, tenant_id: str) -> None:
        self.tenant_id = tenant_id

    def fail(self, field_name: str, problem: str) -> PolicyError:
        return PolicyError(self.tenant_id, field_name, problem)

    def table(self, value: object, name: str, allowed: frozenset[str]) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            raise self.fail(name, f"expected a table, got {type(value).__name__}")
        table = cast(Mapping[str, Any], value)
        for key in table:
            if key not in allowed:
                raise self.fail(f"{name}.{key}" if name else key, "unknown key")
        return table

    def boolean(self, value: object, name: str) -> bool:
        if not isinstance(value, bool):
            raise self.fail(name, f"expected true or false, got {value!r}")
        return value

    def integer(self, value: object, name: str, *, minimum: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(name, f"expected an integer, got {value!r}")
        if value < minimum:
            raise self.fail(name, f"must be at least {minimum}, got {value}")
        return value

    def string(self, value: object, name: str) -> str:
        if not isinstance(value, str) or not value:
            raise self.fail(name, f"expected a non-empty string, got {value!r}")
        return value

    def strings(self, value: object, name: str) -> tuple[str, ...]:
        if isinstance(value, str) or not isinstance(value, list | tuple):
            raise self.fail(name, f"expected a list of strings, got {value!r}")
        return tuple(self.string(v, f"{name}[{i}]") for i, v in enumerate(value))

    def usd(self, value: object, name: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise self.fail(name, f"expected a USD amount, got {value!r}")
        try:
            return parse_usd(value, name)
        except ValueError as exc:
            raise self.fail(name, str(exc).removeprefix(f"{name}: ")) from None

    def parse(self, data: Mapping[str, Any]) -> Policy:
        top = self.table(data, "", _TOP_KEYS)
        if "tenant_id" in top and top["tenant_id"] != self.tenant_id:
            raise self.fail("tenant_id", f"does not match {self.tenant_id!r}")
        per_run, per_run_alerts, windows = self.budgets(top.get("budgets", {}))
        routing = self.routing(top.get("routing", {}))
        model = self.table(
            top.get("model", {}),
            "model",
            frozenset({"allow_models", "default_max_output_tokens", "unseen_input_tokens"}),
        )
        allow = self.strings(model.get("allow_models", ["*"]), "model.allow_models")
        defaults = self.table(
            model.get("default_max_output_tokens", {}), "model.default_max_output_tokens", _ANY_KEY
        )
        default_output = tuple(
            (
                self.string(pattern, "model.default_max_output_tokens"),
                self.integer(tokens, f"model.default_max_output_tokens.{pattern}", minimum=1),
            )
            for pattern, tokens in defaults.items()
        )
        unseen = model.get("unseen_input_tokens")
        unseen_input = (
            None if unseen is None else self.integer(unseen, "model.unseen_input_tokens", minimum=0)
        )
        caps = self.strings(top.get("capabilities", sorted(CAPABILITIES)), "capabilities")
        for i, cap in enumerate(caps):
            if cap not in CAPABILITIES:
                raise self.fail(
                    f"capabilities[{i}]",
                    f"unknown capability {cap!r} (known: {sorted(CAPABILITIES)})",
                )
        policy = Policy(
            tenant_id=self.tenant_id,
            per_run_nanos=per_run,
            per_run_alert_at=per_run_alerts,
            per_window=windows,
            routing=routing,
            allow_models=allow,
            capabilities=frozenset(caps),
            clamp_max_tokens=self.boolean(top.get("clamp_max_tokens", False), "clamp_max_tokens"),
            min_output_tokens=self.integer(
                top.get("min_output_tokens", 16), "min_output_tokens", minimum=1
            ),
            reservation_ttl_s=self.integer(
                top.get("reservation_ttl_s", DEFAULT_RESERVATION_TTL_S),
                "reservation_ttl_s",
                minimum=1,
            ),
            limits=self.limits(top.get("limits", [])),
            default_max_output_tokens=default_output,
            unseen_input_tokens=unseen_input,
        )
        object.__setattr__(policy, "version", _policy_version(policy))
        return policy

    def thresholds(self, value: object, name: str) -> tuple[Decimal, ...]:
        """Alert fractions: numbers above 0 and at most 10 (a soft budget may run past 1)."""
        if isinstance(value, str) or not isinstance(value, list | tuple) or not value:
            raise self.fail(name, f"expected a non-empty list of fractions, got {value!r}")
        found: list[Decimal] = []
        for i, item in enumerate(value):
            where = f"{name}[{i}]"
            if isinstance(item, bool) or not isinstance(item, int | float | str):
                raise self.fail(where, f"expected a fraction such as 0.8, got {item!r}")
            try:
                fraction = Decimal(repr(item) if isinstance(item, float) else str(item))
            except InvalidOperation:
                raise self.fail(where, f"expected a fraction such as 0.8, got {item!r}") from None
            if not fraction.is_finite() or not 0 < fraction <= 10:
                raise self.fail(where, f"must be above 0 and at most 10, got {item!r}")
            if fraction.as_tuple().exponent < -6:  # type: ignore[operator]
                raise self.fail(where, f"at most 6 decimals, got {item!r}")
            if fraction in found:
                raise self.fail(where, f"{item!r} is listed twice")
            found.append(fraction.normalize())
        return tuple(sorted(found))

    def budgets(
        self, value: object
    ) -> tuple[int | None, tuple[Decimal, ...], tuple[WindowBudget, ...]]:
        budgets = self.table(
            value, "budgets", frozenset({"per_run_usd", "per_run_alert_at", "per_window"})
        )
        per_run = budgets.get("per_run_usd")
        per_run_nanos = None if per_run is None else self.usd(per_run, "budgets.per_run_usd")
        per_run_alerts: tuple[Decimal, ...] = ()
        if "per_run_alert_at" in budgets:
            if per_run_nanos is None:
                raise self.fail("budgets.per_run_alert_at", "needs budgets.per_run_usd")
            per_run_alerts = self.thresholds(
                budgets["per_run_alert_at"], "budgets.per_run_alert_at"
            )
        raw = budgets.get("per_window", [])
        items: list[object] = [raw] if isinstance(raw, Mapping) else raw
        if not isinstance(items, list | tuple):
            raise self.fail("budgets.per_window", "expected a table or a list of tables")
        windows: list[WindowBudget] = []
        for i, item in enumerate(items):
            name = f"budgets.per_window[{i}]"
            entry = self.table(
                item, name, frozenset({"window", "limit_usd", "hard_stop", "alert_at"})
            )
            window = entry.get("window")
            if window not in WINDOWS:
                raise self.fail(
                    f"{name}.window", f"expected one of {list(WINDOWS)}, got {window!r}"
                )
            if any(w.window == window for w in windows):
                raise self.fail(f"{name}.window", f"a {window} budget is already defined")
            if "limit_usd" not in entry:
                raise self.fail(f"{name}.limit_usd", "is required")
            windows.append(
                WindowBudget(
                    window=cast(Window, window),
                    limit_nanos=self.usd(entry["limit_usd"], f"{name}.limit_usd"),
                    hard_stop=self.boolean(entry.get("hard_stop", True), f"{name}.hard_stop"),
                    alert_at=()
                    if "alert_at" not in entry
                    else self.thresholds(entry["alert_at"], f"{name}.alert_at"),
                )
            )
        return per_run_nanos, per_run_alerts, tuple(windows)

    def limits(self, value: object) -> tuple[RateLimit, ...]:
        items: list[object] = [value] if isinstance(value, Mapping) else value  # type: ignore[assignment]
        if not isinstance(items, list | tuple):
            raise self.fail("limits", "expected a table or a list of tables")
        limits: list[RateLimit] = []
        for i, item in enumerate(items):
            name = f"limits[{i}]"
            entry = self.table(item, name, frozenset({"model", "rpm", "tpm", "max_in_flight"}))
            counts = {
                key: self.integer(entry[key], f"{name}.{key}", minimum=1)
                for key in ("rpm", "tpm", "max_in_flight")
                if key in entry
            }
            if not counts:
                raise self.fail(name, "needs at least one of rpm, tpm, max_in_flight")
            model = self.string(entry.get("model", "*"), f"{name}.model")
            if any(lim.model == model for lim in limits):
                raise self.fail(f"{name}.model", f"a limit for {model!r} is already defined")
            limits.append(RateLimit(model=model, **counts))
        return tuple(limits)

    def routing(self, value: object) -> Routing:
        routing = self.table(
            value,
            "routing",
            frozenset({"primary_provider", "fallback_providers", "fallback_models"}),
        )
        primary = routing.get("primary_provider")
        fallback_models = self.table(
            routing.get("fallback_models", {}), "routing.fallback_models", _ANY_KEY
        )
        return Routing(
            primary_provider=None
            if primary is None
            else self.string(primary, "routing.primary_provider"),
            fallback_providers=self.strings(
                routing.get("fallback_providers", []), "routing.fallback_providers"
            ),
            fallback_models={
                k: self.string(v, f"routing.fallback_models.{k}")
                for k, v in fallback_models.items()
            },
        )


class _AnyKey(frozenset[str]):
    def __contains__(self, item: object) -> bool:
        return isinstance(item, str)


_ANY_KEY: Final = _AnyKey()
_TOP_KEYS: Final = frozenset(
    {
        "tenant_id",
        "budgets",
        "routing",
        "model",
        "capabilities",
        "clamp_max_tokens",
        "min_output_tokens",
        "reservation_ttl_s",
        "limits",
    }
)
