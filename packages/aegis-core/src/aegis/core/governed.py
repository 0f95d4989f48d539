"""What an SDK adapter's governed call returns: the provider's response and its receipt."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

from aegis.core.receipts import Receipt

__all__ = ["GovernedResponse"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class GovernedResponse(Generic[T]):
    """An SDK response and the receipt of the governed call that produced it."""

    response: T
    receipt: Receipt
