"""A minimal OpenAI-to-Gemini bridge built only from the package's pure functions.

It is what the proxy's hot path does, without governance: translate the OpenAI request, send
the Gemini REST call over a plain aiohttp session, and translate the answer (JSON or SSE) back.
Tests put the real OpenAI SDK in front of it and the fake Gemini API behind it.
"""

from __future__ import annotations

import json
from typing import Any

import aiohttp
from aiohttp import web

from aegis.adapters.gemini import (
    SSE_DONE,
    ChatStreamTranslator,
    SseParser,
    TranslationError,
    chat_request_to_gemini,
    embeddings_request_to_gemini,
    gemini_embeddings_to_openai,
    gemini_response_to_chat,
    openai_error_body,
    parse_error_body,
    sse_event,
)

UPSTREAM = web.AppKey("upstream", str)
SESSION = web.AppKey("session", aiohttp.ClientSession)


async def _chat(request: web.Request) -> web.StreamResponse:
    try:
        translated = chat_request_to_gemini(await request.json())
    except TranslationError as exc:
        return web.json_response(exc.to_openai_error(), status=exc.status_code)
    model = translated.model
    action = "streamGenerateContent?alt=sse" if translated.stream else "generateContent"
    url = f"{request.app[UPSTREAM]}/v1beta/models/{model}:{action}"
    headers = {"x-goog-api-key": "test"}
    async with request.app[SESSION].post(url, json=translated.body, headers=headers) as up:
        if up.status != 200:
            status, body = openai_error_body(parse_error_body(up.status, await up.read()))
            return web.json_response(body, status=status)
        if not translated.stream:
            answer = gemini_response_to_chat(
                await up.json(),
                model=model,
                n=translated.n,
                parallel_tool_calls=translated.parallel_tool_calls,
            )
            return web.json_response(answer)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        translator = ChatStreamTranslator(
            model=model,
            include_usage=translated.include_usage,
            parallel_tool_calls=translated.parallel_tool_calls,
            n=translated.n,
        )
        parser = SseParser()
        async for raw in up.content.iter_any():
            for chunk in parser.feed(raw):
                for event in translator.feed(chunk):
                    await response.write(sse_event(event))
        for event in translator.finish():
            await response.write(sse_event(event))
        await response.write(SSE_DONE)
        await response.write_eof()
        return response


async def _embeddings(request: web.Request) -> web.Response:
    try:
        translated = embeddings_request_to_gemini(await request.json())
    except TranslationError as exc:
        return web.json_response(exc.to_openai_error(), status=exc.status_code)
    url = f"{request.app[UPSTREAM]}/v1beta/models/{translated.model}:batchEmbedContents"
    headers = {"x-goog-api-key": "test"}
    async with request.app[SESSION].post(url, json=translated.body, headers=headers) as up:
        if up.status != 200:
            status, body = openai_error_body(parse_error_body(up.status, await up.read()))
            return web.json_response(body, status=status)
        answer = gemini_embeddings_to_openai(
            await up.json(), model=translated.model, encoding_format=translated.encoding_format
        )
        return web.json_response(answer)


async def _session(app: web.Application) -> Any:
    async with aiohttp.ClientSession(json_serialize=json.dumps) as session:
        app[SESSION] = session
        yield


def create_bridge(upstream_url: str) -> web.Application:
    """The bridge app, calling the Gemini API at ``upstream_url``."""
    app = web.Application()
    app[UPSTREAM] = upstream_url
    app.cleanup_ctx.append(_session)
    app.router.add_post("/v1/chat/completions", _chat)
    app.router.add_post("/v1/embeddings", _embeddings)
    return app
