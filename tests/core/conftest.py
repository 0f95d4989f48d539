from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from aegis.core import Ledger, ManualClock, MemoryLedger, SqliteLedger


@pytest.fixture(params=["memory", "sqlite"])
async def ledger(
    request: pytest.FixtureRequest, clock: ManualClock, tmp_path: Path
) -> AsyncIterator[Ledger]:
    """Each ledger implementation, on the test's manual clock."""
    impl: Ledger
    if request.param == "memory":
        impl = MemoryLedger(clock=clock)
    else:
        impl = SqliteLedger(tmp_path / "ledger.db", clock=clock)
    yield impl
    await impl.close()
