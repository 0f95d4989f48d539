"""Canonical bytes hold for any text a receipt can carry, and the verifier insists on them."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from hypothesis import given, settings, strategies as st

from aegis.core import (
    Decision,
    HmacSha256Signer,
    Keyring,
    Receipt,
    ReceiptChain,
    Usage,
    canonical_bytes,
    verify_trail,
)

SIGNER = HmacSha256Signer(key_id="k1", secret=b"property-secret-0123456789abcdef")
# Any text without lone surrogates (which UTF-8 cannot carry): quotes, backslashes, control
# characters, DEL, U+2028, non-BMP, and markers that look like the receipt's own keys.
TEXT = st.text(
    alphabet=st.characters(blacklist_categories=["Cs"]),
    max_size=40,
) | st.sampled_from(['","signature":{"alg":"x"}', ',"started_at":"', "\\u0041", "\x7f", "é"])


def receipt(request_id: str, error: str | None, tenant: str) -> Receipt:
    return Receipt(
        receipt_id="0" * 32,
        request_id=request_id,
        tenant_id=tenant,
        run_id=None,
        provider="openai",
        model="gpt-4o-mini",
        capability="llm:invoke",
        decision=Decision(False, "model_not_allowed"),
        status="denied",
        usage=Usage(),
        usage_source="none",
        estimated_usd="0",
        reserved_usd="0",
        actual_usd="0",
        overage=False,
        late=False,
        pricing_version=None,
        pricing_as_of=None,
        policy_version=None,
        started_at="2026-11-26T12:00:00.000000Z",
        finished_at="2026-11-26T12:00:00.000000Z",
        latency_us=0,
        error=error,
    )


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(TEXT, st.none() | TEXT, TEXT), min_size=1, max_size=4))
def test_any_text_seals_to_canonical_bytes_that_verify(
    fields: list[tuple[str, str | None, str]],
) -> None:
    chain = ReceiptChain(SIGNER)
    sealed = [chain.seal(receipt(*f)) for f in fields]
    lines = [r.canonical_line() for r in sealed]
    for r, line in zip(sealed, lines, strict=True):
        assert line == canonical_bytes(r.to_dict())
        assert json.loads(line) == r.to_dict()
    with tempfile.TemporaryDirectory() as tmp:
        segment = Path(tmp) / "receipts-20261126-000000.jsonl"
        segment.write_bytes(b"".join(line + b"\n" for line in lines))
        report = verify_trail([tmp], Keyring([SIGNER]))
        assert report.problems == ()
        assert report.summary.receipts == len(lines)
        # The same records written with \u escapes for non-ASCII are not canonical.
        escaped = [
            json.dumps(json.loads(line), sort_keys=True, separators=(",", ":")).encode()
            for line in lines
        ]
        segment.write_bytes(b"".join(line + b"\n" for line in escaped))
        flagged = {p.where for p in verify_trail([tmp], Keyring([SIGNER])).problems}
        expected = {
            f"{segment}:{n}"
            for n, (a, b) in enumerate(zip(lines, escaped, strict=True), 1)
            if a != b
        }
        assert flagged == expected
