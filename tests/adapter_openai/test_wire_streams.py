"""The SSE parser, the output meter and the raw stream readers."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, strategies as st

from aegis.adapters.openai import (
    DONE_EVENT,
    ChatStreamReader,
    OutputMeter,
    ResponsesStreamReader,
    SseParser,
)
from aegis.core import Usage


def sse(data: Any, event: str | None = None) -> bytes:
    payload = data if isinstance(data, str) else json.dumps(data)
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {payload}\n\n".encode()


def chunk(content: str | None = None, *, index: int = 0, usage: Any = "absent") -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": "c",
        "object": "chat.completion.chunk",
        "choices": [{"index": index, "delta": {"content": content}, "finish_reason": None}],
    }
    if usage != "absent":
        out["usage"] = usage
    return out


USAGE = {
    "prompt_tokens": 10,
    "completion_tokens": 3,
    "total_tokens": 13,
    "prompt_tokens_details": {"cached_tokens": 4},
    "completion_tokens_details": {"reasoning_tokens": 1},
}


def chat_stream(*pieces: str, usage: bool = True) -> bytes:
    out = b"".join(sse(chunk(p, usage=None)) for p in pieces)
    if usage:
        out += sse({"id": "c", "object": "chat.completion.chunk", "choices": [], "usage": USAGE})
    return out + DONE_EVENT


def test_parser_keeps_raw_bytes_and_reads_fields() -> None:
    stream = b': keep-alive\n\nevent: response.created\ndata: {"a": 1}\n\ndata: x\ndata: y\n\n'
    events = SseParser().feed(stream)
    assert [e.raw for e in events] == [
        b": keep-alive\n\n",
        b'event: response.created\ndata: {"a": 1}\n\n',
        b"data: x\ndata: y\n\n",
    ]
    assert events[0].data is None
    assert events[1].event == "response.created"
    assert events[1].data == b'{"a": 1}'
    assert events[2].data == b"x\ny"


def test_parser_handles_crlf_and_waits_for_partial_events() -> None:
    parser = SseParser()
    first = parser.feed(b"data: 1\r\n\r\ndata: 2\r\n")
    assert [e.data for e in first] == [b"1"]
    assert parser.pending == b"data: 2\r\n"
    second = parser.feed(b"\r\n")
    assert [e.data for e in second] == [b"2"]
    assert second[0].raw == b"data: 2\r\n\r\n"
    assert parser.pending == b""


@given(st.lists(st.integers(min_value=0, max_value=400), max_size=12))
def test_any_split_of_the_bytes_gives_the_same_events(cuts: list[int]) -> None:
    stream = chat_stream("Hel", "lo", " wörld") + b"event: x\r\ndata: 1\r\n\r\n"
    whole = SseParser().feed(stream)
    parser = SseParser()
    pieces: list[bytes] = []
    last = 0
    for cut in sorted({min(c, len(stream)) for c in cuts}):
        pieces.append(stream[last:cut])
        last = cut
    pieces.append(stream[last:])
    split = [event for piece in pieces for event in parser.feed(piece)]
    assert split == whole
    assert b"".join(e.raw for e in split) == stream


def test_chat_reader_classifies_and_meters() -> None:
    reader = ChatStreamReader(max_output_tokens=100)
    events = reader.feed(chat_stream("Hel", "lo", " wörld"))
    assert [e.kind for e in events] == ["chunk", "chunk", "chunk", "usage", "done"]
    assert events[3].usage == Usage(10, 4, 3, 1)
    assert reader.meter.usage == Usage(10, 4, 3, 1)
    assert reader.meter.output_bytes == 3 + 2 + 7
    assert reader.done
    # Forwarding every event but the usage chunk gives the client's stream byte for byte.
    forwarded = b"".join(e.raw for e in events if e.kind != "usage")
    assert forwarded == chat_stream("Hel", "lo", " wörld", usage=False)


def test_chat_reader_spots_an_upstream_that_ignores_the_limit() -> None:
    reader = ChatStreamReader(max_output_tokens=2)
    events = reader.feed(chat_stream("a", "b", "c", "d"))
    assert [e.kind for e in events][:3] == ["chunk", "chunk", "over_limit"]
    assert reader.meter.exceeded
    # Billing without usage: the bytes seen, capped at the limit.
    assert reader.meter.counted_output_tokens() == 2


def test_chat_reader_limits_each_choice_separately() -> None:
    reader = ChatStreamReader(max_output_tokens=2, n=2)
    stream = b"".join(sse(chunk("x", index=i)) for i in (0, 1, 0, 1))
    assert [e.kind for e in reader.feed(stream)] == ["chunk"] * 4
    assert [e.kind for e in reader.feed(sse(chunk("x", index=1)))] == ["over_limit"]


def test_running_usage_that_passes_the_limit_is_an_overrun() -> None:
    reader = ChatStreamReader(max_output_tokens=2)
    running = {**USAGE, "completion_tokens": 5}
    events = reader.feed(sse(chunk("x", usage=running)))
    assert events[0].kind == "over_limit"


def test_chat_reader_reports_error_frames() -> None:
    reader = ChatStreamReader(max_output_tokens=None)
    error = {"error": {"message": "boom", "type": "server_error", "param": None, "code": "x"}}
    events = reader.feed(sse(chunk("a")) + sse(error))
    assert [e.kind for e in events] == ["chunk", "error"]
    assert reader.error is not None
    assert reader.error.code == "x"
    assert reader.error.message == "boom"


def test_tool_call_deltas_are_counted() -> None:
    reader = ChatStreamReader(max_output_tokens=None)
    call = {
        "id": "c",
        "choices": [
            {
                "index": 0,
                "delta": {
                    "tool_calls": [
                        {"index": 0, "id": "call_1", "function": {"name": "f", "arguments": "{}"}}
                    ]
                },
            }
        ],
    }
    reader.feed(sse(call))
    assert reader.meter.output_bytes == 3
    assert reader.meter.counted_usage(7) == Usage(input_tokens=7, output_tokens=4)


def test_meter_without_output_counts_nothing() -> None:
    meter = OutputMeter(max_output_tokens=10)
    assert meter.counted_output_tokens() == 0
    assert meter.add(0, 0)


def test_responses_reader() -> None:
    usage = {
        "input_tokens": 9,
        "input_tokens_details": {"cached_tokens": 2},
        "output_tokens": 3,
        "output_tokens_details": {"reasoning_tokens": 1},
        "total_tokens": 12,
    }
    stream = (
        sse({"type": "response.created", "response": {"usage": None}}, "response.created")
        + sse({"type": "response.output_text.delta", "delta": "Hi"}, "response.output_text.delta")
        + sse(
            {"type": "response.reasoning_summary_text.delta", "delta": "thinking"},
            "response.reasoning_summary_text.delta",
        )
        + sse({"type": "response.completed", "response": {"usage": usage}}, "response.completed")
    )
    reader = ResponsesStreamReader(max_output_tokens=1)
    events = reader.feed(stream)
    assert [e.kind for e in events] == ["chunk", "chunk", "chunk", "terminal"]
    assert events[-1].usage == Usage(9, 2, 3, 1)
    assert reader.done
    assert reader.meter.output_bytes == 2 + 8
    over = ResponsesStreamReader(max_output_tokens=1).feed(
        sse({"type": "response.output_text.delta", "delta": "a"})
        + sse({"type": "response.output_text.delta", "delta": "b"})
    )
    assert [e.kind for e in over] == ["chunk", "over_limit"]


def test_responses_reader_failures() -> None:
    reader = ResponsesStreamReader(max_output_tokens=None)
    events = reader.feed(
        sse({"type": "error", "code": "server_error", "message": "boom", "param": None}, "error")
    )
    assert events[0].kind == "error"
    assert reader.error is not None
    assert reader.error.message == "boom"
    failed = ResponsesStreamReader(max_output_tokens=None)
    body = {"type": "response.failed", "response": {"error": {"code": "x", "message": "no"}}}
    assert failed.feed(sse(body))[0].kind == "terminal"
    assert failed.error is not None
    assert failed.error.code == "x"


def test_unparseable_events_pass_as_other() -> None:
    reader = ChatStreamReader(max_output_tokens=None)
    assert [e.kind for e in reader.feed(b"data: {not json\n\n: ping\n\n")] == ["other", "other"]


def test_reasoning_text_of_compatible_servers_is_counted() -> None:
    reader = ChatStreamReader(max_output_tokens=None)
    delta = {"reasoning_content": "hmm", "content": None}
    reader.feed(sse({"id": "c", "choices": [{"index": 0, "delta": delta}]}))
    assert reader.meter.output_bytes == 3
