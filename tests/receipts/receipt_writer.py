"""A process that writes receipts through a real Gate until it is killed (run as a script).

``stream``: callers write receipts as fast as they can; each acknowledged receipt's seq is
printed as ``ack SEQ`` once its write has returned (so it must be durable).
``diskfull``: after 100 acknowledged receipts the file size limit is set so the next write is
cut after 300 bytes (as when a disk fills up), then the process waits to be killed.
"""

# ruff: noqa: T201 - a worker process that reports over stdout

from __future__ import annotations

import asyncio
import resource
import signal
import sys
from pathlib import Path

from aegis.core import (
    FileReceiptSink,
    Gate,
    HmacSha256Signer,
    InMemoryPolicyProvider,
    MemoryLedger,
    ReceiptSinkUnavailable,
    Usage,
    default_pricing_table,
)

SECRET = b"receipt-secret-0123456789abcdef!"
USED = Usage(input_tokens=900, cached_input_tokens=100, output_tokens=250, reasoning_tokens=0)


def fill_disk_after(directory: Path, nbytes: int) -> None:
    """Let the segment grow by only ``nbytes`` more: the next write is cut short there."""
    segment = max(directory.glob("receipts-*.jsonl"))
    limit = segment.stat().st_size + nbytes
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # get EFBIG instead of dying of SIGXFSZ
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


async def main(directory: Path, mode: str) -> None:
    signer = HmacSha256Signer(key_id="k1", secret=SECRET)
    sink = FileReceiptSink(directory, checkpoint_signer=signer, checkpoint_every=50)
    gate = Gate(
        policy_provider=InMemoryPolicyProvider({"acme": {}}),
        ledger=MemoryLedger(),
        pricing=default_pricing_table(),
        signer=signer,
        sink=sink,
    )
    counter = iter(range(10**9))

    async def call() -> int:
        async with gate.call(
            tenant_id="acme",
            request_id=f"req-{next(counter)}",
            provider="openai",
            model="gpt-4o-mini",
            input_tokens=1000,
            max_output_tokens=300,
        ) as governed:
            governed.record(USED)
        assert governed.receipt is not None
        return governed.receipt.seq

    async def caller() -> None:
        while True:
            seq = await call()
            print(f"ack {seq}", flush=True)

    if mode == "stream":
        await asyncio.gather(*(caller() for _ in range(8)))
        return
    for _ in range(100):
        print(f"ack {await call()}", flush=True)
    fill_disk_after(directory, 300)
    try:
        await call()
    except ReceiptSinkUnavailable as exc:
        print(f"failed {exc.message}", flush=True)
    await asyncio.sleep(3600)


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), sys.argv[2]))
