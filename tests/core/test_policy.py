from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from aegis.core import (
    CAPABILITIES,
    InMemoryPolicyProvider,
    Policy,
    PolicyError,
    TomlPolicyProvider,
    WindowBudget,
)

SEED: dict[str, Any] = {
    "budgets": {
        "per_run_usd": 0.5,
        "per_window": {"window": "day", "limit_usd": 10, "hard_stop": True},
    },
    "routing": {"primary_provider": "openai", "fallback_providers": ["gemini"]},
    "model": {"allow_models": ["gpt-4o-mini", "gemini-2.5-*"]},
    "capabilities": ["llm:invoke"],
}


def test_the_seed_shape_loads_as_is() -> None:
    policy = Policy.from_dict("acme", SEED)
    assert policy.per_run_nanos == 500_000_000
    assert policy.per_window == (WindowBudget("day", 10_000_000_000, True),)
    assert policy.routing.primary_provider == "openai"
    assert policy.routing.fallback_providers == ("gemini",)
    assert policy.capabilities == frozenset({"llm:invoke"})
    assert policy.allows_model("gpt-4o-mini")
    assert policy.allows_model("gemini-2.5-flash")
    assert not policy.allows_model("gpt-4o")


def test_defaults_allow_every_model_and_capability_with_no_budget() -> None:
    policy = Policy.from_dict("t", {})
    assert policy.allows_model("anything")
    assert policy.capabilities == CAPABILITIES
    assert policy.per_run_nanos is None
    assert policy.per_window == ()


def test_version_hashes_content_not_spelling() -> None:
    a = Policy.from_dict("t", SEED)
    b = Policy.from_dict("t", {**SEED, "budgets": {**SEED["budgets"], "per_run_usd": "0.50"}})
    c = Policy.from_dict("t", {**SEED, "capabilities": ["llm:invoke", "llm:stream"]})
    assert a.version.startswith("sha256:")
    assert a.version == b.version
    assert a.version != c.version
    assert Policy.from_dict("t", a.to_dict()) == a


@pytest.mark.parametrize(
    ("data", "field", "problem"),
    [
        ({"budgets": {"per_run": 1}}, "budgets.per_run", "unknown key"),
        ({"budget": {}}, "budget", "unknown key"),
        ({"budgets": {"per_run_usd": "lots"}}, "budgets.per_run_usd", "not a decimal"),
        ({"budgets": {"per_run_usd": -1}}, "budgets.per_run_usd", "negative"),
        ({"budgets": {"per_run_usd": True}}, "budgets.per_run_usd", "USD amount"),
        (
            {"budgets": {"per_window": [{"window": "week", "limit_usd": 1}]}},
            "budgets.per_window[0].window",
            "expected one of",
        ),
        (
            {"budgets": {"per_window": [{"window": "day"}]}},
            "budgets.per_window[0].limit_usd",
            "required",
        ),
        (
            {"budgets": {"per_window": [{"window": "day", "limit_usd": 1, "hard_stop": "yes"}]}},
            "budgets.per_window[0].hard_stop",
            "true or false",
        ),
        (
            {
                "budgets": {
                    "per_window": [
                        {"window": "day", "limit_usd": 1},
                        {"window": "day", "limit_usd": 2},
                    ]
                }
            },
            "budgets.per_window[1].window",
            "already defined",
        ),
        ({"model": {"allow_models": "gpt-4o"}}, "model.allow_models", "list of strings"),
        ({"model": {"allow_models": ["gpt-4o", 3]}}, "model.allow_models[1]", "non-empty string"),
        ({"capabilities": ["llm:invoke", "llm:fly"]}, "capabilities[1]", "unknown capability"),
        ({"routing": {"fallback_providers": "gemini"}}, "routing.fallback_providers", "list"),
        ({"routing": {"primary": "openai"}}, "routing.primary", "unknown key"),
        ({"reservation_ttl_s": 0}, "reservation_ttl_s", "at least 1"),
        ({"tenant_id": "other"}, "tenant_id", "does not match"),
    ],
)
def test_invalid_policies_name_tenant_and_field(
    data: dict[str, Any], field: str, problem: str
) -> None:
    with pytest.raises(PolicyError) as info:
        Policy.from_dict("acme", data)
    assert info.value.tenant_id == "acme"
    assert info.value.field == field
    assert problem in str(info.value)
    assert "'acme'" in str(info.value)


async def test_in_memory_provider_returns_none_for_unknown_tenants() -> None:
    provider = InMemoryPolicyProvider({"acme": SEED})
    policy = await provider.get_policy(tenant_id="acme")
    assert policy is not None
    assert policy.tenant_id == "acme"
    assert await provider.get_policy(tenant_id="nobody") is None


async def test_in_memory_replace_is_all_or_nothing() -> None:
    provider = InMemoryPolicyProvider({"acme": SEED})
    with pytest.raises(PolicyError):
        provider.replace({"acme": {}, "bad": {"capabilities": ["nope"]}})
    assert await provider.get_policy(tenant_id="acme") == Policy.from_dict("acme", SEED)


async def test_toml_provider_loads_and_reloads(tmp_path: Path) -> None:
    path = tmp_path / "aegis.toml"
    path.write_text(
        "[tenants.acme]\n"
        'api_keys = ["sha256:abc"]\n'
        'capabilities = ["llm:invoke", "llm:stream"]\n'
        '[tenants.acme.budgets]\nper_run_usd = "0.25"\n'
        '[[tenants.acme.budgets.per_window]]\nwindow = "minute"\nlimit_usd = 1\n'
        '[[tenants.acme.budgets.per_window]]\nwindow = "month"\nlimit_usd = 100\n'
        "hard_stop = false\n"
    )
    provider = TomlPolicyProvider(path)
    policy = await provider.get_policy(tenant_id="acme")
    assert policy is not None
    assert policy.per_run_nanos == 250_000_000
    assert [w.window for w in policy.per_window] == ["minute", "month"]
    assert policy.per_window[1].hard_stop is False

    path.write_text('[tenants.acme]\nmodel = { allow_models = ["o3"] }\n[tenants.beta]\n')
    provider.reload()
    policy = await provider.get_policy(tenant_id="acme")
    assert policy is not None
    assert policy.allow_models == ("o3",)
    assert await provider.get_policy(tenant_id="beta") is not None

    path.write_text('[tenants.acme]\nbudgets = { per_run_usd = "x" }\n')
    with pytest.raises(PolicyError) as info:
        provider.reload()
    assert info.value.field == "budgets.per_run_usd"
    policy = await provider.get_policy(tenant_id="acme")
    assert policy is not None
    assert policy.allow_models == ("o3",)
