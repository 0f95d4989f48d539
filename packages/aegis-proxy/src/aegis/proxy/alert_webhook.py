"""Budget alerts delivered to a webhook: signed JSON, retried with backoff, off the request path.

The Gate hands each alert to :meth:`AlertWebhook.submit`, which only starts a background task:
a slow, failing or dead receiver never delays or fails a call. The body is the alert's
canonical JSON bytes; ``x-aegis-signature`` carries the webhook signer's signature over
exactly those bytes, with ``x-aegis-key-id`` and ``x-aegis-signature-alg`` naming the key,
so a receiver holding the webhook key (``[alerts] webhook_secret_env``, never the receipt
key: a receiver holding that could forge receipts) can trust the event (see the README).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import suppress
from typing import Final

import aiohttp
from aiohttp import web

from aegis.core import BudgetAlert, Signer, canonical_bytes
from aegis.proxy.config import AlertSettings
from aegis.proxy.governance import webhook_signer
from aegis.proxy.state import GATE, SETTINGS

__all__ = ["AlertWebhook", "alert_webhook_context"]

logger = logging.getLogger(__name__)
MAX_PENDING: Final = 1000
"""Alerts awaiting delivery at most; beyond, new ones are logged as dropped (they are in the
receipt trail regardless)."""


class AlertWebhook:
    """Posts alerts to one URL, each in its own task, with retries."""

    def __init__(self, settings: AlertSettings, signer: Signer) -> None:
        if settings.webhook_url is None:
            raise ValueError("no webhook_url")
        self._url = settings.webhook_url
        self._settings = settings
        self._signer = signer
        self._session: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._idle = asyncio.Event()
        self._idle.set()

    async def start(self) -> None:
        """Open the HTTP session (inside the running loop)."""
        timeout = aiohttp.ClientTimeout(total=self._settings.webhook_timeout_s)
        self._session = aiohttp.ClientSession(timeout=timeout)

    def submit(self, alert: BudgetAlert) -> None:
        """Queue ``alert`` for delivery; returns at once (the Gate's ``on_alert``)."""
        if self._session is None or len(self._tasks) >= MAX_PENDING:
            logger.error(
                "budget alert %s of tenant %s not sent to the webhook: %s",
                alert.receipt_id,
                alert.tenant_id,
                "too many pending" if self._session else "not running",
            )
            return
        task = asyncio.get_running_loop().create_task(self._deliver(alert))
        self._tasks.add(task)
        self._idle.clear()
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not self._tasks:
            self._idle.set()

    @property
    def pending(self) -> int:
        """Alerts still being delivered (or retried)."""
        return len(self._tasks)

    async def wait_idle(self) -> None:
        """Return once no delivery is pending (for tests and shutdown)."""
        await self._idle.wait()

    def request(self, alert: BudgetAlert) -> tuple[bytes, dict[str, str]]:
        """The body and headers a delivery sends."""
        body = canonical_bytes(alert.to_dict())
        headers = {
            "content-type": "application/json",
            "x-aegis-event": "budget.alert",
            "x-aegis-key-id": self._signer.key_id,
            "x-aegis-signature-alg": self._signer.alg,
            "x-aegis-signature": self._signer.sign(body),
        }
        return body, headers

    async def _deliver(self, alert: BudgetAlert) -> None:
        body, headers = self.request(alert)
        delay = self._settings.webhook_backoff_s
        attempts = self._settings.webhook_attempts
        for attempt in range(1, attempts + 1):
            failure = await self._post(body, headers)
            if failure is None:
                logger.info("budget alert %s delivered to the webhook", alert.receipt_id)
                return
            if attempt == attempts:
                break
            logger.warning(
                "budget alert %s: webhook attempt %d failed (%s); retrying in %.1fs",
                alert.receipt_id,
                attempt,
                failure,
                delay,
            )
            await asyncio.sleep(delay)
            delay *= 2
        logger.error(
            "budget alert %s of tenant %s not delivered after %d attempts (last: %s); "
            "it is in the receipt trail",
            alert.receipt_id,
            alert.tenant_id,
            attempts,
            failure,
        )

    async def _post(self, body: bytes, headers: dict[str, str]) -> str | None:
        """One attempt: ``None`` when the receiver took it (2xx), else why not."""
        assert self._session is not None
        try:
            async with self._session.post(self._url, data=body, headers=headers) as response:
                await response.read()
                if 200 <= response.status < 300:
                    return None
                return f"HTTP {response.status}"
        except (aiohttp.ClientError, TimeoutError) as exc:
            return type(exc).__name__

    async def close(self) -> None:
        """Stop pending deliveries (they are in the receipt trail) and the session."""
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with suppress(asyncio.CancelledError):
                await task
        if self._session is not None:
            await self._session.close()


ALERT_WEBHOOK: web.AppKey[AlertWebhook] = web.AppKey("alert_webhook")
"""Set while ``[alerts] webhook_url`` is configured."""


def alert_webhook_context(
    settings: AlertSettings,
) -> Callable[[web.Application], AsyncIterator[None]]:
    """A cleanup context that feeds the Gate's alerts to the webhook (after ``_governance``)."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        gate = app[GATE]
        # A key of its own: a receiver holding the receipt key could forge receipts.
        webhook = AlertWebhook(settings, webhook_signer(app[SETTINGS]))
        await webhook.start()
        app[ALERT_WEBHOOK] = webhook
        gate.on_alert = webhook.submit
        yield
        gate.on_alert = None
        await webhook.close()

    return ctx
