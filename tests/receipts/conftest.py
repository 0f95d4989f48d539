"""A real receipt trail, written through the real Gate, and ways to read, edit and verify it."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from aegis.core import (
    BudgetExceeded,
    FileReceiptSink,
    Gate,
    HmacSha256Signer,
    InMemoryPolicyProvider,
    Keyring,
    ManualClock,
    MemoryLedger,
    PolicyDenied,
    Receipt,
    ReceiptSink,
    Signer,
    Usage,
    VerifyReport,
    default_pricing_table,
    verify_trail,
)

SECRET = b"receipt-secret-0123456789abcdef!"
SECRET_ENV = "AEGIS_TEST_RECEIPT_SECRET"
CLI = Path(sys.executable).with_name("aegis-receipts")
POLICIES = {
    "acme": {
        "budgets": {"per_window": {"window": "day", "limit_usd": 1}},
        "model": {"allow_models": ["gpt-4o-mini", "gpt-4.1-nano"]},
    },
    "beta": {},
}
USED = Usage(input_tokens=900, cached_input_tokens=100, output_tokens=250, reasoning_tokens=0)


def make_gate(signer: Signer, sink: ReceiptSink, clock: ManualClock) -> Gate:
    return Gate(
        policy_provider=InMemoryPolicyProvider(POLICIES),
        ledger=MemoryLedger(clock=clock),
        pricing=default_pricing_table(),
        signer=signer,
        sink=sink,
        clock=clock,
    )


async def ok_call(gate: Gate, tenant: str, request_id: str, model: str = "gpt-4o-mini") -> Receipt:
    async with gate.call(
        tenant_id=tenant,
        request_id=request_id,
        provider="openai",
        model=model,
        input_tokens=1000,
        max_output_tokens=300,
    ) as call:
        call.record(USED)
    assert call.receipt is not None
    return call.receipt


async def write_mixed_calls(gate: Gate, clock: ManualClock) -> None:
    """Allowed, denied, failed and cancelled calls: one receipt each, in this order."""
    await ok_call(gate, "acme", "a-1")  # seq 0
    clock.advance(1.5)
    await ok_call(gate, "acme", "a-2", model="gpt-4.1-nano")  # seq 1
    await ok_call(gate, "beta", "b-1")  # seq 2
    with pytest.raises(PolicyDenied):  # seq 3: model not allowed
        await ok_call(gate, "acme", "a-3", model="gpt-4o")
    with pytest.raises(PolicyDenied):  # seq 4: unknown tenant
        await ok_call(gate, "nobody", "n-1")
    with pytest.raises(RuntimeError):  # seq 5: upstream failure
        async with gate.call(
            tenant_id="acme",
            request_id="a-4",
            provider="openai",
            model="gpt-4o-mini",
            input_tokens=10,
            max_output_tokens=10,
        ):
            raise RuntimeError("upstream 503")
    with pytest.raises(asyncio.CancelledError):  # seq 6: the caller went away
        async with gate.call(
            tenant_id="acme",
            request_id="a-5",
            provider="openai",
            model="gpt-4o-mini",
            input_tokens=10,
            max_output_tokens=10,
        ):
            raise asyncio.CancelledError
    with pytest.raises(BudgetExceeded):  # seq 7: over the day budget
        async with gate.call(
            tenant_id="acme",
            request_id="a-6",
            provider="openai",
            model="gpt-4o-mini",
            input_tokens=10_000_000,
            max_output_tokens=100,
        ):
            pass


@dataclass
class Trail:
    """A trail directory with helpers to tamper with it and verify it."""

    directory: Path
    signer: HmacSha256Signer
    receipts: int

    @property
    def kit(self) -> type[Kit]:
        return Kit

    @property
    def segments(self) -> list[Path]:
        return sorted(self.directory.glob("receipts-*.jsonl"))

    @property
    def checkpoints(self) -> Path:
        return self.directory / "receipts.checkpoints.jsonl"

    def lines(self, segment: int) -> list[bytes]:
        return self.segments[segment].read_bytes().splitlines()

    def write(self, segment: int, lines: Sequence[bytes], *, newline: bool = True) -> None:
        data = b"\n".join(lines) + (b"\n" if newline and lines else b"")
        self.segments[segment].write_bytes(data)

    def where(self, segment: int, line: int) -> str:
        return f"{self.segments[segment]}:{line}"

    def keyring(self) -> Keyring:
        return Keyring([self.signer])

    def verify(self, keyring: Keyring | None = None, **options: object) -> VerifyReport:
        return verify_trail([self.directory], keyring or self.keyring(), **options)  # type: ignore[arg-type]

    def cli(
        self, *args: str, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return run_cli(*args, env=env)


def cli_env(keys: str = f"k1:env:{SECRET_ENV}") -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AEGIS_")}
    env[SECRET_ENV] = SECRET.decode()
    env["AEGIS_RECEIPT_KEYS"] = keys
    return env


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CLI), *args],
        env=cli_env() if env is None else env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
async def trail(tmp_path: Path, clock: ManualClock) -> Trail:
    """Twelve receipts over two days (two segments), a checkpoint every four, closed."""
    signer = HmacSha256Signer(key_id="k1", secret=SECRET)
    directory = tmp_path / "trail"
    sink = FileReceiptSink(directory, checkpoint_signer=signer, checkpoint_every=4)
    gate = make_gate(signer, sink, clock)
    await write_mixed_calls(gate, clock)  # seq 0..7 on 2026-11-26
    clock.advance(86_400)
    for i in range(4):  # seq 8..11 on 2026-11-27
        await ok_call(gate, "beta" if i % 2 else "acme", f"day2-{i}")
    await sink.close()
    return Trail(directory, signer, 12)


class Kit:
    """The helpers above, for test modules (which cannot import a conftest by name)."""

    SECRET = SECRET
    SECRET_ENV = SECRET_ENV
    Trail = Trail
    make_gate = staticmethod(make_gate)
    ok_call = staticmethod(ok_call)
    write_mixed_calls = staticmethod(write_mixed_calls)
    run_cli = staticmethod(run_cli)
    cli_env = staticmethod(cli_env)


@pytest.fixture
def kit() -> type[Kit]:
    return Kit
