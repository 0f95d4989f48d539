"""Issue 17: how much of a $1 budget is usable before calls are denied.

Each run drives the real Gate (memory ledger, one $1 hard-stop day budget) with a workload of
identical calls whose request sets no output limit, the case the Gate must bound itself. Each
call goes the way the proxy takes it: the adapter's estimate of the body (with the policy's
``default_max_output_tokens`` as the bound of a body without one), admission, the request
rewritten to carry the permit's limit, and an upstream simulated from that rewritten body (it
never produces more than the body allows; Gemini thinking runs 0.8% past its budget when the
budget binds, as observed), then settlement from that usage. ``workers`` callers run
concurrently; each stops at its first denial.

Figures: ``first denial`` is the spend committed when the first call is denied; ``usable`` the
spend committed when every caller has been denied (what the budget bought); ``max committed``
must never pass $1.

Run: uv run python -m bench.usable_budget
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from aegis.adapters.gemini import (
    estimate_generate_content,
    output_limits,
    with_output_limits,
)
from aegis.adapters.openai import estimate_chat_request, rewrite_chat_request
from aegis.core import (
    NANOS_PER_USD,
    BudgetExceeded,
    Gate,
    HmacSha256Signer,
    InMemoryPolicyProvider,
    MemoryLedger,
    MemoryReceiptSink,
    Policy,
    Usage,
    default_pricing_table,
    parse_usd,
)
from bench._report import report

PROMPT = "Summarise the attached meeting notes in five bullet points. " + "notes " * 600
"""About 4,000 characters: 1,000 real tokens (the estimate bounds it by its bytes)."""
REAL_INPUT = 1_000


@dataclass(frozen=True)
class Workload:
    model: str
    visible: int
    """Visible output tokens a call produces when nothing stops it."""
    reasoning: int
    """Reasoning or thinking tokens it spends when nothing stops it."""
    default_bound: int
    """The operator's ``default_max_output_tokens`` for the model (reasoning included)."""


WORKLOADS = (
    Workload("gpt-4.1", 350, 0, 1_024),
    Workload("o4-mini", 350, 1_200, 4_096),
    Workload("gpt-5-mini", 350, 1_800, 4_096),
    Workload("gemini-2.5-flash", 350, 900, 2_048),
    Workload("gemini-2.5-pro", 350, 1_500, 2_048),
)
CONFIGS = (
    ("model maximum", False, False),
    ("policy default", True, False),
    ("policy default + clamp", True, True),
)


def _policy(w: Workload, default: bool, clamp: bool) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "budgets": {"per_window": {"window": "day", "limit_usd": "1"}},
        "clamp_max_tokens": clamp,
    }
    if default:
        doc["model"] = {"default_max_output_tokens": {w.model: w.default_bound}}
    return doc


def _openai_call(w: Workload, policy: Policy, model_max: int) -> tuple[int, int, Any]:
    body = {"model": w.model, "messages": [{"role": "user", "content": PROMPT}]}
    estimate = estimate_chat_request(body)
    default = policy.default_output_tokens(w.model)
    bound = model_max if default is None else min(default, model_max)
    return estimate.input_tokens, estimate.output_tokens(bound), body


def _openai_usage(w: Workload, body: dict[str, Any], granted: int) -> Usage:
    sent = rewrite_chat_request(body, max_output_tokens=granted).body
    limit = int(sent["max_completion_tokens"])
    # Reasoning comes first and counts toward the limit; what is left is visible output.
    reasoning = min(w.reasoning, limit)
    visible = min(w.visible, limit - reasoning)
    return Usage(
        input_tokens=REAL_INPUT, output_tokens=reasoning + visible, reasoning_tokens=reasoning
    )


def _gemini_call(w: Workload, policy: Policy, model_max: int, window: int) -> tuple[int, int, Any]:
    body: dict[str, Any] = {"contents": [{"role": "user", "parts": [{"text": PROMPT}]}]}
    default = policy.default_output_tokens(w.model)
    bound = model_max if default is None else min(default, model_max)
    estimate = estimate_generate_content(
        body, model=w.model, model_max_output_tokens=bound, context_window=window
    )
    return estimate.input_tokens, estimate.output_tokens, (body, estimate)


def _gemini_usage(w: Workload, state: Any, granted: int) -> Usage:
    body, estimate = state
    sent = with_output_limits(body, output_limits(estimate, granted))["generationConfig"]
    budget = sent.get("thinkingConfig", {}).get("thinkingBudget")
    thinking = w.reasoning
    if budget is not None and thinking >= budget:
        thinking = budget + budget * 8 // 1_000  # runs 0.8% past a budget that binds
    visible = min(w.visible, int(sent["maxOutputTokens"]))
    return Usage(
        input_tokens=REAL_INPUT, output_tokens=visible + thinking, reasoning_tokens=thinking
    )


async def run(w: Workload, default: bool, clamp: bool, workers: int) -> dict[str, Any]:
    clock_ledger = MemoryLedger()
    sink = MemoryReceiptSink()
    table = default_pricing_table()
    gate = Gate(
        policy_provider=InMemoryPolicyProvider({"acme": _policy(w, default, clamp)}),
        ledger=clock_ledger,
        pricing=table,
        signer=HmacSha256Signer(key_id="k", secret="s" * 32),
        sink=sink,
    )
    policy = await gate.policy_for(tenant_id="acme", request_id="-", model=w.model)
    price = table.price(w.model)
    gemini = price.provider == "gemini"
    committed = 0
    peak = 0
    first_denial: int | None = None
    calls = 0
    counter = iter(range(10**9))

    async def worker() -> None:
        nonlocal committed, peak, first_denial, calls
        while True:
            n = next(counter)
            if gemini:
                input_tokens, output_tokens, state = _gemini_call(
                    w, policy, price.max_output_tokens, price.input_limit
                )
            else:
                input_tokens, output_tokens, state = _openai_call(
                    w, policy, price.max_output_tokens
                )
            try:
                permit = await gate.admit(
                    tenant_id="acme",
                    request_id=f"r{n}",
                    provider=price.provider,
                    model=w.model,
                    input_tokens=input_tokens,
                    max_output_tokens=output_tokens,
                    policy=policy,
                )
            except BudgetExceeded:
                if first_denial is None:
                    first_denial = committed
                return
            await asyncio.sleep(0)  # the upstream call: let the other callers in
            granted = permit.max_output_tokens
            usage = _gemini_usage(w, state, granted) if gemini else _openai_usage(w, state, granted)
            receipt = await gate.settle(permit, usage=usage)
            committed += parse_usd(receipt.actual_usd)
            peak = max(peak, committed)
            calls += 1

    await asyncio.gather(*(worker() for _ in range(workers)))

    def pct(nanos: int | None) -> str:
        return "-" if nanos is None else f"{Decimal(nanos) * 100 / NANOS_PER_USD:.2f}%"

    return {
        "model": w.model,
        "output bound": "model max" if not default else f"{w.default_bound:,}",
        "clamp": "on" if clamp else "off",
        "workers": workers,
        "calls": calls,
        "first denial": pct(first_denial),
        "usable": pct(committed),
        "max committed": f"${Decimal(peak) / NANOS_PER_USD:.6f}",
        "holds": "yes" if peak <= NANOS_PER_USD else "NO",
    }


async def main() -> None:
    rows = []
    for w in WORKLOADS:
        for _, default, clamp in CONFIGS:
            for workers in (1, 10):
                rows.append(await run(w, default, clamp, workers))
    report(
        "usable_budget",
        rows,
        note="Each call: ~1,000 input tokens, no output limit in the request; a $1 hard-stop "
        "day budget. 'usable' = spend committed when every caller had been denied once.",
    )


if __name__ == "__main__":
    asyncio.run(main())
