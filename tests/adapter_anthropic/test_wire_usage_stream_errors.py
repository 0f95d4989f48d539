"""Usage readers, the stream meter and raw SSE reader, error mapping, and money vectors.

Money vectors are costed by hand with Decimal from Anthropic's published per-million-token
prices and billing rules (input excludes the cache; 5-minute writes 1.25x and 1-hour writes 2x
input; reads as listed; Haiku 5.5 and Sonnet 4.5 (1M beta) bill every token of a long prompt,
cache included, at the long rate), then compared to the nano-USD with what Aegis charges.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import ROUND_CEILING, Decimal
from typing import Any

import pytest

from aegis.adapters.anthropic import (
    ERROR_STATUS,
    AnthropicUsage,
    InvalidRequestBody,
    MessagesStreamReader,
    StreamMeter,
    WireError,
    error_body,
    error_for,
    error_type_for_status,
    parse_error_body,
    usage_from_message,
    usage_from_wire,
)
from aegis.core import (
    BudgetExceeded,
    LedgerUnavailable,
    PolicyDenied,
    RateLimited,
    SseParser,
    Usage,
    default_pricing_table,
)


def wire_usage(**counts: Any) -> dict[str, Any]:
    usage: dict[str, Any] = {
        "input_tokens": counts.get("input", 0),
        "cache_creation_input_tokens": counts.get("w5", 0) + counts.get("w1", 0),
        "cache_read_input_tokens": counts.get("read", 0),
        "cache_creation": {
            "ephemeral_5m_input_tokens": counts.get("w5", 0),
            "ephemeral_1h_input_tokens": counts.get("w1", 0),
        },
        "output_tokens": counts.get("out", 0),
        "service_tier": "standard",
    }
    if "searches" in counts:
        usage["server_tool_use"] = {
            "web_search_requests": counts["searches"],
            "web_fetch_requests": 2,
        }
    return usage


def test_input_excludes_the_cache_on_the_wire_and_includes_it_in_aegis() -> None:
    usage = usage_from_message({"usage": wire_usage(input=10, w5=20, w1=30, read=40, out=5)})
    assert usage == Usage(
        input_tokens=100,
        cached_input_tokens=40,
        cache_write_tokens=20,
        cache_write_1h_tokens=30,
        output_tokens=5,
    )
    assert usage_from_message({"id": "msg"}) is None


def test_thinking_tokens_searches_and_tier_are_read() -> None:
    raw = wire_usage(input=1, out=50, searches=3)
    raw["output_tokens_details"] = {"thinking_tokens": 40}
    raw["service_tier"] = "batch"
    usage = usage_from_wire(raw).to_usage()
    assert (usage.reasoning_tokens, usage.tool_calls, usage.service_tier) == (
        40,
        (("web_search", 3),),
        "batch",
    )
    assert usage_from_wire({**raw, "service_tier": "mystery"}).to_usage().service_tier == "priority"


def test_writes_without_a_split_bill_at_the_one_hour_rate() -> None:
    counts = usage_from_wire(
        {"input_tokens": 1, "cache_creation_input_tokens": 70, "output_tokens": 1}
    )
    assert counts.cache_writes == (0, 70)
    partial = usage_from_wire(
        {
            "input_tokens": 1,
            "cache_creation_input_tokens": 70,
            "cache_creation": {"ephemeral_5m_input_tokens": 50},
            "output_tokens": 1,
        }
    )
    assert partial.cache_writes == (50, 20)
    assert partial.to_usage().input_tokens == 71


def test_a_later_event_without_the_split_keeps_the_earlier_split() -> None:
    meter = StreamMeter(max_output_tokens=100)
    meter.observe(START)  # 100 five-minute writes, 200 reads, 25 uncached
    meter.observe(
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn"},
            "usage": {"output_tokens": 9, "cache_creation_input_tokens": 100},
        }
    )
    assert meter.usage() == Usage(
        input_tokens=325, cached_input_tokens=200, cache_write_tokens=100, output_tokens=9
    )
    meter.observe(
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn"},
            "usage": {"output_tokens": 9, "cache_creation_input_tokens": 130},
        }
    )
    usage = meter.usage()
    assert usage is not None
    # 30 more writes the split does not attribute: billed as 1-hour writes.
    assert (usage.cache_write_tokens, usage.cache_write_1h_tokens, usage.input_tokens) == (
        100,
        30,
        355,
    )


@pytest.mark.parametrize(
    "raw",
    [
        {"input_tokens": -1, "output_tokens": 1},
        {"input_tokens": 1.5, "output_tokens": 1},
        {"input_tokens": True, "output_tokens": 1},
        {"input_tokens": "3", "output_tokens": 1},
        {"input_tokens": 1, "output_tokens": 1, "service_tier": 3},
        {
            "input_tokens": 1,
            "output_tokens": 1,
            "cache_creation_input_tokens": 1,
            "cache_creation": {"ephemeral_5m_input_tokens": 2},
        },
    ],
)
def test_a_count_that_is_not_a_token_count_is_a_wire_error(raw: dict[str, Any]) -> None:
    with pytest.raises(WireError):
        usage_from_wire(raw)


# -- money --------------------------------------------------------------------------------

MTOK = Decimal(1_000_000)


def nanos(usd: Decimal) -> int:
    return int((usd * 1_000_000_000).to_integral_value(ROUND_CEILING))


def by_hand(prices: dict[str, str], counts: dict[str, int]) -> Decimal:
    total = sum((Decimal(counts.get(k, 0)) * Decimal(prices[k]) / MTOK for k in prices), Decimal(0))
    return total + Decimal(counts.get("searches", 0)) * Decimal(10) / 1000


VECTORS = [
    # model, published prices (input, 5m write, 1h write, cache read, output), counts
    (
        "claude-opus-5-5",
        {"input": "4", "w5": "5", "w1": "8", "read": "0.20", "out": "20"},
        {"input": 1_234, "w5": 5_678, "w1": 91, "read": 12_345, "out": 6_789},
    ),
    (
        "claude-opus-4-6",
        {"input": "5", "w5": "6.25", "w1": "10", "read": "0.50", "out": "25"},
        {"input": 3, "w5": 0, "w1": 0, "read": 0, "out": 7},
    ),
    (
        "claude-sonnet-4-6",
        {"input": "3", "w5": "3.75", "w1": "6", "read": "0.30", "out": "15"},
        {"input": 100_000, "w5": 50_000, "w1": 25_000, "read": 800_000, "out": 64_000},
    ),
    (
        "claude-haiku-4-5-20251001",
        {"input": "1", "w5": "1.25", "w1": "2", "read": "0.10", "out": "5"},
        {"input": 1, "w5": 1, "w1": 1, "read": 1, "out": 1, "searches": 2},
    ),
    (
        "claude-fable-5-1",
        {"input": "10", "w5": "12.50", "w1": "20", "read": "0.25", "out": "50"},
        {"input": 999, "w5": 1, "w1": 2, "read": 3, "out": 4},
    ),
    # Haiku 5.5, prompt of exactly 100,000 tokens (cache included): the base band.
    (
        "claude-haiku-5-5",
        {"input": "0.10", "w5": "0.125", "w1": "0.20", "read": "0.01", "out": "0.50"},
        {"input": 40_000, "w5": 10_000, "w1": 10_000, "read": 40_000, "out": 777},
    ),
    # One more token: every token, output included, at the long rate. (Cache writes are left
    # out: the price table has no long-band write prices, $0.625 and $1, yet.)
    (
        "claude-haiku-5-5",
        {"input": "0.50", "w5": "0.625", "w1": "1", "read": "0.05", "out": "2.50"},
        {"input": 60_001, "w5": 0, "w1": 0, "read": 40_000, "out": 777},
    ),
    # Sonnet 4.5 past 200k prompt tokens (the 1M beta): $6 input, $22.50 output.
    (
        "claude-sonnet-4-5-20250929",
        {"input": "6", "w5": "3.75", "w1": "6", "read": "0.60", "out": "22.50"},
        {"input": 200_001, "w5": 0, "w1": 0, "read": 0, "out": 10},
    ),
]


@pytest.mark.parametrize(("model", "prices", "counts"), VECTORS)
def test_the_charge_equals_anthropics_formula_to_the_nano_usd(
    model: str, prices: dict[str, str], counts: dict[str, int]
) -> None:
    raw = wire_usage(**counts)
    usage = usage_from_message({"usage": raw})
    assert usage is not None
    price = default_pricing_table().price(model)
    assert price.cost_nanos(usage) == nanos(by_hand(prices, counts))


def test_a_vector_worked_in_full() -> None:
    # claude-opus-5-5: 1,234 x $4 + 5,678 x $5 + 91 x $8 + 12,345 x $0.20 + 6,789 x $20
    # = 4,936 + 28,390 + 728 + 2,469 + 135,780 = 172,303 USD per million = $0.172303.
    usage = usage_from_message(
        {"usage": wire_usage(input=1_234, w5=5_678, w1=91, read=12_345, out=6_789)}
    )
    assert usage is not None
    assert default_pricing_table().price("claude-opus-5-5").cost_nanos(usage) == 172_303_000


# -- the stream -------------------------------------------------------------------------

START: dict[str, Any] = {
    "type": "message_start",
    "message": {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-6",
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": wire_usage(input=25, w5=100, read=200, out=1),
    },
}


def sse(event: dict[str, Any]) -> bytes:
    return f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode()


def delta(text: str, kind: str = "text_delta", key: str = "text") -> dict[str, Any]:
    return {"type": "content_block_delta", "index": 0, "delta": {"type": kind, key: text}}


STREAM: list[dict[str, Any]] = [
    START,
    {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    {"type": "ping"},
    delta("Hello"),
    delta(" there"),
    {"type": "content_block_stop", "index": 0},
    {
        "type": "message_delta",
        "delta": {"stop_reason": "end_turn", "stop_sequence": None},
        "usage": {"output_tokens": 15, "input_tokens": 25, "cache_read_input_tokens": 200},
    },
    {"type": "message_stop"},
]


def test_the_reader_keeps_every_events_bytes_and_reads_the_final_usage() -> None:
    raw = b"".join(sse(e) for e in STREAM)
    reader = MessagesStreamReader(max_output_tokens=100)
    events = []
    for i in range(0, len(raw), 7):  # split anywhere, even inside an event or a character
        events += reader.feed(raw[i : i + 7])
    assert b"".join(e.raw for e in events) == raw
    assert [e.kind for e in events] == ["event", "event", "other", *["event"] * 4, "done"]
    meter = reader.meter
    assert meter.done
    assert meter.stop_reason == "end_turn"
    assert meter.usage() == Usage(
        input_tokens=325, cached_input_tokens=200, cache_write_1h_tokens=0,
        cache_write_tokens=100, output_tokens=15,
    )  # fmt: skip


def test_events_framed_by_the_callers_own_parser_are_classified_alike() -> None:
    parser = SseParser()
    reader = MessagesStreamReader(max_output_tokens=100)
    events = [reader.classify(e) for e in parser.feed(b"".join(sse(e) for e in STREAM))]
    assert [e.kind for e in events][-1] == "done"
    usage = reader.meter.usage()
    assert usage is not None
    assert usage.output_tokens == 15


def test_a_stream_cut_before_its_final_usage_is_billed_as_counted() -> None:
    meter = StreamMeter(max_output_tokens=100)
    for event in STREAM[:5]:
        assert meter.observe(event)
    assert meter.usage() is None
    # The reported prompt (input plus cache), the shown bytes plus one.
    assert meter.counted_usage(9_999) == Usage(
        input_tokens=325, cached_input_tokens=200, cache_write_tokens=100,
        output_tokens=len("Hello there") + 1,
    )  # fmt: skip
    empty = StreamMeter(max_output_tokens=100)
    assert empty.counted_usage(9_999) == Usage(input_tokens=9_999, output_tokens=0)


def test_counted_output_is_capped_at_the_limit_unless_reported_above_it() -> None:
    meter = StreamMeter(max_output_tokens=3)
    meter.observe(START)
    meter.observe(delta("a long delta of many bytes"))
    assert meter.counted_usage(0).output_tokens == 3


def test_thinking_tool_input_and_citations_count_as_output() -> None:
    meter = StreamMeter(max_output_tokens=10_000)
    meter.observe(
        {"type": "content_block_start", "index": 0, "content_block": {"type": "thinking"}}
    )
    meter.observe(delta("hmm", "thinking_delta", "thinking"))
    meter.observe(delta('{"a":', "input_json_delta", "partial_json"))
    meter.observe(
        {
            "type": "content_block_start",
            "index": 1,
            "content_block": {"type": "tool_use", "id": "t", "name": "lookup", "input": {}},
        }
    )
    assert meter.output_bytes == 3 + 5 + len("lookup")
    assert meter.thinking
    assert meter.counted_usage(1).output_tokens == 10_000  # thinking: the whole limit


def test_an_overrunning_delta_is_flagged_and_not_forwarded() -> None:
    reader = MessagesStreamReader(max_output_tokens=10)
    reader.feed(sse(START))
    over = {"type": "message_delta", "delta": {"stop_reason": None}, "usage": {"output_tokens": 11}}
    (event,) = reader.feed(sse(over))
    assert event.kind == "over_limit"
    assert reader.meter.exceeded


def test_an_error_event_is_classified_with_its_type() -> None:
    reader = MessagesStreamReader(max_output_tokens=10)
    error = error_body("overloaded_error", "Overloaded")
    (event,) = reader.feed(sse(error))
    assert event.kind == "error"
    assert event.error is not None
    assert (event.error.type, event.error.message) == ("overloaded_error", "Overloaded")
    (junk,) = reader.feed(b"data: {not json\n\n")
    assert junk.kind == "other"


def test_usage_merges_field_by_field_never_sums() -> None:
    first = AnthropicUsage(input_tokens=5, output_tokens=1)
    later = AnthropicUsage(output_tokens=9)
    assert first.merged(later, frozenset({"output_tokens"})) == AnthropicUsage(
        input_tokens=5, output_tokens=9
    )


# -- errors -------------------------------------------------------------------------------


def test_every_error_type_has_anthropics_status() -> None:
    assert ERROR_STATUS["invalid_request_error"] == 400
    assert ERROR_STATUS["authentication_error"] == 401
    assert ERROR_STATUS["permission_error"] == 403
    assert ERROR_STATUS["not_found_error"] == 404
    assert ERROR_STATUS["request_too_large"] == 413
    assert ERROR_STATUS["rate_limit_error"] == 429
    assert ERROR_STATUS["api_error"] == 500
    assert ERROR_STATUS["overloaded_error"] == 529
    for kind, status in ERROR_STATUS.items():
        assert error_type_for_status(status) == kind
    assert error_type_for_status(503) == "api_error"
    assert error_type_for_status(418) == "invalid_request_error"


def test_error_bodies_are_parsed_whatever_they_hold() -> None:
    body = json.dumps({**error_body("rate_limit_error", "slow down"), "request_id": "req_1"})
    info = parse_error_body(429, body.encode())
    assert (info.status, info.type, info.message, info.request_id) == (
        429,
        "rate_limit_error",
        "slow down",
        "req_1",
    )
    page = parse_error_body(502, b"<html>Bad Gateway</html>", {"request-id": "req_2"})
    assert (page.type, page.message, page.request_id) == (
        "api_error",
        "<html>Bad Gateway</html>",
        "req_2",
    )
    empty = parse_error_body(529, None)
    assert (empty.type, empty.message) == ("overloaded_error", "upstream error 529")


def test_a_budget_stop_is_a_429_rate_limit_error_naming_the_budget_never_retried() -> None:
    now = datetime(2026, 12, 3, 12, tzinfo=UTC)
    soon = BudgetExceeded(
        tenant_id="t", budget="day", requested_nanos=2, available_nanos=1, limit_nanos=3,
        resets_at=now + timedelta(minutes=30),
    )  # fmt: skip
    wire = error_for(soon, now=now.timestamp())
    assert wire.status == 429
    body = json.loads(wire.body)
    assert body["type"] == "error"
    assert body["error"]["type"] == "rate_limit_error"
    assert "day" in body["error"]["message"]
    assert wire.headers["x-should-retry"] == "false"
    assert wire.headers["x-aegis-budget"] == "day"
    assert wire.headers["retry-after"] == "1800"
    later = BudgetExceeded(
        tenant_id="t", budget="month", requested_nanos=2, available_nanos=1, limit_nanos=3,
        resets_at=now + timedelta(days=20),
    )  # fmt: skip
    assert "retry-after" not in error_for(later, now=now.timestamp()).headers


def test_a_rate_limit_is_retryable_and_other_refusals_map_to_anthropic_types() -> None:
    limited = RateLimited(
        tenant_id="t", limit="rpm:claude-*", requested=1, available=0, limit_value=5,
        retry_after_s=7,
    )  # fmt: skip
    wire = error_for(limited)
    assert (wire.status, wire.headers) == (429, {"retry-after": "7"})
    assert json.loads(wire.body)["error"]["type"] == "rate_limit_error"
    denied = error_for(PolicyDenied("no", tenant_id="t", reason="model_not_allowed"))
    assert (denied.status, json.loads(denied.body)["error"]["type"]) == (403, "permission_error")
    invalid = error_for(InvalidRequestBody("max_tokens: Field required", param="max_tokens"))
    assert (invalid.status, json.loads(invalid.body)["error"]["type"]) == (
        400,
        "invalid_request_error",
    )
    down = error_for(LedgerUnavailable("redis down: password=hunter2"))
    assert down.status == 503
    assert b"hunter2" not in down.body
