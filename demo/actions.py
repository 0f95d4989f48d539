"""What the demo does through the proxy: calls with the openai SDK, budgets read from the
proxy's ledger, receipts read from its trail, verification with ``aegis-receipts``, and
tampering with one receipt."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import openai

from aegis.core import SqliteLedger, window_span
from aegis.proxy import load_settings
from demo.stack import Stack

__all__ = [
    "BudgetBar",
    "CallResult",
    "Tampered",
    "TrailReceipt",
    "Verification",
    "budget_bars",
    "read_trail",
    "receipts_of",
    "send",
    "tamper",
    "verify",
]


@dataclass(frozen=True, slots=True)
class TrailReceipt:
    """One receipt line of the trail, and where it is."""

    file: Path
    line: int
    """1-based line number in ``file``."""
    record: dict[str, Any]


@dataclass(frozen=True, slots=True)
class CallResult:
    """How one call through the proxy went."""

    tenant: str
    model: str
    status: int
    request_id: str
    text: str = ""
    cost_usd: str | None = None
    receipt_id: str | None = None
    served_by: str | None = None
    """``provider/model`` of the attempt that answered."""
    failed_attempts: tuple[str, ...] = ()
    """``provider/model (status)`` of attempts that failed before it."""
    error_type: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    budget: str | None = None
    resets_at: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None


@dataclass(frozen=True, slots=True)
class BudgetBar:
    """One budget of one tenant, as the ledger has it now."""

    tenant: str
    budget: str
    spent_nanos: int
    limit_nanos: int
    hard_stop: bool
    resets_at: datetime | None


@dataclass(frozen=True, slots=True)
class Verification:
    """What ``aegis-receipts verify`` said."""

    command: str
    exit_code: int
    output: str


@dataclass(frozen=True, slots=True)
class Tampered:
    """The receipt the demo edited."""

    file: Path
    line: int
    seq: int
    field: str
    old: str
    new: str


def _run_id(tenant: str) -> str:
    return f"demo-session-{tenant}"


def client_for(stack: Stack, tenant: str) -> openai.OpenAI:
    """An openai SDK client for ``tenant``: only the base URL and the key differ from OpenAI."""
    return openai.OpenAI(
        base_url=stack.url + "/v1",
        api_key=stack.keys[tenant],
        max_retries=0,
        default_headers={"x-run-id": _run_id(tenant)},
    )


def send(
    stack: Stack,
    tenant: str,
    model: str,
    prompt: str,
    *,
    stream: bool = True,
    max_tokens: int = 400,
    on_text: Callable[[str], None] | None = None,
) -> CallResult:
    """Send one chat prompt through the proxy (streamed: ``on_text`` gets each piece)."""
    request_id = "demo-" + uuid.uuid4().hex[:12]
    client = client_for(stack, tenant)
    messages: Any = [{"role": "user", "content": prompt}]
    text: list[str] = []
    # Gemini 2.5 thinks unless told not to, and the proxy must reserve for the thinking it
    # cannot bound: ~65k output tokens, more than the demo's small budgets hold.
    extra: dict[str, Any] = {"reasoning_effort": "none"} if model.startswith("gemini-2.5") else {}
    try:
        if stream:
            raw = client.chat.completions.with_raw_response.create(
                model=model,
                messages=messages,
                max_tokens=max_tokens,
                stream=True,
                stream_options={"include_usage": True},
                extra_headers={"x-request-id": request_id},
                extra_body=extra,
            )
            headers = raw.headers
            for chunk in raw.parse():
                for choice in chunk.choices:
                    if choice.delta.content:
                        text.append(choice.delta.content)
                        if on_text is not None:
                            on_text(choice.delta.content)
        else:
            raw_completion = client.chat.completions.with_raw_response.create(
                model=model,
                messages=messages,
                max_tokens=max_tokens,
                extra_headers={"x-request-id": request_id},
                extra_body=extra,
            )
            headers = raw_completion.headers
            completion = raw_completion.parse()
            text.append(completion.choices[0].message.content or "")
    except openai.APIStatusError as exc:
        error = exc.body.get("error", exc.body) if isinstance(exc.body, dict) else {}
        return CallResult(
            tenant=tenant,
            model=model,
            status=exc.status_code,
            request_id=request_id,
            error_type=str(error.get("type") or ""),
            error_code=str(error.get("code") or ""),
            error_message=str(error.get("message") or exc.message),
            budget=exc.response.headers.get("x-aegis-budget"),
            resets_at=exc.response.headers.get("x-aegis-resets-at"),
            receipt_id=exc.response.headers.get("x-aegis-receipt-id"),
        )
    except openai.APIConnectionError:
        return CallResult(
            tenant=tenant,
            model=model,
            status=0,
            request_id=request_id,
            error_code="proxy_unreachable",
            error_message=f"the proxy does not answer (its log: {stack.log_path})",
        )
    finally:
        client.close()
    receipts = receipts_of(stack, request_id)
    final = receipts[-1].record if receipts else {}
    usage = final.get("usage") or {}
    return CallResult(
        tenant=tenant,
        model=model,
        status=200,
        request_id=request_id,
        text="".join(text),
        cost_usd=headers.get("x-aegis-cost-usd") or final.get("actual_usd"),
        receipt_id=headers.get("x-aegis-receipt-id"),
        served_by=f"{final.get('provider')}/{final.get('model')}" if final else None,
        failed_attempts=tuple(
            f"{r.record['provider']}/{r.record['model']} ({r.record['upstream_status']})"
            for r in receipts[:-1]
        ),
        input_tokens=usage.get("input"),
        output_tokens=usage.get("output"),
    )


def read_trail(stack: Stack) -> list[TrailReceipt]:
    """Every complete receipt line of the trail, in order (read, not verified)."""
    out = []
    for path in sorted(stack.receipts_dir.glob("receipts-*.jsonl")):
        data = path.read_bytes()
        for number, line in enumerate(data.split(b"\n")[:-1], start=1):
            try:
                out.append(TrailReceipt(path, number, json.loads(line)))
            except ValueError:
                continue
    return out


def receipts_of(stack: Stack, request_id: str, *, wait_s: float = 5.0) -> list[TrailReceipt]:
    """The receipts of one request (a fallback leaves one per attempt: ``id``, ``id~1`` ...).

    A streamed answer can reach the client a moment before its receipt is on disk, so this
    waits a little for the receipt of the last attempt to appear.
    """
    deadline = time.monotonic() + wait_s
    while True:
        found = [
            r
            for r in read_trail(stack)
            if str(r.record.get("request_id", "")).split("~")[0] == request_id
        ]
        if (found and found[-1].record.get("status") != "upstream_error") or (
            time.monotonic() > deadline
        ):
            return found
        time.sleep(0.05)


def budget_bars(stack: Stack) -> list[BudgetBar]:
    """Every tenant's budgets, with spend (committed and held) from the proxy's SQLite ledger."""
    settings = load_settings(stack.config)
    now = time.time()
    ledger = SqliteLedger(stack.ledger_path)
    try:
        bars = []
        for tenant in settings.tenants.values():
            policy = tenant.policy
            wanted: list[tuple[str, str, int, bool, float | None]] = []
            if policy.per_run_nanos is not None:
                run_key = f"run:{_run_id(tenant.tenant_id)}"
                wanted.append((run_key, "per_run", policy.per_run_nanos, True, None))
            for budget in policy.per_window:
                key, window_end = window_span(budget.window, now)
                wanted.append(
                    (key, budget.window, budget.limit_nanos, budget.hard_stop, window_end)
                )
            balances = stack.run(
                ledger.balances(tenant_id=tenant.tenant_id, keys=[w[0] for w in wanted])
            )
            for key, name, limit, hard, end in wanted:
                bars.append(
                    BudgetBar(
                        tenant=tenant.tenant_id,
                        budget=name,
                        spent_nanos=balances[key].spent_nanos,
                        limit_nanos=limit,
                        hard_stop=hard,
                        resets_at=None if end is None else datetime.fromtimestamp(end, UTC),
                    )
                )
        return bars
    finally:
        stack.run(ledger.close())


def verify(stack: Stack) -> Verification:
    """Run the real verifier, ``aegis-receipts verify``, over the trail."""
    argv = ["verify", stack.shown(stack.receipts_dir), "--jobs", "1"]
    result = subprocess.run(
        [sys.executable, "-m", "aegis.core.cli", *argv],
        env={**stack.environ, "AEGIS_RECEIPT_KEYS": stack.verify_keys},
        capture_output=True,
        text=True,
        check=False,
    )
    return Verification(
        command=f"AEGIS_RECEIPT_KEYS={stack.verify_keys} aegis-receipts " + " ".join(argv),
        exit_code=result.returncode,
        output=(result.stdout + result.stderr).strip(),
    )


def tamper(stack: Stack) -> Tampered | None:
    """Lower the charge of the latest paid receipt, in place, as a dishonest operator might.

    The edit keeps the line's length, so the proxy (still appending to the file) is not
    disturbed; only the verifier can tell.
    """
    paid = [r for r in read_trail(stack) if Decimal(str(r.record.get("actual_usd", "0"))) > 0]
    if not paid:
        return None
    victim = paid[-1]
    old = str(victim.record["actual_usd"])
    digits = [i for i, c in enumerate(old) if c.isdigit() and c != "0"]
    i = digits[0]
    new = old[:i] + ("1" if old[i] != "1" else "0") + old[i + 1 :]
    if Decimal(new) == 0:  # "0.001" must not become "0.000": not canonical, a different fault
        new = old[:i] + "2" + old[i + 1 :]
    lines = victim.file.read_bytes().split(b"\n")
    before = f'"actual_usd":"{old}"'.encode()
    after = f'"actual_usd":"{new}"'.encode()
    edited = lines[victim.line - 1].replace(before, after, 1)
    offset = sum(len(line) + 1 for line in lines[: victim.line - 1])
    with victim.file.open("r+b") as f:
        f.seek(offset)
        f.write(edited)
    return Tampered(
        file=victim.file,
        line=victim.line,
        seq=int(victim.record["seq"]),
        field="actual_usd",
        old=old,
        new=new,
    )
