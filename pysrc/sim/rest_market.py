"""Public market-data REST endpoints (no signature), answering with Bybit's shapes."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pysrc.sim.envelope import BybitError, params_error
from pysrc.sim.market import INTERVALS, SymbolMarket
from pysrc.sim.publisher import _value_str

if TYPE_CHECKING:
    from pysrc.sim.server import SimExchange


def _category(q: Mapping[str, str], required: bool = True) -> None:
    cat = q.get("category")
    if cat is None:
        if required:
            raise params_error("params error: category is required")
        return
    if cat != "linear":
        raise params_error(f"params error: category {cat} is not served by the simulator (linear only)")


def _int(q: Mapping[str, str], name: str, default: int, lo: int, hi: int) -> int:
    raw = q.get(name)
    if raw is None or raw == "":
        return default
    try:
        v = int(raw)
    except ValueError:
        raise params_error(f"params error: {name} must be an integer") from None
    if not lo <= v <= hi:
        raise params_error(f"params error: {name} must be between {lo} and {hi}")
    return v


def market_of(sim: SimExchange, q: Mapping[str, str]) -> SymbolMarket:
    sym = q.get("symbol")
    if not sym:
        raise params_error("params error: symbol is required")
    m = sim.markets.get(sym)
    if m is None:
        raise BybitError(10001, f"params error: symbol invalid ({sym})")
    return m


def server_time(sim: SimExchange, q: Mapping[str, str]) -> dict[str, Any]:
    ns = time.time_ns()
    return {"timeSecond": str(ns // 1_000_000_000), "timeNano": str(ns)}


def instruments_info(sim: SimExchange, q: Mapping[str, str]) -> dict[str, Any]:
    _category(q)
    sym = q.get("symbol")
    items = [m.inst for m in sim.markets.values() if sym is None or m.symbol == sym]
    if sym is not None and not items:
        return {"category": "linear", "list": [], "nextPageCursor": ""}
    limit = _int(q, "limit", 500, 1, 1000)
    start = 0
    cursor = q.get("cursor")
    if cursor:
        try:
            start = int(cursor)
        except ValueError:
            raise params_error("params error: cursor invalid") from None
    page = items[start:start + limit]
    nxt = str(start + limit) if start + limit < len(items) else ""
    return {"category": "linear", "list": [i.to_dict(sim.launch_ms) for i in page], "nextPageCursor": nxt}


def orderbook(sim: SimExchange, q: Mapping[str, str]) -> dict[str, Any]:
    _category(q)
    m = market_of(sim, q)
    limit = _int(q, "limit", 25, 1, 1000)
    bids, asks = m.book.top(limit)
    ps, ss = m.inst.price_str, m.inst.size_str
    return {
        "s": m.symbol,
        "b": [[ps(t), ss(s)] for t, s in bids],
        "a": [[ps(t), ss(s)] for t, s in asks],
        "ts": int(time.time() * 1000),
        "u": sim.publisher.rest_u(m.symbol),
        "seq": m.seq,
        "cts": m.change_ms,
    }


def kline(sim: SimExchange, q: Mapping[str, str]) -> dict[str, Any]:
    _category(q, required=False)
    m = market_of(sim, q)
    interval = q.get("interval")
    if interval not in INTERVALS:
        raise params_error("params error: interval invalid")
    limit = _int(q, "limit", 200, 1, 1000)
    start = _int(q, "start", 0, 0, 2**62) or None
    end = _int(q, "end", 0, 0, 2**62) or None
    m.candles.roll(int(time.time() * 1000))
    rows = m.candles.klines(interval, start, end, limit)
    inst = m.inst
    dec = inst.price_decimals + inst.qty_decimals
    out = [
        [str(r[0]), inst.price_str(r[1]), inst.price_str(r[2]), inst.price_str(r[3]), inst.price_str(r[4]),
         inst.size_str(r[5]), _value_str(r[6], dec)]
        for r in reversed(rows)
    ]
    return {"category": "linear", "symbol": m.symbol, "list": out}


def tickers(sim: SimExchange, q: Mapping[str, str]) -> dict[str, Any]:
    _category(q)
    now = int(time.time() * 1000)
    if q.get("symbol"):
        ms = [market_of(sim, q)]
    else:
        ms = list(sim.markets.values())
    return {"category": "linear", "list": [m.ticker(now) for m in ms]}


def recent_trade(sim: SimExchange, q: Mapping[str, str]) -> dict[str, Any]:
    _category(q)
    m = market_of(sim, q)
    limit = _int(q, "limit", 500, 1, 1000)
    trades = list(m.recent)[-limit:]
    trades.reverse()
    return {"category": "linear", "list": [m.recent_trade_dict(t) for t in trades]}


HANDLERS = {
    "/v5/market/time": server_time,
    "/v5/market/instruments-info": instruments_info,
    "/v5/market/orderbook": orderbook,
    "/v5/market/kline": kline,
    "/v5/market/tickers": tickers,
    "/v5/market/recent-trade": recent_trade,
}
