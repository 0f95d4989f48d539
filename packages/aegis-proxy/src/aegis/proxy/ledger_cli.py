"""Operator commands on the configured ledger, run beside the proxy: a tenant's spend and
reservations per window (``aegis-proxy usage TENANT``), and accepting a Redis data loss
(``aegis-proxy ledger accept-loss``)."""

from __future__ import annotations

from datetime import UTC, datetime

from aegis.core import LedgerError, RedisLedger, Statement, format_usd
from aegis.proxy.config import Settings
from aegis.proxy.governance import open_ledger

__all__ = ["accept_loss", "format_statement", "read_statement"]

Limits = dict[str, tuple[str, int | None]]


def _limits(settings: Settings, tenant_id: str) -> Limits:
    """Budget name and limit by account-key kind (``day``, ``run`` ...) from the policy."""
    tenant = settings.tenants.get(tenant_id)
    if tenant is None:
        return {}
    limits: Limits = {
        b.window: (b.window + ("" if b.hard_stop else " (soft)"), b.limit_nanos)
        for b in tenant.policy.per_window
    }
    limits["run"] = ("per_run", tenant.policy.per_run_nanos)
    return limits


def _usd(nanos: int) -> str:
    return "$" + format_usd(nanos)


def format_statement(statement: Statement, limits: Limits) -> str:
    """The statement as a table: committed, held and available per account, then the holds."""
    rows = [("account", "budget", "limit", "committed", "held", "available")]
    for key, balance in statement.balances.items():
        budget, limit = limits.get(key.split(":", 1)[0], ("?", None))
        rows.append(
            (
                key,
                budget,
                "" if limit is None else _usd(limit),
                _usd(balance.committed_nanos),
                _usd(balance.pending_nanos),
                "" if limit is None else _usd(max(0, limit - balance.spent_nanos)),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [f"tenant {statement.tenant_id}"]
    if len(rows) == 1:
        lines.append("no spend recorded in any live window")
    else:
        lines += [
            "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
        ]
    held = sum(h.amount_nanos for h in statement.holds)
    lines.append(f"pending reservations: {len(statement.holds)} holding {_usd(held)}")
    for hold in statement.holds:
        expires = datetime.fromtimestamp(hold.expires_at, UTC).isoformat(timespec="seconds")
        lines.append(f"  {hold.hold_id}  {_usd(hold.amount_nanos)}  expires {expires}")
    return "\n".join(lines)


async def read_statement(settings: Settings, tenant_id: str) -> str:
    """The tenant's statement from whichever ledger the settings configure, formatted."""
    if settings.ledger.backend == "memory":
        raise LedgerError("the memory ledger lives inside the proxy process: nothing to read")
    ledger = open_ledger(settings, create_epoch=False)
    try:
        statement = await ledger.statement(tenant_id=tenant_id)
    finally:
        await ledger.close()
    return format_statement(statement, _limits(settings, tenant_id))


async def accept_loss(settings: Settings) -> str:
    """Start a new Redis epoch after a data loss, so replicas serve again; returns it."""
    ledger = open_ledger(settings, create_epoch=False)
    try:
        if not isinstance(ledger, RedisLedger):
            raise LedgerError("only the redis ledger has epochs to accept")
        return await ledger.accept_data_loss()
    finally:
        await ledger.close()
