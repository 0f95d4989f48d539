"""A local server that speaks Anthropic's Messages wire protocol, scriptable per test.

It serves ``POST /v1/messages`` (JSON, and with ``"stream": true`` the named SSE events
``message_start``, ``content_block_start``/``_delta``/``_stop`` per block, ``ping``,
``message_delta`` with cumulative usage and ``message_stop``) and ``POST
/v1/messages/count_tokens``. Like the real API it wants the key in ``x-api-key`` and an
``anthropic-version`` header, checks ``model``, ``max_tokens`` (required), ``messages`` and
``thinking.budget_tokens`` (at least 1,024 and below ``max_tokens`` unless the
``interleaved-thinking-*`` beta is on), stops at ``max_tokens`` (``stop_reason:
"max_tokens"``), and answers errors as ``{"type": "error", "error": {"type", "message"},
"request_id"}`` with the matching status and a ``request-id`` header.

Tokens are counted by a fake tokenizer: one token per whitespace-separated word of every text
in the request plus 3 per message; the reply's output is its words (thinking words included)
unless a :class:`Reply` fixes the counts. Usage carries ``input_tokens`` (without the cache),
``cache_creation_input_tokens`` with its ``cache_creation`` split, ``cache_read_input_tokens``,
``output_tokens``, ``output_tokens_details.thinking_tokens`` and ``server_tool_use``.

Script it with :meth:`FakeAnthropic.enqueue` (a :class:`Reply` or a :class:`Fault` per
request, then :attr:`FakeAnthropic.default`); every request is in
:attr:`FakeAnthropic.requests`. Run it in a test with ``async with FakeAnthropicServer() as
server`` (``AsyncAnthropic(base_url=server.url, api_key=...)``), or as a process:
``python -m fakes.anthropic_upstream --port 0`` prints ``listening on http://127.0.0.1:PORT``
and is scripted over HTTP (``POST /_fake/enqueue``, ``PUT /_fake/default``,
``GET /_fake/requests``, ``POST /_fake/reset``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import json
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from aiohttp import web

from fakes.serving import LocalServer, run_cli

__all__ = [
    "DEFAULT_TEXT",
    "FAKE",
    "FakeAnthropic",
    "FakeAnthropicServer",
    "Fault",
    "RecordedRequest",
    "Reply",
    "create_app",
    "prompt_tokens",
]

DEFAULT_TEXT: Final = "Hello! I am a fake Claude, answering one word at a time."
ERROR_STATUS: Final = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "overloaded_error": 529,
}


@dataclass
class Reply:
    """A successful answer, and how to deliver it."""

    text: str | None = DEFAULT_TEXT
    """The assistant's text; ``None`` for no text block."""
    thinking: str | None = None
    """A thinking block's text, before the reply (billed as output)."""
    tool_uses: list[dict[str, Any]] = field(default_factory=list)
    """``[{"id": "toolu_1", "name": "get_weather", "input": {...}}]`` after the text."""
    input_tokens: int | None = None
    """Reported uncached input; default: the fake tokenizer's count of the request."""
    cache_write_5m_tokens: int = 0
    cache_write_1h_tokens: int = 0
    cache_read_tokens: int = 0
    output_tokens: int | None = None
    """Reported output; default: the words sent (thinking included)."""
    web_search_requests: int = 0
    ignore_max_tokens: bool = False
    """Send the whole reply whatever the request's ``max_tokens``."""
    report_usage: bool = True
    """``False``: leave ``usage`` out of the JSON answer (a broken upstream)."""
    final_usage: bool = True
    """Stream: report usage in ``message_delta`` (else only ``message_start`` has it)."""
    break_after: int | None = None
    """Stream: cut the connection after this many events."""
    error_after: int | None = None
    """Stream: send an ``error`` event (``overloaded_error``) after this many events."""
    garbage_after: int | None = None
    """Stream: send an event whose data is not JSON after this many events, then end."""
    delay_s: float = 0.0
    """Wait before answering."""
    chunk_delay_s: float = 0.0
    """Stream: wait between events."""


@dataclass
class Fault:
    """An error answer: status, Anthropic error body, headers."""

    status: int
    type: str = "api_error"
    message: str = "The fake upstream was told to fail."
    headers: dict[str, str] = field(default_factory=dict)
    raw_body: str | None = None
    """Send this text instead of the JSON body (a non-JSON error page)."""

    @classmethod
    def of(cls, kind: str, message: str = "scripted failure", **kw: Any) -> Fault:
        """A fault of error type ``kind`` with the status Anthropic uses for it."""
        return cls(ERROR_STATUS[kind], kind, message, **kw)

    @classmethod
    def rate_limited(cls, *, retry_after_s: int = 0) -> Fault:
        """429 ``rate_limit_error`` with ``retry-after`` (the SDK retries it)."""
        return cls(
            429,
            "rate_limit_error",
            "Number of request tokens has exceeded your per-minute rate limit",
            headers={"retry-after": str(retry_after_s)},
        )

    @classmethod
    def overloaded(cls) -> Fault:
        """529 ``overloaded_error`` (the SDK retries it)."""
        return cls(529, "overloaded_error", "Overloaded", headers={"retry-after": "0"})


Action = Reply | Fault


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the fake saw it."""

    method: str
    path: str
    headers: Mapping[str, str]
    body: Any
    """The parsed JSON body (``None`` when empty or not JSON)."""


class FakeAnthropic:
    """The fake's script and request log; one instance serves one app."""

    def __init__(self, *, default: Reply | None = None, api_key: str | None = None) -> None:
        self.default = default or Reply()
        self.api_key = api_key
        """When set, other keys get 401."""
        self.known_models: set[str] | None = None
        """When set, other models get 404."""
        self.requests: list[RecordedRequest] = []
        self._queue: deque[Action] = deque()
        self._ids = itertools.count(1)

    def enqueue(self, *actions: Action) -> None:
        """Answer the next requests with these actions, in order."""
        self._queue.extend(actions)

    def reset(self) -> None:
        """Forget the queue and the log; back to the default reply."""
        self._queue.clear()
        self.requests.clear()

    def next_action(self) -> Action:
        return self._queue.popleft() if self._queue else self.default

    def new_id(self, prefix: str) -> str:
        return f"{prefix}_fake{next(self._ids):06d}"

    @property
    def last_body(self) -> Any:
        """The body of the most recent request."""
        return self.requests[-1].body


FAKE: Final = web.AppKey("fake_anthropic", FakeAnthropic)


class _Invalid(Exception):
    def __init__(self, message: str, kind: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.message = message
        self.kind = kind


def _error(
    fake: FakeAnthropic, status: int, kind: str, message: str, **headers: str
) -> web.Response:
    request_id = fake.new_id("req")
    body = {"type": "error", "error": {"type": kind, "message": message}, "request_id": request_id}
    return web.json_response(body, status=status, headers={"request-id": request_id, **headers})


def _fault(fake: FakeAnthropic, fault: Fault) -> web.Response:
    if fault.raw_body is not None:
        return web.Response(status=fault.status, text=fault.raw_body, headers=fault.headers)
    return _error(fake, fault.status, fault.type, fault.message, **fault.headers)


_UNCOUNTED: Final = frozenset({"type", "role", "cache_control", "id", "tool_use_id", "signature"})


def _words(value: Any) -> int:
    """Whitespace-separated words of every string in ``value``."""
    if isinstance(value, str):
        return len(value.split())
    if isinstance(value, Mapping):
        return sum(_words(v) for k, v in value.items() if k not in _UNCOUNTED)
    if isinstance(value, list):
        return sum(_words(v) for v in value)
    return 0


def prompt_tokens(body: Mapping[str, Any]) -> int:
    """The fake tokenizer's count of a request's prompt."""
    messages = body.get("messages") or []
    return (
        _words(messages)
        + 3 * len(messages)
        + _words(body.get("system"))
        + _words(body.get("tools"))
    )


def _int(body: Mapping[str, Any], key: str, minimum: int) -> int:
    value = body.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Invalid(f"{key}: Input should be a valid integer")
    if value < minimum:
        raise _Invalid(f"{key}: Input should be greater than or equal to {minimum}")
    return value


def _validate(fake: FakeAnthropic, request: web.Request, body: Any, *, counting: bool) -> None:
    if not isinstance(body, dict):
        raise _Invalid("Request body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise _Invalid("model: Field required")
    if not counting:
        if "max_tokens" not in body:
            raise _Invalid("max_tokens: Field required")
        _int(body, "max_tokens", 1)
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _Invalid("messages: Field required")
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
            raise _Invalid(f"messages.{i}.role: Input should be 'user' or 'assistant'")
        content = message.get("content")
        if not isinstance(content, str | list):
            raise _Invalid(f"messages.{i}.content: Field required")
    thinking = body.get("thinking")
    if isinstance(thinking, dict) and thinking.get("type") == "enabled":
        budget = _int(thinking, "budget_tokens", 1024)
        beta = request.headers.get("anthropic-beta", "")
        if not counting and budget >= body["max_tokens"] and "interleaved-thinking" not in beta:
            raise _Invalid("`max_tokens` must be greater than `thinking.budget_tokens`")
    if fake.known_models is not None and model not in fake.known_models:
        raise _Invalid(f"model: {model}", kind="not_found_error")


def _usage(reply: Reply, prompt: int, output: int, thinking: int) -> dict[str, Any]:
    writes = reply.cache_write_5m_tokens + reply.cache_write_1h_tokens
    usage: dict[str, Any] = {
        "input_tokens": prompt if reply.input_tokens is None else reply.input_tokens,
        "cache_creation_input_tokens": writes,
        "cache_read_input_tokens": reply.cache_read_tokens,
        "cache_creation": {
            "ephemeral_5m_input_tokens": reply.cache_write_5m_tokens,
            "ephemeral_1h_input_tokens": reply.cache_write_1h_tokens,
        },
        "output_tokens": output,
        "service_tier": "standard",
    }
    if thinking:
        usage["output_tokens_details"] = {"thinking_tokens": thinking}
    if reply.web_search_requests:
        usage["server_tool_use"] = {
            "web_search_requests": reply.web_search_requests,
            "web_fetch_requests": 0,
        }
    return usage


@dataclass
class _Plan:
    """What one reply sends, once cut to ``max_tokens``."""

    thinking_words: list[str]
    text_words: list[str]
    tool_uses: list[dict[str, Any]]
    stop_reason: str
    output_tokens: int
    thinking_tokens: int


def _chunks(text: str | None) -> list[str]:
    if not text:
        return []
    words = text.split(" ")
    return [w + (" " if i < len(words) - 1 else "") for i, w in enumerate(words)]


def _plan(reply: Reply, max_tokens: int) -> _Plan:
    thinking = _chunks(reply.thinking)
    text = _chunks(reply.text)
    tools = list(reply.tool_uses)
    stop = "tool_use" if tools else "end_turn"
    if not reply.ignore_max_tokens and len(thinking) + len(text) > max_tokens:
        keep = max_tokens
        thinking = thinking[:keep]
        text = text[: max(0, keep - len(thinking))]
        tools, stop = [], "max_tokens"
    sent = len(thinking) + len(text) + sum(_words(t.get("input")) + 1 for t in tools)
    output = sent if reply.output_tokens is None else reply.output_tokens
    return _Plan(thinking, text, tools, stop, output, len(thinking))


def _content(plan: _Plan) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    if plan.thinking_words:
        blocks.append(
            {"type": "thinking", "thinking": "".join(plan.thinking_words), "signature": "sig=="}
        )
    if plan.text_words:
        blocks.append({"type": "text", "text": "".join(plan.text_words)})
    for tool in plan.tool_uses:
        blocks.append({"type": "tool_use", **tool})
    return blocks


def _message(fake: FakeAnthropic, model: str, content: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "id": fake.new_id("msg"),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": None,
        "stop_sequence": None,
    }


def _events(
    fake: FakeAnthropic, body: Mapping[str, Any], reply: Reply, plan: _Plan
) -> list[dict[str, Any]]:
    """The exact event sequence of one streamed reply."""
    prompt = prompt_tokens(body)
    start = _message(fake, body["model"], [])
    start["usage"] = _usage(reply, prompt, 1, 0)
    events: list[dict[str, Any]] = [{"type": "message_start", "message": start}]
    index = 0

    def block(start_block: dict[str, Any], deltas: list[dict[str, Any]]) -> None:
        nonlocal index
        events.append({"type": "content_block_start", "index": index, "content_block": start_block})
        if index == 0:
            events.append({"type": "ping"})
        events.extend({"type": "content_block_delta", "index": index, "delta": d} for d in deltas)
        events.append({"type": "content_block_stop", "index": index})
        index += 1

    if plan.thinking_words:
        deltas = [{"type": "thinking_delta", "thinking": w} for w in plan.thinking_words]
        deltas.append({"type": "signature_delta", "signature": "sig=="})
        block({"type": "thinking", "thinking": "", "signature": ""}, deltas)
    if plan.text_words:
        block(
            {"type": "text", "text": ""},
            [{"type": "text_delta", "text": w} for w in plan.text_words],
        )
    for tool in plan.tool_uses:
        raw = json.dumps(tool.get("input", {}))
        half = len(raw) // 2
        block(
            {"type": "tool_use", "id": tool["id"], "name": tool["name"], "input": {}},
            [
                {"type": "input_json_delta", "partial_json": raw[:half]},
                {"type": "input_json_delta", "partial_json": raw[half:]},
            ],
        )
    delta: dict[str, Any] = {
        "type": "message_delta",
        "delta": {"stop_reason": plan.stop_reason, "stop_sequence": None},
    }
    if reply.final_usage:
        final = _usage(reply, prompt, plan.output_tokens, plan.thinking_tokens)
        final.pop("service_tier")
        delta["usage"] = final
    else:
        delta["usage"] = None
    events.append(delta)
    events.append({"type": "message_stop"})
    return events


async def _authenticate(request: web.Request) -> tuple[FakeAnthropic, Any, web.Response | None]:
    fake = request.app[FAKE]
    raw = await request.read()
    try:
        body: Any = json.loads(raw) if raw else None
    except ValueError:
        body = None
    fake.requests.append(RecordedRequest(request.method, request.path, dict(request.headers), body))
    key = request.headers.get("x-api-key")
    authorization = request.headers.get("authorization", "")
    if key is None and authorization.startswith("Bearer "):
        key = authorization.removeprefix("Bearer ")  # what the anthropic SDK 2.x sends
    if not key or (fake.api_key is not None and key != fake.api_key):
        return fake, body, _error(fake, 401, "authentication_error", "invalid x-api-key")
    if not request.headers.get("anthropic-version"):
        return (
            fake,
            body,
            _error(fake, 400, "invalid_request_error", "anthropic-version: header is required"),
        )
    if body is None:
        return fake, body, _error(fake, 400, "invalid_request_error", "Invalid JSON body")
    return fake, body, None


async def messages(request: web.Request) -> web.StreamResponse:
    fake, body, refused = await _authenticate(request)
    if refused is not None:
        return refused
    try:
        _validate(fake, request, body, counting=False)
    except _Invalid as exc:
        return _error(fake, ERROR_STATUS[exc.kind], exc.kind, exc.message)
    action = fake.next_action()
    if isinstance(action, Fault):
        return _fault(fake, action)
    if action.delay_s:
        await asyncio.sleep(action.delay_s)
    plan = _plan(action, body["max_tokens"])
    request_id = fake.new_id("req")
    if body.get("stream") is True:
        return await _stream(request, action, _events(fake, body, action, plan), request_id)
    message = _message(fake, body["model"], _content(plan))
    message["stop_reason"] = plan.stop_reason
    if action.report_usage:
        message["usage"] = _usage(
            action, prompt_tokens(body), plan.output_tokens, plan.thinking_tokens
        )
    return web.json_response(message, headers={"request-id": request_id})


def _sse(event: Mapping[str, Any]) -> bytes:
    return f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode()


async def _stream(
    request: web.Request, reply: Reply, events: Sequence[dict[str, Any]], request_id: str
) -> web.StreamResponse:
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "request-id": request_id}
    )
    await response.prepare(request)
    for i, event in enumerate(events):
        if reply.break_after is not None and i >= reply.break_after:
            transport = request.transport
            if transport is not None:
                transport.abort()
            return response
        if reply.error_after is not None and i >= reply.error_after:
            error = {
                "type": "error",
                "error": {"type": "overloaded_error", "message": "Overloaded"},
            }
            await response.write(_sse(error))
            await response.write_eof()
            return response
        if reply.garbage_after is not None and i >= reply.garbage_after:
            await response.write(b"event: content_block_delta\ndata: {not json\n\n")
            await response.write_eof()
            return response
        if reply.chunk_delay_s:
            await asyncio.sleep(reply.chunk_delay_s)
        await response.write(_sse(event))
    await response.write_eof()
    return response


async def count_tokens(request: web.Request) -> web.StreamResponse:
    fake, body, refused = await _authenticate(request)
    if refused is not None:
        return refused
    try:
        _validate(fake, request, body, counting=True)
    except _Invalid as exc:
        return _error(fake, ERROR_STATUS[exc.kind], exc.kind, exc.message)
    action = fake.next_action()
    if isinstance(action, Fault):
        return _fault(fake, action)
    return web.json_response({"input_tokens": prompt_tokens(body)})


# -- control API (for the subprocess mode) -------------------------------------------------


def _action_from_dict(data: Mapping[str, Any]) -> Action:
    fields = {k: v for k, v in data.items() if k != "kind"}
    return Fault(**fields) if data.get("kind") == "fault" else Reply(**fields)


async def control_enqueue(request: web.Request) -> web.Response:
    data = await request.json()
    request.app[FAKE].enqueue(*(_action_from_dict(a) for a in data.get("actions", [])))
    return web.json_response({"queued": len(data.get("actions", []))})


async def control_default(request: web.Request) -> web.Response:
    request.app[FAKE].default = Reply(**await request.json())
    return web.json_response(dataclasses.asdict(request.app[FAKE].default))


async def control_requests(request: web.Request) -> web.Response:
    log = [{"method": r.method, "path": r.path, "body": r.body} for r in request.app[FAKE].requests]
    return web.json_response(log)


async def control_reset(request: web.Request) -> web.Response:
    request.app[FAKE].reset()
    return web.json_response({"reset": True})


def create_app(fake: FakeAnthropic | None = None) -> web.Application:
    """The fake Messages API as an aiohttp application (``app[FAKE]`` is its script and log)."""
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app[FAKE] = fake or FakeAnthropic()
    app.router.add_post("/v1/messages", messages)
    app.router.add_post("/v1/messages/count_tokens", count_tokens)
    app.router.add_post("/_fake/enqueue", control_enqueue)
    app.router.add_put("/_fake/default", control_default)
    app.router.add_get("/_fake/requests", control_requests)
    app.router.add_post("/_fake/reset", control_reset)
    return app


class FakeAnthropicServer(LocalServer):
    """The fake served on a local port in this process (``port=0``: a free one); the SDK
    takes :attr:`url` as ``base_url``."""

    def __init__(
        self, fake: FakeAnthropic | None = None, *, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        super().__init__(host=host, port=port)
        self.fake = fake or FakeAnthropic()

    def make_app(self) -> web.Application:
        return create_app(self.fake)


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m fakes.anthropic_upstream [--host H] [--port N]``."""
    description = __doc__.split("\n", 1)[0] if __doc__ else ""
    run_cli(description, lambda host, port: FakeAnthropicServer(host=host, port=port), argv)


if __name__ == "__main__":
    main()
