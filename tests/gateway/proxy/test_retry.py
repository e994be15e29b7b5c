"""Retry and fallback decisions (pure)."""

from __future__ import annotations

from gateway.config import Retries
from gateway.http.upstream import (
    ClosedBeforeSending,
    ConnectFailure,
    ResetBeforeResponse,
    UpstreamTimeout,
)
from gateway.proxy.retry import Attempt, next_step

DEFAULT = Retries()
START = Attempt("new", "legacy", retries_left=2)


def test_success_stops() -> None:
    assert next_step(START, DEFAULT, None, 200, idempotent=True, replayable=True) is None
    assert next_step(START, DEFAULT, None, 404, idempotent=True, replayable=True) is None


def test_connect_failure_is_retried_even_for_post() -> None:
    step = next_step(START, DEFAULT, ConnectFailure("x"), None, idempotent=False, replayable=True)
    assert step == Attempt("new", "legacy", 1)


def test_reset_is_not_resent_for_non_idempotent_requests() -> None:
    err = ResetBeforeResponse("x")
    assert next_step(START, DEFAULT, err, None, idempotent=False, replayable=True) is None
    assert next_step(START, DEFAULT, err, None, idempotent=True, replayable=True) == Attempt(
        "new", "legacy", 1
    )


def test_a_connection_closed_before_the_head_went_out_is_retried_even_for_post() -> None:
    err = ClosedBeforeSending("x")  # a reset, but the request never left
    assert next_step(START, DEFAULT, err, None, idempotent=False, replayable=True) == Attempt(
        "new", "legacy", 1
    )


def test_streamed_body_is_resent_only_when_nothing_was_sent() -> None:
    reset = ResetBeforeResponse("x")
    assert next_step(START, DEFAULT, reset, None, idempotent=True, replayable=False) is None
    refused = ConnectFailure("x")
    assert next_step(START, DEFAULT, refused, None, idempotent=True, replayable=False) is not None


def test_exhausted_retries_go_to_fallback_once() -> None:
    last = Attempt("new", "legacy", retries_left=0)
    fallback = next_step(last, DEFAULT, ConnectFailure("x"), None, True, True)
    assert fallback == Attempt("legacy", None, 2, on_fallback=True)
    spent = Attempt("legacy", None, 0, on_fallback=True)
    assert next_step(spent, DEFAULT, ConnectFailure("x"), None, True, True) is None


def test_status_retry_follows_configuration() -> None:
    on_503 = Retries(attempts=1, on=frozenset({"503"}))
    assert next_step(START, on_503, None, 503, True, True) == Attempt("new", "legacy", 1)
    # 500 is not listed: no retry, and 500 is not a gateway error, so no fallback either
    assert next_step(START, on_503, None, 500, True, True) is None
    # a 502 is a gateway error: falls back even though it is not retried
    assert next_step(START, on_503, None, 502, True, True) == Attempt(
        "legacy", None, 1, on_fallback=True
    )
    # never re-send a POST that the backend answered
    assert next_step(START, on_503, None, 503, False, True) is None


def test_timeouts_retry_under_gateway_error() -> None:
    gw = Retries(attempts=1, on=frozenset({"gateway-error"}))
    assert next_step(START, gw, UpstreamTimeout("x"), None, True, True) == Attempt(
        "new", "legacy", 1
    )
    assert next_step(START, DEFAULT, UpstreamTimeout("x"), None, True, True) == Attempt(
        "legacy", None, 2, on_fallback=True
    )
