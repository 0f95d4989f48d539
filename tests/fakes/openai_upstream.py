"""A local server that speaks OpenAI's wire protocol, scriptable per test.

It serves ``POST /v1/chat/completions`` (JSON and SSE with ``data: [DONE]`` and the usage chunk
when ``stream_options.include_usage`` is set), ``POST /v1/responses`` (JSON and named SSE
events ending in ``response.completed``/``response.incomplete``; each response is stored for
``GET /v1/responses/{id}``), ``POST /v1/responses/input_tokens``, legacy
``POST /v1/completions`` (``max_tokens`` 16 by default), ``POST /v1/moderations`` (flags
"kill"), ``POST /v1/embeddings`` (``float`` and ``base64`` encodings) and ``GET /v1/models``.
Every answer carries an ``x-request-id`` of its own, as OpenAI's do. Errors use OpenAI's body
``{"error": {"message", "type", "param", "code"}}`` and status.

Script it per request with :meth:`FakeOpenAI.enqueue`: each request takes the next action (a
:class:`Reply` or a :class:`Fault`), or the default reply when the queue is empty. A reply's
text streams one word per chunk ("token"); usage counts are derived from the request and the
reply unless set. Every request is recorded in :attr:`FakeOpenAI.requests`.

Three ways to run it:

* in a test, on a free port: ``async with FakeUpstream() as upstream:`` then
  ``AsyncOpenAI(base_url=upstream.base_url, api_key="test")``;
* as an aiohttp app of your own: ``create_app(fake)``;
* as a process: ``python -m fakes.openai_upstream --port 0`` (with ``tests/`` on the path) prints
  ``listening on http://127.0.0.1:PORT/v1``; script it over HTTP: ``POST /_fake/enqueue``
  ``{"actions": [{"kind": "fault", "status": 429}, {"kind": "reply", "text": "hi"}]}``,
  ``PUT /_fake/default`` (a reply), ``GET /_fake/requests``, ``POST /_fake/reset``.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import itertools
import json
import re
import struct
import time
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from aiohttp import web

from fakes.serving import LocalServer, run_cli

__all__ = [
    "DEFAULT_TEXT",
    "FAKE",
    "Bill",
    "FakeOpenAI",
    "FakeUpstream",
    "Fault",
    "RecordedRequest",
    "Reply",
    "create_app",
    "words",
]

DEFAULT_TEXT: Final = "Hello! I am a fake upstream, answering one word at a time."
_WORD: Final = re.compile(r"\S+\s*|\s+")
_COUNT: Final = re.compile(r"\S+")
_ROLES: Final = frozenset({"system", "developer", "user", "assistant", "tool", "function"})


def words(text: str) -> list[str]:
    """The reply's "tokens": each word with the white space after it."""
    return _WORD.findall(text)


@dataclass
class Reply:
    """A successful answer, and how to deliver it."""

    text: str | None = DEFAULT_TEXT
    """The assistant's text; ``None`` for a reply of tool calls only."""
    tool_calls: list[dict[str, Any]] | None = None
    """``[{"id": "call_1", "name": "get_weather", "arguments": "{...}"}]``."""
    prompt_tokens: int | None = None
    """Reported input; default: words in the request plus 3 per message."""
    cached_tokens: int = 0
    completion_tokens: int | None = None
    """Reported output; default: the words sent (per choice) plus ``reasoning_tokens``."""
    reasoning_tokens: int = 0
    report_usage: bool = True
    """``False``: no usage at all (JSON without ``usage``; no usage chunk even if asked)."""
    ignore_max_tokens: bool = False
    """Send the whole text whatever the request's output limit."""
    break_after: int | None = None
    """Stream: cut the connection after this many events."""
    error_after: int | None = None
    """Stream: send an error event after this many events, then end the stream."""
    garbage_after: int | None = None
    """Stream: send an event that is not JSON after this many events, then end the stream."""
    delay_s: float = 0.0
    """Wait before answering (before the response headers)."""
    chunk_delay_s: float = 0.0
    """Stream: wait between events."""
    status: int = 200
    web_searches: int = 0
    """Responses: run this many web searches (``web_search_call`` output items) when the
    request offers a web search tool."""
    served_tier: str | None = None
    """The ``service_tier`` the answer names; default: the one asked for when it is
    ``priority`` or ``flex``, else ``default`` (as the API resolves ``auto``)."""
    cut_body_at: int | None = None
    """Not streamed: send the 200 headers (with the whole body's length) and this many bytes
    of the body, then reset the connection (the answer was generated, and billed)."""


@dataclass
class Fault:
    """An error answer: status, OpenAI error body, headers."""

    status: int
    message: str = "The fake upstream was told to fail."
    type: str = "server_error"
    code: str | None = None
    param: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    raw_body: str | None = None
    """Send this text instead of the JSON body (a non-JSON error page)."""

    @classmethod
    def rate_limited(cls, *, retry_after_ms: int = 1) -> Fault:
        """429 with ``retry-after-ms`` (the SDK retries it after that delay)."""
        return cls(
            429,
            "Rate limit reached for requests.",
            "requests",
            "rate_limit_exceeded",
            headers={"retry-after-ms": str(retry_after_ms), "retry-after": "0"},
        )

    @classmethod
    def server_error(cls, *, retry_after_ms: int = 1) -> Fault:
        """500 (the SDK retries it)."""
        return cls(
            500,
            "The server had an error while processing your request.",
            "server_error",
            headers={"retry-after-ms": str(retry_after_ms)},
        )

    @classmethod
    def bad_request(cls, message: str = "Invalid request.", *, param: str | None = None) -> Fault:
        """400 ``invalid_request_error``."""
        return cls(400, message, "invalid_request_error", param=param)

    @classmethod
    def unauthorized(cls) -> Fault:
        """401 ``invalid_api_key``."""
        return cls(401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key")

    @classmethod
    def not_found(cls, model: str = "unknown") -> Fault:
        """404 ``model_not_found``."""
        return cls(
            404,
            f"The model `{model}` does not exist or you do not have access to it.",
            "invalid_request_error",
            "model_not_found",
            param="model",
        )


Action = Reply | Fault


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the fake saw it."""

    method: str
    path: str
    headers: Mapping[str, str]
    body: Any
    """The parsed JSON body (``None`` when empty or not JSON)."""
    raw: bytes


@dataclass(frozen=True)
class Bill:
    """What the fake provider bills for one answer it started: everything it generated
    (reasoning and the whole planned output), whether or not the caller read it all."""

    prompt_tokens: int
    cached_tokens: int
    completion_tokens: int


class FakeOpenAI:
    """The fake's script and request log; one instance serves one app."""

    def __init__(self, *, default: Reply | None = None, api_key: str | None = None) -> None:
        self.default = default or Reply()
        self.api_key = api_key
        """When set, other keys get 401."""
        self.known_models: set[str] | None = None
        """When set, other models get 404."""
        self.requests: list[RecordedRequest] = []
        self.stored: dict[str, dict[str, Any]] = {}
        """Responses objects by id, as ``GET /v1/responses/{id}`` returns them."""
        self.billed: list[Bill] = []
        """One bill per successful answer started (what a real provider would invoice)."""
        self._queue: deque[Action] = deque()
        self._ids = itertools.count(1)
        self._arrived = asyncio.Event()

    def enqueue(self, *actions: Action) -> None:
        """Answer the next requests with these actions, in order."""
        self._queue.extend(actions)

    def reset(self) -> None:
        """Forget the queue and the log; back to the default reply."""
        self._queue.clear()
        self.requests.clear()
        self.billed.clear()

    def bill(self, plan: _Plan) -> None:
        self.billed.append(Bill(plan.prompt_tokens, plan.cached_tokens, plan.completion_tokens))

    def record(self, request: RecordedRequest) -> None:
        self.requests.append(request)
        self._arrived.set()

    async def wait_for_requests(self, count: int) -> None:
        """Return once at least ``count`` requests have arrived."""
        while len(self.requests) < count:
            self._arrived.clear()
            await self._arrived.wait()

    def requests_to(self, path: str) -> list[RecordedRequest]:
        """The recorded requests to one path (``/v1/chat/completions`` ...)."""
        return [r for r in self.requests if r.path == path]

    @property
    def bodies(self) -> list[Any]:
        """Every recorded API request body, in order."""
        return [r.body for r in self.requests]

    def next_action(self) -> Action:
        return self._queue.popleft() if self._queue else self.default

    def next_id(self, prefix: str) -> str:
        return f"{prefix}-fake{next(self._ids)}"


FAKE: Final = web.AppKey("fake_openai", FakeOpenAI)


# -- helpers --------------------------------------------------------------------------------


def _error_response(fault: Fault) -> web.Response:
    if fault.raw_body is not None:
        return web.Response(status=fault.status, text=fault.raw_body, headers=fault.headers)
    body = {
        "error": {
            "message": fault.message,
            "type": fault.type,
            "param": fault.param,
            "code": fault.code,
        }
    }
    return web.json_response(body, status=fault.status, headers=fault.headers)


def _count_words(value: Any) -> int:
    """Words in every string of a JSON value (the fake's tokenizer for input)."""
    if isinstance(value, str):
        return len(_COUNT.findall(value))
    if isinstance(value, list):
        return sum(_count_words(v) for v in value)
    if isinstance(value, dict):
        return sum(_count_words(v) for k, v in value.items() if k not in ("type", "role"))
    return 0


def _limit(body: Mapping[str, Any], *names: str) -> int | None:
    for name in names:
        value = body.get(name)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


@dataclass
class _Plan:
    """What one reply sends: pieces of text, tool calls, and the usage to report."""

    pieces: list[str]
    tool_calls: list[dict[str, Any]]
    finish_reason: str
    prompt_tokens: int
    cached_tokens: int
    completion_tokens: int
    reasoning_tokens: int

    @property
    def text(self) -> str:
        return "".join(self.pieces)

    def chat_usage(self) -> dict[str, Any]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
            "prompt_tokens_details": {"cached_tokens": self.cached_tokens, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": self.reasoning_tokens,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }

    def responses_usage(self) -> dict[str, Any]:
        return {
            "input_tokens": self.prompt_tokens,
            "input_tokens_details": {"cached_tokens": self.cached_tokens, "cache_write_tokens": 0},
            "output_tokens": self.completion_tokens,
            "output_tokens_details": {"reasoning_tokens": self.reasoning_tokens},
            "total_tokens": self.prompt_tokens + self.completion_tokens,
        }


def _plan(reply: Reply, *, prompt_words: int, limit: int | None, n: int = 1) -> _Plan:
    pieces = words(reply.text) if reply.text else []
    finish = "tool_calls" if reply.tool_calls else "stop"
    if limit is not None and not reply.ignore_max_tokens:
        visible = max(0, limit - reply.reasoning_tokens)
        if len(pieces) > visible:
            pieces, finish = pieces[:visible], "length"
    tool_calls = [
        {"id": c.get("id", f"call_{i}"), "name": c["name"], "arguments": c.get("arguments", "")}
        for i, c in enumerate(reply.tool_calls or [])
    ]
    produced = len(pieces) + sum(len(words(c["arguments"])) or 1 for c in tool_calls)
    completion = reply.completion_tokens
    if completion is None:
        completion = (produced + reply.reasoning_tokens) * n
    return _Plan(
        pieces=pieces,
        tool_calls=tool_calls,
        finish_reason=finish,
        prompt_tokens=prompt_words if reply.prompt_tokens is None else reply.prompt_tokens,
        cached_tokens=reply.cached_tokens,
        completion_tokens=completion,
        reasoning_tokens=reply.reasoning_tokens,
    )


class _SseWriter:
    """Writes SSE events, counting them, cutting or failing the stream when scripted."""

    def __init__(self, request: web.Request, reply: Reply) -> None:
        self.request = request
        self.reply = reply
        self.sent = 0
        self.response = web.StreamResponse(
            status=200,
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"},
        )

    async def start(self) -> None:
        await self.response.prepare(self.request)

    async def send(self, data: Any, *, event: str | None = None) -> bool:
        """Send one event; ``False`` when the script ended the stream here."""
        reply = self.reply
        if reply.break_after is not None and self.sent >= reply.break_after:
            transport = self.request.transport
            if transport is not None:
                transport.abort()
            return False
        if reply.error_after is not None and self.sent >= reply.error_after:
            detail: dict[str, Any] = {
                "message": "The upstream failed mid-stream.",
                "type": "server_error",
                "param": None,
                "code": "stream_failed",
            }
            if event is None:
                await self._write({"error": detail}, None)
            else:
                # Responses streams report failure as an ``error`` event, not an error body.
                error = {**detail, "type": "error", "sequence_number": self.sent}
                await self._write(error, "error")
            return False
        if reply.garbage_after is not None and self.sent >= reply.garbage_after:
            await self.response.write(b"data: {this is not JSON\n\n")
            return False
        if reply.chunk_delay_s:
            await asyncio.sleep(reply.chunk_delay_s)
        await self._write(data, event)
        self.sent += 1
        return True

    async def _write(self, data: Any, event: str | None) -> None:
        payload = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
        head = f"event: {event}\n" if event else ""
        await self.response.write(f"{head}data: {payload}\n\n".encode())

    async def finish(self) -> web.StreamResponse:
        if self.request.transport is not None and not self.request.transport.is_closing():
            await self.response.write_eof()
        return self.response


# -- handlers -------------------------------------------------------------------------------


async def _record(request: web.Request) -> RecordedRequest:
    raw = await request.read()
    try:
        body = json.loads(raw) if raw else None
    except ValueError:
        body = None
    recorded = RecordedRequest(request.method, request.path, dict(request.headers), body, raw)
    request.app[FAKE].record(recorded)
    return recorded


def _check(fake: FakeOpenAI, request: web.Request, body: Any) -> Fault | None:
    auth = request.headers.get("Authorization", "")
    if not auth.startswith("Bearer ") or (fake.api_key and auth != f"Bearer {fake.api_key}"):
        return Fault.unauthorized()
    if not isinstance(body, dict):
        return Fault.bad_request("We could not parse the JSON body of your request.")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        return Fault.bad_request("you must provide a model parameter", param="model")
    if fake.known_models is not None and model not in fake.known_models:
        return Fault.not_found(model)
    for name in ("max_tokens", "max_completion_tokens", "max_output_tokens"):
        value = body.get(name)
        if value is not None and (not isinstance(value, int) or value < 1):
            return Fault.bad_request(f"Invalid '{name}': must be a positive integer.", param=name)
    return None


async def _action(request: web.Request) -> tuple[dict[str, Any], Reply | web.StreamResponse]:
    fake = request.app[FAKE]
    recorded = await _record(request)
    action = fake.next_action()
    fault = _check(fake, request, recorded.body)
    if fault is None and isinstance(action, Fault):
        fault = action
    if action.delay_s:
        await asyncio.sleep(action.delay_s)
    if fault is not None:
        return {}, _error_response(fault)
    assert isinstance(action, Reply)
    return recorded.body, action


async def chat_completions(request: web.Request) -> web.StreamResponse:
    body, action = await _action(request)
    if isinstance(action, web.StreamResponse):
        return action
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return _error_response(Fault.bad_request("'messages' must be a non-empty array"))
    for i, sent in enumerate(messages):
        role = sent.get("role") if isinstance(sent, dict) else None
        if role not in _ROLES:
            param = f"messages[{i}].role"
            return _error_response(Fault.bad_request(f"Invalid value for '{param}'.", param=param))
        if role != "assistant" and not isinstance(sent.get("content"), str | list):
            param = f"messages[{i}].content"
            return _error_response(
                Fault.bad_request(f"Missing required parameter: '{param}'.", param=param)
            )
    n = body.get("n") or 1
    prompt = sum(_count_words(m.get("content")) + 3 for m in messages if isinstance(m, dict))
    plan = _plan(
        action,
        prompt_words=prompt,
        limit=_limit(body, "max_completion_tokens", "max_tokens"),
        n=n,
    )
    fake = request.app[FAKE]
    if action.status == 200:
        fake.bill(plan)
    base = {
        "id": fake.next_id("chatcmpl"),
        "created": int(time.time()),
        "model": body["model"],
        "system_fingerprint": "fp_fake",
        "service_tier": _served_tier(body, action),
    }
    if body.get("stream") is True:
        options = body.get("stream_options") or {}
        return await _stream_chat(request, action, plan, base, n, options.get("include_usage"))
    message: dict[str, Any] = {
        "role": "assistant",
        "content": plan.text if action.text is not None else None,
        "refusal": None,
        "annotations": [],
    }
    if plan.tool_calls:
        message["tool_calls"] = [
            {
                "id": c["id"],
                "type": "function",
                "function": {"name": c["name"], "arguments": c["arguments"]},
            }
            for c in plan.tool_calls
        ]
    out: dict[str, Any] = {
        **base,
        "object": "chat.completion",
        "choices": [
            {"index": i, "message": message, "logprobs": None, "finish_reason": plan.finish_reason}
            for i in range(n)
        ],
    }
    if action.report_usage:
        out["usage"] = plan.chat_usage()
    return await _answer(request, action, out)


async def _answer(request: web.Request, reply: Reply, out: Any) -> web.StreamResponse:
    """A JSON answer, or (``cut_body_at``) its first bytes and a reset."""
    if reply.cut_body_at is None:
        return web.json_response(out, status=reply.status)
    raw = json.dumps(out).encode()
    response = web.StreamResponse(
        status=reply.status,
        headers={"Content-Type": "application/json", "Content-Length": str(len(raw))},
    )
    await response.prepare(request)
    await response.write(raw[: reply.cut_body_at])
    if request.transport is not None:
        request.transport.abort()
    return response


def _chat_chunks(
    plan: _Plan, base: dict[str, Any], n: int, with_usage_field: bool
) -> Iterator[dict[str, Any]]:
    def chunk(index: int, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {
            **base,
            "object": "chat.completion.chunk",
            "choices": [
                {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}
            ],
        }
        if with_usage_field:
            out["usage"] = None
        return out

    for i in range(n):
        yield chunk(i, {"role": "assistant", "content": "", "refusal": None})
    for piece in plan.pieces:
        for i in range(n):
            yield chunk(i, {"content": piece})
    for t, call in enumerate(plan.tool_calls):
        for i in range(n):
            head = {"id": call["id"], "type": "function"}
            fn = {"name": call["name"], "arguments": ""}
            yield chunk(i, {"tool_calls": [{"index": t, **head, "function": fn}]})
        for piece in words(call["arguments"]) or [call["arguments"]]:
            for i in range(n):
                yield chunk(i, {"tool_calls": [{"index": t, "function": {"arguments": piece}}]})
    for i in range(n):
        yield chunk(i, {}, plan.finish_reason)


async def _stream_chat(
    request: web.Request,
    reply: Reply,
    plan: _Plan,
    base: dict[str, Any],
    n: int,
    include_usage: Any,
) -> web.StreamResponse:
    writer = _SseWriter(request, reply)
    await writer.start()
    wants_usage = include_usage is True and reply.report_usage
    for chunk in _chat_chunks(plan, base, n, include_usage is True):
        if not await writer.send(chunk):
            return await writer.finish()
    if wants_usage:
        usage_chunk = {
            **base,
            "object": "chat.completion.chunk",
            "choices": [],
            "usage": plan.chat_usage(),
        }
        if not await writer.send(usage_chunk):
            return await writer.finish()
    await writer.send("[DONE]")
    return await writer.finish()


def _served_tier(body: dict[str, Any], reply: Reply) -> str:
    if reply.served_tier is not None:
        return reply.served_tier
    asked = body.get("service_tier")
    return asked if asked in ("priority", "flex") else "default"


_WEB_SEARCH_TOOLS: Final = frozenset({"web_search", "web_search_preview", "web_search_2025_08_26"})


def _response_object(
    body: dict[str, Any], plan: _Plan, rid: str, status: str, usage: bool, reply: Reply
) -> dict[str, Any]:
    output: list[dict[str, Any]] = []
    tools = body.get("tools") or []
    if any(isinstance(t, dict) and t.get("type") in _WEB_SEARCH_TOOLS for t in tools):
        output.extend(
            {
                "type": "web_search_call",
                "id": f"ws_{rid}_{i}",
                "status": "completed",
                "action": {"type": "search", "query": f"query {i}"},
            }
            for i in range(reply.web_searches)
        )
    if plan.pieces:
        output.append(
            {
                "type": "message",
                "id": f"msg_{rid}",
                "status": "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "text": plan.text, "annotations": []}],
            }
        )
    for call in plan.tool_calls:
        output.append(
            {
                "type": "function_call",
                "id": f"fc_{call['id']}",
                "call_id": call["id"],
                "name": call["name"],
                "arguments": call["arguments"],
                "status": "completed",
            }
        )
    return {
        "id": rid,
        "object": "response",
        "created_at": int(time.time()),
        "status": status,
        "model": body["model"],
        "output": output if status != "in_progress" else [],
        "parallel_tool_calls": True,
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": body.get("tools", []),
        "error": None,
        "incomplete_details": {"reason": "max_output_tokens"} if status == "incomplete" else None,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "metadata": {},
        "temperature": 1.0,
        "top_p": 1.0,
        "text": body.get("text", {"format": {"type": "text"}}),
        "truncation": "disabled",
        "service_tier": _served_tier(body, reply),
        "usage": plan.responses_usage() if usage and status != "in_progress" else None,
    }


async def responses(request: web.Request) -> web.StreamResponse:
    body, action = await _action(request)
    if isinstance(action, web.StreamResponse):
        return action
    raw_input = body.get("input")
    prompt = _count_words(raw_input) + _count_words(body.get("instructions")) + 3
    plan = _plan(action, prompt_words=prompt, limit=_limit(body, "max_output_tokens"))
    if action.status == 200:
        request.app[FAKE].bill(plan)
    rid = request.app[FAKE].next_id("resp")
    status = "incomplete" if plan.finish_reason == "length" else "completed"
    stored = _response_object(body, plan, rid, status, action.report_usage, action)
    request.app[FAKE].stored[rid] = stored
    if body.get("stream") is not True:
        return await _answer(request, action, stored)
    writer = _SseWriter(request, action)
    await writer.start()
    for event in _response_events(body, plan, rid, status, action.report_usage, action):
        if not await writer.send(event, event=event["type"]):
            break
    return await writer.finish()


def _response_events(
    body: dict[str, Any], plan: _Plan, rid: str, status: str, usage: bool, reply: Reply
) -> Iterator[dict[str, Any]]:
    seq = itertools.count()
    pending = _response_object(body, plan, rid, "in_progress", usage, reply)
    yield {"type": "response.created", "sequence_number": next(seq), "response": pending}
    yield {"type": "response.in_progress", "sequence_number": next(seq), "response": pending}
    final = _response_object(body, plan, rid, status, usage, reply)
    for index, item in enumerate(final["output"]):
        started = {**item, "status": "in_progress"}
        if item["type"] == "web_search_call":
            yield {
                "type": "response.output_item.added",
                "sequence_number": next(seq),
                "output_index": index,
                "item": started,
            }
            for stage in ("in_progress", "searching", "completed"):
                yield {
                    "type": f"response.web_search_call.{stage}",
                    "sequence_number": next(seq),
                    "output_index": index,
                    "item_id": item["id"],
                }
            yield {
                "type": "response.output_item.done",
                "sequence_number": next(seq),
                "output_index": index,
                "item": item,
            }
            continue
        if item["type"] == "message":
            started["content"] = []
        else:
            started["arguments"] = ""
        yield {
            "type": "response.output_item.added",
            "sequence_number": next(seq),
            "output_index": index,
            "item": started,
        }
        if item["type"] == "message":
            part = {"type": "output_text", "text": "", "annotations": []}
            common = {"item_id": item["id"], "output_index": index, "content_index": 0}
            yield {
                "type": "response.content_part.added",
                "sequence_number": next(seq),
                **common,
                "part": part,
            }
            for piece in plan.pieces:
                yield {
                    "type": "response.output_text.delta",
                    "sequence_number": next(seq),
                    **common,
                    "delta": piece,
                    "logprobs": [],
                }
            yield {
                "type": "response.output_text.done",
                "sequence_number": next(seq),
                **common,
                "text": plan.text,
                "logprobs": [],
            }
            yield {
                "type": "response.content_part.done",
                "sequence_number": next(seq),
                **common,
                "part": {**part, "text": plan.text},
            }
        else:
            for piece in words(item["arguments"]) or [item["arguments"]]:
                yield {
                    "type": "response.function_call_arguments.delta",
                    "sequence_number": next(seq),
                    "item_id": item["id"],
                    "output_index": index,
                    "delta": piece,
                }
            yield {
                "type": "response.function_call_arguments.done",
                "sequence_number": next(seq),
                "item_id": item["id"],
                "output_index": index,
                "arguments": item["arguments"],
            }
        yield {
            "type": "response.output_item.done",
            "sequence_number": next(seq),
            "output_index": index,
            "item": item,
        }
    kind = "response.completed" if status == "completed" else "response.incomplete"
    yield {"type": kind, "sequence_number": next(seq), "response": final}


def _vector(text_index: int, dimensions: int) -> list[float]:
    return [round(((text_index + 1) * (d + 1)) % 97 / 97, 6) for d in range(dimensions)]


async def embeddings(request: web.Request) -> web.StreamResponse:
    body, action = await _action(request)
    if isinstance(action, web.StreamResponse):
        return action
    raw = body.get("input")
    inputs: Sequence[Any] = [raw] if isinstance(raw, str) else raw if isinstance(raw, list) else []
    if not inputs:
        return _error_response(Fault.bad_request("'input' must not be empty", param="input"))
    if all(isinstance(i, int) for i in inputs):
        inputs = [inputs]
    dimensions = body.get("dimensions") or 8
    data = []
    for index in range(len(inputs)):
        vector = _vector(index, dimensions)
        embedding: Any = vector
        if body.get("encoding_format") == "base64":
            embedding = base64.b64encode(struct.pack(f"<{dimensions}f", *vector)).decode()
        data.append({"object": "embedding", "index": index, "embedding": embedding})
    tokens = sum(len(i) if isinstance(i, list) else _count_words(i) for i in inputs)
    if action.prompt_tokens is not None:
        tokens = action.prompt_tokens
    out: dict[str, Any] = {"object": "list", "data": data, "model": body["model"]}
    if action.report_usage:
        out["usage"] = {"prompt_tokens": tokens, "total_tokens": tokens}
    return web.json_response(out, status=action.status)


async def stored_response(request: web.Request) -> web.Response:
    fake = request.app[FAKE]
    await _record(request)
    auth = request.headers.get("Authorization", "")
    if not auth.startswith("Bearer ") or (fake.api_key and auth != f"Bearer {fake.api_key}"):
        return _error_response(Fault.unauthorized())
    stored = fake.stored.get(request.match_info["response_id"])
    if stored is None:
        message = f"Response with id '{request.match_info['response_id']}' not found."
        return _error_response(Fault(404, message, "invalid_request_error", param="response_id"))
    return web.json_response(stored)


async def input_tokens(request: web.Request) -> web.StreamResponse:
    body, action = await _action(request)
    if isinstance(action, web.StreamResponse):
        return action
    tokens = _count_words(body.get("input")) + _count_words(body.get("instructions")) + 3
    return web.json_response({"object": "response.input_tokens", "input_tokens": tokens})


async def moderations(request: web.Request) -> web.StreamResponse:
    fake = request.app[FAKE]
    recorded = await _record(request)
    body = recorded.body
    auth = request.headers.get("Authorization", "")
    if not auth.startswith("Bearer ") or (fake.api_key and auth != f"Bearer {fake.api_key}"):
        return _error_response(Fault.unauthorized())
    raw = body.get("input") if isinstance(body, dict) else None
    inputs = [raw] if isinstance(raw, str) else raw if isinstance(raw, list) else []
    if not inputs:
        return _error_response(Fault.bad_request("'input' must not be empty", param="input"))
    categories = ("harassment", "hate", "self-harm", "sexual", "violence")
    results = [
        {
            "flagged": "kill" in str(text).lower(),
            "categories": {c: c == "violence" and "kill" in str(text).lower() for c in categories},
            "category_scores": {
                c: 0.9 if "kill" in str(text).lower() else 0.01 for c in categories
            },
        }
        for text in inputs
    ]
    model = body.get("model") or "omni-moderation-latest"
    return web.json_response({"id": fake.next_id("modr"), "model": model, "results": results})


async def completions(request: web.Request) -> web.StreamResponse:
    """The legacy completions API: ``choices[].text``, ``max_tokens`` 16 when absent."""
    body, action = await _action(request)
    if isinstance(action, web.StreamResponse):
        return action
    prompt = body.get("prompt", "")
    prompts = [prompt] if isinstance(prompt, str) else prompt
    n = body.get("n") or 1
    limit = _limit(body, "max_tokens")
    plan = _plan(
        action, prompt_words=_count_words(prompts), limit=16 if limit is None else limit, n=n
    )
    fake = request.app[FAKE]
    base = {
        "id": fake.next_id("cmpl"),
        "object": "text_completion",
        "created": int(time.time()),
        "model": body["model"],
    }
    if body.get("stream") is True:
        writer = _SseWriter(request, action)
        await writer.start()
        for piece in plan.pieces:
            for i in range(n):
                choice = {"index": i, "text": piece, "logprobs": None, "finish_reason": None}
                if not await writer.send({**base, "choices": [choice]}):
                    return await writer.finish()
        for i in range(n):
            done = {"index": i, "text": "", "logprobs": None, "finish_reason": plan.finish_reason}
            if not await writer.send({**base, "choices": [done]}):
                return await writer.finish()
        options = body.get("stream_options") or {}
        if options.get("include_usage") is True and action.report_usage:
            usage = plan.chat_usage()
            if not await writer.send({**base, "choices": [], "usage": usage}):
                return await writer.finish()
        await writer.send("[DONE]")
        return await writer.finish()
    out: dict[str, Any] = {
        **base,
        "choices": [
            {"index": i, "text": plan.text, "logprobs": None, "finish_reason": plan.finish_reason}
            for i in range(n)
        ],
    }
    if action.report_usage:
        out["usage"] = plan.chat_usage()
    return web.json_response(out, status=action.status)


async def _request_id(request: web.Request, response: web.StreamResponse) -> None:
    # OpenAI names every answer with its own id (the SDK shows it as `request_id`).
    response.headers["x-request-id"] = f"req_{request.app[FAKE].next_id('up')}"


async def models(request: web.Request) -> web.Response:
    fake = request.app[FAKE]
    names = sorted(fake.known_models or {"gpt-4o-mini", "gpt-4o", "text-embedding-3-small"})
    data = [{"id": m, "object": "model", "created": 0, "owned_by": "fake"} for m in names]
    return web.json_response({"object": "list", "data": data})


# -- control API (for the subprocess mode) -------------------------------------------------


def _action_from_dict(data: Mapping[str, Any]) -> Action:
    fields = {k: v for k, v in data.items() if k != "kind"}
    if data.get("kind") == "fault":
        return Fault(**fields)
    return Reply(**fields)


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


def create_app(fake: FakeOpenAI | None = None) -> web.Application:
    """The fake OpenAI API as an aiohttp application (``app[FAKE]`` is its script and log)."""
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app[FAKE] = fake or FakeOpenAI()
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_post("/v1/responses", responses)
    app.router.add_post("/v1/embeddings", embeddings)
    app.router.add_post("/v1/completions", completions)
    app.router.add_post("/v1/moderations", moderations)
    app.router.add_post("/v1/responses/input_tokens", input_tokens)
    app.router.add_get("/v1/responses/{response_id}", stored_response)
    app.on_response_prepare.append(_request_id)
    app.router.add_get("/v1/models", models)
    app.router.add_post("/_fake/enqueue", control_enqueue)
    app.router.add_put("/_fake/default", control_default)
    app.router.add_get("/_fake/requests", control_requests)
    app.router.add_post("/_fake/reset", control_reset)
    return app


class FakeUpstream(LocalServer):
    """The fake served on a local port in this process (``port=0``: a free one)."""

    def __init__(
        self, fake: FakeOpenAI | None = None, *, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        super().__init__(host=host, port=port)
        self.fake = fake or FakeOpenAI()

    def make_app(self) -> web.Application:
        return create_app(self.fake)

    @property
    def base_url(self) -> str:
        """What the SDK takes as ``base_url``: ``http://host:port/v1``."""
        return self.url + "/v1"


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m fakes.openai_upstream [--host H] [--port N]``."""
    run_cli(__doc__.split("\n", 1)[0], lambda host, port: FakeUpstream(host=host, port=port), argv)


if __name__ == "__main__":
    main()
