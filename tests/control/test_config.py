"""``[store]``, ``[policies]`` and the metrics keys in the config file: defaults and problems."""

from __future__ import annotations

from pathlib import Path

import pytest

from aegis.proxy import ConfigProblems, parse_settings


def test_the_store_sits_beside_the_ledger_by_default(tmp_path: Path) -> None:
    settings = parse_settings(
        {"ledger": {"path": "data/ledger.db"}}, source=tmp_path / "aegis.toml"
    )
    assert settings.store.backend == "sqlite"
    assert settings.store.path == tmp_path / "data" / "control.db"
    # A memory ledger (tests, demos) keeps nothing on disk unless a store is asked for.
    assert parse_settings({"ledger": {"backend": "memory"}}).store.backend == "none"
    asked = parse_settings({"ledger": {"backend": "memory"}, "store": {"backend": "sqlite"}})
    assert asked.store.backend == "sqlite"


def test_problems_name_their_place() -> None:
    with pytest.raises(ConfigProblems) as caught:
        parse_settings(
            {
                "store": {
                    "backend": "mysql",
                    "url": "mysql://user:hunter2@db/x",
                    "poll_interval_s": 0,
                    "key_cache_size": 0,
                    "colour": 1,
                },
                "policies": {"url": "ftp://x", "ttl_s": 0, "timeout_s": -1},
                "observability": {"metrics_keys": ["aegis-sk-plain"], "metrics_listen": "nope"},
            }
        )
    problems = caught.value.problems
    places = {p.split(":")[0] for p in problems}
    assert {
        "store.backend",
        "store.url",
        "store.poll_interval_s",
        "store.key_cache_size",
        "store.colour",
        "policies.url",
        "policies.ttl_s",
        "policies.timeout_s",
        "observability.metrics_keys[0]",
        "observability.metrics_listen",
    } <= places
    assert not any("hunter2" in p for p in problems)  # a URL's password is never echoed
