"""A local Gemini Developer API (``/v1beta``) that speaks the REST wire protocol, for tests.

Endpoints: ``models/{model}:generateContent``, ``:streamGenerateContent`` (``?alt=sse``, or a
JSON array without it), ``:embedContent``, ``:batchEmbedContents`` and ``:countTokens``. Like
the real API it takes the key from ``x-goog-api-key`` (or ``?key=``), parses bodies as proto3
JSON (each field in lowerCamelCase or snake_case, never both; unknown fields are a 400), and
answers errors as ``{"error": {"code", "message", "status"}}``.

Tokens are counted by a fake tokenizer, one token per whitespace-separated word (at least one
per part), unless a :class:`Reply` fixes the counts. ``usageMetadata`` carries
``promptTokenCount`` (with ``promptTokensDetails`` when some of it is audio),
``cachedContentTokenCount``, ``candidatesTokenCount``, ``thoughtsTokenCount``,
``toolUsePromptTokenCount`` and ``totalTokenCount``; a stream repeats it on every chunk as
running totals. Embedding answers carry ``usageMetadata.promptTokenCount`` too. A grounded
reply carries ``groundingMetadata`` (``webSearchQueries``...) on its candidates, and every
generate answer names its tier in ``x-gemini-service-tier`` (a request may set
``serviceTier``).

Scripting: :meth:`FakeGemini.script` queues :class:`Reply` objects, used one per request in
order (then the default reply): text or parts, usage, finish reason, an error status, delays,
a stream cut after some chunks. :attr:`FakeGemini.requests` logs every request.

Run it in-process with ``async with FakeGeminiServer() as server`` (``server.url``,
``server.fake``), or as a process with ``python -m fakes.gemini_upstream --port N`` (``0`` picks
a free port; the first stdout line is ``listening on <url>``), scripted over HTTP at
``POST /_fake/script``, ``GET /_fake/requests`` and ``POST /_fake/reset``;
:class:`FakeGeminiProcess` does that from tests.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import subprocess
import sys
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from types import TracebackType
from typing import Any, Final

from aiohttp import web

from fakes.serving import LocalServer, run_cli

__all__ = [
    "FAKE",
    "FakeGemini",
    "FakeGeminiProcess",
    "FakeGeminiServer",
    "InvalidRequest",
    "RecordedRequest",
    "Reply",
    "create_app",
    "validate_generate_request",
]

STATUS_NAMES: Final = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}

_TOP_FIELDS: Final = {
    "generateContent": {
        "model",
        "contents",
        "systemInstruction",
        "tools",
        "toolConfig",
        "safetySettings",
        "generationConfig",
        "cachedContent",
        "serviceTier",
    },
    "embedContent": {"model", "content", "taskType", "title", "outputDimensionality"},
    "batchEmbedContents": {"requests"},
    "countTokens": {"contents", "generateContentRequest"},
}
_GENERATION_FIELDS: Final = {
    "stopSequences",
    "responseMimeType",
    "responseSchema",
    "responseJsonSchema",
    "responseModalities",
    "candidateCount",
    "maxOutputTokens",
    "temperature",
    "topP",
    "topK",
    "seed",
    "presencePenalty",
    "frequencyPenalty",
    "responseLogprobs",
    "logprobs",
    "enableEnhancedCivicAnswers",
    "speechConfig",
    "thinkingConfig",
    "mediaResolution",
    "imageConfig",
}
_ROUTE = re.compile(r"^(?P<model>[A-Za-z0-9._-]+):(?P<action>[A-Za-z]+)$")


def _snake(name: str) -> str:
    return re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), name)


class InvalidRequest(Exception):
    """A body the Gemini API would answer with 400 INVALID_ARGUMENT."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _fields(obj: Any, allowed: set[str], where: str) -> dict[str, Any]:
    """Normalise a proto3-JSON object to lowerCamelCase, rejecting unknown or doubled fields."""
    if not isinstance(obj, dict):
        raise InvalidRequest(f"Invalid value at '{where}': expected an object")
    by_spelling = {name: name for name in allowed} | {_snake(name): name for name in allowed}
    out: dict[str, Any] = {}
    for key, value in obj.items():
        name = by_spelling.get(key)
        if name is None:
            raise InvalidRequest(
                f"Invalid JSON payload received. Unknown name \"{key}\" at '{where}': "
                "Cannot find field."
            )
        if name in out:
            raise InvalidRequest(f"Invalid JSON payload received. Field {name!r} given twice")
        out[name] = value
    return out


def _words(text: str) -> int:
    return max(1, len(text.split()))


def _part_tokens(part: Any) -> int:
    if isinstance(part, dict) and isinstance(part.get("text"), str):
        return _words(part["text"])
    return _words(json.dumps(part))


def _content_tokens(content: Any) -> int:
    parts = content.get("parts", []) if isinstance(content, dict) else []
    return sum(_part_tokens(p) for p in parts) if isinstance(parts, list) else 0


@dataclass
class Reply:
    """One scripted answer. Counts left ``None`` come from the fake tokenizer."""

    text: str = "Hello from the fake Gemini."
    parts: list[dict[str, Any]] | None = None
    """Explicit candidate parts (``functionCall`` ...), instead of ``text``."""
    finish_reason: str | None = "STOP"
    prompt_tokens: int | None = None
    cached_tokens: int = 0
    candidates_tokens: int | None = None
    thoughts_tokens: int = 0
    tool_use_prompt_tokens: int = 0
    usage: bool = True
    """Send ``usageMetadata`` at all."""
    block_reason: str | None = None
    """Block the prompt: no candidates, ``promptFeedback.blockReason``."""
    chunks: int = 3
    """A stream splits the text over this many chunks."""
    status: int = 200
    error_message: str = "scripted failure"
    error_status: str | None = None
    """The google.rpc status name; derived from ``status`` when ``None``."""
    raw_error_body: str | None = None
    """Send this text as the error body instead of the JSON one."""
    delay_s: float = 0.0
    """Wait this long before answering."""
    break_after: int | None = None
    """Stream: cut the connection after this many chunks."""
    partial_tail: str = ""
    """Stream: bytes written just before the cut (half an event, say)."""
    embedding_dims: int = 8
    grounding_queries: list[str] | None = None
    """Answer as grounded by Google Search: ``groundingMetadata`` with these
    ``webSearchQueries`` on each candidate (the last chunk of a stream)."""
    audio_prompt_tokens: int = 0
    """Of the prompt tokens, this many are AUDIO in ``promptTokensDetails``."""
    served_tier: str | None = None
    """The tier named in ``x-gemini-service-tier`` (default: the one asked for, else
    standard); a priority request over its limit is served, and billed, at standard."""

    @classmethod
    def error(cls, status: int, message: str = "scripted failure", **kw: Any) -> Reply:
        """A reply that fails with ``status``."""
        return cls(status=status, error_message=message, **kw)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Reply:
        """Load from :meth:`to_dict`'s shape (for the HTTP control endpoint)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def to_dict(self) -> dict[str, Any]:
        """Plain data."""
        return asdict(self)


@dataclass(frozen=True)
class RecordedRequest:
    """One request the fake received."""

    method: str
    path: str
    model: str
    action: str
    query: dict[str, str]
    api_key: str | None
    api_key_in_query: bool
    body: Any

    def to_dict(self) -> dict[str, Any]:
        """Plain data."""
        return asdict(self)


@dataclass
class FakeGemini:
    """The fake's state: scripted replies and the request log."""

    replies: deque[Reply] = field(default_factory=deque)
    default: Reply = field(default_factory=Reply)
    requests: list[RecordedRequest] = field(default_factory=list)
    billed: list[dict[str, Any]] = field(default_factory=list)
    """The ``usageMetadata`` of every answer generated: what Google invoices."""

    def script(self, *replies: Reply) -> None:
        """Queue replies, one per coming request."""
        self.replies.extend(replies)

    def reset(self) -> None:
        """Forget the script and the log."""
        self.replies.clear()
        self.requests.clear()
        self.billed.clear()

    def next_reply(self) -> Reply:
        """The reply for the next request."""
        return self.replies.popleft() if self.replies else self.default

    def last_body(self) -> Any:
        """The body of the most recent request."""
        return self.requests[-1].body


FAKE: Final = web.AppKey("fake_gemini", FakeGemini)


def _error(status: int, message: str, name: str | None = None) -> web.Response:
    body = {
        "error": {"code": status, "message": message, "status": name or STATUS_NAMES.get(status)}
    }
    return web.json_response(body, status=status)


def _error_reply(reply: Reply) -> web.Response:
    if reply.raw_error_body is not None:
        return web.Response(status=reply.status, text=reply.raw_error_body)
    return _error(reply.status, reply.error_message, reply.error_status)


def _usage(reply: Reply, prompt: int, candidates: int) -> dict[str, Any]:
    prompt_tokens = prompt if reply.prompt_tokens is None else reply.prompt_tokens
    meta: dict[str, Any] = {"promptTokenCount": prompt_tokens}
    if reply.audio_prompt_tokens:
        audio = min(reply.audio_prompt_tokens, prompt_tokens)
        meta["promptTokensDetails"] = [
            {"modality": "TEXT", "tokenCount": prompt_tokens - audio},
            {"modality": "AUDIO", "tokenCount": audio},
        ]
    if reply.cached_tokens:
        meta["cachedContentTokenCount"] = reply.cached_tokens
    meta["candidatesTokenCount"] = candidates
    if reply.thoughts_tokens:
        meta["thoughtsTokenCount"] = reply.thoughts_tokens
    if reply.tool_use_prompt_tokens:
        meta["toolUsePromptTokenCount"] = reply.tool_use_prompt_tokens
    meta["totalTokenCount"] = (
        prompt_tokens + candidates + reply.thoughts_tokens + reply.tool_use_prompt_tokens
    )
    return meta


def validate_generate_request(body: Any) -> tuple[dict[str, Any], int]:
    """Check a generateContent body as the API would; returns it normalised and its prompt
    token count, or raises :class:`InvalidRequest` with the API's message."""
    top = _fields(body, _TOP_FIELDS["generateContent"], "")
    contents = top.get("contents")
    if not isinstance(contents, list) or not contents:
        raise InvalidRequest("* GenerateContentRequest.contents: contents is not specified")
    prompt = 0
    for i, content in enumerate(contents):
        content = _fields(content, {"role", "parts"}, f"contents[{i}]")
        if content.get("role", "user") not in ("user", "model", "function"):
            raise InvalidRequest(f"Please use a valid role: user, model. (contents[{i}])")
        if not content.get("parts"):
            raise InvalidRequest(f"* contents[{i}].parts: contents.parts must not be empty.")
        prompt += _content_tokens(content)
    system = top.get("systemInstruction")
    if system is not None:
        prompt += _content_tokens(_fields(system, {"role", "parts"}, "system_instruction"))
    for tool in top.get("tools") or []:
        prompt += _words(json.dumps(tool))
    config = _fields(top.get("generationConfig") or {}, _GENERATION_FIELDS, "generation_config")
    for name in ("maxOutputTokens", "candidateCount"):
        if config.get(name) is not None:
            config[name] = _proto_int(config[name], _snake(name))
    limit = config.get("maxOutputTokens")
    if limit is not None and limit < 1:
        raise InvalidRequest("max_output_tokens must be positive")
    thinking = config.get("thinkingConfig")
    if thinking is not None:
        thinking = _fields(
            thinking, {"thinkingBudget", "thinkingLevel", "includeThoughts"}, "thinking_config"
        )
        if "thinkingBudget" in thinking and "thinkingLevel" in thinking:
            raise InvalidRequest("You can only set only one of thinking budget and thinking level.")
    top["generationConfig"] = config
    return top, prompt


def _proto_int(value: Any, name: str) -> int:
    """An integer field as the proto3 JSON mapping reads it: a number or a numeric string,
    integral (``8``, ``"8"``, ``8.0`` are 8)."""
    if not isinstance(value, bool):
        try:
            number = float(value) if isinstance(value, str) else value
        except ValueError:
            number = None
        if isinstance(number, int | float) and float(number).is_integer():
            return int(number)
    raise InvalidRequest(f"Invalid value at 'generation_config.{name}' (TYPE_INT32), {value!r}")


def _candidate_parts(reply: Reply) -> list[dict[str, Any]]:
    return reply.parts if reply.parts is not None else [{"text": reply.text}]


def _output_tokens(reply: Reply, parts: Sequence[dict[str, Any]]) -> int:
    if reply.candidates_tokens is not None:
        return reply.candidates_tokens
    return sum(_part_tokens(p) for p in parts)


def _grounding(reply: Reply) -> dict[str, Any]:
    queries = reply.grounding_queries or []
    return {
        "webSearchQueries": list(queries),
        "searchEntryPoint": {"renderedContent": '<div class="container"></div>'},
        "groundingChunks": [
            {"web": {"uri": f"https://search.example/{i}", "title": q}}
            for i, q in enumerate(queries)
        ],
    }


def _response(reply: Reply, prompt: int, model: str, n: int) -> dict[str, Any]:
    parts = _candidate_parts(reply)
    out: dict[str, Any] = {}
    if reply.block_reason is not None:
        out["promptFeedback"] = {"blockReason": reply.block_reason}
    else:
        candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}}
        if reply.finish_reason is not None:
            candidate["finishReason"] = reply.finish_reason
        if reply.grounding_queries is not None:
            candidate["groundingMetadata"] = _grounding(reply)
        out["candidates"] = [{**candidate, "index": i} for i in range(n)]
    if reply.usage:
        out["usageMetadata"] = _usage(
            reply, prompt, 0 if reply.block_reason else n * _output_tokens(reply, parts)
        )
    out["modelVersion"] = model
    out["responseId"] = hashlib.sha256(json.dumps(out).encode()).hexdigest()[:20]
    return out


def _stream_chunks(reply: Reply, prompt: int, model: str) -> list[dict[str, Any]]:
    """The stream's chunks: the text split over ``reply.chunks``, other parts in the last."""
    parts = _candidate_parts(reply)
    if reply.block_reason is not None:
        return [_response(reply, prompt, model, 1)]
    texts = [p["text"] for p in parts if set(p) == {"text"}]
    others = [p for p in parts if set(p) != {"text"}]
    words = " ".join(texts).split(" ") if texts else []
    count = max(1, reply.chunks)
    step = max(1, -(-len(words) // count)) if words else 1
    pieces = [" ".join(words[i : i + step]) for i in range(0, len(words), step)]
    pieces = [p + (" " if i < len(pieces) - 1 else "") for i, p in enumerate(pieces)]
    chunk_parts: list[list[dict[str, Any]]] = [[{"text": p}] for p in pieces] or [[]]
    while len(chunk_parts) < count:
        chunk_parts.append([])
    chunk_parts[-1].extend(others)
    total = _output_tokens(reply, parts)
    chunks = []
    for i, cparts in enumerate(chunk_parts):
        last = i == len(chunk_parts) - 1
        candidate: dict[str, Any] = {"content": {"parts": cparts, "role": "model"}, "index": 0}
        if last and reply.finish_reason is not None:
            candidate["finishReason"] = reply.finish_reason
        if last and reply.grounding_queries is not None:
            candidate["groundingMetadata"] = _grounding(reply)
        chunk: dict[str, Any] = {"candidates": [candidate]}
        if reply.usage:
            chunk["usageMetadata"] = _usage(reply, prompt, total * (i + 1) // len(chunk_parts))
        chunk["modelVersion"] = model
        chunk["responseId"] = "fake-stream"
        chunks.append(chunk)
    return chunks


def _tier_header(reply: Reply, top: Mapping[str, Any]) -> dict[str, str]:
    """``x-gemini-service-tier``: the tier the answer was served (and billed) at."""
    asked = str(top.get("serviceTier") or "standard").lower()
    return {"x-gemini-service-tier": reply.served_tier or asked}


def _embedding(text: str, dims: int) -> dict[str, Any]:
    digest = hashlib.sha256(text.encode()).digest()
    return {"values": [(digest[i % len(digest)] - 128) / 128 for i in range(dims)]}


async def _handle(request: web.Request) -> web.StreamResponse:
    fake = request.app[FAKE]
    match = _ROUTE.match(request.match_info["target"])
    if match is None:
        return _error(404, f"Unknown path {request.path}")
    model, action = match["model"], match["action"]
    api_key = request.headers.get("x-goog-api-key") or request.query.get("key")
    raw = await request.read()
    try:
        body: Any = json.loads(raw) if raw else {}
    except json.JSONDecodeError:
        body = None
    fake.requests.append(
        RecordedRequest(
            method=request.method,
            path=request.path,
            model=model,
            action=action,
            query=dict(request.query),
            api_key=api_key,
            api_key_in_query="key" in request.query,
            body=body,
        )
    )
    if not api_key:
        return _error(403, "Method doesn't allow unregistered callers.")
    if body is None:
        return _error(400, "Invalid JSON payload received.")
    reply = fake.next_reply()
    if reply.delay_s:
        await asyncio.sleep(reply.delay_s)
    if reply.status != 200:
        return _error_reply(reply)
    try:
        if action == "generateContent":
            top, prompt = validate_generate_request(body)
            n = top["generationConfig"].get("candidateCount") or 1
            answer = _response(reply, prompt, model, n)
            if "usageMetadata" in answer:
                fake.billed.append(answer["usageMetadata"])
            return web.json_response(answer, headers=_tier_header(reply, top))
        if action == "streamGenerateContent":
            top, prompt = validate_generate_request(body)
            chunks = _stream_chunks(reply, prompt, model)
            return await _stream(request, reply, chunks, _tier_header(reply, top))
        if action == "embedContent":
            item = _fields(body, _TOP_FIELDS["embedContent"], "")
            return web.json_response(_embed([item], reply, single=True))
        if action == "batchEmbedContents":
            top = _fields(body, _TOP_FIELDS["batchEmbedContents"], "")
            items = [
                _fields(r, _TOP_FIELDS["embedContent"], f"requests[{i}]")
                for i, r in enumerate(top.get("requests") or [])
            ]
            if not items:
                raise InvalidRequest("* BatchEmbedContentsRequest.requests: must not be empty")
            return web.json_response(_embed(items, reply, single=False))
        if action == "countTokens":
            contents = _fields(body, _TOP_FIELDS["countTokens"], "").get("contents") or []
            return web.json_response({"totalTokens": sum(_content_tokens(c) for c in contents)})
    except InvalidRequest as exc:
        return _error(400, exc.message)
    return _error(404, f"Method {action} not found for model {model}.")


def _embed(items: list[dict[str, Any]], reply: Reply, *, single: bool) -> dict[str, Any]:
    prompt = 0
    embeddings = []
    for item in items:
        content = _fields(item.get("content"), {"role", "parts"}, "content")
        prompt += _content_tokens(content)
        text = " ".join(str(p.get("text", "")) for p in content.get("parts") or [])
        dims = item.get("outputDimensionality") or reply.embedding_dims
        embeddings.append(_embedding(text, dims))
    out: dict[str, Any] = {"embedding": embeddings[0]} if single else {"embeddings": embeddings}
    if reply.usage:
        tokens = prompt if reply.prompt_tokens is None else reply.prompt_tokens
        out["usageMetadata"] = {"promptTokenCount": tokens, "totalTokenCount": tokens}
    return out


async def _stream(
    request: web.Request,
    reply: Reply,
    chunks: list[dict[str, Any]],
    headers: Mapping[str, str] | None = None,
) -> web.StreamResponse:
    sse = request.query.get("alt") == "sse"
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream" if sse else "application/json",
            **(headers or {}),
        }
    )
    await response.prepare(request)
    if not sse:
        # Without alt=sse the API streams one JSON array.
        await response.write(json.dumps(chunks).encode())
        await response.write_eof()
        return response
    for i, chunk in enumerate(chunks):
        if reply.break_after is not None and i >= reply.break_after:
            break
        await response.write(b"data: " + json.dumps(chunk).encode() + b"\r\n\r\n")
    if reply.break_after is not None:
        if reply.partial_tail:
            await response.write(reply.partial_tail.encode())
        transport = request.transport
        if transport is not None:
            transport.abort()
        return response
    await response.write_eof()
    return response


async def _script(request: web.Request) -> web.Response:
    data = await request.json()
    request.app[FAKE].script(*(Reply.from_dict(r) for r in data.get("replies", [])))
    return web.json_response({"queued": len(request.app[FAKE].replies)})


async def _requests(request: web.Request) -> web.Response:
    return web.json_response([r.to_dict() for r in request.app[FAKE].requests])


async def _reset(request: web.Request) -> web.Response:
    request.app[FAKE].reset()
    return web.json_response({"ok": True})


def create_app(fake: FakeGemini | None = None) -> web.Application:
    """The fake API as an aiohttp app; its state is ``app[FAKE]``."""
    app = web.Application()
    app[FAKE] = fake if fake is not None else FakeGemini()
    app.router.add_post("/_fake/script", _script)
    app.router.add_get("/_fake/requests", _requests)
    app.router.add_post("/_fake/reset", _reset)
    app.router.add_route("*", "/{version:v1beta|v1|v1alpha}/models/{target}", _handle)
    return app


class FakeGeminiServer(LocalServer):
    """The fake served on a local port in this process (``port=0``: a free one), for the
    duration of an ``async with``; the SDK takes :attr:`url` as ``http_options.base_url``."""

    def __init__(
        self, fake: FakeGemini | None = None, *, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        super().__init__(host=host, port=port)
        self.fake = fake if fake is not None else FakeGemini()

    def make_app(self) -> web.Application:
        return create_app(self.fake)


class FakeGeminiProcess:
    """The fake in a child process (``python -m fakes.gemini_upstream``), scripted over HTTP."""

    def __init__(self, *, port: int = 0) -> None:
        self._port = port
        self._proc: subprocess.Popen[str] | None = None
        self.url = ""

    def __enter__(self) -> FakeGeminiProcess:
        tests_dir = str(Path(__file__).resolve().parent.parent)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [tests_dir, env.get("PYTHONPATH")]))
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "fakes.gemini_upstream", "--port", str(self._port)],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()
        if not line.startswith("listening on "):
            self.__exit__(None, None, None)
            raise RuntimeError(f"fake Gemini did not start: {line!r}")
        self.url = line.removeprefix("listening on ").strip()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            if self._proc.stdout is not None:
                self._proc.stdout.close()
            self._proc = None

    async def script(self, *replies: Reply) -> None:
        """Queue replies in the child process."""
        import aiohttp

        async with aiohttp.ClientSession() as session:
            payload = {"replies": [r.to_dict() for r in replies]}
            async with session.post(f"{self.url}/_fake/script", json=payload) as resp:
                resp.raise_for_status()

    async def requests(self) -> list[dict[str, Any]]:
        """The child's request log."""
        import aiohttp

        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{self.url}/_fake/requests") as resp,
        ):
            data: list[dict[str, Any]] = await resp.json()
            return data


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m fakes.gemini_upstream [--host H] [--port N]``."""
    run_cli(
        __doc__.splitlines()[0] if __doc__ else "fake Gemini",
        lambda host, port: FakeGeminiServer(host=host, port=port),
        argv,
    )


if __name__ == "__main__":
    main()
