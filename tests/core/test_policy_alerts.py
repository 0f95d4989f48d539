"""Alert thresholds in the policy: validated, normalized, and part of the policy version."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from aegis.core import Policy, PolicyError


def policy(window: dict[str, Any] | None = None, **budgets: Any) -> Policy:
    day = {"window": "day", "limit_usd": "10", **(window or {})}
    return Policy.from_dict("acme", {"budgets": {"per_window": [day], **budgets}})


def test_thresholds_load_sorted_and_round_trip() -> None:
    loaded = policy(
        {"hard_stop": False, "alert_at": [1.0, 0.5, "0.8"]},
        per_run_usd="1",
        per_run_alert_at=[0.9],
    )
    assert loaded.per_window[0].alert_at == (Decimal("0.5"), Decimal("0.8"), Decimal("1"))
    assert loaded.per_run_alert_at == (Decimal("0.9"),)
    assert loaded.to_dict()["budgets"]["per_window"][0]["alert_at"] == ["0.5", "0.8", "1"]
    assert Policy.from_dict("acme", loaded.to_dict()) == loaded


def test_thresholds_are_part_of_the_version_and_absent_ones_change_nothing() -> None:
    plain = policy()
    assert "alert_at" not in plain.to_dict()["budgets"]["per_window"][0]
    assert policy({"alert_at": [0.5]}).version != plain.version
    assert policy({"alert_at": [0.5]}).version != policy({"alert_at": [0.8]}).version
    assert policy({"alert_at": [0.5, 1]}).version == policy({"alert_at": ["1.0", 0.5]}).version


@pytest.mark.parametrize(
    ("alert_at", "field"),
    [
        ([], "budgets.per_window[0].alert_at"),
        (0.5, "budgets.per_window[0].alert_at"),
        ([0], "budgets.per_window[0].alert_at[0]"),
        ([0.5, -1], "budgets.per_window[0].alert_at[1]"),
        ([11], "budgets.per_window[0].alert_at[0]"),
        (["half"], "budgets.per_window[0].alert_at[0]"),
        ([True], "budgets.per_window[0].alert_at[0]"),
        ([0.5, "0.50"], "budgets.per_window[0].alert_at[1]"),
        (["NaN"], "budgets.per_window[0].alert_at[0]"),
        ([0.0000001], "budgets.per_window[0].alert_at[0]"),
    ],
)
def test_bad_thresholds_name_tenant_and_field(alert_at: object, field: str) -> None:
    with pytest.raises(PolicyError) as err:
        policy({"alert_at": alert_at})
    assert err.value.field == field
    assert "'acme'" in str(err.value)


def test_per_run_thresholds_need_a_per_run_budget() -> None:
    with pytest.raises(PolicyError) as err:
        policy(per_run_alert_at=[0.5])
    assert err.value.field == "budgets.per_run_alert_at"
