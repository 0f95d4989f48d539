"""The Gate: policy check, reservation, execution, reconciliation, commit, receipt.

Every governed call goes through :meth:`Gate.admit` (which reserves the worst-case cost against
every budget that applies, or denies) and then exactly one of :meth:`Gate.settle` (charge the
real usage, or release when nothing was used). Each decision leaves one signed receipt.
:meth:`Gate.call` wraps both in an ``async with`` block for in-process callers.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Final, Literal

from aegis.core.alerts import BudgetAlert, reached
from aegis.core.clock import Clock, SystemClock
from aegis.core.control import KeyScope
from aegis.core.errors import (
    AegisError,
    BudgetExceeded,
    Denied,
    DuplicateRequest,
    HoldAlreadyResolved,
    HoldNotFound,
    InvalidRequest,
    LedgerError,
    LedgerUnavailable,
    PolicyDenied,
    RateLimited,
    ReceiptError,
    ReceiptSinkUnavailable,
    UnknownModelDenied,
)
from aegis.core.ledger import Account, Hold, Ledger, Settlement
from aegis.core.money import format_usd
from aegis.core.policy import Policy, PolicyProvider
from aegis.core.pricing import ModelPrice, PricingTable, Usage
from aegis.core.rate_limits import RateLimitStatus, limit_accounts, limit_statuses
from aegis.core.receipts import (
    Decision,
    Receipt,
    ReceiptChain,
    ReceiptSink,
    ReceiptStatus,
    Signer,
    new_receipt_id,
)
from aegis.core.windows import window_span

__all__ = ["Gate", "GovernedCall", "Permit", "UsageSource"]

logger = logging.getLogger(__name__)

UsageSource = Literal["reported", "counted", "reservation", "none"]
RUN_RETENTION_S: Final = 7 * 86_400
"""A run's spend is remembered this long after its last call."""
MAX_TOKENS: Final = 2**40
"""Token counts above this are not a real call (and would overflow a ledger's integers)."""
MAX_RESERVATION_NANOS: Final = 2**53 - 1
"""Every ledger stores amounts exactly up to here (Redis scripts compute in doubles)."""


@dataclass(frozen=True, slots=True)
class Permit:
    """An admitted call: what was reserved, and the limits the call must respect."""

    receipt_id: str
    tenant_id: str
    request_id: str
    run_id: str | None
    provider: str
    model: str
    capability: str
    input_tokens: int
    """Upper bound of the input used for the estimate."""
    max_output_tokens: int
    """The output limit the call must be sent with (lowered when the policy clamps)."""
    clamped: bool
    """``max_output_tokens`` was lowered to fit the remaining budget."""
    estimated_nanos: int
    reserved_nanos: int
    policy: Policy
    price: ModelPrice
    started_at: float
    started_mono: float
    body_sha256: str | None = None
    pricing: PricingTable | None = None
    """The price table the call was admitted under (a reload swaps the Gate's, not this)."""
    rate_limits: tuple[RateLimitStatus, ...] = ()
    """The tightest per-minute request and token limits after this call's reservation."""
    limited: bool = False
    """The hold includes rate-limit accounts (the commit reports the real token count)."""


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


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
    ) -> None:
        self.policy_provider = policy_provider
        self.ledger = ledger
        self.pricing = pricing
        self.sink = sink
        self.on_receipt: Callable[[Receipt], None] | None = None
        """Called with every receipt once the sink has it (the proxy's metrics derive from
        receipts this way); it must not raise and must not block."""
        self.on_alert: Callable[[BudgetAlert], None] | None = None
        """Called with every budget alert this Gate fires (after its receipt is written); it
        must not raise and must not block."""
        self._fired: dict[tuple[str, str, str], float] = {}
        self.clock = clock or SystemClock()
        self._chain = ReceiptChain(signer) if chain_id is None else ReceiptChain(signer, chain_id)
        self._chain_ready = False
        self._chain_broken = False
        self._chain_lock = asyncio.Lock()

    # -- admission -----------------------------------------------------------------------

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
        key: KeyScope | None = None,
    ) -> Permit:
        """Check policy and reserve the worst-case cost, or deny with a receipt.

        ``key`` narrows the tenant's policy for a call made with one virtual key: its allowed
        models must match too, and its window budgets are reserved beside the tenant's.

        Raises :class:`Denied` (``PolicyDenied``, ``UnknownModelDenied``, ``BudgetExceeded``),
        :class:`DuplicateRequest`, :class:`LedgerUnavailable` or
        :class:`ReceiptSinkUnavailable`; every refusal is receipted first.
        """
        # A call that could not be receipted must not run: refuse before anything is reserved.
        self.sink.check()
        now = self.clock.time()
        mono = self.clock.monotonic()
        receipt_id = new_receipt_id()

        def refuse(
            error: AegisError,
            reason: str,
            budget: str | None = None,
            policy: Policy | None = None,
            estimated: int = 0,
        ) -> Receipt:
            return self._receipt(
                receipt_id=receipt_id,
                request_id=request_id,
                tenant_id=tenant_id,
                run_id=run_id,
                provider=provider,
                model=model,
                capability=capability,
                decision=Decision(False, reason, budget),
                status="denied",
                usage=None,
                usage_source="none",
                estimated=estimated,
                reserved=0,
                actual=0,
                policy=policy,
                started=now,
                started_mono=mono,
                error=error.message,
                body_sha256=body_sha256,
            )

        for name, value, limit in (
            ("input_tokens", input_tokens, MAX_TOKENS),
            ("max_output_tokens", max_output_tokens, MAX_TOKENS),
        ):
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= limit
            ):
                invalid = InvalidRequest(f"{name} must be an integer from 0 to {limit}", param=name)
                await self._write(refuse(invalid, "invalid_request"))
                raise invalid
        policy = await self.policy_provider.get_policy(tenant_id=tenant_id)
        if policy is None:
            err: Denied = PolicyDenied(
                f"unknown tenant {tenant_id!r}", tenant_id=tenant_id, reason="unknown_tenant"
            )
            await self._write(refuse(err, "unknown_tenant"))
            raise err
        if capability not in policy.capabilities:
            err = PolicyDenied(
                f"capability {capability!r} is not allowed for tenant {tenant_id!r}",
                tenant_id=tenant_id,
                reason="capability_not_allowed",
            )
            await self._write(refuse(err, err.reason, policy=policy))
            raise err
        if not policy.allows_model(model):
            err = PolicyDenied(
                f"model {model!r} is not allowed for tenant {tenant_id!r}",
                tenant_id=tenant_id,
                reason="model_not_allowed",
            )
            await self._write(refuse(err, err.reason, policy=policy))
            raise err
        if key is not None and not key.allows_model(model):
            err = PolicyDenied(
                f"model {model!r} is not allowed for key {key.key_id!r}",
                tenant_id=tenant_id,
                reason="model_not_allowed",
            )
            await self._write(refuse(err, err.reason, policy=policy))
            raise err
        pricing = self.pricing  # one table for the whole call, even across a price reload
        price = pricing.get(model)
        if price is None:
            err = UnknownModelDenied(
                f"model {model!r} has no price, so its cost cannot be budgeted",
                tenant_id=tenant_id,
                reason="unknown_model",
            )
            await self._write(refuse(err, err.reason, policy=policy))
            raise err

        output_tokens = price.max_output_tokens if max_output_tokens is None else max_output_tokens
        estimated = price.worst_case_nanos(input_tokens, output_tokens)
        if estimated > MAX_RESERVATION_NANOS:
            invalid = InvalidRequest(
                f"the call's worst case (${format_usd(estimated)}) is too large to budget",
                param="max_output_tokens",
            )
            await self._write(refuse(invalid, "invalid_request", policy=policy))
            raise invalid
        accounts = self._accounts(policy, run_id or request_id, now)
        if key is not None and key.per_window:
            accounts.extend(self._key_accounts(key, now))
        limits = limit_accounts(policy, model, input_tokens + output_tokens, now)
        clamped = False
        hold: Hold
        try:
            try:
                hold = await self.ledger.reserve(
                    tenant_id=tenant_id,
                    hold_id=request_id,
                    amount_nanos=estimated,
                    accounts=[*accounts, *limits],
                    ttl_s=policy.reservation_ttl_s,
                )
            except BudgetExceeded as exc:
                affordable = price.output_tokens_affordable(input_tokens, exc.available_nanos)
                if (
                    not policy.clamp_max_tokens
                    or capability == "embeddings:create"
                    or affordable < policy.min_output_tokens
                ):
                    raise
                # Another call may take the budget meanwhile; then the second reserve denies.
                output_tokens = min(output_tokens, affordable)
                clamped = True
                estimated = price.worst_case_nanos(input_tokens, output_tokens)
                limits = limit_accounts(policy, model, input_tokens + output_tokens, now)
                hold = await self.ledger.reserve(
                    tenant_id=tenant_id,
                    hold_id=request_id,
                    amount_nanos=estimated,
                    accounts=[*accounts, *limits],
                    ttl_s=policy.reservation_ttl_s,
                )
        except BudgetExceeded as exc:
            await self._write(refuse(exc, "budget_exceeded", exc.budget, policy, estimated))
            raise
        except RateLimited as exc:
            await self._write(refuse(exc, "rate_limited", exc.limit, policy, estimated))
            raise
        except DuplicateRequest as exc:
            await self._write(refuse(exc, "duplicate_request", policy=policy, estimated=estimated))
            raise
        except LedgerError as exc:
            await self._write(refuse(exc, "ledger_unavailable", policy=policy, estimated=estimated))
            raise
        except Exception as exc:
            wrapped = LedgerUnavailable(f"ledger failed: {type(exc).__name__}: {exc}")
            await self._write(refuse(wrapped, "ledger_unavailable", policy=policy))
            raise wrapped from exc
        return Permit(
            receipt_id=receipt_id,
            tenant_id=tenant_id,
            request_id=request_id,
            run_id=run_id,
            provider=provider,
            model=model,
            capability=capability,
            input_tokens=input_tokens,
            max_output_tokens=output_tokens,
            clamped=clamped,
            estimated_nanos=estimated,
            reserved_nanos=estimated,
            policy=policy,
            price=price,
            started_at=now,
            started_mono=mono,
            body_sha256=body_sha256,
            pricing=pricing,
            rate_limits=limit_statuses(limits, hold.spent[len(accounts) :]) if limits else (),
            limited=bool(limits),
        )

    @staticmethod
    def _accounts(policy: Policy, run_id: str, now: float) -> list[Account]:
        accounts = []
        if policy.per_run_nanos is not None:
            accounts.append(
                Account(
                    key=f"run:{run_id}",
                    budget="per_run",
                    limit_nanos=policy.per_run_nanos,
                    hard_stop=True,
                    expires_at=now + RUN_RETENTION_S,
                    alert_at=policy.per_run_alert_at,
                )
            )
        for budget in policy.per_window:
            key, end = window_span(budget.window, now)
            accounts.append(
                Account(
                    key=key,
                    budget=budget.window,
                    limit_nanos=budget.limit_nanos,
                    hard_stop=budget.hard_stop,
                    expires_at=end,
                    resets_at=end,
                    alert_at=budget.alert_at,
                )
            )
        return accounts

    @staticmethod
    def _key_accounts(key: KeyScope, now: float) -> list[Account]:
        accounts = []
        for budget in key.per_window:
            window_key, end = window_span(budget.window, now)
            accounts.append(
                Account(
                    key=f"key:{key.key_id}:{window_key}",
                    budget=f"key_{budget.window}",
                    limit_nanos=budget.limit_nanos,
                    hard_stop=True,
                    expires_at=end,
                    resets_at=end,
                )
            )
        return accounts

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
        try:
            if usage is not None:
                charge = permit.price.cost_nanos(usage)
                source: UsageSource = usage_source or "reported"
            elif status == "ok":
                charge = permit.reserved_nanos
                source = "reservation"
            else:
                charge = 0
                source = "none"
            if source == "none":
                await self.ledger.release(tenant_id=permit.tenant_id, hold_id=permit.request_id)
            elif permit.limited:
                # Token limits are reconciled to the real count (unknown: the reservation stays).
                tokens = None if usage is None else usage.input_tokens + usage.output_tokens
                settlement = await self.ledger.commit(
                    tenant_id=permit.tenant_id,
                    hold_id=permit.request_id,
                    amount_nanos=charge,
                    tokens=tokens,
                )
            else:
                settlement = await self.ledger.commit(
                    tenant_id=permit.tenant_id,
                    hold_id=permit.request_id,
                    amount_nanos=charge,
                )
        except (HoldNotFound, HoldAlreadyResolved):
            raise  # a permit settled twice is a bug in the caller, not an outage
        except Exception as exc:
            # The call has happened and cannot be refused any more; the ledger could not record
            # it. The receipt still says what was charged (the hold lapses at its TTL), so the
            # spend is never lost from the audit trail and can be reconciled from it.
            logger.error(
                "ledger failed to settle %s for tenant %s: %s",
                permit.request_id,
                permit.tenant_id,
                type(exc).__name__,
            )
            unsettled = f"ledger_unsettled: {type(exc).__name__}"
            error = unsettled if error is None else f"{error}; {unsettled}"
        receipt = self._receipt(
            receipt_id=permit.receipt_id,
            request_id=permit.request_id,
            tenant_id=permit.tenant_id,
            run_id=permit.run_id,
            provider=permit.provider,
            model=permit.model,
            capability=permit.capability,
            decision=Decision(True),
            status=status,
            usage=usage,
            usage_source=source,
            estimated=permit.estimated_nanos,
            reserved=permit.reserved_nanos,
            actual=charge,
            policy=permit.policy,
            started=permit.started_at,
            started_mono=permit.started_mono,
            upstream_status=upstream_status,
            error=error,
            body_sha256=permit.body_sha256,
            late=settlement is not None and settlement.late,
            pricing=permit.pricing,
        )
        sealed = await self._write(receipt)
        if charge > 0:
            await self._check_alerts(permit)
        return sealed

    async def _check_alerts(self, permit: Permit) -> None:
        """Fire the alert thresholds the call's charge reached; never fails the call."""
        policy = permit.policy
        if not policy.per_run_alert_at and not any(b.alert_at for b in policy.per_window):
            return  # most policies set no alerts: nothing to build per call
        tenant = permit.tenant_id
        run = permit.run_id or permit.request_id
        accounts = [a for a in self._accounts(permit.policy, run, permit.started_at) if a.alert_at]
        now = self.clock.time()
        # Thresholds this process already saw fire need no ledger call until their window ends.
        accounts = [
            a
            for a in accounts
            if any(self._fired.get((tenant, a.key, format(t, "f")), 0.0) <= now for t in a.alert_at)
        ]
        if not accounts:
            return
        try:
            spent = await self.ledger.balances(tenant_id=tenant, keys=[a.key for a in accounts])
            for account in accounts:
                committed = spent[account.key].committed_nanos
                for threshold in reached(account, committed):
                    mark = (tenant, account.key, format(threshold, "f"))
                    if self._fired.get(mark, 0.0) > now:
                        continue
                    first = await self.ledger.mark_alert(
                        tenant_id=tenant,
                        key=account.key,
                        threshold=mark[2],
                        expires_at=account.expires_at,
                    )
                    if len(self._fired) > 4096:
                        self._fired = {k: end for k, end in self._fired.items() if end > now}
                    self._fired[mark] = account.expires_at
                    if first:
                        await self._alert(permit, account, threshold, committed)
        except Exception as exc:
            logger.error("budget alerts of tenant %s failed: %s", tenant, type(exc).__name__)

    async def _alert(
        self, permit: Permit, account: Account, threshold: Decimal, committed: int
    ) -> None:
        now, mono = self.clock.time(), self.clock.monotonic()
        receipt_id = new_receipt_id()
        alert = BudgetAlert(
            tenant_id=permit.tenant_id,
            budget=account.budget,
            account=account.key,
            threshold=threshold,
            limit_nanos=account.limit_nanos,
            spent_nanos=committed,
            hard_stop=account.hard_stop,
            window_ends_at=None if account.resets_at is None else _iso(account.resets_at),
            run_id=permit.run_id,
            request_id=permit.request_id,
            receipt_id=receipt_id,
            fired_at=_iso(now),
        )
        receipt = self._receipt(
            receipt_id=receipt_id,
            request_id=f"alert:{account.key}:{alert.threshold_text}",
            tenant_id=permit.tenant_id,
            run_id=permit.run_id,
            provider=permit.provider,
            model=permit.model,
            capability="budget:alert",
            decision=Decision(True, "budget_alert", account.budget),
            status="alert",
            usage=None,
            usage_source="none",
            estimated=0,
            reserved=0,
            actual=0,
            policy=permit.policy,
            started=now,
            started_mono=mono,
            error=alert.describe(),
            pricing=permit.pricing,
        )
        # Kept out of on_receipt: an alert is not a call, and must not count as one.
        await self._write(receipt, notify=False)
        logger.warning(
            "budget alert: tenant %s: %s (account %s)",
            alert.tenant_id,
            alert.describe(),
            alert.account,
        )
        if self.on_alert is not None:
            self.on_alert(alert)

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

    # -- receipts ------------------------------------------------------------------------

    def _receipt(
        self,
        *,
        receipt_id: str,
        request_id: str,
        tenant_id: str,
        run_id: str | None,
        provider: str,
        model: str,
        capability: str,
        decision: Decision,
        status: ReceiptStatus,
        usage: Usage | None,
        usage_source: UsageSource,
        estimated: int,
        reserved: int,
        actual: int,
        policy: Policy | None,
        started: float,
        started_mono: float,
        upstream_status: int | None = None,
        error: str | None = None,
        body_sha256: str | None = None,
        late: bool = False,
        pricing: PricingTable | None = None,
    ) -> Receipt:
        finished = self.clock.time()
        pricing = self.pricing if pricing is None else pricing
        return Receipt(
            receipt_id=receipt_id,
            request_id=request_id,
            tenant_id=tenant_id,
            run_id=run_id,
            provider=provider,
            model=model,
            capability=capability,
            decision=decision,
            status=status,
            usage=usage,
            usage_source=usage_source,
            estimated_usd=format_usd(estimated),
            reserved_usd=format_usd(reserved),
            actual_usd=format_usd(actual),
            overage=actual > reserved and decision.allowed,
            late=late,
            pricing_version=pricing.version,
            pricing_as_of=pricing.as_of.isoformat(),
            policy_version=None if policy is None else policy.version,
            started_at=_iso(started),
            finished_at=_iso(finished),
            latency_us=max(0, round((self.clock.monotonic() - started_mono) * 1_000_000)),
            upstream_status=upstream_status,
            error=error,
            body_sha256=body_sha256,
        )

    async def record_event(
        self,
        *,
        tenant_id: str,
        capability: str,
        request_id: str,
        description: str,
        policy_version: str | None = None,
        reason: str = "admin_change",
    ) -> Receipt:
        """Write a signed audit receipt for something that is not a call (an admin change to
        a tenant, policy or key): ``status`` ``alert``, amounts ``"0"``, ``capability`` naming
        the event (``admin:tenant.update``), ``error`` its description (who, what, before and
        after), ``policy_version`` the policy in force after it. Not counted as a call."""
        now, mono = self.clock.time(), self.clock.monotonic()
        receipt = self._receipt(
            receipt_id=new_receipt_id(),
            request_id=request_id,
            tenant_id=tenant_id,
            run_id=None,
            provider="-",
            model="-",
            capability=capability,
            decision=Decision(True, reason),
            status="alert",
            usage=None,
            usage_source="none",
            estimated=0,
            reserved=0,
            actual=0,
            policy=None,
            started=now,
            started_mono=mono,
            error=description,
        )
        if policy_version is not None:
            receipt = replace(receipt, policy_version=policy_version)
        return await self._write(receipt, notify=False)

    def _recovery_receipt(self, lost: int) -> Receipt:
        """The audit record of a trail that failed and was reopened: which receipts it lost."""
        first = self._chain.next_seq
        logger.error("receipt trail reopened; %d receipt(s) from seq %d were lost", lost, first)
        return self._receipt(
            receipt_id=new_receipt_id(),
            request_id=f"trail-recovered:{first}",
            tenant_id="*",
            run_id=None,
            provider="-",
            model="-",
            capability="trail:recovered",
            decision=Decision(True, "trail_recovered"),
            status="alert",
            usage=None,
            usage_source="none",
            estimated=0,
            reserved=0,
            actual=0,
            policy=None,
            started=self.clock.time(),
            started_mono=self.clock.monotonic(),
            error=(
                f"the receipt trail failed and was reopened: {lost} receipt(s) sealed as seq "
                f"{first}-{first + lost - 1} were never written"
            ),
        )

    async def _write(self, receipt: Receipt, *, notify: bool = True) -> Receipt:
        if not self._chain_ready:
            async with self._chain_lock:
                if not self._chain_ready:
                    sealed_up_to = self._chain.next_seq if self._chain_broken else 0
                    last = await self.sink.tail()
                    if last is not None:
                        self._chain.resume(last)
                    self._chain_ready = True
                    self._chain_broken = False
                    lost = sealed_up_to - self._chain.next_seq
                    if lost > 0:
                        await self._write(self._recovery_receipt(lost), notify=False)
        sealed = self._chain.seal(receipt)
        try:
            await self.sink.write(sealed)
        except ReceiptSinkUnavailable:
            # Continue later from what the sink holds, saying what it lost (see above).
            self._chain_ready = False
            self._chain_broken = True
            raise
        except ReceiptError:
            raise
        except Exception as exc:
            logger.error("receipt sink failed: %s", type(exc).__name__)
            raise ReceiptSinkUnavailable(f"receipt sink failed: {type(exc).__name__}") from exc
        if notify and self.on_receipt is not None:
            self.on_receipt(sealed)
        return sealed


class GovernedCall:
    """The running call inside :meth:`Gate.call`: record what it used."""

    __slots__ = ("error", "permit", "receipt", "status", "upstream_status", "usage", "usage_source")

    def __init__(self, permit: Permit) -> None:
        self.permit = permit
        self.usage: Usage | None = None
        self.usage_source: UsageSource | None = None
        self.status: ReceiptStatus = "ok"
        self.upstream_status: int | None = None
        self.error: str | None = None
        self.receipt: Receipt | None = None
        """Set when the block has exited and the call is settled."""

    def record(self, usage: Usage, *, source: UsageSource = "reported") -> None:
        """Record the call's usage (replacing any earlier record: usage is cumulative)."""
        self.usage = usage
        self.usage_source = source
