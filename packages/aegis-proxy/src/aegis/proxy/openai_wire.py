"""The OpenAI wire on both sides: a call to an OpenAI-compatible upstream from an OpenAI
client, bytes passed through except where governance must change them.

The body carries the output limit the Gate reserved for and ``stream_options.include_usage``
(whose usage chunk is withheld when the client did not ask for it); a stream that runs past
its limit is ended cleanly with ``[DONE]``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aegis.adapters.openai import OutputMeter, RequestEstimate, RequestRewrite
from aegis.core import SseEvent, Usage, UsageSource
from aegis.proxy import fast_json
from aegis.proxy.apis import OPENAI
from aegis.proxy.attempt import Failure
from aegis.proxy.exchange import Answer, ErrorReader, Exchange
from aegis.proxy.forward import passthrough_headers
from aegis.proxy.routing import is_retryable_status

__all__ = ["Endpoint", "StreamMeter", "openai_exchange", "openai_failure", "passthrough_error"]


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One OpenAI endpoint as governance sees it."""

    path: str
    capability: str
    estimate: Callable[[Mapping[str, Any]], RequestEstimate]
    rewrite: Callable[[Mapping[str, Any], int], RequestRewrite] | None
    usage_from_response: Callable[[Any], Usage | None]
    observe: Callable[[OutputMeter, Any], bool] | None = None
    count: Callable[[OutputMeter, Any], None] | None = None
    """Counts a whole answer's output, to bill one that came without ``usage`` (many
    OpenAI-compatible servers omit it) as its stream would be billed; ``None``: the answer
    has no output (embeddings), its input bound is the bill."""
    ends_with_done: bool = False
    """Its streams end with ``data: [DONE]`` (chat; Responses ends with a terminal event)."""


def passthrough_error(provider: str) -> ErrorReader:
    """A provider error for a client of the same API: its status, body and headers."""

    def failure(status: int, body: bytes, headers: Mapping[str, str]) -> Failure:
        return Failure(
            status,
            f"{provider} answered {status}",
            body,
            passthrough_headers(headers),
            retryable=is_retryable_status(status),
        )

    return failure


ToOpenAI = Callable[[int, bytes, Mapping[str, str]], tuple[int, dict[str, Any]]]
"""Another provider's error answer (status, body, headers) as an OpenAI status and body."""


def openai_failure(provider: str, to_openai: ToOpenAI) -> ErrorReader:
    """A provider error for an OpenAI client served by another API: translated, with the
    provider's ``retry-after``."""

    def failure(status: int, body: bytes, headers: Mapping[str, str]) -> Failure:
        code, data = to_openai(status, body, headers)
        retry = {k: v for k, v in headers.items() if k.lower() == "retry-after"}
        return Failure(
            code,
            f"{provider} answered {status}",
            json.dumps(data).encode(),
            {"Content-Type": "application/json", **retry},
            retryable=is_retryable_status(status),
        )

    return failure


def json_object(raw: bytes) -> dict[str, Any]:
    """A JSON object answer, or ``ValueError`` (an empty, cut or foreign body)."""
    data = fast_json.loads(raw)
    if not isinstance(data, dict):
        raise ValueError("the answer is not a JSON object")
    return data


class StreamMeter:
    """Meters an OpenAI stream and passes its events through (withholding what the client
    did not ask for)."""

    __slots__ = ("_done", "_ends_with_done", "_meter", "_observe", "_withhold_usage")

    def __init__(
        self,
        endpoint: Endpoint,
        meter: OutputMeter,
        withhold_usage: bool,
    ) -> None:
        assert endpoint.observe is not None
        self._observe = endpoint.observe
        self._ends_with_done = endpoint.ends_with_done
        self._meter = meter
        self._withhold_usage = withhold_usage
        self._done = False

    def feed(self, event: SseEvent, out: bytearray) -> bool:
        data = event.data
        if data is None or data == b"[DONE]":
            self._done = self._done or data == b"[DONE]"
            out += event.raw
            return True
        parsed = fast_json.loads(data)
        if not self._observe(self._meter, parsed):
            # The upstream ignores the limit we reserved for: end the stream here.
            out += b"data: [DONE]\n\n"
            self._done = True
            return False
        if not (self._withhold_usage and _is_usage_only(parsed)):
            out += event.raw
        return True

    @property
    def complete(self) -> str | None:
        return "without [DONE]" if self._ends_with_done and not self._done else None

    def usage(self, input_bound: int, completed: bool) -> tuple[Usage, UsageSource]:
        # Once the request went upstream its input is billed, even if nothing came back:
        # without reported usage the bill is the input bound plus what was counted.
        if self._meter.usage is not None:
            return self._meter.usage, "reported"
        return self._meter.counted_usage(input_bound), "counted"

    def tail(self, error: str | None) -> bytes:
        return b""


def _is_usage_only(chunk: Any) -> bool:
    return isinstance(chunk, dict) and chunk.get("usage") is not None and not chunk.get("choices")


def openai_exchange(
    endpoint: Endpoint,
    provider: str,
    payload: bytes,
    *,
    stream: bool,
    per_choice_limit: int,
    n: int,
    withhold_usage: bool,
    input_bound: int,
) -> Exchange:
    """An attempt at an OpenAI-compatible upstream for an OpenAI client."""

    def read_answer(raw: bytes) -> Answer:
        data = json_object(raw)
        usage = endpoint.usage_from_response(data)
        if usage is not None:
            return Answer(raw, usage)
        # No usage: bill the input bound and the counted output, never the whole reservation.
        meter = OutputMeter(max_output_tokens=per_choice_limit, n=n)
        if endpoint.count is not None:
            endpoint.count(meter, data)
        return Answer(raw, meter.counted_usage(input_bound), "counted")

    def observer() -> StreamMeter:
        meter = OutputMeter(max_output_tokens=per_choice_limit, n=n)
        return StreamMeter(endpoint, meter, withhold_usage)

    return Exchange(
        path=endpoint.path,
        payload=payload,
        client=OPENAI,
        read_answer=read_answer,
        client_error=passthrough_error(provider),
        observer=observer if stream else None,
    )
