"""A SIMULATED model provider for the demo: no network, no API key, no real model.

It speaks the real wire formats the proxy talks to, so the proxy cannot tell it from the real
thing: OpenAI's ``POST /openai/v1/chat/completions`` (JSON, and SSE with the usage chunk when
``stream_options.include_usage`` is set) and ``GET /openai/v1/models``, Gemini's
``POST /gemini/v1beta/models/{model}:generateContent`` / ``:streamGenerateContent?alt=sse``, and
Anthropic's ``POST /anthropic/v1/messages`` (JSON, and SSE with ``message_start`` ...
``message_stop`` and the usage in ``message_delta``).
Like the real APIs, it refuses a call that carries no key (any key will do).

Replies are canned text, each starting with ``(simulated <model>)``. Token counts come from a
rough tokenizer (about four characters a token, like the real ones on English), a reply stops
at the request's output limit with ``finish_reason: length``, and latency looks real: a pause
before the first token, then a steady stream. :attr:`SimulatedUpstream.openai_failing` makes the
OpenAI side answer 503, so the demo can show a fallback.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import time
from collections.abc import Iterator, Mapping
from typing import Any, Final

from aiohttp import web

__all__ = ["SimulatedUpstream", "count_tokens", "split_tokens"]

_TOKEN: Final = re.compile(r"\s*[A-Za-z]{1,4}|\s*\d{1,3}|\s*[^\sA-Za-z\d]|\s+")

_REPLIES: Final = (
    (
        ("haiku", "poem", "verse"),
        "Budgets drain in bars, / a hold becomes a receipt, / the chain keeps its word.",
    ),
    (
        ("refund", "policy", "customer"),
        "Here is a short draft for the customer: we are sorry the order arrived late. We have "
        "issued a full refund to the original payment method, which usually appears within "
        "three to five business days. As a thank-you for your patience, the next delivery is "
        "on us. If anything else goes wrong, reply to this message and a person will answer "
        "within one working day.",
    ),
    (
        ("summar", "report", "meeting"),
        "Summary of the meeting: the team agreed to ship the billing dashboard on Thursday, "
        "move the database migration to next sprint, and add a budget alert for the staging "
        "environment. Open questions: who owns the on-call rota in December, and whether the "
        "vendor contract renews automatically. Action items were assigned to Priya (dashboard), "
        "Tom (migration plan) and Ana (alerting), each due before the next weekly sync.",
    ),
)
_DEFAULT_REPLY: Final = (
    "Large language models price every call by tokens: the prompt you send and the text they "
    "write back. A gateway in front of them can reserve the worst case before the call, charge "
    "the real usage afterwards, and refuse a call that would break a budget, so a runaway agent "
    "loop stops at a limit you chose instead of at the end of the month. Every decision can be "
    "written down as a signed receipt, which lets an auditor check the spend later without "
    "trusting the service that produced it."
)


def split_tokens(text: str) -> list[str]:
    """Cut text into token-sized pieces (roughly what BPE tokenizers do on English)."""
    return _TOKEN.findall(text)


def count_tokens(text: str) -> int:
    """How many tokens the simulated tokenizer counts in ``text``."""
    return len(split_tokens(text))


def _reply_for(prompt: str, model: str) -> str:
    lowered = prompt.lower()
    text = next((r for keys, r in _REPLIES if any(k in lowered for k in keys)), _DEFAULT_REPLY)
    return f"(simulated {model}) {text}"


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            _text_of(part.get("text", "")) for part in content if isinstance(part, dict)
        )
    return ""


class SimulatedUpstream:
    """The simulated OpenAI and Gemini APIs, served on a local port.

    Args:
        latency_scale: multiplies every simulated delay (``0``: answer at once, for tests).
    """

    def __init__(self, *, latency_scale: float = 1.0) -> None:
        self.latency_scale = latency_scale
        self.openai_failing = False
        """Answer every OpenAI call with 503, as a provider outage would."""
        self.calls: dict[str, int] = {"openai": 0, "gemini": 0, "anthropic": 0}
        self._runner: web.AppRunner | None = None
        self.url = ""

    def app(self) -> web.Application:
        """The aiohttp application (the providers under ``/openai``, ``/gemini`` and
        ``/anthropic``)."""
        app = web.Application()
        app.add_routes(
            [
                web.post("/openai/v1/chat/completions", self._openai_chat),
                web.get("/openai/v1/models", self._openai_models),
                web.post("/gemini/{version}/models/{name}", self._gemini),
                web.post("/anthropic/v1/messages", self._anthropic),
            ]
        )
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve on ``host:port`` (``0``: a free port); returns the base URL."""
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        server = site._server
        assert server is not None
        sockets = getattr(server, "sockets", None) or []
        self.url = f"http://{host}:{sockets[0].getsockname()[1]}"
        return self.url

    async def stop(self) -> None:
        """Stop serving."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _sleep(self, seconds: float) -> None:
        if self.latency_scale > 0:
            await asyncio.sleep(seconds * self.latency_scale)

    # --- OpenAI ---------------------------------------------------------------------------

    async def _openai_models(self, request: web.Request) -> web.Response:
        created = int(time.time())
        models = ["gpt-4o", "gpt-4o-mini", "gpt-4.1-mini"]
        return web.json_response(
            {
                "object": "list",
                "data": [
                    {"id": m, "object": "model", "created": created, "owned_by": "simulated"}
                    for m in models
                ],
            }
        )

    async def _openai_chat(self, request: web.Request) -> web.StreamResponse:
        self.calls["openai"] += 1
        if not request.headers.get("Authorization", "").removeprefix("Bearer ").strip():
            return web.json_response(
                {
                    "error": {
                        "message": "You didn't provide an API key.",
                        "type": "invalid_request_error",
                        "param": None,
                        "code": "missing_api_key",
                    }
                },
                status=401,
            )
        body = await request.json()
        await self._sleep(0.15)
        if self.openai_failing:
            return web.json_response(
                {
                    "error": {
                        "message": "The simulated OpenAI upstream is down (toggled in the demo).",
                        "type": "server_error",
                        "param": None,
                        "code": "service_unavailable",
                    }
                },
                status=503,
            )
        model = str(body.get("model", "gpt-4o-mini"))
        messages = body.get("messages") or []
        prompt = " ".join(_text_of(m.get("content")) for m in messages if isinstance(m, dict))
        prompt_tokens = sum(count_tokens(_text_of(m.get("content"))) + 4 for m in messages) + 3
        limit = body.get("max_completion_tokens") or body.get("max_tokens")
        pieces, finish = _limited(split_tokens(_reply_for(prompt, model)), limit)
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": len(pieces),
            "total_tokens": prompt_tokens + len(pieces),
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
        }
        base = {
            "id": "chatcmpl-sim" + secrets.token_hex(12),
            "created": int(time.time()),
            "model": model,
            "system_fingerprint": "fp_simulated",
        }
        if not body.get("stream"):
            await self._sleep(0.3 + 0.012 * len(pieces))
            return web.json_response(
                {
                    **base,
                    "object": "chat.completion",
                    "choices": [
                        {
                            "index": 0,
                            "message": {
                                "role": "assistant",
                                "content": "".join(pieces),
                                "refusal": None,
                            },
                            "logprobs": None,
                            "finish_reason": finish,
                        }
                    ],
                    "usage": usage,
                }
            )
        options = body.get("stream_options")
        include_usage = isinstance(options, Mapping) and options.get("include_usage") is True
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await response.prepare(request)

        async def send(data: Any) -> None:
            await response.write(f"data: {json.dumps(data)}\n\n".encode())

        def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
            out: dict[str, Any] = {
                **base,
                "object": "chat.completion.chunk",
                "choices": [
                    {
                        "index": 0,
                        "delta": delta,
                        "logprobs": None,
                        "finish_reason": finish_reason,
                    }
                ],
            }
            if include_usage:
                out["usage"] = None
            return out

        await self._sleep(0.25)
        await send(chunk({"role": "assistant", "content": "", "refusal": None}))
        for piece in pieces:
            await self._sleep(0.02)
            await send(chunk({"content": piece}))
        await send(chunk({}, finish))
        if include_usage:
            await send({**base, "object": "chat.completion.chunk", "choices": [], "usage": usage})
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    # --- Gemini ---------------------------------------------------------------------------

    async def _gemini(self, request: web.Request) -> web.StreamResponse:
        self.calls["gemini"] += 1
        if not (request.headers.get("x-goog-api-key") or request.query.get("key")):
            return _gemini_error(
                403, "PERMISSION_DENIED", "Method doesn't allow unregistered callers."
            )
        model, _, action = request.match_info["name"].partition(":")
        if action not in ("generateContent", "streamGenerateContent"):
            return _gemini_error(404, "NOT_FOUND", f"the simulated Gemini has no {action!r}")
        body = await request.json()
        contents = body.get("contents") or []
        texts = [
            str(part.get("text", ""))
            for content in contents
            if isinstance(content, dict)
            for part in content.get("parts", [])
            if isinstance(part, dict)
        ]
        system = body.get("systemInstruction") or body.get("system_instruction") or {}
        texts += [str(p.get("text", "")) for p in system.get("parts", []) if isinstance(p, dict)]
        prompt_tokens = sum(count_tokens(t) for t in texts) or 1
        config = body.get("generationConfig") or body.get("generation_config") or {}
        limit = config.get("maxOutputTokens") or config.get("max_output_tokens")
        pieces, finish = _limited(split_tokens(_reply_for(" ".join(texts), model)), limit)
        gemini_finish = "STOP" if finish == "stop" else "MAX_TOKENS"
        response_id = secrets.token_urlsafe(16)

        def message(
            parts: list[str], done: int, finish_reason: str | None = None
        ) -> dict[str, Any]:
            candidate: dict[str, Any] = {
                "content": {"role": "model", "parts": [{"text": "".join(parts)}]},
                "index": 0,
            }
            if finish_reason:
                candidate["finishReason"] = finish_reason
            return {
                "candidates": [candidate],
                "usageMetadata": {
                    "promptTokenCount": prompt_tokens,
                    "candidatesTokenCount": done,
                    "totalTokenCount": prompt_tokens + done,
                },
                "modelVersion": model,
                "responseId": response_id,
            }

        if action == "generateContent":
            await self._sleep(0.3 + 0.01 * len(pieces))
            return web.json_response(message(pieces, len(pieces), gemini_finish))
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await self._sleep(0.2)
        groups = list(_groups(pieces, 6)) or [[]]
        done = 0
        for i, group in enumerate(groups):
            done += len(group)
            last = i == len(groups) - 1
            data = message(group, done, gemini_finish if last else None)
            await response.write(b"data: " + json.dumps(data).encode() + b"\r\n\r\n")
            await self._sleep(0.06)
        await response.write_eof()
        return response

    # --- Anthropic ------------------------------------------------------------------------

    async def _anthropic(self, request: web.Request) -> web.StreamResponse:
        self.calls["anthropic"] += 1
        if not (request.headers.get("x-api-key") or request.headers.get("Authorization")):
            error = {"type": "authentication_error", "message": "x-api-key header is required"}
            return web.json_response({"type": "error", "error": error}, status=401)
        body = await request.json()
        model = str(body.get("model", "claude-haiku-4-5"))
        turns = [m for m in body.get("messages") or [] if isinstance(m, dict)]
        said = [_text_of(m.get("content")) for m in turns] + [_text_of(body.get("system"))]
        pieces, finish = _limited(
            split_tokens(_reply_for(" ".join(said), model)), body.get("max_tokens")
        )
        usage = {"input_tokens": sum(count_tokens(t) for t in said) + 3 * len(turns)}
        stop = "end_turn" if finish == "stop" else "max_tokens"
        message: dict[str, Any] = {
            "id": "msg_sim" + secrets.token_hex(12),
            "type": "message",
            "role": "assistant",
            "model": model,
            "stop_sequence": None,
        }
        if not body.get("stream"):
            await self._sleep(0.3 + 0.012 * len(pieces))
            content = [{"type": "text", "text": "".join(pieces)}]
            answer = {**message, "content": content, "stop_reason": stop}
            return web.json_response({**answer, "usage": {**usage, "output_tokens": len(pieces)}})
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)

        async def event(kind: str, **data: Any) -> None:
            payload = json.dumps({"type": kind, **data})
            await response.write(f"event: {kind}\ndata: {payload}\n\n".encode())

        await self._sleep(0.2)
        started = {**message, "content": [], "stop_reason": None}
        await event("message_start", message={**started, "usage": {**usage, "output_tokens": 1}})
        await event("content_block_start", index=0, content_block={"type": "text", "text": ""})
        for group in _groups(pieces, 3):
            delta = {"type": "text_delta", "text": "".join(group)}
            await event("content_block_delta", index=0, delta=delta)
            await self._sleep(0.04)
        await event("content_block_stop", index=0)
        ended = {"stop_reason": stop, "stop_sequence": None}
        await event("message_delta", delta=ended, usage={"output_tokens": len(pieces)})
        await event("message_stop")
        await response.write_eof()
        return response


def _limited(pieces: list[str], limit: Any) -> tuple[list[str], str]:
    if isinstance(limit, int) and 0 < limit < len(pieces):
        return pieces[:limit], "length"
    return pieces, "stop"


def _groups(pieces: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(pieces), size):
        yield pieces[start : start + size]


def _gemini_error(status: int, name: str, message: str) -> web.Response:
    return web.json_response(
        {"error": {"code": status, "message": message, "status": name}}, status=status
    )
