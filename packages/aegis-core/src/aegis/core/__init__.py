"""Aegis core: the budget Gate, exact money, policies, pricing, reservation ledgers, receipts."""

from __future__ import annotations

from aegis.core.catalogue import default_pricing_table
from aegis.core.clock import Clock, ManualClock, SystemClock
from aegis.core.errors import (
    AegisError,
    BudgetExceeded,
    ConfigError,
    Denied,
    DuplicateRequest,
    HoldAlreadyResolved,
    HoldNotFound,
    LedgerError,
    LedgerUnavailable,
    PolicyDenied,
    PolicyError,
    PricingError,
    ReceiptError,
    ReceiptSinkUnavailable,
    UnknownModel,
    UnknownModelDenied,
)
from aegis.core.estimate import (
    MESSAGE_OVERHEAD_TOKENS,
    REPLY_OVERHEAD_TOKENS,
    text_tokens_upper_bound,
)
from aegis.core.gate import Gate, GovernedCall, Permit, UsageSource
from aegis.core.ledger import Account, Balance, Hold, HoldState, Ledger, Settlement
from aegis.core.memory_ledger import MemoryLedger
from aegis.core.money import NANOS_PER_USD, format_usd, nanos_to_usd, parse_usd
from aegis.core.policy import (
    CAPABILITIES,
    InMemoryPolicyProvider,
    Policy,
    PolicyProvider,
    Routing,
    TomlPolicyProvider,
    WindowBudget,
)
from aegis.core.pricing import ModelKind, ModelPrice, PricingTable, Usage
from aegis.core.receipts import (
    GENESIS_HASH,
    Decision,
    MemoryReceiptSink,
    Receipt,
    ReceiptChain,
    ReceiptSink,
    ReceiptStatus,
    Signature,
    Signer,
    canonical_bytes,
)
from aegis.core.signing import HmacSha256Signer
from aegis.core.sqlite_ledger import SqliteLedger
from aegis.core.windows import Window, window_span

__all__ = [
    "CAPABILITIES",
    "GENESIS_HASH",
    "MESSAGE_OVERHEAD_TOKENS",
    "NANOS_PER_USD",
    "REPLY_OVERHEAD_TOKENS",
    "Account",
    "AegisError",
    "Balance",
    "BudgetExceeded",
    "Clock",
    "ConfigError",
    "Decision",
    "Denied",
    "DuplicateRequest",
    "Gate",
    "GovernedCall",
    "HmacSha256Signer",
    "Hold",
    "HoldAlreadyResolved",
    "HoldNotFound",
    "HoldState",
    "InMemoryPolicyProvider",
    "Ledger",
    "LedgerError",
    "LedgerUnavailable",
    "ManualClock",
    "MemoryLedger",
    "MemoryReceiptSink",
    "ModelKind",
    "ModelPrice",
    "Permit",
    "Policy",
    "PolicyDenied",
    "PolicyError",
    "PolicyProvider",
    "PricingError",
    "PricingTable",
    "Receipt",
    "ReceiptChain",
    "ReceiptError",
    "ReceiptSink",
    "ReceiptSinkUnavailable",
    "ReceiptStatus",
    "Routing",
    "Settlement",
    "Signature",
    "Signer",
    "SqliteLedger",
    "SystemClock",
    "TomlPolicyProvider",
    "UnknownModel",
    "UnknownModelDenied",
    "Usage",
    "UsageSource",
    "Window",
    "WindowBudget",
    "canonical_bytes",
    "default_pricing_table",
    "format_usd",
    "nanos_to_usd",
    "parse_usd",
    "text_tokens_upper_bound",
    "window_span",
]
