"""Builds the Gate and its parts from settings: prices, policies, ledger, signer, receipt sink."""

from __future__ import annotations

import logging
import os
import secrets
from contextlib import suppress
from pathlib import Path
from typing import Final

from aegis.core import (
    AdmissionJournal,
    AdmissionLog,
    CheckpointCopy,
    FileReceiptSink,
    HmacSha256Signer,
    Ledger,
    LedgerAdmissions,
    MemoryLedger,
    MemoryReceiptSink,
    PricingTable,
    ReceiptSink,
    ReceiptSinkUnavailable,
    RedisLedger,
    SqliteLedger,
    SqliteReceiptSink,
    TrailLocked,
    UnpostedJournal,
    default_pricing_table,
)
from aegis.core.files import create_once
from aegis.proxy.config import Settings

__all__ = [
    "MAX_TRAIL_SLOTS",
    "build_pricing",
    "open_admission_log",
    "open_journal",
    "open_ledger",
    "open_sink",
    "open_trail",
    "other_admission_logs",
    "receipt_signer",
    "trail_path",
    "webhook_signer",
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


def open_admission_log(settings: Settings, trail: Path, ledger: Ledger) -> AdmissionJournal:
    """Where this replica records calls admitted and not yet settled, under its own trail's
    name (which one process writes), so a replica restarted on that trail recovers them;
    nowhere for the memory ledger, whose holds die with the process anyway.

    In the SQLite ledger, as notes with the holds: the reservation's own transaction records
    the admission, so no call pays a write (and an fsync) of its own for it. A ledger less
    durable than the receipts (``normal`` against ``fsync``) would lose the record with the
    hold in a power cut, so then, as with Redis, a file beside the trail keeps it.
    """
    if settings.ledger.backend == "memory":
        return AdmissionLog(None)
    fsync = settings.receipts.durability == "fsync"
    if isinstance(ledger, SqliteLedger) and (settings.ledger.synchronous == "full" or not fsync):
        return _noted(ledger, trail)
    # As durable as the receipts: fsynced with "fsync", written at once (kill -9 safe) with
    # "group", which already accepts losing a power cut's last moments.
    return AdmissionLog(_log_path(trail), durable=fsync)


def other_admission_logs(
    trail: Path, ledger: Ledger, journal: AdmissionJournal
) -> list[AdmissionJournal]:
    """Where else this trail's admissions may be: a file or notes left by another version or
    configuration of this replica. Their calls are recovered like the journal's own."""
    others: list[AdmissionJournal] = []
    path = _log_path(trail)
    if not isinstance(journal, AdmissionLog) and path.exists():
        others.append(AdmissionLog(path))
    if isinstance(ledger, SqliteLedger) and not isinstance(journal, LedgerAdmissions):
        others.append(_noted(ledger, trail))
    return others


def _noted(ledger: SqliteLedger, trail: Path) -> LedgerAdmissions:
    # The absolute path: two deployments sharing a ledger file may both name a trail
    # "receipts", and must never recover each other's calls.
    return LedgerAdmissions(ledger, owner=str(trail.resolve()))


def _log_path(trail: Path) -> Path:
    return trail.with_name(trail.name + ".admissions.jsonl")


def open_journal(settings: Settings, trail: Path) -> UnpostedJournal:
    """Where this replica keeps the charges its ledger failed to take (beside its trail)."""
    if settings.ledger.backend == "memory":
        return UnpostedJournal(None)
    return UnpostedJournal(trail.with_name(trail.name + ".unposted.jsonl"))


def receipt_signer(settings: Settings) -> HmacSha256Signer:
    """The receipt signer; its secret comes from the environment variable the config names.

    Without one (the zero-config start), a secret is generated once and kept, readable only by
    its owner, beside the receipts, so the trail stays verifiable across restarts. Replicas
    started together from one folder agree on one secret: the first to create the file wins.
    """
    cfg = settings.receipts
    return _hmac_signer(cfg.key_id, cfg.secret_env, cfg.path.parent, "receipt signing")


def webhook_signer(settings: Settings) -> HmacSha256Signer:
    """The signer of alert webhooks: a key of its own, never the receipt secret (every webhook
    receiver holds the key that checks its deliveries; with the receipt secret it could forge
    receipts). Its secret is found or generated like the receipt secret's."""
    cfg = settings.alerts
    return _hmac_signer(
        cfg.webhook_key_id, cfg.webhook_secret_env, settings.receipts.path.parent, "webhook"
    )


def _hmac_signer(key_id: str, secret_env: str, folder: Path, purpose: str) -> HmacSha256Signer:
    secret = os.environ.get(secret_env)
    if not secret:
        key_file = folder / f"{key_id}.secret"
        if key_file.exists():
            secret = key_file.read_text().strip()
        else:
            secret, created = create_once(key_file, secrets.token_urlsafe(32))
            secret = secret.strip()
            if created:
                logger.warning(
                    "no %s set: generated a %s secret in %s", secret_env, purpose, key_file
                )
    return HmacSha256Signer(key_id=key_id, secret=secret)


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
    copy = None if cfg.checkpoint_copy is None else CheckpointCopy(_copy_path(settings, path))
    if cfg.sink == "sqlite":
        return SqliteReceiptSink(
            path,
            durability=cfg.durability,
            sync_interval_s=interval,
            checkpoint_signer=signer,
            on_checkpoint=copy,
        )
    return FileReceiptSink(
        path,
        durability=cfg.durability,
        sync_interval_s=interval,
        checkpoint_signer=signer,
        on_checkpoint=copy,
    )


def _copy_path(settings: Settings, trail: Path) -> Path:
    """The checkpoint copy of one trail slot: the configured file for the first, a name of
    its own beside it for each other (one writer per file)."""
    copy = settings.receipts.checkpoint_copy
    assert copy is not None
    if trail == settings.receipts.path:
        return copy
    return copy.with_name(f"{copy.stem}.{trail.name}{copy.suffix}")


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
