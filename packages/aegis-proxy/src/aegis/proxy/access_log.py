"""One JSON line per proxied request on the ``aegis.proxy.access`` logger.

A line carries ids, amounts, the model name, the outcome and timings; never a prompt, a
completion or a key (the values come from receipts and the response status, not from bodies or
headers other than the request id).
"""

from __future__ import annotations

import json
import logging
import time
from decimal import Decimal
from typing import Any, Final

from aegis.core import Receipt

__all__ = [
    "ACCESS_LOGGER",
    "BufferedLineHandler",
    "access_record",
    "flush_access_log",
    "log_access",
]

ACCESS_LOGGER: Final = "aegis.proxy.access"
logger = logging.getLogger(ACCESS_LOGGER)
_MAX_MODEL: Final = 200
# json.dumps with options builds a new encoder per call; this line is written per request.
_ENCODER: Final = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
_second_prefix: tuple[int, str] = (0, "")


def _timestamp() -> str:
    """UTC ISO-8601 with milliseconds; the part up to the second is formatted once a second."""
    global _second_prefix
    now = time.time()
    second = int(now)
    if _second_prefix[0] != second:
        _second_prefix = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
    return f"{_second_prefix[1]}.{int((now - second) * 1000):03d}Z"


def _cost(receipts: list[Receipt]) -> str:
    if len(receipts) == 1:
        return receipts[0].actual_usd
    return str(sum((Decimal(r.actual_usd) for r in receipts), Decimal(0)))


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
        "ts": _timestamp(),
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
        "cost_usd": None if last is None else _cost(receipts),
        "latency_ms": round(latency_s * 1000, 3),
        "upstream_ms": round(upstream_s * 1000, 3) if attempts else None,
        "attempts": attempts,
        "receipt_id": None if last is None else last.receipt_id,
    }
    if len(receipts) > 1:
        record["receipt_ids"] = [r.receipt_id for r in receipts]
    return record


def log_access(record: dict[str, Any]) -> None:
    if logger.isEnabledFor(logging.INFO):
        # makeRecord + handle: the same record logger.info makes, without walking the stack
        # for a caller that is always this line.
        line = _ENCODER.encode(record)
        logger.handle(logger.makeRecord(ACCESS_LOGGER, logging.INFO, __file__, 0, line, (), None))


class BufferedLineHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Keeps lines and writes them in one piece: at most every ``flush_interval_s`` (or once
    ``max_buffered`` characters wait) while requests come, and from :func:`flush_access_log`
    (which the proxy calls every second) when they stop. A crash can lose that last second of
    access lines (never receipts).

    The handler buffers itself rather than trusting the stream's buffer: with
    ``PYTHONUNBUFFERED`` set (as container images often do) ``sys.stdout`` writes through, one
    system call per line, on the hot path of every request.
    """

    def __init__(
        self, stream: Any = None, flush_interval_s: float = 0.5, max_buffered: int = 64 * 1024
    ) -> None:
        super().__init__(stream)
        self.flush_interval_s = flush_interval_s
        self.max_buffered = max_buffered
        self._lines: list[str] = []
        self._buffered = 0
        self._flushed_at = time.monotonic()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception:
            self.handleError(record)
            return
        self._lines.append(line)
        self._buffered += len(line) + 1
        if (
            self._buffered >= self.max_buffered
            or time.monotonic() - self._flushed_at >= self.flush_interval_s
        ):
            self.flush_now()

    def flush(self) -> None:
        """Nothing here: lines go out by interval, size or :meth:`flush_now`."""

    def flush_now(self) -> None:
        """Write every line kept so far, in one piece."""
        self.acquire()
        try:
            self._flushed_at = time.monotonic()
            if not self._lines:
                return
            text = "\n".join(self._lines) + "\n"
            self._lines.clear()
            self._buffered = 0
            self.stream.write(text)
            self.stream.flush()
        except Exception:
            self.handleError(logging.makeLogRecord({"msg": "access log write failed"}))
        finally:
            self.release()

    def close(self) -> None:
        self.flush_now()
        super().close()


def flush_access_log() -> None:
    """Push out what buffered handlers of the access logger hold."""
    for handler in logger.handlers:
        if isinstance(handler, BufferedLineHandler):
            handler.flush_now()
