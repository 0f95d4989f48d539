"""Governed, non-streamed chat completions through the real SDK against the fake upstream."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import openai
import pytest
from fakes.openai_upstream import FakeOpenAI, Fault, Reply
from openai import AsyncOpenAI
from openai.types.chat import ChatCompletion

from aegis.adapters.openai import (
    InvalidRequestBody,
    chat_completions_via_gate,
    estimate_chat_request,
)
from aegis.core import (
    BudgetExceeded,
    DuplicateRequest,
    PolicyDenied,
    UnknownModelDenied,
    Usage,
    default_pricing_table,
    format_usd,
)

if TYPE_CHECKING:
    from adapter_openai.conftest import Governance, MakeGovernance

PRICES = default_pricing_table()
MINI = PRICES.price("gpt-4o-mini")
HELLO = [{"role": "user", "content": "Say hello."}]


async def chat(gov: Governance, client: AsyncOpenAI, body: dict[str, Any], rid: str = "r1") -> Any:
    return await chat_completions_via_gate(
        gate=gov.gate, client=client, tenant_id="acme", request_id=rid, body=body
    )


async def test_a_chat_call_is_reserved_sent_with_a_limit_and_billed_from_usage(
    gov: Governance, client: AsyncOpenAI, fake: FakeOpenAI
) -> None:
    fake.enqueue(Reply(text="Hello there!", prompt_tokens=12, completion_tokens=3))
    body = {"model": "gpt-4o-mini", "messages": HELLO}
    result = await chat(gov, client, body)
    assert isinstance(result, ChatCompletion)
    assert result.choices[0].message.content == "Hello there!"
    # The raw JSON, as the server sent it.
    raw: Any = result.to_dict()
    assert raw["usage"]["prompt_tokens"] == 12
    (seen,) = fake.requests
    # No limit in the body: the model's maximum is reserved and enforced upstream.
    assert seen.body == {**body, "max_completion_tokens": MINI.max_output_tokens}
    receipt = gov.last
    assert receipt.status == "ok"
    assert receipt.usage == Usage(input_tokens=12, output_tokens=3)
    assert receipt.usage_source == "reported"
    assert receipt.upstream_status == 200
    estimate = estimate_chat_request(body)
    assert receipt.reserved_usd == format_usd(
        MINI.worst_case_nanos(estimate.input_tokens, MINI.max_output_tokens)
    )
    cost = 12 * 150 + 3 * 600
    assert receipt.actual_usd == format_usd(cost)
    assert await gov.month() == (cost, 0)


@pytest.mark.parametrize(
    ("model", "rates"),
    [("gpt-4o-mini", (150, 75, 600)), ("o4-mini", (1100, 275, 4400))],
)
async def test_cached_and_reasoning_tokens_are_priced_exactly(
    gov: Governance,
    client: AsyncOpenAI,
    fake: FakeOpenAI,
    model: str,
    rates: tuple[int, int, int],
) -> None:
    fake.enqueue(
        Reply(prompt_tokens=1000, cached_tokens=600, completion_tokens=300, reasoning_tokens=200)
    )
    await chat(gov, client, {"model": model, "messages": HELLO, "max_completion_tokens": 400})
    usage = Usage(
        input_tokens=1000, cached_input_tokens=600, output_tokens=300, reasoning_tokens=200
    )
    assert gov.last.usage == usage
    rate_in, rate_cached, rate_out = rates  # nano-USD per token
    expected = 400 * rate_in + 600 * rate_cached + 300 * rate_out
    assert expected == PRICES.price(model).cost_nanos(usage)
    assert gov.last.actual_usd == format_usd(expected)
    assert await gov.month() == (expected, 0)


async def test_a_budget_denial_happens_before_any_request(
    make_governance: MakeGovernance, client: AsyncOpenAI, fake: FakeOpenAI
) -> None:
    gov = make_governance(
        budgets={"per_window": [{"window": "day", "limit_usd": "0.001"}]},
    )
    with pytest.raises(BudgetExceeded) as caught:
        await chat(gov, client, {"model": "gpt-4o-mini", "messages": HELLO})
    assert fake.requests == []
    assert caught.value.budget == "day"
    assert caught.value.resets_at is not None
    assert gov.last.status == "denied"
    assert gov.last.decision.reason == "budget_exceeded"


async def test_policy_and_unknown_model_denials_send_nothing(
    make_governance: MakeGovernance, client: AsyncOpenAI, fake: FakeOpenAI
) -> None:
    gov = make_governance(model={"allow_models": ["gpt-4o"]})
    with pytest.raises(PolicyDenied) as denied:
        await chat(gov, client, {"model": "gpt-4o-mini", "messages": HELLO})
    assert denied.value.reason == "model_not_allowed"
    open_gov = make_governance()
    with pytest.raises(UnknownModelDenied):
        await chat(open_gov, client, {"model": "my-local-llama", "messages": HELLO})
    no_invoke = make_governance(capabilities=["llm:stream"])
    with pytest.raises(PolicyDenied):
        await chat(no_invoke, client, {"model": "gpt-4o-mini", "messages": HELLO})
    assert fake.requests == []


async def test_a_body_that_cannot_be_bounded_is_refused_before_admission(
    gov: Governance, client: AsyncOpenAI, fake: FakeOpenAI
) -> None:
    with pytest.raises(InvalidRequestBody):
        await chat(gov, client, {"model": "gpt-4o-mini", "messages": HELLO, "n": 0})
    assert fake.requests == []
    assert gov.receipts == []


async def test_a_clamped_call_is_sent_with_the_lower_limit(
    make_governance: MakeGovernance, client: AsyncOpenAI, fake: FakeOpenAI
) -> None:
    gov = make_governance(
        budgets={"per_window": [{"window": "month", "limit_usd": "0.0001"}]},
        clamp_max_tokens=True,
    )
    body = {"model": "gpt-4o-mini", "messages": HELLO, "max_tokens": 5000}
    await chat(gov, client, body)
    estimate = estimate_chat_request(body)
    affordable = MINI.output_tokens_affordable(estimate.input_tokens, 100_000)
    (seen,) = fake.requests
    assert seen.body == {**body, "max_tokens": affordable}
    assert 16 <= affordable < 5000


async def test_n_choices_reserve_the_limit_for_each(
    gov: Governance, client: AsyncOpenAI, fake: FakeOpenAI
) -> None:
    body = {"model": "gpt-4o-mini", "messages": HELLO, "max_completion_tokens": 50, "n": 3}
    result = await chat(gov, client, body)
    assert isinstance(result, ChatCompletion)
    assert len(result.choices) == 3
    estimate = estimate_chat_request(body)
    assert gov.last.reserved_usd == format_usd(MINI.worst_case_nanos(estimate.input_tokens, 150))
    assert fake.requests[0].body == body


async def test_tools_response_format_and_extensions_pass_through_untouched(
    gov: Governance, client: AsyncOpenAI, fake: FakeOpenAI
) -> None:
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Current weather for a city.",
                "parameters": {
                    "type": "object",
                    "properties": {"city": {"type": "string"}, "unit": {"enum": ["C", "F"]}},
                    "required": ["city"],
                    "additionalProperties": False,
                },
                "strict": True,
            },
        }
    ]
    response_format = {
        "type": "json_schema",
        "json_schema": {
            "name": "weather",
            "strict": True,
            "schema": {"type": "object", "properties": {"temp": {"type": "number"}}},
        },
    }
    body = {
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": "Use tools."},
            {"role": "user", "content": [{"type": "text", "text": "Weather in Paris?"}]},
        ],
        "tools": tools,
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        "parallel_tool_calls": False,
        "response_format": response_format,
        "temperature": 0.2,
        "max_completion_tokens": 64,
        "top_k": 5,  # an extension some OpenAI-compatible servers take
    }
    call = {"id": "call_w1", "name": "get_weather", "arguments": '{"city": "Paris"}'}
    fake.enqueue(Reply(text=None, tool_calls=[call]))
    result = await chat(gov, client, body)
    assert isinstance(result, ChatCompletion)
    assert fake.requests[0].body == body
    (tool_call,) = result.choices[0].message.tool_calls or []
    assert tool_call.id == "call_w1"
    assert tool_call.function.arguments == '{"city": "Paris"}'  # type: ignore[union-attr]
    assert result.choices[0].finish_reason == "tool_calls"


@pytest.mark.parametrize(
    ("fault", "error_class"),
    [
        (Fault.bad_request("Invalid 'temperature'.", param="temperature"), openai.BadRequestError),
        (Fault.unauthorized(), openai.AuthenticationError),
        (Fault(403, "Nope.", "permission_error"), openai.PermissionDeniedError),
        (Fault.not_found("gpt-4o-mini"), openai.NotFoundError),
        (Fault.rate_limited(), openai.RateLimitError),
        (Fault.server_error(), openai.InternalServerError),
    ],
)
async def test_sdk_errors_release_the_reservation_and_propagate_unchanged(
    gov: Governance,
    upstream: Any,
    fake: FakeOpenAI,
    fault: Fault,
    error_class: type[openai.APIStatusError],
) -> None:
    fake.enqueue(fault)
    async with AsyncOpenAI(base_url=upstream.base_url, api_key="test", max_retries=0) as client:
        with pytest.raises(error_class) as caught:
            await chat(gov, client, {"model": "gpt-4o-mini", "messages": HELLO})
    assert caught.value.status_code == fault.status
    assert caught.value.code == fault.code
    assert caught.value.type == fault.type
    receipt = gov.last
    assert receipt.status == "upstream_error"
    assert receipt.upstream_status == fault.status
    assert receipt.usage is None
    assert receipt.actual_usd == "0"
    assert receipt.error is not None
    assert receipt.error.startswith(error_class.__name__)
    assert await gov.month() == (0, 0)


async def test_an_upstream_error_message_is_kept_out_of_the_receipt(
    gov: Governance, upstream: Any, fake: FakeOpenAI
) -> None:
    fake.enqueue(
        Fault(401, "Incorrect API key provided: sk-canary-123456.", "invalid_request_error")
    )
    async with AsyncOpenAI(base_url=upstream.base_url, api_key="test", max_retries=0) as client:
        with pytest.raises(openai.AuthenticationError):
            await chat(gov, client, {"model": "gpt-4o-mini", "messages": HELLO})
    assert "canary" not in str(gov.last.to_dict())


async def test_sdk_retries_on_429_and_500_are_one_admission_and_one_charge(
    gov: Governance, client: AsyncOpenAI, fake: FakeOpenAI
) -> None:
    fake.enqueue(
        Fault.rate_limited(),
        Fault.server_error(),
        Reply(prompt_tokens=20, completion_tokens=5),
    )
    await chat(gov, client, {"model": "gpt-4o-mini", "messages": HELLO})
    assert len(fake.requests) == 3  # the SDK retried twice, inside one governed call
    (receipt,) = gov.receipts
    assert receipt.status == "ok"
    cost = 20 * 150 + 5 * 600
    assert receipt.actual_usd == format_usd(cost)
    assert await gov.month() == (cost, 0)
    assert gov.charged_nanos() == cost


async def test_exhausted_retries_release_once(
    gov: Governance, client: AsyncOpenAI, fake: FakeOpenAI
) -> None:
    fake.enqueue(Fault.server_error(), Fault.server_error(), Fault.server_error())
    with pytest.raises(openai.InternalServerError):
        await chat(gov, client, {"model": "gpt-4o-mini", "messages": HELLO})
    assert len(fake.requests) == 3
    (receipt,) = gov.receipts
    assert receipt.status == "upstream_error"
    assert receipt.upstream_status == 500
    assert await gov.month() == (0, 0)


async def test_a_timeout_releases_the_reservation(
    gov: Governance, upstream: Any, fake: FakeOpenAI
) -> None:
    fake.enqueue(Reply(delay_s=2.0))
    async with AsyncOpenAI(
        base_url=upstream.base_url, api_key="test", max_retries=0, timeout=0.2
    ) as client:
        with pytest.raises(openai.APITimeoutError):
            await chat(gov, client, {"model": "gpt-4o-mini", "messages": HELLO})
    assert gov.last.status == "upstream_error"
    assert gov.last.upstream_status is None
    assert gov.last.error == "APITimeoutError"
    assert await gov.month() == (0, 0)


async def test_a_connection_error_releases_the_reservation(gov: Governance) -> None:
    from fakes.openai_upstream import FakeUpstream

    async with FakeUpstream() as gone:
        url = gone.base_url
    async with AsyncOpenAI(base_url=url, api_key="test", max_retries=0) as client:
        with pytest.raises(openai.APIConnectionError):
            await chat(gov, client, {"model": "gpt-4o-mini", "messages": HELLO})
    assert gov.last.status == "upstream_error"
    assert await gov.month() == (0, 0)


async def test_cancelling_the_caller_releases_the_reservation(
    gov: Governance, client: AsyncOpenAI, fake: FakeOpenAI
) -> None:
    fake.enqueue(Reply(delay_s=5.0))
    task = asyncio.create_task(chat(gov, client, {"model": "gpt-4o-mini", "messages": HELLO}))
    await fake.wait_for_requests(1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # The settlement is shielded from the cancellation: it finishes on later loop turns.
    for _ in range(100):
        if gov.receipts:
            break
        await asyncio.sleep(0)
    assert gov.last.status == "cancelled"
    assert await gov.month() == (0, 0)


async def test_a_request_id_is_charged_once(
    gov: Governance, client: AsyncOpenAI, fake: FakeOpenAI
) -> None:
    body = {"model": "gpt-4o-mini", "messages": HELLO, "max_completion_tokens": 10}
    await chat(gov, client, body, rid="same")
    with pytest.raises(DuplicateRequest):
        await chat(gov, client, body, rid="same")
    assert len(fake.requests) == 1


async def test_a_missing_usage_is_billed_at_the_reservation(
    gov: Governance, client: AsyncOpenAI, fake: FakeOpenAI
) -> None:
    fake.enqueue(Reply(report_usage=False))
    await chat(gov, client, {"model": "gpt-4o-mini", "messages": HELLO, "max_tokens": 20})
    assert gov.last.usage_source == "reservation"
    assert gov.last.actual_usd == gov.last.reserved_usd


async def test_servers_that_predate_max_completion_tokens_get_max_tokens(
    gov: Governance, client: AsyncOpenAI, fake: FakeOpenAI
) -> None:
    body = {"model": "gpt-4o-mini", "messages": HELLO}
    await chat_completions_via_gate(
        gate=gov.gate,
        client=client,
        tenant_id="acme",
        request_id="legacy",
        body=body,
        limit_field="max_tokens",
    )
    assert fake.requests[0].body == {**body, "max_tokens": MINI.max_output_tokens}


async def test_concurrent_calls_never_overspend_and_the_ledger_matches_the_receipts(
    make_governance: MakeGovernance, client: AsyncOpenAI, fake: FakeOpenAI
) -> None:
    # Each call's worst case is $0.0000645 (30 input, 100 output tokens): the budget holds five.
    gov = make_governance(budgets={"per_window": [{"window": "month", "limit_usd": "0.00035"}]})
    fake.default = Reply(delay_s=0.05, prompt_tokens=20, completion_tokens=4)
    body = {"model": "gpt-4o-mini", "messages": HELLO, "max_completion_tokens": 100}

    async def one(i: int) -> bool:
        try:
            await chat(gov, client, body, rid=f"c{i}")
        except BudgetExceeded:
            return False
        return True

    admitted = sum(await asyncio.gather(*(one(i) for i in range(20))))
    assert admitted == 5
    assert len(fake.requests) == admitted
    committed, pending = await gov.month()
    assert pending == 0
    assert committed == gov.charged_nanos() == admitted * (20 * 150 + 4 * 600)
    assert len([r for r in gov.receipts if r.status == "denied"]) == 20 - admitted
