"""Builds the Gate and its parts from settings: prices, policies, ledger, signer, receipt sink."""

from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path

from aegis.core import (
    AdmissionLog,
    FileReceiptSink,
    HmacSha256Signer,
    Ledger,
    MemoryLedger,
    MemoryReceiptSink,
    PricingTable,
    ReceiptSink,
    RedisLedger,
    SqliteLedger,
    SqliteReceiptSink,
    UnpostedJournal,
    default_pricing_table,
)
from aegis.proxy.config import Settings

__all__ = [
    "build_pricing",
    "open_admission_log",
    "open_journal",
    "open_ledger",
    "open_sink",
    "receipt_signer",
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
    return SqliteLedger(cfg.path, synchronous=cfg.synchronous, busy_timeout_ms=cfg.busy_timeout_ms)


def open_admission_log(settings: Settings) -> AdmissionLog:
    """Where calls admitted and not yet settled are recorded (nowhere for the memory ledger:
    its holds die with the process anyway)."""
    cfg = settings.ledger
    return AdmissionLog(None if cfg.backend == "memory" else cfg.admission_log)


def open_journal(settings: Settings) -> UnpostedJournal:
    """Where charges the ledger failed to take are kept (in memory for the memory ledger)."""
    cfg = settings.ledger
    return UnpostedJournal(None if cfg.backend == "memory" else cfg.journal)


def receipt_signer(settings: Settings) -> HmacSha256Signer:
    """The receipt signer; its secret comes from the environment variable the config names.

    Without one (the zero-config start), a secret is generated once and kept, readable only by
    its owner, beside the receipts, so the trail stays verifiable across restarts.
    """
    cfg = settings.receipts
    secret = os.environ.get(cfg.secret_env)
    if not secret:
        key_file = cfg.path.parent / f"{cfg.key_id}.secret"
        if not key_file.exists():
            key_file.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_urlsafe(32))
            logger.warning(
                "no %s set: generated a receipt signing secret in %s", cfg.secret_env, key_file
            )
        secret = Path(key_file).read_text().strip()
    return HmacSha256Signer(key_id=cfg.key_id, secret=secret)


def open_sink(settings: Settings, signer: HmacSha256Signer) -> ReceiptSink:
    """The receipt sink; checkpoints are signed with the receipt signer."""
    cfg = settings.receipts
    if cfg.sink == "memory":
        return MemoryReceiptSink()
    options = {
        "durability": cfg.durability,
        "sync_interval_s": cfg.group_commit_ms / 1000,
        "checkpoint_signer": signer,
    }
    if cfg.sink == "sqlite":
        return SqliteReceiptSink(cfg.path, **options)  # type: ignore[arg-type]
    return FileReceiptSink(cfg.path, **options)  # type: ignore[arg-type]
