"""The Bybit v5 REST endpoints the bot uses, with their breaker group and per-UID rate limits.

Paths match pybit's endpoint enums (``pybit.market.Market``, ``pybit.trade.Trade``, ...; a test
checks this). Per-UID limits are the defaults of bybit-v5.md section 4 (requests per rolling
second per UID per endpoint; per category for trade endpoints). Market endpoints have no UID
limit, only the IP limit.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Literal


class EndpointGroup(str, Enum):
    """Circuit-breaker groups: one failing service should not stop the others."""

    MARKET = "market"
    ORDER = "order"
    POSITION = "position"
    ACCOUNT = "account"


ANY_CATEGORY = "*"


@dataclass(frozen=True, eq=False)  # identity semantics: each endpoint is a singleton
class Endpoint:
    method: Literal["GET", "POST"]
    path: str
    group: EndpointGroup
    signed: bool
    uid_limits: Mapping[str, int] = field(default_factory=dict)
    """Requests per second per UID, by category (``"*"`` = any category / not per category)."""

    @property
    def per_category(self) -> bool:
        return ANY_CATEGORY not in self.uid_limits and bool(self.uid_limits)

    @property
    def idempotent(self) -> bool:
        """Reads can be resent freely; writes cannot."""
        return self.method == "GET"

    def uid_limit(self, category: str | None) -> int | None:
        if not self.uid_limits:
            return None
        if ANY_CATEGORY in self.uid_limits:
            return self.uid_limits[ANY_CATEGORY]
        return self.uid_limits.get(category or "linear")

    def bucket(self, category: str | None) -> str | None:
        """Name of the local token bucket for this endpoint (and category), or None if unlimited."""
        if not self.uid_limits:
            return None
        if self.per_category:
            return f"uid:{self.path}:{category or 'linear'}"
        return f"uid:{self.path}"


_M, _O, _P, _A = EndpointGroup.MARKET, EndpointGroup.ORDER, EndpointGroup.POSITION, EndpointGroup.ACCOUNT

SERVER_TIME = Endpoint("GET", "/v5/market/time", _M, False)
INSTRUMENTS = Endpoint("GET", "/v5/market/instruments-info", _M, False)
ORDERBOOK = Endpoint("GET", "/v5/market/orderbook", _M, False)
KLINE = Endpoint("GET", "/v5/market/kline", _M, False)
TICKERS = Endpoint("GET", "/v5/market/tickers", _M, False)
RECENT_TRADES = Endpoint("GET", "/v5/market/recent-trade", _M, False)

ORDER_CREATE = Endpoint(
    "POST", "/v5/order/create", _O, True, {"linear": 10, "inverse": 10, "option": 10, "spot": 20}
)
ORDER_AMEND = Endpoint("POST", "/v5/order/amend", _O, True, {"linear": 10, "inverse": 10, "option": 10, "spot": 10})
ORDER_CANCEL = Endpoint(
    "POST", "/v5/order/cancel", _O, True, {"linear": 10, "inverse": 10, "option": 10, "spot": 20}
)
ORDER_CANCEL_ALL = Endpoint(
    "POST", "/v5/order/cancel-all", _O, True, {"linear": 10, "inverse": 10, "option": 1, "spot": 20}
)
OPEN_ORDERS = Endpoint("GET", "/v5/order/realtime", _O, True, {ANY_CATEGORY: 50})
ORDER_HISTORY = Endpoint("GET", "/v5/order/history", _O, True, {ANY_CATEGORY: 50})
EXECUTIONS = Endpoint("GET", "/v5/execution/list", _O, True, {ANY_CATEGORY: 50})

POSITIONS = Endpoint("GET", "/v5/position/list", _P, True, {"linear": 50, "inverse": 50, "option": 50})
SET_LEVERAGE = Endpoint("POST", "/v5/position/set-leverage", _P, True, {"linear": 10, "inverse": 10})
TRADING_STOP = Endpoint(
    "POST", "/v5/position/trading-stop", _P, True, {"linear": 10, "inverse": 10, "option": 10}
)

WALLET_BALANCE = Endpoint("GET", "/v5/account/wallet-balance", _A, True, {ANY_CATEGORY: 50})
FEE_RATE = Endpoint("GET", "/v5/account/fee-rate", _A, True, {ANY_CATEGORY: 5})

ALL_ENDPOINTS: tuple[Endpoint, ...] = (
    SERVER_TIME,
    INSTRUMENTS,
    ORDERBOOK,
    KLINE,
    TICKERS,
    RECENT_TRADES,
    ORDER_CREATE,
    ORDER_AMEND,
    ORDER_CANCEL,
    ORDER_CANCEL_ALL,
    OPEN_ORDERS,
    ORDER_HISTORY,
    EXECUTIONS,
    POSITIONS,
    SET_LEVERAGE,
    TRADING_STOP,
    WALLET_BALANCE,
    FEE_RATE,
)

__all__ = [
    "ALL_ENDPOINTS",
    "ANY_CATEGORY",
    "EXECUTIONS",
    "FEE_RATE",
    "INSTRUMENTS",
    "KLINE",
    "OPEN_ORDERS",
    "ORDERBOOK",
    "ORDER_AMEND",
    "ORDER_CANCEL",
    "ORDER_CANCEL_ALL",
    "ORDER_CREATE",
    "ORDER_HISTORY",
    "POSITIONS",
    "RECENT_TRADES",
    "SERVER_TIME",
    "SET_LEVERAGE",
    "TICKERS",
    "TRADING_STOP",
    "WALLET_BALANCE",
    "Endpoint",
    "EndpointGroup",
]
