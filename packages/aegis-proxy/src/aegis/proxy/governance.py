"""Builds the Gate and its parts from settings: prices, policies, ledger, signer, receipt sink."""

from __future__ import annotations

import logging
import os
import secrets
from contextlib import suppress
from pathlib import Path
from typing import Final

from aegis.core import (
    FileReceiptSink,
    HmacSha256Signer,
    Ledger,
    MemoryLedger,
    MemoryReceiptSink,
    PricingTable,
    ReceiptSink,
    ReceiptSinkUnavailable,
    RedisLedger,
    SqliteLedger,
    SqliteReceiptSink,
    TrailLocked,
    default_pricing_table,
)
from aegis.core.files import create_once
from aegis.proxy.config import Settings

__all__ = [
    "MAX_TRAIL_SLOTS",
    "build_pricing",
    "open_ledger",
    "open_sink",
    "open_trail",
    "receipt_signer",
    "trail_path",
]

logger = logging.getLogger(__name__)


def build_pricing(settings: Settings) -> PricingTable:
    table = default_pricing_table()
    if settings.pricing_overrides is not None:
        table = table.with_overrides_file(settings.pricing_overrides)
    return table


def open_ledger(settings: Settings, *, create_epoch: bool = True) -> Ledger:
    """The configured ledger; ``create_epoch=False`` for tools that must not start a Redis
    data set's epoch (reading an empty Redis then fails rather than shows zero spend)."""
    cfg = settings.ledger
    if cfg.backend == "memory":
        return MemoryLedger()
    if cfg.backend == "redis":
        return RedisLedger(
            cfg.url,
            prefix=cfg.key_prefix,
            epoch_file=cfg.epoch_path,
            create_epoch=create_epoch,
        )
    return SqliteLedger(cfg.path, synchronous=cfg.synchronous)


def receipt_signer(settings: Settings) -> HmacSha256Signer:
    """The receipt signer; its secret comes from the environment variable the config names.

    Without one (the zero-config start), a secret is generated once and kept, readable only by
    its owner, beside the receipts, so the trail stays verifiable across restarts. Replicas
    started together from one folder agree on one secret: the first to create the file wins.
    """
    cfg = settings.receipts
    secret = os.environ.get(cfg.secret_env)
    if not secret:
        key_file = cfg.path.parent / f"{cfg.key_id}.secret"
        if key_file.exists():
            secret = key_file.read_text().strip()
        else:
            secret, created = create_once(key_file, secrets.token_urlsafe(32))
            secret = secret.strip()
            if created:
                logger.warning(
                    "no %s set: generated a receipt signing secret in %s", cfg.secret_env, key_file
                )
    return HmacSha256Signer(key_id=cfg.key_id, secret=secret)


MAX_TRAIL_SLOTS: Final = 64
"""Replicas that may share one receipts folder, each writing a trail of its own."""


def trail_path(settings: Settings, slot: int) -> Path:
    """Where slot ``slot``'s trail lives: the configured path, then ``receipts.2``, …"""
    path = settings.receipts.path
    return path if slot == 1 else path.with_name(f"{path.stem}.{slot}{path.suffix}")


def open_sink(
    settings: Settings, signer: HmacSha256Signer, path: Path | None = None
) -> ReceiptSink:
    """The receipt sink (at ``path``, else the configured one); checkpoints are signed with
    the receipt signer."""
    cfg = settings.receipts
    path = path or cfg.path
    if cfg.sink == "memory":
        return MemoryReceiptSink()
    interval = cfg.group_commit_ms / 1000
    if cfg.sink == "sqlite":
        return SqliteReceiptSink(
            path, durability=cfg.durability, sync_interval_s=interval, checkpoint_signer=signer
        )
    return FileReceiptSink(
        path, durability=cfg.durability, sync_interval_s=interval, checkpoint_signer=signer
    )


async def open_trail(settings: Settings, signer: HmacSha256Signer) -> tuple[ReceiptSink, Path]:
    """The receipt sink opened (its tail read) at the first trail no other process writes.

    Each chain has one writer: a replica that finds the configured trail locked by another
    one, started from the same folder, takes the next slot instead of failing to start.
    """
    for slot in range(1, MAX_TRAIL_SLOTS + 1):
        path = trail_path(settings, slot)
        sink = open_sink(settings, signer, path)
        try:
            await sink.tail()
        except TrailLocked:
            with suppress(Exception):
                await sink.close()
            continue
        if slot > 1:
            logger.info("receipt trail %s is in use; writing %s", settings.receipts.path, path)
        return sink, path
    raise ReceiptSinkUnavailable(
        f"every receipt trail slot beside {settings.receipts.path} is in use"
    )
