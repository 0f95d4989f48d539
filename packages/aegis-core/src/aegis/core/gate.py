"""The Gate: policy check, reservation, execution, reconciliation, commit, receipt.

Every governed call goes through :meth:`Gate.admit` (which reserves the worst-case cost against
every budget that applies, or denies) and then exactly one :meth:`Gate.settle` (charge the
real usage, or release when nothing was used). Each decision leaves one signed receipt.
:meth:`Gate.call` wraps both in an ``async with`` block for in-process callers.

The checks live in :mod:`aegis.core.admission`, the receipt chain in
:mod:`aegis.core.receipt_trail`, alert firing in :mod:`aegis.core.alert_tracker`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from aegis.core import admission, recovery
from aegis.core.admission_log import AdmissionJournal, AdmissionLog
from aegis.core.alert_tracker import AlertTracker
from aegis.core.alerts import BudgetAlert
from aegis.core.clock import Clock, SystemClock
from aegis.core.control import KeyScope
from aegis.core.errors import (
    AegisError,
    BudgetExceeded,
    HoldAlreadyResolved,
    HoldNotFound,
    LedgerUnavailable,
)
from aegis.core.ledger import Hold, Ledger, Settlement
from aegis.core.permit import GovernedCall, Permit
from aegis.core.policy import Policy, PolicyProvider
from aegis.core.pricing import STANDARD_TERMS, BillingTerms, PricingTable, Usage
from aegis.core.receipt_trail import CallSubject, Outcome, ReceiptTrail, UsageSource
from aegis.core.receipts import (
    Decision,
    Receipt,
    ReceiptSink,
    ReceiptStatus,
    Signer,
    new_receipt_id,
)
from aegis.core.unposted import UnpostedJournal

__all__ = ["Gate", "GovernedCall", "Permit", "UsageSource"]

logger = logging.getLogger(__name__)


class Gate:
    """Governs calls for many tenants against one ledger, price table and receipt trail."""

    def __init__(
        self,
        *,
        policy_provider: PolicyProvider,
        ledger: Ledger,
        pricing: PricingTable,
        signer: Signer,
        sink: ReceiptSink,
        clock: Clock | None = None,
        chain_id: str | None = None,
        journal: UnpostedJournal | None = None,
        admissions: AdmissionJournal | None = None,
    ) -> None:
        self.policy_provider = policy_provider
        self.ledger = ledger
        self.pricing = pricing
        self.sink = sink
        self.clock = clock or SystemClock()
        self.trail = ReceiptTrail(signer, sink, self.clock, lambda: self.pricing, chain_id)
        """Where every receipt goes; records that are not calls (admin changes) are written
        with :meth:`ReceiptTrail.write` too, so they share the chain."""
        self.alerts = AlertTracker(ledger, self.trail)
        # Charges the ledger failed to take; admissions recorded before their permits go out.
        self.unposted = journal if journal is not None else UnpostedJournal()
        self.admissions: AdmissionJournal = admissions if admissions is not None else AdmissionLog()

    @property
    def on_receipt(self) -> Callable[[Receipt], None] | None:
        """Called with every call receipt once the sink has it (the proxy's metrics derive
        from receipts this way); it must not raise and must not block."""
        return self.trail.on_receipt

    @on_receipt.setter
    def on_receipt(self, hook: Callable[[Receipt], None] | None) -> None:
        self.trail.on_receipt = hook

    @property
    def on_alert(self) -> Callable[[BudgetAlert], None] | None:
        """Called with every budget alert this Gate fires (after its receipt is written)."""
        return self.alerts.on_alert

    @on_alert.setter
    def on_alert(self, hook: Callable[[BudgetAlert], None] | None) -> None:
        self.alerts.on_alert = hook

    # -- admission -----------------------------------------------------------------------

    async def policy_for(
        self,
        *,
        tenant_id: str,
        request_id: str,
        model: str,
        run_id: str | None = None,
        provider: str = "-",
        capability: str = "llm:invoke",
        body_sha256: str | None = None,
    ) -> Policy:
        """The tenant's policy, to route by and then to pass to :meth:`admit` (so both read
        the same one across a reload); an unknown tenant is denied here, with its receipt."""
        policy = await self.policy_provider.get_policy(tenant_id=tenant_id)
        if policy is None:
            subject = self._subject(
                tenant_id, request_id, run_id, provider, model, capability, body_sha256
            )
            error = admission.unknown_tenant(tenant_id)
            await self._refuse(subject, error, None, 0)
            raise error
        return policy

    async def admit(
        self,
        *,
        tenant_id: str,
        request_id: str,
        provider: str,
        model: str,
        input_tokens: int,
        max_output_tokens: int | None = None,
        run_id: str | None = None,
        capability: str = "llm:invoke",
        body_sha256: str | None = None,
        policy: Policy | None = None,
        key: KeyScope | None = None,
        terms: BillingTerms = STANDARD_TERMS,
        input_is_bounded: bool = True,
    ) -> Permit:
        """Check policy and reserve the worst-case cost, or deny with a receipt.

        ``policy``: the one :meth:`policy_for` returned, when the caller routed by it.
        ``terms``: the tier, tool calls and modalities the request asks for (the worst case is
        priced under them); ``input_is_bounded=False``: the model reads input the request does
        not show, reserved by the policy's ``unseen_input_tokens``.
        ``key``: the scope of the virtual key the call came with; it narrows the policy (its
        allowed models must match too, its window budgets are reserved beside the tenant's).
        Raises :class:`Denied` (``PolicyDenied``, ``UnknownModelDenied``, ``BudgetExceeded``,
        ``RateLimited``), :class:`InvalidRequest`, :class:`DuplicateRequest`,
        :class:`LedgerUnavailable` or :class:`ReceiptSinkUnavailable`; every refusal is
        receipted first.
        """
        # A call that could not be receipted must not run: refuse before anything is reserved.
        self.trail.check()
        if policy is None:
            policy = await self.policy_for(
                tenant_id=tenant_id,
                request_id=request_id,
                model=model,
                run_id=run_id,
                provider=provider,
                capability=capability,
                body_sha256=body_sha256,
            )
        subject = self._subject(
            tenant_id, request_id, run_id, provider, model, capability, body_sha256
        )
        now = subject.started_at
        pricing = self.pricing  # one table for the whole call, even across a price reload
        estimated = 0
        try:
            if self.unposted:  # money already spent goes in the books before more is spent
                await recovery.post_owed(self, tenant_id)
            plan = admission.plan(
                policy,
                pricing,
                tenant_id=tenant_id,
                run_key=run_id or request_id,
                model=model,
                capability=capability,
                input_tokens=input_tokens,
                max_output_tokens=max_output_tokens,
                now=now,
                key=key,
                terms=terms,
                input_is_bounded=input_is_bounded,
            )
            estimated = plan.estimated_nanos
            try:
                hold = await self._reserve(subject, plan, policy)
            except BudgetExceeded as exc:
                # Another call may take the budget meanwhile; then the second reserve denies.
                clamped = plan.clamp(policy, capability, exc.available_nanos, now)
                if clamped is None:
                    raise
                plan = clamped
                estimated = plan.estimated_nanos
                hold = await self._reserve(subject, plan, policy)
        except AegisError as exc:
            await self._refuse(subject, exc, policy, estimated)
            raise
        except Exception as exc:
            wrapped = LedgerUnavailable(f"ledger failed: {type(exc).__name__}: {exc}")
            await self._refuse(subject, wrapped, policy, 0)
            raise wrapped from exc
        return Permit.admitted(subject, plan, policy, pricing, hold)

    async def _reserve(
        self, subject: CallSubject, plan: admission.Reservation, policy: Policy
    ) -> Hold:
        # The admission is recorded with the hold, before any permit goes out: a crash from
        # here on leaves what the restart needs to receipt and charge the call.
        return await self.admissions.reserve(
            self.ledger,
            recovery.admission_record(subject, plan),
            accounts=plan.accounts,
            ttl_s=policy.reservation_ttl_s,
        )

    def _subject(
        self,
        tenant_id: str,
        request_id: str,
        run_id: str | None,
        provider: str,
        model: str,
        capability: str,
        body_sha256: str | None,
    ) -> CallSubject:
        return CallSubject(
            receipt_id=new_receipt_id(),
            request_id=request_id,
            tenant_id=tenant_id,
            run_id=run_id,
            provider=provider,
            model=model,
            capability=capability,
            started_at=self.clock.time(),
            started_mono=self.clock.monotonic(),
            body_sha256=body_sha256,
        )

    async def _refuse(
        self, subject: CallSubject, error: AegisError, policy: Policy | None, estimated: int
    ) -> None:
        """The one place a refusal is receipted; the error then names its receipt."""
        reason, budget = admission.refusal(error)
        denied = Decision(False, reason, budget)
        outcome = Outcome(denied, "denied", estimated=estimated, error=error.message)
        receipt = await self.trail.write(self.trail.receipt(subject, outcome, policy, self.pricing))
        error.receipt_id = receipt.receipt_id  # once written: never an id that does not exist

    # -- settlement ----------------------------------------------------------------------

    async def settle(
        self,
        permit: Permit,
        *,
        status: ReceiptStatus = "ok",
        usage: Usage | None = None,
        usage_source: UsageSource | None = None,
        upstream_status: int | None = None,
        error: str | None = None,
    ) -> Receipt:
        """Resolve the permit's reservation once and write its receipt.

        With ``usage``, its cost is charged (even above the reservation: the overage is posted
        and flagged, never dropped). Without ``usage``, a successful call is charged its full
        reservation (its usage is unknown, and the reservation is an upper bound), and a failed
        or cancelled one releases the reservation.
        """
        settlement: Settlement | None = None
        if usage is not None:
            charge = permit.price.cost_nanos(usage)
            source: UsageSource = usage_source or "reported"
        elif status == "ok":
            charge, source = permit.reserved_nanos, "reservation"
        else:
            charge, source = 0, "none"
        try:
            if source == "none":
                await self.ledger.release(tenant_id=permit.tenant_id, hold_id=permit.request_id)
            else:
                # Token limits are reconciled to the real count (unknown: the reservation stays).
                tokens = None if usage is None else usage.input_tokens + usage.output_tokens
                settlement = await self.ledger.commit(
                    tenant_id=permit.tenant_id,
                    hold_id=permit.request_id,
                    amount_nanos=charge,
                    tokens=tokens if permit.limited else None,
                )
        except (HoldNotFound, HoldAlreadyResolved):
            raise  # a permit settled twice is a bug in the caller, not an outage
        except Exception as exc:
            # The call has happened and cannot be refused any more; the ledger could not record
            # it. The charge (or release) is journaled until the ledger takes it, and the
            # receipt still says what was charged, so the spend is never lost from the audit
            # trail; the recovery after a crash knows the call was settled.
            logger.error(
                "ledger failed to settle %s for tenant %s: %s",
                permit.request_id,
                permit.tenant_id,
                type(exc).__name__,
            )
            unsettled = f"ledger_unsettled: {type(exc).__name__}"
            error = unsettled if error is None else f"{error}; {unsettled}"
            await recovery.journal_unposted(self, permit, charge, usage, release=source == "none")
        outcome = Outcome(
            decision=Decision(True),
            status=status,
            usage=usage,
            usage_source=source,
            estimated=permit.estimated_nanos,
            reserved=permit.reserved_nanos,
            actual=charge,
            upstream_status=upstream_status,
            error=error,
            late=settlement is not None and settlement.late,
            bound=permit.bound(usage),
        )
        receipt = self.trail.receipt(permit.subject, outcome, permit.policy, permit.pricing)
        sealed = await self.trail.write(receipt)
        self.admissions.settled(permit.receipt_id)
        if charge > 0:
            await self.alerts.check(permit)
        return sealed

    @asynccontextmanager
    async def call(
        self,
        *,
        tenant_id: str,
        request_id: str,
        provider: str,
        model: str,
        input_tokens: int,
        max_output_tokens: int | None = None,
        run_id: str | None = None,
        capability: str = "llm:invoke",
        body_sha256: str | None = None,
        key: KeyScope | None = None,
        terms: BillingTerms = STANDARD_TERMS,
        input_is_bounded: bool = True,
    ) -> AsyncIterator[GovernedCall]:
        """Admit, run the block, settle: an exception or cancellation releases the reservation
        (or charges the usage recorded so far) and propagates unchanged."""
        permit = await self.admit(
            tenant_id=tenant_id,
            request_id=request_id,
            provider=provider,
            model=model,
            input_tokens=input_tokens,
            max_output_tokens=max_output_tokens,
            run_id=run_id,
            capability=capability,
            body_sha256=body_sha256,
            key=key,
            terms=terms,
            input_is_bounded=input_is_bounded,
        )
        call = GovernedCall(permit)
        try:
            yield call
        except BaseException as exc:
            # CancelledError and GeneratorExit are BaseExceptions: they must settle too.
            cancelled = isinstance(exc, asyncio.CancelledError | GeneratorExit)
            status: ReceiptStatus = "cancelled" if cancelled else "upstream_error"
            error = call.error or ("cancelled" if cancelled else f"{type(exc).__name__}")
            call.receipt = await asyncio.shield(
                self.settle(
                    permit,
                    status=status,
                    usage=call.usage,
                    usage_source=call.usage_source,
                    upstream_status=call.upstream_status,
                    error=error,
                )
            )
            raise
        call.receipt = await self.settle(
            permit,
            status=call.status,
            usage=call.usage,
            usage_source=call.usage_source,
            upstream_status=call.upstream_status,
            error=call.error,
        )
