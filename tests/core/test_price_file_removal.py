"""A price file can take models out of the table (then calls to them are denied as unpriced)."""

from __future__ import annotations

import pytest

from aegis.core import ConfigError, default_pricing_table


def test_removed_models_and_their_aliases_leave_the_table() -> None:
    base = default_pricing_table()
    aliased = base.with_overrides({"aliases": {"my-mini": "gpt-4o-mini"}})
    table = aliased.with_overrides({"remove": {"models": ["gpt-4o-mini"]}})
    assert "gpt-4o-mini" in aliased
    assert "my-mini" in aliased
    assert "gpt-4o-mini" not in table
    assert "my-mini" not in table
    assert "gpt-4o" in table
    assert table.version != aliased.version


@pytest.mark.parametrize(
    "remove", [["gpt-4o"], {"models": "gpt-4o"}, {"models": [1]}, {"model": ["gpt-4o"]}]
)
def test_a_malformed_remove_table_is_a_config_error(remove: object) -> None:
    with pytest.raises(ConfigError, match=r"pricing\.remove"):
        default_pricing_table().with_overrides({"remove": remove})
