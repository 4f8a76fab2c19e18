"""Bybit v5: REST client, private stream, signing, codes, endpoints and environments."""

from pysrc.exchange.bybit.environments import (
    DEMO,
    MAINNET,
    TESTNET,
    BybitEnvironment,
    custom_environment,
    environment,
)
from pysrc.exchange.bybit.errors import (
    BybitApiError,
    BybitHttpError,
    IpBannedError,
    OrderStateUnknown,
    RateLimitWaitError,
    TransportError,
)
from pysrc.exchange.bybit.orders import CreateStatus, PlaceOrderResult
from pysrc.exchange.bybit.rest import BybitRest

__all__ = [
    "DEMO",
    "MAINNET",
    "TESTNET",
    "BybitApiError",
    "BybitEnvironment",
    "BybitHttpError",
    "BybitRest",
    "CreateStatus",
    "IpBannedError",
    "OrderStateUnknown",
    "PlaceOrderResult",
    "RateLimitWaitError",
    "TransportError",
    "custom_environment",
    "environment",
]
