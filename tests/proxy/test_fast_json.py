"""The proxy's decoder of upstream answers parses, and fails, as the standard library does."""

from __future__ import annotations

import json
from collections.abc import Callable

import orjson
import pytest

from aegis.proxy import fast_json

DOCUMENTS: list[bytes | str] = [
    b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"max_tokens":5}',
    '{"text":"caf\u00e9 \u2603 \U0001f600","n":-0.0,"e":1e-7,"big":1.5e308}',
    b'{"usage":{"completion_tokens":123456789012345678901234567890}}',  # beyond 64 bits
    b'{"usage":{"completion_tokens":9223372036854775807}}',  # the largest orjson holds
    b'{"usage":{"completion_tokens":18446744073709551616}}',  # 2**64
    b'{"temperature":NaN,"top_p":Infinity}',  # not JSON, accepted by the standard library
    b'{"content":"\\ud800"}',  # a lone surrogate
    '{"a":1}'.encode("utf-16"),  # UTF-16 with its byte order mark
    b'{"a":1,"a":2}',  # the last duplicate wins
    b"  \n 42 ",
]
BROKEN: list[bytes | str] = [b"", b"{", b'{"a":}', b"\xff\xfe\xfa", "{'a': 1}", b'{"a":1} x']


@pytest.mark.parametrize("document", DOCUMENTS)
def test_every_document_decodes_to_what_json_loads_gives(document: bytes | str) -> None:
    expected = json.loads(document)
    got = fast_json.loads(document)
    assert got == expected or (got != got and expected != expected)  # NaN equals nothing
    assert json.dumps(got) == json.dumps(expected)


def test_the_cases_include_what_orjson_refuses_or_decodes_otherwise() -> None:
    """The cases reach the fallback, not only orjson (else the test above proves little)."""
    differ = 0
    for document in DOCUMENTS:
        try:
            decoded = orjson.loads(document)
        except orjson.JSONDecodeError:
            differ += 1
        else:
            differ += json.dumps(decoded) != json.dumps(json.loads(document))
    assert differ >= 5


def test_a_count_beyond_64_bits_stays_an_exact_integer() -> None:
    count = fast_json.loads(b'{"completion_tokens":123456789012345678901234567890}')
    assert count == {"completion_tokens": 123456789012345678901234567890}
    assert type(count["completion_tokens"]) is int


def failure(loads: Callable[[bytes | str], object], document: bytes | str) -> ValueError:
    try:
        loads(document)
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError both are
        return exc
    raise AssertionError(f"{document!r} decoded")


@pytest.mark.parametrize("document", BROKEN)
def test_a_broken_document_fails_with_the_standard_librarys_error(document: bytes | str) -> None:
    standard, ours = failure(json.loads, document), failure(fast_json.loads, document)
    assert type(ours) is type(standard)
    assert str(ours) == str(standard)


def test_a_very_deep_document_raises_what_the_standard_library_raises() -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    with pytest.raises(RecursionError):
        json.loads(deep)
    with pytest.raises(RecursionError):
        fast_json.loads(deep)
