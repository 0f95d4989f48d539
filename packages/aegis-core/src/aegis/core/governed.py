"""What an SDK adapter's governed call returns: the provider's response and its receipt, or a
stream of its chunks that settles once, however it ends."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass
from types import TracebackType
from typing import Generic, TypeVar

from aegis.core.permit import GovernedCall, Permit
from aegis.core.receipts import Receipt

__all__ = ["GovernedResponse", "GovernedStream", "StreamState"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class GovernedResponse(Generic[T]):
    """An SDK response and the receipt of the governed call that produced it."""

    response: T
    receipt: Receipt


class StreamState:
    """Shared by a governed stream and the generator that runs it: the call, once admitted."""

    __slots__ = ("call",)

    def __init__(self) -> None:
        self.call: GovernedCall | None = None


S = TypeVar("S", bound=StreamState)


class GovernedStream(Generic[T, S]):
    """The chunks of a governed stream, as they arrive; settles when it ends or is closed.

    ``agen`` runs the call inside :meth:`Gate.call <aegis.core.gate.Gate.call>`: it yields
    ``None`` once admitted (before anything is sent), then the chunks. Use the stream in
    ``async with`` (or call :meth:`aclose`) when you may stop early, so the reservation is
    settled at once; an abandoned stream is settled when it is collected.
    """

    __slots__ = ("_agen", "_state")

    def __init__(self, agen: AsyncGenerator[T | None, None], state: S) -> None:
        self._agen = agen
        self._state = state

    @property
    def permit(self) -> Permit:
        """What the Gate admitted (the output limit the request was sent with)."""
        assert self._state.call is not None
        return self._state.call.permit

    @property
    def receipt(self) -> Receipt | None:
        """The receipt, once the stream has ended or been closed."""
        assert self._state.call is not None
        return self._state.call.receipt

    def __aiter__(self) -> GovernedStream[T, S]:
        return self

    async def __anext__(self) -> T:
        chunk = await self._agen.__anext__()
        assert chunk is not None  # only the admission step yields None
        return chunk

    async def aclose(self) -> Receipt:
        """Stop reading: close the upstream response, settle, and return the receipt."""
        await self._agen.aclose()
        assert self.receipt is not None
        return self.receipt

    async def __aenter__(self) -> GovernedStream[T, S]:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
