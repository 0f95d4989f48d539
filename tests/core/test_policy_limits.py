"""Rate limits in the policy: validated, and part of the version only when set."""

from __future__ import annotations

import pytest

from aegis.core import Policy, PolicyError, RateLimit


def test_limits_load_and_round_trip() -> None:
    policy = Policy.from_dict(
        "acme",
        {
            "limits": [
                {"model": "gpt-4o*", "rpm": 60, "tpm": 100_000, "max_in_flight": 8},
                {"rpm": 5},
            ]
        },
    )
    assert policy.limits == (
        RateLimit(model="gpt-4o*", rpm=60, tpm=100_000, max_in_flight=8),
        RateLimit(model="*", rpm=5),
    )
    assert Policy.from_dict("acme", policy.to_dict()) == policy
    assert "limits" not in Policy.from_dict("acme", {}).to_dict()
    assert policy.version != Policy.from_dict("acme", {}).version


@pytest.mark.parametrize(
    ("limits", "field"),
    [
        ([{"model": "gpt-4o*"}], "limits[0]"),
        ([{"rpm": 0}], "limits[0].rpm"),
        ([{"tpm": "many"}], "limits[0].tpm"),
        ([{"rpm": 1, "rph": 2}], "limits[0].rph"),
        ([{"rpm": 1}, {"tpm": 2}], "limits[1].model"),
        ("rpm", "limits"),
    ],
)
def test_bad_limits_name_the_field(limits: object, field: str) -> None:
    with pytest.raises(PolicyError) as bad:
        Policy.from_dict("acme", {"limits": limits})
    assert bad.value.field == field
