"""One JSON line per proxied request on the ``aegis.proxy.access`` logger.

A line carries ids, amounts, the model name, the outcome and timings; never a prompt, a
completion or a key (the values come from receipts and the response status, not from bodies or
headers other than the request id).
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Final

from aegis.core import Receipt

__all__ = ["ACCESS_LOGGER", "access_record", "log_access"]

ACCESS_LOGGER: Final = "aegis.proxy.access"
logger = logging.getLogger(ACCESS_LOGGER)
_MAX_MODEL: Final = 200


def access_record(
    *,
    method: str,
    route: str,
    status: int,
    receipts: list[Receipt],
    latency_s: float,
    upstream_s: float,
    attempts: int,
) -> dict[str, Any]:
    """The fields of one access line (plain data)."""
    last = receipts[-1] if receipts else None
    record: dict[str, Any] = {
        "ts": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "event": "request",
        "method": method,
        "route": route,
        "status": status,
        "request_id": receipts[0].request_id if receipts else None,
        "tenant": None if last is None else last.tenant_id,
        "model": None if last is None or last.model is None else last.model[:_MAX_MODEL],
        "provider": None if last is None else last.provider,
        "outcome": None if last is None else last.status,
        "decision": None if last is None else (last.decision.reason or "allowed"),
        "cost_usd": None
        if last is None
        else str(sum((Decimal(r.actual_usd) for r in receipts), Decimal(0))),
        "latency_ms": round(latency_s * 1000, 3),
        "upstream_ms": round(upstream_s * 1000, 3) if attempts else None,
        "attempts": attempts,
        "receipt_id": None if last is None else last.receipt_id,
    }
    if len(receipts) > 1:
        record["receipt_ids"] = [r.receipt_id for r in receipts]
    return record


def log_access(record: dict[str, Any]) -> None:
    logger.info("%s", json.dumps(record, separators=(",", ":"), ensure_ascii=False))
