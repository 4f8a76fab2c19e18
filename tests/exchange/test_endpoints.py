"""Endpoint table vs pybit's endpoint conventions, environments, metrics."""

from __future__ import annotations

import pytest
from pybit.account import Account
from pybit.market import Market
from pybit.position import Position
from pybit.trade import Trade

from pysrc.exchange.bybit import endpoints as ep
from pysrc.exchange.bybit.environments import (
    DEMO,
    MAINNET,
    TESTNET,
    custom_environment,
    environment,
)
from pysrc.exchange.metrics import Metrics, percentile


def test_paths_match_pybit() -> None:
    pairs = {
        ep.SERVER_TIME: Market.GET_SERVER_TIME,
        ep.INSTRUMENTS: Market.GET_INSTRUMENTS_INFO,
        ep.ORDERBOOK: Market.GET_ORDERBOOK,
        ep.KLINE: Market.GET_KLINE,
        ep.TICKERS: Market.GET_TICKERS,
        ep.RECENT_TRADES: Market.GET_PUBLIC_TRADING_HISTORY,
        ep.ORDER_CREATE: Trade.PLACE_ORDER,
        ep.ORDER_AMEND: Trade.AMEND_ORDER,
        ep.ORDER_CANCEL: Trade.CANCEL_ORDER,
        ep.ORDER_CANCEL_ALL: Trade.CANCEL_ALL_ORDERS,
        ep.OPEN_ORDERS: Trade.GET_OPEN_ORDERS,
        ep.ORDER_HISTORY: Trade.GET_ORDER_HISTORY,
        ep.EXECUTIONS: Position.GET_EXECUTIONS,
        ep.POSITIONS: Position.GET_POSITIONS,
        ep.SET_LEVERAGE: Position.SET_LEVERAGE,
        ep.TRADING_STOP: Position.SET_TRADING_STOP,
        ep.WALLET_BALANCE: Account.GET_WALLET_BALANCE,
        ep.FEE_RATE: Account.GET_FEE_RATE,
    }
    assert set(pairs) == set(ep.ALL_ENDPOINTS)
    for ours, theirs in pairs.items():
        assert ours.path == theirs.value


def test_signing_and_methods() -> None:
    for e in ep.ALL_ENDPOINTS:
        assert e.signed == (e.group is not ep.EndpointGroup.MARKET)
        assert e.idempotent == (e.method == "GET")


def test_environments() -> None:
    assert MAINNET.rest_url == "https://api.bybit.com"
    assert TESTNET.ws_private_url == "wss://stream-testnet.bybit.com/v5/private"
    assert DEMO.rest_url == "https://api-demo.bybit.com" and DEMO.ws_trade_url is None
    assert DEMO.ws_public_url("linear") == "wss://stream.bybit.com/v5/public/linear"
    assert environment("testnet") is TESTNET
    with pytest.raises(ValueError):
        environment("moon")
    local = custom_environment("http://127.0.0.1:8123/")
    assert local.rest_url == "http://127.0.0.1:8123"
    assert local.ws_private_url == "ws://127.0.0.1:8123/v5/private"
    assert local.ws_public_url() == "ws://127.0.0.1:8123/v5/public/linear"


def test_metrics_snapshot() -> None:
    m = Metrics(reservoir=100)
    e = m.endpoint("GET /v5/market/time")
    for i in range(1, 201):
        e.observe(i / 1000.0)
    e.observe(0.5, "http_502")
    e.refused("BreakerOpenError")
    snap = m.snapshot()["endpoints"]["GET /v5/market/time"]
    assert snap["calls"] == 201 and snap["ok"] == 200 and snap["samples"] == 100  # bounded
    assert snap["errors"] == {"http_502": 1, "BreakerOpenError": 1} and snap["error_total"] == 2
    assert 140 <= snap["p50_ms"] <= 160 and snap["p99_ms"] >= 199 and snap["max_ms"] == 500
    assert percentile([], 50) == 0.0
