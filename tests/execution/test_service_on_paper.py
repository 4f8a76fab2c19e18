"""The same service over the paper venue (mode ``paper``): nothing is sent anywhere, and the
orders, fills, positions, trades and audit go through the same state machines and tables as live.
The paper venue fills against a real native book built from Bybit ``orderbook`` messages."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

from pysrc.book import BookEngine
from pysrc.exchange.instruments import Instrument
from pysrc.execution import OrderIntent, OrderService
from pysrc.execution.paper import PaperVenue
from pysrc.store import PoolConfig, open_store

from .conftest import audit_actions, wait_until

D = Decimal
SYM = "BTCUSDT"
INST = Instrument(
    symbol=SYM, status="Trading", tick_size=D("0.1"), qty_step=D("0.001"), min_qty=D("0.001"),
    max_qty=D("100"), min_price=D("0.1"), max_price=D("1999999.8"), max_market_qty=D("50"),
    min_notional=D("5"), min_leverage=D("1"), max_leverage=D("100"), leverage_step=D("0.01"),
    base_coin="BTC", quote_coin="USDT", settle_coin="USDT", contract_type="LinearPerpetual",
)


def _book() -> BookEngine:
    engine = BookEngine("bybit")
    msg = {"topic": f"orderbook.50.{SYM}", "type": "snapshot", "ts": 1_700_000_000_001,
           "data": {"s": SYM, "b": [["64999.5", "0.300"], ["64999.0", "1.000"]],
                    "a": [["65000.0", "0.100"], ["65000.5", "0.200"], ["65001.0", "0.500"]], "u": 1, "seq": 1},
           "cts": 1_700_000_000_001}
    outcome, _ = engine.apply(json.dumps(msg).encode())
    assert outcome == 0
    return engine


def run_paper(db: Any, body: Callable[[OrderService, PaperVenue, Any], Awaitable[None]]) -> None:
    async def main() -> None:
        st = await open_store(database_url=db.dsn, redis_url=db.redis_url,
                              pool=PoolConfig(schema=db.schema, min_size=1, max_size=4), redis_prefix=db.prefix)
        venue = PaperVenue(_book(), [INST], id_salt="svc-test")
        svc = OrderService(st, venue, mode="paper", reconcile_interval=None)
        try:
            await svc.start()
            await body(svc, venue, st)
        finally:
            await svc.close()
            await st.aclose()

    asyncio.run(main())


def test_paper_orders_positions_and_trades_use_the_same_machinery(store: Any) -> None:
    async def body(svc: OrderService, venue: PaperVenue, st: Any) -> None:
        view = await svc.place(OrderIntent(symbol=SYM, side="Buy", order_type="Market", qty=D("0.250"),
                                           client_order_id="pp_open", reason="imbalance", signal_type="imbalance"))
        assert view.mode == "paper"

        async def filled(link: str) -> bool:
            v = await svc.get(link)
            return v is not None and v.state == "FILLED"
        await wait_until(lambda: filled("pp_open"), what="paper fill")
        v = await svc.get("pp_open")
        assert v is not None and v.filled_qty == D("0.250")
        # walked the book: 0.100 @ 65000.0 + 0.150 @ 65000.5
        assert v.avg_fill_price == (D("0.100") * D("65000.0") + D("0.150") * D("65000.5")) / D("0.250")
        (pos,) = await svc.positions()
        assert (pos.mode, pos.side, pos.size) == ("paper", "Buy", D("0.250"))
        again = await svc.place(OrderIntent(symbol=SYM, side="Buy", order_type="Market", qty=D("0.250"),
                                            client_order_id="pp_open", reason="imbalance", signal_type="imbalance"))
        assert again.duplicate and len([o for o in await venue.order_history(SYM)
                                        if o["orderLinkId"] == "pp_open"]) == 1
        close = await svc.close_position(SYM, reason="signal_exit")
        assert close is not None
        await wait_until(lambda: filled(close.order_link_id), what="paper close")

        async def flat() -> bool:
            return not await svc.positions()
        await wait_until(flat, what="position closed")
        (trade,) = await svc.trades()
        assert trade.mode == "paper" and trade.exit_reason == "signal_exit" and trade.entry_reason == "imbalance"
        assert [e.action for e in await audit_actions(st, "order:pp_open")][:2] == ["order.submit", "order.place"]
        report = await svc.reconciler.run("manual")
        assert report.clean, report.to_dict()

    run_paper(store, body)
