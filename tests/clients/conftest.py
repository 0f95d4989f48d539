"""The client matrix: popular clients against the proxy in front of the local fakes.

One proxy per test, four tenants: ``acme`` may do anything, ``broke`` has a per-run budget no
call fits (every governed call is a budget stop), ``slow`` may make one request a minute (the
second is a rate limit), ``narrow`` may use ``*-mini`` models only. The proxy counts every
request it receives and keeps every answer's headers (:class:`Seen`), so a test asserts how
many requests a client really made (a budget stop is exactly one, whatever the client's retry
rules) and that every answer carried one ``x-request-id`` and its receipt's id.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from aiohttp.typedefs import Handler
from fakes.gemini_upstream import FakeGeminiServer
from fakes.openai_upstream import FakeUpstream
from fakes.proxy_harness import UPSTREAM_SECRET
from multidict import CIMultiDictProxy

from aegis.core import MemoryReceiptSink, Receipt
from aegis.proxy import GATE, create_app, hash_key, parse_settings

# litellm fetches its price map from the network at import unless told not to.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

ACME = "aegis-sk-client-matrix-acme-0123456789"
BROKE = "aegis-sk-client-matrix-broke-0123456789"
SLOW = "aegis-sk-client-matrix-slow-0123456789"
NARROW = "aegis-sk-client-matrix-narrow-0123456789"
RECEIPT_SECRET = "receipt-secret-client-matrix-0123456789"


@dataclass(frozen=True, slots=True)
class Answer:
    """One request the proxy received, and the headers it answered with."""

    method: str
    path: str
    status: int
    headers: CIMultiDictProxy[str]


@dataclass
class Seen:
    """What the proxy received, in order."""

    answers: list[Answer] = field(default_factory=list)

    def to(self, path_part: str) -> list[Answer]:
        return [a for a in self.answers if path_part in a.path]

    def assert_ids(self, *, receipts: bool = True) -> None:
        """Every answer carried exactly one ``x-request-id`` (the proxy's, never the
        provider's beside it) and, for governed calls, its receipt's id."""
        assert self.answers
        for answer in self.answers:
            ids = answer.headers.getall("x-request-id", [])
            assert len(ids) == 1, (answer, ids)
            assert not ids[0].startswith("req_"), answer  # the fake OpenAI's own ids
            if receipts:
                assert answer.headers.get("x-aegis-receipt-id"), answer


@dataclass
class Matrix:
    """The proxy in front of both fakes."""

    url: str
    openai: FakeUpstream
    gemini: FakeGeminiServer
    seen: Seen
    app: web.Application

    @property
    def openai_url(self) -> str:
        return self.url + "/v1"

    @property
    def receipts(self) -> list[Receipt]:
        """Every receipt written so far, in order."""
        sink = self.app[GATE].sink
        assert isinstance(sink, MemoryReceiptSink)
        return sink.receipts


def _settings(tmp_path: Path, openai: FakeUpstream, gemini: FakeGeminiServer) -> Any:
    return parse_settings(
        {
            "ledger": {"backend": "sqlite", "path": str(tmp_path / "ledger.db")},
            "receipts": {"sink": "memory"},
            "providers": {
                "openai": {
                    "type": "openai",
                    "base_url": openai.base_url,
                    "api_key_env": "FAKE_KEY",
                },
                "gemini": {"type": "gemini", "base_url": gemini.url, "api_key_env": "FAKE_KEY"},
            },
            "tenants": {
                "acme": {"api_keys": [hash_key(ACME)], "capabilities": _ALL},
                "broke": {
                    "api_keys": [hash_key(BROKE)],
                    "capabilities": _ALL,
                    "budgets": {"per_run_usd": "0.000001"},
                },
                "slow": {
                    "api_keys": [hash_key(SLOW)],
                    "capabilities": _ALL,
                    "limits": [{"rpm": 1}],
                },
                "narrow": {"api_keys": [hash_key(NARROW)], "model": {"allow_models": ["*-mini"]}},
            },
        },
        environ={},
    )


_ALL = ["llm:invoke", "llm:stream", "embeddings:create"]


@pytest.fixture
async def matrix(
    tmp_path: Path,
    openai_upstream: FakeUpstream,
    gemini_upstream: FakeGeminiServer,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[Matrix]:
    monkeypatch.setenv("FAKE_KEY", UPSTREAM_SECRET)
    monkeypatch.setenv("AEGIS_RECEIPT_SECRET", RECEIPT_SECRET)
    seen = Seen()

    @web.middleware
    async def count(request: web.Request, handler: Handler) -> web.StreamResponse:
        response = await handler(request)
        seen.answers.append(
            Answer(
                request.method, request.path, response.status, CIMultiDictProxy(response.headers)
            )
        )
        return response

    app = create_app(_settings(tmp_path, openai_upstream, gemini_upstream))
    app.middlewares.insert(0, count)  # outermost: it sees what the client gets
    server = TestServer(app)
    await server.start_server()
    try:
        yield Matrix(
            str(server.make_url("")).rstrip("/"), openai_upstream, gemini_upstream, seen, app
        )
    finally:
        await server.close()
