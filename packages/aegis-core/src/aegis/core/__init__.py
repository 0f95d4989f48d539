"""Aegis core: the budget Gate, exact money, policies, pricing, reservation ledgers, receipts."""

from __future__ import annotations

from aegis.core.alerts import BudgetAlert
from aegis.core.catalogue import default_pricing_table
from aegis.core.checkpoints import Checkpoint
from aegis.core.clock import Clock, ManualClock, SystemClock
from aegis.core.ed25519 import Ed25519Signer, Ed25519Verifier
from aegis.core.errors import (
    AegisError,
    BudgetExceeded,
    ConfigError,
    Denied,
    DuplicateRequest,
    HoldAlreadyResolved,
    HoldNotFound,
    InvalidRequest,
    LedgerError,
    LedgerUnavailable,
    ModelRetiredDenied,
    PolicyDenied,
    PolicyError,
    PricingError,
    RateLimited,
    ReceiptError,
    ReceiptSinkUnavailable,
    TrailLocked,
    UnknownModel,
    UnknownModelDenied,
)
from aegis.core.estimate import (
    MESSAGE_OVERHEAD_TOKENS,
    REPLY_OVERHEAD_TOKENS,
    text_tokens_upper_bound,
)
from aegis.core.file_sink import FileReceiptSink
from aegis.core.gate import Gate, GovernedCall, Permit, UsageSource
from aegis.core.governed import GovernedResponse
from aegis.core.ids import new_id
from aegis.core.keyring import KEYS_ENV, Keyring
from aegis.core.ledger import (
    Account,
    AccountUnit,
    Balance,
    Hold,
    HoldState,
    Ledger,
    Settlement,
    Statement,
)
from aegis.core.memory_ledger import MemoryLedger
from aegis.core.money import NANOS_PER_USD, format_usd, nanos_to_usd, parse_usd
from aegis.core.policy import (
    CAPABILITIES,
    InMemoryPolicyProvider,
    Policy,
    PolicyProvider,
    RateLimit,
    Routing,
    TomlPolicyProvider,
    WindowBudget,
)
from aegis.core.price_check import PriceDifference, compare_price_file
from aegis.core.pricing import (
    PROVIDERS,
    SERVICE_TIERS,
    STANDARD_TERMS,
    TOOL_KINDS,
    BillingTerms,
    ModelKind,
    ModelPrice,
    PricingTable,
    ServiceTier,
    TierPrice,
    Usage,
)
from aegis.core.rate_limits import RateLimitStatus
from aegis.core.receipt_trail import CallSubject, Outcome, ReceiptTrail
from aegis.core.receipts import (
    GENESIS_HASH,
    RECEIPT_VERSION,
    Bound,
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
from aegis.core.redis_ledger import RedisLedger  # imports redis only when one is made
from aegis.core.reprice import Difference, RepriceReport, reprice_trail
from aegis.core.sdk_kwargs import sdk_kwargs
from aegis.core.signing import HmacSha256Signer, SignatureVerifier
from aegis.core.sqlite_ledger import SqliteLedger
from aegis.core.sqlite_sink import SqliteReceiptSink
from aegis.core.sse import SseEvent, SseParser
from aegis.core.verify import (
    EXIT_INTACT,
    EXIT_TAMPERED,
    EXIT_TORN,
    EXIT_TRUNCATED,
    EXIT_USAGE,
    Problem,
    TrailSummary,
    VerifyReport,
    verify_trail,
)
from aegis.core.windows import Window, window_span
from aegis.core.wire import wire_field

__all__ = [
    "CAPABILITIES",
    "EXIT_INTACT",
    "EXIT_TAMPERED",
    "EXIT_TORN",
    "EXIT_TRUNCATED",
    "EXIT_USAGE",
    "GENESIS_HASH",
    "KEYS_ENV",
    "MESSAGE_OVERHEAD_TOKENS",
    "NANOS_PER_USD",
    "PROVIDERS",
    "RECEIPT_VERSION",
    "REPLY_OVERHEAD_TOKENS",
    "SERVICE_TIERS",
    "STANDARD_TERMS",
    "TOOL_KINDS",
    "Account",
    "AccountUnit",
    "AegisError",
    "Balance",
    "BillingTerms",
    "Bound",
    "BudgetAlert",
    "BudgetExceeded",
    "CallSubject",
    "Checkpoint",
    "Clock",
    "ConfigError",
    "Decision",
    "Denied",
    "Difference",
    "DuplicateRequest",
    "Ed25519Signer",
    "Ed25519Verifier",
    "FileReceiptSink",
    "Gate",
    "GovernedCall",
    "GovernedResponse",
    "HmacSha256Signer",
    "Hold",
    "HoldAlreadyResolved",
    "HoldNotFound",
    "HoldState",
    "InMemoryPolicyProvider",
    "InvalidRequest",
    "Keyring",
    "Ledger",
    "LedgerError",
    "LedgerUnavailable",
    "ManualClock",
    "MemoryLedger",
    "MemoryReceiptSink",
    "ModelKind",
    "ModelPrice",
    "ModelRetiredDenied",
    "Outcome",
    "Permit",
    "Policy",
    "PolicyDenied",
    "PolicyError",
    "PolicyProvider",
    "PriceDifference",
    "PricingError",
    "PricingTable",
    "Problem",
    "RateLimit",
    "RateLimitStatus",
    "RateLimited",
    "Receipt",
    "ReceiptChain",
    "ReceiptError",
    "ReceiptSink",
    "ReceiptSinkUnavailable",
    "ReceiptStatus",
    "ReceiptTrail",
    "RedisLedger",
    "RepriceReport",
    "Routing",
    "ServiceTier",
    "Settlement",
    "Signature",
    "SignatureVerifier",
    "Signer",
    "SqliteLedger",
    "SqliteReceiptSink",
    "SseEvent",
    "SseParser",
    "Statement",
    "SystemClock",
    "TierPrice",
    "TomlPolicyProvider",
    "TrailLocked",
    "TrailSummary",
    "UnknownModel",
    "UnknownModelDenied",
    "Usage",
    "UsageSource",
    "VerifyReport",
    "Window",
    "WindowBudget",
    "canonical_bytes",
    "compare_price_file",
    "default_pricing_table",
    "format_usd",
    "nanos_to_usd",
    "new_id",
    "parse_usd",
    "reprice_trail",
    "sdk_kwargs",
    "text_tokens_upper_bound",
    "verify_trail",
    "window_span",
    "wire_field",
]
