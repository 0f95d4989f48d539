"""Fixtures shared by every test area."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from aegis.core import ManualClock


@pytest.fixture
def clock() -> ManualClock:
    """A clock at 2026-11-26 12:00:00 UTC that moves only when told."""
    return ManualClock(datetime(2026, 11, 26, 12, 0, tzinfo=UTC))
