"""OpenAI error bodies, the refusal mapping, and the SDK's retry rules."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from aegis.adapters.openai import (
    InvalidRequestBody,
    OpenAIErrorInfo,
    error_body,
    error_for,
    parse_error_body,
    retry_after_s,
    should_retry,
)
from aegis.core import BudgetExceeded, DuplicateRequest, LedgerUnavailable, PolicyDenied


def test_error_body_shape() -> None:
    assert error_body("nope", type="invalid_request_error", param="n") == {
        "error": {"message": "nope", "type": "invalid_request_error", "param": "n", "code": None}
    }


def test_parse_error_body_like_the_sdk() -> None:
    body = {"error": {"message": "m", "type": "t", "param": None, "code": 42}}
    assert parse_error_body(body) == OpenAIErrorInfo("m", "t", None, "42")
    assert parse_error_body(json.dumps(body).encode()) == OpenAIErrorInfo("m", "t", None, "42")
    assert parse_error_body({"message": "flat"}).message == "flat"
    assert parse_error_body(b"<html>Bad Gateway</html>").message == "<html>Bad Gateway</html>"
    assert parse_error_body(b"[1]").message == "unknown error"
    assert parse_error_body({"error": "text"}).message == "text"


def test_budget_refusal_is_a_429_the_sdk_will_not_retry() -> None:
    resets = datetime(2026, 12, 1, tzinfo=UTC)
    exc = BudgetExceeded(
        tenant_id="acme",
        budget="month",
        requested_nanos=5,
        available_nanos=1,
        limit_nanos=10,
        resets_at=resets,
    )
    wire = error_for(exc)
    assert wire.status == 429
    assert wire.headers["x-should-retry"] == "false"
    assert wire.headers["x-aegis-budget"] == "month"
    assert wire.headers["x-aegis-resets-at"] == resets.isoformat()
    info = parse_error_body(wire.body)
    assert (info.type, info.code) == ("budget_exceeded", "month")
    assert not should_retry(wire.status, wire.headers)


@pytest.mark.parametrize(
    ("exc", "status", "code"),
    [
        (PolicyDenied("no", tenant_id="a", reason="model_not_allowed"), 403, "model_not_allowed"),
        (InvalidRequestBody("bad n", param="n"), 400, None),
        (DuplicateRequest("r1", "committed"), 409, "duplicate_request"),
        (LedgerUnavailable("down"), 503, "ledger_unavailable"),
    ],
)
def test_other_refusals(exc: Exception, status: int, code: str | None) -> None:
    from aegis.core import AegisError

    assert isinstance(exc, AegisError)
    wire = error_for(exc)
    assert wire.status == status
    assert parse_error_body(wire.body).code == code
    assert wire.headers["x-should-retry"] == "false"


def test_retry_after_parsing() -> None:
    assert retry_after_s({"retry-after-ms": "250"}) == 0.25
    assert retry_after_s({"retry-after": "3"}) == 3.0
    assert retry_after_s({"retry-after-ms": "x", "retry-after": "2"}) == 2.0
    date = "Wed, 21 Oct 2015 07:28:10 GMT"
    now = datetime(2015, 10, 21, 7, 28, 0, tzinfo=UTC).timestamp()
    assert retry_after_s({"retry-after": date}, now=now) == 10.0
    assert retry_after_s({"retry-after": "soon"}) is None
    assert retry_after_s({}) is None


@pytest.mark.parametrize(
    ("status", "headers", "expected"),
    [
        (429, {}, True),
        (500, {}, True),
        (503, {}, True),
        (408, {}, True),
        (409, {}, True),
        (400, {}, False),
        (404, {}, False),
        (400, {"x-should-retry": "true"}, True),
        (500, {"x-should-retry": "false"}, False),
        (429, {"retry-after": "121"}, False),
        (429, {"retry-after": "120"}, True),
    ],
)
def test_should_retry_matches_the_sdk(status: int, headers: dict[str, str], expected: bool) -> None:
    assert should_retry(status, headers) is expected


def test_a_budget_that_resets_soon_says_when_to_retry() -> None:
    resets = datetime(2026, 11, 26, 12, 1, tzinfo=UTC)
    exc = BudgetExceeded(
        tenant_id="acme",
        budget="minute",
        requested_nanos=5,
        available_nanos=1,
        limit_nanos=10,
        resets_at=resets,
    )
    near = error_for(exc, now=resets.timestamp() - 41.5)
    assert near.headers["retry-after"] == "42"
    far = error_for(exc, now=resets.timestamp() - 7200)
    assert "retry-after" not in far.headers
    assert not should_retry(near.status, near.headers)  # still a hard stop for the SDK
