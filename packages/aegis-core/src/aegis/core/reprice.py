"""Offline re-pricing: recompute every receipt's charge from the trail alone.

A trail carries every price table it was charged under (the ``record`` of the first receipt
naming each ``pricing_version``). :func:`reprice_trail` verifies the trail, checks each carried
table against its version (``sha256:`` of its canonical bytes), rebuilds it, and recomputes
each charge: reported or counted usage at the table's prices, a reservation-charged receipt
at the worst case of its ``bound``. Against the trail's own tables every difference is a
finding; against another table (``prices``) the differences are what that table would have
charged.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aegis.core.errors import AegisError
from aegis.core.keyring import Keyring
from aegis.core.money import format_usd, parse_usd
from aegis.core.pricing import PricingTable
from aegis.core.receipts import Bound, canonical_bytes, usage_from_dict
from aegis.core.trail import find_trail_files, iter_records
from aegis.core.verify import EXIT_INTACT, VerifyReport, verify_trail

__all__ = ["Difference", "RepriceReport", "reprice_trail", "table_version"]


def table_version(record: dict[str, Any]) -> str:
    """The content address of a price-table record: ``sha256:`` of its canonical bytes."""
    return "sha256:" + hashlib.sha256(canonical_bytes(record)).hexdigest()


@dataclass(frozen=True, slots=True)
class Difference:
    """A receipt whose recomputed charge differs from the one it records (or cannot be made)."""

    where: str
    receipt_id: str
    model: str | None
    recorded_usd: str
    repriced_usd: str | None
    """``None``: it could not be re-priced (``reason`` says why)."""
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "where": self.where,
            "receipt_id": self.receipt_id,
            "model": self.model,
            "recorded_usd": self.recorded_usd,
            "repriced_usd": self.repriced_usd,
            "reason": self.reason,
        }


@dataclass(slots=True)
class RepriceReport:
    """What re-pricing found."""

    verify: VerifyReport
    tables: dict[str, str] = field(default_factory=dict)
    """Every price table the trail carries: version -> its ``as_of``."""
    problems: list[str] = field(default_factory=list)
    """Records that do not match their version, or receipts naming a table the trail lacks."""
    receipts: int = 0
    """Charged call receipts re-priced."""
    differences: list[Difference] = field(default_factory=list)
    recorded_nanos: int = 0
    repriced_nanos: int = 0
    against: str | None = None
    """The other table's version, when re-priced against one."""

    @property
    def exit_code(self) -> int:
        """0: intact and (against its own tables) no difference; else 1."""
        if self.verify.exit_code != EXIT_INTACT or self.problems:
            return 1
        return 1 if self.differences and self.against is None else 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "exit_code": self.exit_code,
            "verified": self.verify.exit_code == EXIT_INTACT,
            "verify_problems": [p.message for p in self.verify.problems],
            "tables": self.tables,
            "problems": self.problems,
            "receipts": self.receipts,
            "differences": [d.to_dict() for d in self.differences],
            "recorded_usd": format_usd(self.recorded_nanos),
            "repriced_usd": format_usd(self.repriced_nanos),
            "against": self.against,
        }


def _charge(record: dict[str, Any], table: PricingTable) -> tuple[int | None, str]:
    """The charge ``table`` makes for the receipt ``record``, or ``None`` and why not."""
    price = table.get(record["model"] or "")
    if price is None:
        return None, f"model {record['model']!r} has no price in the table"
    source = record["usage_source"]
    usage = record["usage"]
    if source in ("reported", "counted") and usage is not None:
        return price.cost_nanos(usage_from_dict(usage)), ""
    if source == "reservation":
        bound = record.get("bound")
        if bound is None:
            return None, "charged its reservation, and the receipt has no bound (version 1)"
        b = Bound.from_dict(bound)
        return price.worst_case_nanos(b.input_tokens, b.output_tokens, b.terms), ""
    return 0, ""


def reprice_trail(
    paths: Sequence[str | Path],
    keyring: Keyring,
    *,
    prices: PricingTable | None = None,
    jobs: int = 1,
) -> RepriceReport:
    """Verify the trail at ``paths`` and re-price every charged call receipt in it."""
    path_list = [Path(p) for p in paths]
    report = RepriceReport(verify=verify_trail(path_list, keyring, jobs=jobs))
    if prices is not None:
        report.against = prices.version
    tables: dict[str, PricingTable] = {}
    records = [(w, r) for w, r, _ in iter_records(find_trail_files(path_list)) if r is not None]
    for where, record in records:
        carried = record.get("record")
        if carried is None:
            continue
        version = table_version(carried)
        if version != record.get("pricing_version"):
            report.problems.append(
                f"{where}: the price table it carries is {version}, not its pricing_version"
            )
            continue
        try:
            table = PricingTable.from_dict(carried)
        except AegisError as exc:
            report.problems.append(f"{where}: the price table it carries is invalid: {exc}")
            continue
        if table.version != version:
            report.problems.append(f"{where}: the price table it carries is not canonical")
            continue
        tables[version] = table
        report.tables[version] = table.as_of.isoformat()
    for where, record in records:
        if record.get("status") == "alert" or not record["decision"]["allowed"]:
            continue
        recorded = parse_usd(record["actual_usd"])
        priced_by = prices or tables.get(record.get("pricing_version") or "")
        if priced_by is None:
            report.problems.append(
                f"{where}: names price table {record.get('pricing_version')}, which the trail "
                "does not carry"
            )
            continue
        report.receipts += 1
        report.recorded_nanos += recorded
        charge, reason = _charge(record, priced_by)
        if charge is None:
            report.differences.append(
                Difference(
                    where, record["receipt_id"], record["model"], record["actual_usd"], None, reason
                )
            )
            continue
        report.repriced_nanos += charge
        if charge != recorded:
            report.differences.append(
                Difference(
                    where,
                    record["receipt_id"],
                    record["model"],
                    record["actual_usd"],
                    format_usd(charge),
                )
            )
    return report
