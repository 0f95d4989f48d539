"""What differs between one provider's wire and the client's API, for one attempt.

The forwarding code (:mod:`aegis.proxy.forward`) is the same for every pair of APIs: send,
read an error or an answer, or pump a stream. An :class:`Exchange` supplies the parts that
differ: the upstream path and body, how an answer becomes the client's body and the usage,
how a provider error is shown to the client, and a :class:`StreamObserver` that reads usage
from (and, when the APIs differ, translates) each event of a stream.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from aegis.core import SseEvent, Usage, UsageSource
from aegis.proxy.apis import ClientApi
from aegis.proxy.attempt import Failure

__all__ = ["Answer", "ErrorReader", "Exchange", "StreamObserver"]


@dataclass(frozen=True, slots=True)
class Answer:
    """A non-streamed answer for the client."""

    body: bytes
    usage: Usage | None
    usage_source: UsageSource = "reported"
    passthrough: bool = True
    """The provider's headers go to the client (same API); else only the proxy's."""


ErrorReader = Callable[[int, bytes, Mapping[str, str]], Failure]
"""A provider's error answer (status, body, headers) as the client's API shows it."""


class StreamObserver(Protocol):
    """Reads one stream event by event; one instance per attempt."""

    def feed(self, event: SseEvent, out: bytearray) -> bool:
        """Append what the client gets for ``event`` to ``out``; return ``False`` when the
        stream must end here (it ran past the limit that was reserved). Raises
        ``ValueError`` for an event the provider's API never sends."""
        ...

    @property
    def complete(self) -> str | None:
        """``None`` when the stream reached its proper end; else what is missing."""
        ...

    def usage(self, input_bound: int, completed: bool) -> tuple[Usage, UsageSource]:
        """What the stream used: reported, or counted from what was delivered."""
        ...

    def tail(self, error: str | None) -> bytes:
        """The bytes that end the client's stream (``error``: it broke)."""
        ...


@dataclass(frozen=True, slots=True)
class Exchange:
    """One attempt's wire: what to send where, and how to read what comes back."""

    path: str
    payload: bytes
    client: ClientApi
    """The API the client speaks (errors and stream error events are in its shape)."""
    read_answer: Callable[[bytes], Answer]
    """Raises ``ValueError`` for a body the provider's API never sends."""
    client_error: ErrorReader
    observer: Callable[[], StreamObserver] | None = None
    """Set for a streamed call."""
    method: str = "POST"
    """``GET`` to read what the provider keeps (a stored response), with no body."""
    stream_content_type: str = "text/event-stream"
    """What the client's stream is (Gemini's without ``alt=sse``: one JSON array)."""
    headers: Mapping[str, str] | None = None
    """Request headers of this call on top of the upstream's own (Anthropic's
    ``anthropic-version`` and ``anthropic-beta`` as the client sent them)."""
