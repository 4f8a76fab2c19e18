"""Retry classification (bybit-v5.md section 5) and the backoff schedule."""

from __future__ import annotations

import random

import pytest

from pysrc.exchange.breaker import BreakerOpenError, BreakerState
from pysrc.exchange.bybit.codes import CODE_TABLE, classify_code, classify_http_status
from pysrc.exchange.bybit.errors import (
    BybitApiError,
    BybitHttpError,
    IpBannedError,
    RateLimitWaitError,
    TransportError,
)
from pysrc.exchange.errors import RetryClass
from pysrc.exchange.retry import RetryAction, RetryPolicy


def api(code: int) -> BybitApiError:
    return BybitApiError(code, "msg", "/v5/order/create", method="POST")


@pytest.mark.parametrize(
    ("code", "cls"),
    [
        (0, RetryClass.OK),
        (10000, RetryClass.UNKNOWN_OUTCOME),
        (10001, RetryClass.FATAL),
        (10002, RetryClass.RESYNC_CLOCK),
        (10004, RetryClass.FATAL),
        (10006, RetryClass.RATE_LIMITED),
        (10016, RetryClass.UNKNOWN_OUTCOME),
        (34040, RetryClass.NOOP_SUCCESS),
        (110001, RetryClass.ORDER_GONE),
        (110007, RetryClass.FATAL),
        (110043, RetryClass.NOOP_SUCCESS),
        (110072, RetryClass.DUPLICATE),
        (110079, RetryClass.BACKOFF),
        (170141, RetryClass.DUPLICATE),
        (999999, RetryClass.FATAL),  # unknown codes are never guessed safe
    ],
)
def test_code_classes(code: int, cls: RetryClass) -> None:
    assert classify_code(code) is cls


def test_http_status_classes() -> None:
    assert classify_http_status(429) is RetryClass.BACKOFF
    assert classify_http_status(502) is RetryClass.UNKNOWN_OUTCOME
    assert classify_http_status(404) is RetryClass.FATAL
    assert BybitHttpError(200, "/x", b"<html>").retry is RetryClass.UNKNOWN_OUTCOME
    assert "ret" not in CODE_TABLE  # table is keyed by int only
    assert all(isinstance(k, int) for k in CODE_TABLE)


def decide(err: Exception, *, idempotent: bool, attempt: int = 0, resyncs: int = 0) -> RetryAction:
    policy = RetryPolicy(rng=random.Random(1))
    return policy.decide(err, idempotent=idempotent, attempt=attempt, clock_resyncs=resyncs).action


def test_reads_retry_on_transient_failures() -> None:
    for err in (
        TransportError("/v5/market/tickers", ConnectionResetError(), method="GET"),
        TransportError("/v5/market/tickers", TimeoutError(), method="GET", timeout=True),
        BybitHttpError(502, "/v5/market/tickers"),
        BybitHttpError(429, "/v5/market/tickers"),
        api(10000),
        api(10016),
    ):
        assert decide(err, idempotent=True) is RetryAction.BACKOFF, err
    assert decide(api(10006), idempotent=True) is RetryAction.WAIT_RATE_LIMIT
    assert decide(api(10002), idempotent=True) is RetryAction.RESYNC_CLOCK


def test_writes_with_unknown_outcome_are_reconciled_never_resent() -> None:
    for err in (
        TransportError("/v5/order/create", ConnectionResetError(), method="POST"),
        TransportError("/v5/order/create", TimeoutError(), method="POST", timeout=True),
        BybitHttpError(503, "/v5/order/create"),
        api(10000),
        api(10016),
    ):
        assert decide(err, idempotent=False) is RetryAction.RECONCILE, err


def test_writes_retry_only_on_proven_non_execution() -> None:
    assert decide(api(10002), idempotent=False) is RetryAction.RESYNC_CLOCK
    assert decide(api(10006), idempotent=False) is RetryAction.WAIT_RATE_LIMIT
    assert decide(api(110079), idempotent=False) is RetryAction.BACKOFF
    assert decide(BybitHttpError(429, "/v5/order/create"), idempotent=False) is RetryAction.BACKOFF
    for code in (10001, 10003, 10004, 110007, 110072, 110001, 110094):
        assert decide(api(code), idempotent=False) is RetryAction.RAISE, code


def test_never_retried() -> None:
    for err in (
        IpBannedError("/x", 600.0),
        BreakerOpenError("order", BreakerState.OPEN, 10.0),
        RateLimitWaitError("no quota"),
        ValueError("a bug"),
    ):
        assert decide(err, idempotent=True) is RetryAction.RAISE, err


def test_attempt_and_resync_budgets() -> None:
    assert decide(api(10000), idempotent=True, attempt=3) is RetryAction.RAISE  # 4 attempts in all
    assert decide(api(10002), idempotent=True, resyncs=2) is RetryAction.RAISE


def test_full_jitter_backoff_is_bounded_and_grows() -> None:
    policy = RetryPolicy(base_delay=0.1, max_delay=2.0, rng=random.Random(7))
    for attempt in range(10):
        ceiling = min(2.0, 0.1 * 2**attempt)
        samples = [policy.backoff(attempt) for _ in range(200)]
        assert all(0.0 <= s <= ceiling for s in samples)
        assert max(samples) > ceiling * 0.8  # spread over the whole range (full jitter)
