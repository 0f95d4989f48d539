"""What an admitted call holds: its reservation, the limits it must be sent with, and what
its receipt will name."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from aegis.core.policy import Policy
from aegis.core.pricing import STANDARD_TERMS, BillingTerms, ModelPrice, PricingTable, Usage
from aegis.core.rate_limits import RateLimitStatus, limit_statuses
from aegis.core.receipt_trail import CallSubject, UsageSource
from aegis.core.receipts import Bound, Receipt, ReceiptStatus

if TYPE_CHECKING:
    from aegis.core.admission import Reservation
    from aegis.core.ledger import Hold

__all__ = ["GovernedCall", "Permit"]


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
    pricing: PricingTable
    """The price table the call was admitted under (a reload swaps the Gate's, not this)."""
    started_at: float
    started_mono: float
    body_sha256: str | None = None
    rate_limits: tuple[RateLimitStatus, ...] = ()
    """The tightest per-minute request and token limits after this call's reservation."""
    limited: bool = False
    """The hold includes rate-limit accounts (the commit reports the real token count)."""
    terms: BillingTerms = STANDARD_TERMS
    """The tier, tool calls and modalities the reservation was priced under."""
    unseen_input_tokens: int = 0
    """The part of ``input_tokens`` allowed for input the request does not show."""

    @classmethod
    def admitted(
        cls,
        subject: CallSubject,
        plan: Reservation,
        policy: Policy,
        pricing: PricingTable,
        hold: Hold,
    ) -> Permit:
        """The permit of a call whose ``plan`` the ledger holds as ``hold``."""
        limits = plan.limits
        return cls(
            receipt_id=subject.receipt_id,
            tenant_id=subject.tenant_id,
            request_id=subject.request_id,
            run_id=subject.run_id,
            provider=subject.provider,
            model=subject.model,
            capability=subject.capability,
            input_tokens=plan.input_tokens,
            max_output_tokens=plan.output_tokens,
            clamped=plan.clamped,
            estimated_nanos=plan.estimated_nanos,
            reserved_nanos=plan.estimated_nanos,
            policy=policy,
            price=plan.price,
            pricing=pricing,
            started_at=subject.started_at,
            started_mono=subject.started_mono,
            body_sha256=subject.body_sha256,
            rate_limits=limit_statuses(list(limits), hold.spent[len(plan.budgets) :])
            if limits
            else (),
            limited=bool(limits),
            terms=plan.terms,
            unseen_input_tokens=plan.unseen_input_tokens,
        )

    @property
    def worst_case(self) -> Usage:
        """The usage the reservation is the price of: what a call of unknown usage is charged."""
        return Usage(
            input_tokens=self.input_tokens,
            output_tokens=self.max_output_tokens,
            tool_calls=self.terms.tool_calls,
            service_tier=self.terms.service_tier,
        )

    def bound(self, usage: Usage | None) -> Bound:
        """What the reservation was computed from, and whether ``usage`` went beyond it (more
        tokens, or more tool calls of a kind than the reservation held fees for)."""
        allowed = dict(self.terms.tool_calls)
        exceeded = usage is not None and (
            usage.input_tokens > self.input_tokens
            or usage.output_tokens > self.max_output_tokens
            or any(n > allowed.get(kind, 0) for kind, n in usage.tool_calls)
        )
        return Bound(
            self.input_tokens,
            self.max_output_tokens,
            self.unseen_input_tokens,
            exceeded,
            self.terms,
        )

    @property
    def subject(self) -> CallSubject:
        return CallSubject(
            receipt_id=self.receipt_id,
            request_id=self.request_id,
            tenant_id=self.tenant_id,
            run_id=self.run_id,
            provider=self.provider,
            model=self.model,
            capability=self.capability,
            started_at=self.started_at,
            started_mono=self.started_mono,
            body_sha256=self.body_sha256,
        )


class GovernedCall:
    """The running call inside ``Gate.call``: record what it used."""

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
