"""Which provider serves a call, and which ones to try when it fails."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase

from aegis.core import Policy, PricingTable
from aegis.proxy.config import ProviderSettings
from aegis.proxy.errors import BadRequest

__all__ = ["Attempt", "Router", "is_retryable_status"]


@dataclass(frozen=True, slots=True)
class Attempt:
    """One provider to try, with the model name to ask it for."""

    provider: str
    provider_type: str
    model: str


def is_retryable_status(status: int) -> bool:
    """Worth trying the next provider: rate limited, or the provider failed."""
    return status in (408, 429) or status >= 500


class Router:
    """Plans the providers of a call from config, the price list and the tenant's routing."""

    def __init__(
        self,
        providers: Mapping[str, ProviderSettings],
        pricing: PricingTable,
        default_provider: str | None,
    ) -> None:
        self.providers = dict(providers)
        self.pricing = pricing
        self.default_provider = default_provider

    def owner(self, model: str, policy: Policy) -> str | None:
        """The provider that serves ``model`` first."""
        for provider in self.providers.values():
            if any(fnmatchcase(model, pattern) for pattern in provider.models):
                return provider.name
        primary = policy.routing.primary_provider or self.default_provider
        price = self.pricing.get(model)
        if price is None:
            return primary
        if primary is not None and self.providers[primary].type == price.provider:
            return primary
        for provider in self.providers.values():
            if provider.type == price.provider:
                return provider.name
        return primary

    def plan(self, model: str, policy: Policy, *, cross_type: bool) -> list[Attempt]:
        """The attempts for a call: the owner, then the tenant's fallbacks in order.

        ``cross_type``: the endpoint can translate, so a provider of another type may serve
        the call (an OpenAI chat request served by Gemini).
        """
        owner = self.owner(model, policy)
        if owner is None:
            raise BadRequest(
                f"no provider serves model {model!r}", param="model", code="model_not_found"
            )
        plan = [Attempt(owner, self.providers[owner].type, model)]
        for name in policy.routing.fallback_providers:
            provider = self.providers.get(name)
            if provider is None or name == owner:
                continue
            if provider.type != plan[0].provider_type and not cross_type:
                continue
            plan.append(Attempt(name, provider.type, self._fallback_model(model, provider, policy)))
        return plan

    def _fallback_model(self, model: str, provider: ProviderSettings, policy: Policy) -> str:
        """The model to ask a fallback provider for: ``fallback_models[model]``, followed on
        (``a -> b -> c``) while the name it gives is priced for another kind of provider, so
        one table can map a call across OpenAI, Anthropic and Gemini."""
        mapping = policy.routing.fallback_models
        current = mapping.get(model, model)
        seen = {model}
        while current not in seen:
            price = self.pricing.get(current)
            following = mapping.get(current)
            if price is None or price.provider == provider.type or following is None:
                return current
            seen.add(current)
            current = following
        return current
