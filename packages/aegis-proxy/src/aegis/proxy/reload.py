"""Hot reload of tenants, keys, policies and prices: on SIGHUP and when the config file or the
price file (``[pricing] overrides``) changes.

A new file is validated whole before anything changes; an invalid one leaves the running
configuration in place and logs every problem. Providers, ledger and receipts settings need a
restart (a reload that changes them says so).
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import AsyncIterator, Callable
from contextlib import suppress
from pathlib import Path

from aiohttp import web

from aegis.core import ConfigError
from aegis.proxy.app import apply_settings
from aegis.proxy.config import ConfigProblems, Settings, load_settings
from aegis.proxy.prices import apply_pricing, load_pricing
from aegis.proxy.state import SETTINGS

__all__ = ["reload_config", "watch_config"]

logger = logging.getLogger(__name__)
POLL_INTERVAL_S = 1.0


def reload_config(app: web.Application, path: Path) -> bool:
    """Re-read ``path`` and apply it; ``False`` (old config kept) when it is invalid."""
    return _reload(app, path) is not None


def _reload(app: web.Application, path: Path) -> Settings | None:
    try:
        settings = load_settings(path)
        pricing, _ = load_pricing(settings)
    except ConfigProblems as exc:
        for problem in exc.problems:
            logger.error("config reload rejected, keeping the running config: %s", problem)
        return None
    except ConfigError as exc:
        logger.error("config reload rejected, keeping the running config: %s", exc)
        return None
    old = app[SETTINGS]
    for part in ("server", "ledger", "receipts", "providers", "alerts"):
        if getattr(settings, part) != getattr(old, part):
            logger.warning("config reload: [%s] changed; it applies after a restart", part)
    apply_settings(app, settings)
    apply_pricing(app, pricing)
    logger.info(
        "config reloaded: %d tenants, prices %s (as of %s)",
        len(settings.tenants),
        pricing.version,
        pricing.as_of.isoformat(),
    )
    return settings


def watch_config(path: Path) -> Callable[[web.Application], AsyncIterator[None]]:
    """A cleanup context that reloads on SIGHUP and on file change."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()
        price_file = app[SETTINGS].pricing_overrides

        def reload() -> None:
            nonlocal price_file
            settings = _reload(app, path)
            if settings is not None:
                price_file = settings.pricing_overrides

        loop.add_signal_handler(signal.SIGHUP, reload)

        async def poll() -> None:
            last = (_stamp(path), _stamp(price_file))
            while True:
                await asyncio.sleep(POLL_INTERVAL_S)
                stamp = (_stamp(path), _stamp(price_file))
                if stamp != last:
                    reload()
                    last = (_stamp(path), _stamp(price_file))

        task = asyncio.create_task(poll())
        yield
        loop.remove_signal_handler(signal.SIGHUP)
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task

    return ctx


def _stamp(path: Path | None) -> tuple[int, int] | None:
    if path is None:
        return None
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size
