"""The Gate's books after a fault: charges the ledger failed to take, and calls a crash left
in flight (see :mod:`aegis.core.unposted` and :mod:`aegis.core.admission_log`).

Kept out of :mod:`aegis.core.gate` so the Gate reads as the call path only; every function
here takes the Gate and works through its ledger, trail and journals.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from aegis.core.admission import Reservation
from aegis.core.admission_log import AdmissionJournal, AdmissionRecord
from aegis.core.errors import AegisError, HoldAlreadyResolved, HoldNotFound, LedgerUnavailable
from aegis.core.permit import Permit
from aegis.core.pricing import Usage
from aegis.core.receipt_trail import CallSubject, Outcome
from aegis.core.receipts import Decision
from aegis.core.unposted import UnpostedCharge

if TYPE_CHECKING:
    from aegis.core.gate import Gate

__all__ = [
    "admission_record",
    "journal_unposted",
    "post_all_owed",
    "post_owed",
    "recover_admissions",
]

logger = logging.getLogger(__name__)


async def post_owed(gate: Gate, tenant_id: str) -> None:
    """Post the tenant's owed charges, or raise :class:`LedgerUnavailable`."""
    for charge in gate.unposted.owed(tenant_id):
        try:
            if charge.release:
                await gate.ledger.release(tenant_id=tenant_id, hold_id=charge.hold_id)
            else:
                await gate.ledger.commit(
                    tenant_id=tenant_id,
                    hold_id=charge.hold_id,
                    amount_nanos=charge.amount_nanos,
                    tokens=charge.tokens,
                )
        except HoldAlreadyResolved:
            pass  # the commit that "failed" had reached the ledger after all
        except HoldNotFound:
            # The ledger lost the hold itself: nothing left to post against (the receipt
            # keeps the charge for reconciliation).
            logger.error("owed charge %s has no hold any more", charge.hold_id)
        except AegisError:
            raise
        except Exception as exc:
            raise LedgerUnavailable(f"ledger failed: {type(exc).__name__}") from exc
        await gate.unposted.posted(charge)
        logger.info("posted the owed charge of %s for tenant %s", charge.hold_id, tenant_id)


async def post_all_owed(gate: Gate) -> int:
    """Post every tenant's owed charges while the ledger takes them; how many are left."""
    for tenant_id in {c.tenant_id for c in gate.unposted.owed()}:
        try:
            await post_owed(gate, tenant_id)
        except Exception as exc:
            logger.warning("unposted charges still owed: %s", type(exc).__name__)
            break
    return len(gate.unposted.owed())


async def journal_unposted(
    gate: Gate, permit: Permit, charge: int, usage: Usage | None, *, release: bool = False
) -> None:
    """Keep a charge (or a release) the ledger failed to take until it is posted."""
    tokens = None if usage is None else usage.input_tokens + usage.output_tokens
    owed = UnpostedCharge(
        permit.tenant_id, permit.request_id, charge, tokens if permit.limited else None, release
    )
    try:
        await gate.unposted.record(owed)
    except OSError as exc:
        logger.error("cannot journal an unposted charge: %s", exc.strerror)


def admission_record(subject: CallSubject, plan: Reservation) -> AdmissionRecord:
    """What the restart needs of a call admitted under ``plan`` (its permit's figures)."""
    return AdmissionRecord(
        receipt_id=subject.receipt_id,
        request_id=subject.request_id,
        tenant_id=subject.tenant_id,
        run_id=subject.run_id,
        provider=subject.provider,
        model=subject.model,
        capability=subject.capability,
        started_at=subject.started_at,
        estimated_nanos=plan.estimated_nanos,
        reserved_nanos=plan.estimated_nanos,
        input_tokens=plan.input_tokens,
        max_output_tokens=plan.output_tokens,
        limited=bool(plan.limits),
        body_sha256=subject.body_sha256,
    )


async def recover_admissions(gate: Gate, journal: AdmissionJournal | None = None) -> int:
    """Receipt and charge the calls a crash left in flight (their admission was recorded in
    ``journal``, the Gate's own by default, and their settlement never was): each is charged
    its reservation, since the provider may have billed all of it. Returns how many were
    recovered."""
    journal = gate.admissions if journal is None else journal
    # A call whose settlement the ledger failed to take was receipted; its charge is owed.
    owed = {(charge.tenant_id, charge.hold_id) for charge in gate.unposted.owed()}
    recovered = 0
    for record in await journal.unsettled():
        if (record.tenant_id, record.request_id) in owed:
            journal.settled(record.receipt_id)
            continue
        error = "the proxy stopped with the call in flight; charged its reservation"
        late = False
        try:
            settlement = await gate.ledger.commit(
                tenant_id=record.tenant_id,
                hold_id=record.request_id,
                amount_nanos=record.reserved_nanos,
            )
            late = settlement.late
        except HoldAlreadyResolved:
            # Settled before the crash (its settled record was not written yet).
            journal.settled(record.receipt_id)
            continue
        except HoldNotFound:
            error += "; the ledger holds no reservation for it"
        except Exception as exc:
            error += f"; ledger_unsettled: {type(exc).__name__}"
            await gate.unposted.record(
                UnpostedCharge(record.tenant_id, record.request_id, record.reserved_nanos)
            )
        policy = await gate.policy_provider.get_policy(tenant_id=record.tenant_id)
        subject = CallSubject(
            receipt_id=record.receipt_id,
            request_id=record.request_id,
            tenant_id=record.tenant_id,
            run_id=record.run_id,
            provider=record.provider,
            model=record.model,
            capability=record.capability,
            started_at=record.started_at,
            started_mono=gate.clock.monotonic(),
            body_sha256=record.body_sha256,
        )
        outcome = Outcome(
            decision=Decision(True),
            status="cancelled",
            usage=Usage(input_tokens=record.input_tokens, output_tokens=record.max_output_tokens),
            usage_source="reservation",
            estimated=record.estimated_nanos,
            reserved=record.reserved_nanos,
            actual=record.reserved_nanos,
            error=error,
            late=late,
        )
        await gate.trail.write(gate.trail.receipt(subject, outcome, policy, gate.pricing))
        journal.settled(record.receipt_id)
        recovered += 1
    return recovered
