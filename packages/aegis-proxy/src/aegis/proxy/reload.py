"""Hot reload of tenants, keys and policies: on SIGHUP and when the config file changes.

A new file is validated whole before anything changes; an invalid one leaves the running
configuration in place and logs every problem. Providers, ledger and receipts settings need a
restart (a reload that changes them says so).
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import AsyncIterator
from contextlib import suppress
from pathlib import Path

from aiohttp import web

from aegis.proxy.app import apply_settings
from aegis.proxy.config import ConfigProblems, load_settings
from aegis.proxy.state import SETTINGS

__all__ = ["reload_config", "watch_config"]

logger = logging.getLogger(__name__)
POLL_INTERVAL_S = 1.0


def reload_config(app: web.Application, path: Path) -> bool:
    """Re-read ``path`` and apply it; ``False`` (old config kept) when it is invalid."""
    try:
        settings = load_settings(path)
    except ConfigProblems as exc:
        for problem in exc.problems:
            logger.error("config reload rejected, keeping the running config: %s", problem)
        return False
    old = app[SETTINGS]
    for part in ("server", "ledger", "receipts", "providers"):
        if getattr(settings, part) != getattr(old, part):
            logger.warning("config reload: [%s] changed; it applies after a restart", part)
    apply_settings(app, settings)
    logger.info("config reloaded: %d tenants", len(settings.tenants))
    return True


def watch_config(path: Path) -> object:
    """A cleanup context that reloads on SIGHUP and on file change."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGHUP, reload_config, app, path)

        async def poll() -> None:
            last = _stamp(path)
            while True:
                await asyncio.sleep(POLL_INTERVAL_S)
                stamp = _stamp(path)
                if stamp != last:
                    last = stamp
                    reload_config(app, path)

        task = asyncio.create_task(poll())
        yield
        loop.remove_signal_handler(signal.SIGHUP)
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task

    return ctx


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size
