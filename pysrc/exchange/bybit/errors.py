"""Typed errors of the Bybit client. Every error says whether resending is safe (``retry``).

Hierarchy::

    ExchangeError
    ├── BybitApiError        a well-formed Bybit envelope with retCode != 0
    ├── BybitHttpError       non-200 HTTP status or an unparsable body
    │   └── IpBannedError    HTTP 403: all REST stopped until the ban window passes
    ├── TransportError       connection failure or timeout: outcome unknown for writes
    ├── RateLimitWaitError   the local limiter could not grant quota within the wait budget
    └── OrderStateUnknown    a lost order ack could not be resolved (lookups failed too)

``BreakerOpenError`` (in :mod:`pysrc.exchange.breaker`) also derives from ``ExchangeError``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pysrc.exchange.bybit.codes import (
    classify_code,
    classify_http_status,
    describe_code,
)
from pysrc.exchange.errors import ExchangeError, RetryClass


class BybitApiError(ExchangeError):
    """Bybit answered with ``retCode != 0``."""

    def __init__(
        self,
        ret_code: int,
        ret_msg: str,
        path: str,
        *,
        method: str = "",
        ret_ext_info: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.ret_code = ret_code
        self.ret_msg = ret_msg
        self.path = path
        self.method = method
        self.ret_ext_info = dict(ret_ext_info or {})
        self.headers = dict(headers or {})
        self.retry = classify_code(ret_code)
        super().__init__(
            f"{method} {path}: retCode {ret_code} {ret_msg!r} ({describe_code(ret_code)}; {self.retry.value})"
        )


class BybitHttpError(ExchangeError):
    """HTTP status other than 200, or a 200 whose body is not a Bybit JSON envelope."""

    def __init__(self, status: int, path: str, body: bytes | str = b"", *, method: str = "") -> None:
        self.status = status
        self.path = path
        self.method = method
        text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
        self.body = text[:500]
        # 200 with a garbled body: the request may have been processed.
        self.retry = RetryClass.UNKNOWN_OUTCOME if status == 200 else classify_http_status(status)
        super().__init__(f"{method} {path}: HTTP {status} ({self.retry.value}) {self.body[:120]!r}")


class IpBannedError(BybitHttpError):
    """HTTP 403 (IP rate limit breached, or a forbidden region). Every REST call fails fast with
    this error until ``retry_after`` seconds have passed (Bybit: at least 10 minutes)."""

    def __init__(self, path: str, retry_after: float, *, method: str = "", body: bytes | str = b"") -> None:
        self.retry_after = retry_after
        super().__init__(403, path, body, method=method)
        self.retry = RetryClass.RATE_LIMITED
        self.args = (f"{method} {path}: REST stopped after HTTP 403 (IP ban); retry in {retry_after:.1f} s",)


class TransportError(ExchangeError):
    """The request failed below HTTP (connect error, reset, timeout). For a write the request may
    have reached the exchange: the outcome is unknown."""

    retry = RetryClass.UNKNOWN_OUTCOME

    def __init__(self, path: str, cause: BaseException, *, method: str = "", timeout: bool = False) -> None:
        self.path = path
        self.method = method
        self.timeout = timeout
        kind = "timeout" if timeout else type(cause).__name__
        super().__init__(f"{method} {path}: transport failure ({kind}): {cause}")


class RateLimitWaitError(ExchangeError):
    """The local token bucket could not grant quota within the allowed wait (nothing was sent)."""

    retry = RetryClass.RATE_LIMITED


class OrderStateUnknown(ExchangeError):
    """An order create lost its acknowledgement and the order could not be looked up either.
    Resending is NOT known to be safe except with the same ``orderLinkId``; reconcile later."""

    retry = RetryClass.UNKNOWN_OUTCOME

    def __init__(self, order_link_id: str, cause: BaseException) -> None:
        self.order_link_id = order_link_id
        self.cause = cause
        super().__init__(f"order {order_link_id!r}: outcome unknown and lookup failed: {cause}")


__all__ = [
    "BybitApiError",
    "BybitHttpError",
    "ExchangeError",
    "IpBannedError",
    "OrderStateUnknown",
    "RateLimitWaitError",
    "TransportError",
]
