"""A call's policy is read once: a reload in the middle of a call changes none of its attempts."""

from __future__ import annotations

import pytest

from aegis.core import (
    Denied,
    Gate,
    HmacSha256Signer,
    InMemoryPolicyProvider,
    MemoryLedger,
    MemoryReceiptSink,
    default_pricing_table,
)
from aegis.proxy.calls import IncomingCall
from aegis.proxy.routing import Attempt
from aegis.proxy.serve import CallScope

BEFORE = {"acme": {"model": {"allow_models": ["gpt-4o*"]}}}
AFTER = {"acme": {"model": {"allow_models": ["claude-*"]}}}  # the reloaded config
FIRST = Attempt("openai", "openai", "gpt-4o-mini")
FALLBACK = Attempt("backup", "openai", "gpt-4o")


async def test_routing_and_every_attempt_keep_the_policy_read_when_the_call_opened() -> None:
    policies = InMemoryPolicyProvider(BEFORE)
    sink = MemoryReceiptSink()
    gate = Gate(
        policy_provider=policies,
        ledger=MemoryLedger(),
        pricing=default_pricing_table(),
        signer=HmacSha256Signer(key_id="k1", secret=b"s" * 32),
        sink=sink,
    )
    call = IncomingCall("acme", "req-1", None, b"{}", {})
    scope = await CallScope.open(gate, call, FIRST.model, "llm:invoke")
    routed_under = scope.policy
    assert routed_under.allows_model("gpt-4o-mini")

    policies.replace(AFTER)  # a reload while the call is being routed
    first = await scope.admit(FIRST, "req-1", input_tokens=10, max_output_tokens=10)
    fallback = await scope.admit(FALLBACK, "req-1~1", input_tokens=10, max_output_tokens=10)
    assert first.policy is routed_under
    assert fallback.policy is routed_under
    await gate.settle(first, status="upstream_error", error="503 from openai")
    await gate.settle(fallback, usage=None)
    assert {r.policy_version for r in sink.receipts} == {routed_under.version}

    # A call opened after the reload is governed by the new policy.
    later = await CallScope.open(
        gate, IncomingCall("acme", "req-2", None, b"{}", {}), FIRST.model, "llm:invoke"
    )
    assert later.policy.version != routed_under.version
    with pytest.raises(Denied):
        await later.admit(FIRST, "req-2", input_tokens=10, max_output_tokens=10)
