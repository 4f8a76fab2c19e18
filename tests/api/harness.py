"""An in-memory :class:`pysrc.api.backend.Backend` for the API's route tests.

This is the test harness of the API layer, not a stand-in for the bot: the thing under test is
the API (routing, validation, auth, envelope, audit calls, WebSocket hub), and the lead's
end-to-end test runs the same routes against the real ``BotRuntime``. To keep the route tests
honest the harness is built from the project's real pieces and keeps real state:

* orders are domain :class:`~pysrc.domain.Order` objects driven through the real state machine
  (submit, confirm, acknowledge, fills as :class:`~pysrc.domain.Execution` through the real
  reducer, cancel, amend); positions are domain :class:`~pysrc.domain.Position` objects fed by
  the same executions (``on_execution``), so a market buy opens a position and a close flattens it;
* a simple matching rule against the book the test sets: market orders take the best level,
  limit orders rest unless they cross; no book -> ``Unavailable("books")``;
* idempotency: the same client order id with the same parameters returns the stored order; with
  other parameters it is a ``Conflict``;
* risk and strategies are the real :class:`~pysrc.risk.RiskManager` (limits, sizing, kill switch)
  and :class:`~pysrc.strategy.StrategyManager` with the real
  :class:`~pysrc.strategy.OrderBookScalper`; their validation errors become ``Invalid(key)``;
* audit rows, published events and a metrics registry are recorded for the tests to inspect.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from pysrc.api.backend import (
    Conflict,
    EventCallback,
    Invalid,
    NewOrder,
    NotFound,
    OrderChanges,
    OrderFilters,
    Unavailable,
)
from pysrc.api.shapes import dec, order_detail, order_view, position_view, redact
from pysrc.config import validate
from pysrc.domain import (
    ClientOrderIdGenerator,
    Execution,
    Order,
    OrderState,
    OrderType,
    Position,
    PositionState,
    Side,
    on_exchange_update,
    on_execution,
)
from pysrc.domain.orders import OrderEvent
from pysrc.obs.metrics import Registry
from pysrc.risk import (
    InstrumentSpec,
    OpenPosition,
    PortfolioState,
    RiskConfigError,
    RiskManager,
)
from pysrc.strategy import (
    OrderBookScalper,
    ParameterError,
    Signal,
    StrategyManager,
    UnknownStrategy,
)

Levels = list[tuple[str, str]]

DEFAULT_SPECS = {
    "BTCUSDT": InstrumentSpec("BTCUSDT", Decimal("0.1"), Decimal("0.001"), Decimal("0.001"), Decimal(5)),
    "ETHUSDT": InstrumentSpec("ETHUSDT", Decimal("0.01"), Decimal("0.01"), Decimal("0.01"), Decimal(5)),
    "SOLUSDT": InstrumentSpec("SOLUSDT", Decimal("0.001"), Decimal("0.1"), Decimal("0.1"), Decimal(5)),
}
BTC_BIDS = [("65000.0", "1.500"), ("64999.9", "2.000"), ("64999.5", "0.250")]
BTC_ASKS = [("65000.1", "1.000"), ("65000.5", "3.000"), ("65001.0", "0.100")]
COMPONENTS = ("feed", "books", "database", "redis", "exchange")
_MINUTES = {"D": 1440, "W": 10080}


def _ms() -> int:
    return time.time_ns() // 1_000_000


class MemoryBackend:
    """See the module docstring. Test helpers: :meth:`set_book`, :meth:`record_trade`,
    :meth:`ingest_signal`, :meth:`emit`, :meth:`set_health`."""

    def __init__(self, specs: Mapping[str, InstrumentSpec] | None = None, balance: Decimal = Decimal(10_000)) -> None:
        self.specs = dict(specs or DEFAULT_SPECS)
        self.books: dict[str, tuple[Levels, Levels, int]] = {}
        self.trades: dict[str, list[tuple[int, Decimal, Decimal]]] = {}
        self.book_updates: dict[str, int] = {}
        self.orders: dict[str, Order] = {}
        self.order_seq: dict[str, int] = {}
        self.exchange_ids: dict[str, str] = {}
        self.requests: dict[str, dict[str, Any]] = {}
        self.positions_open: dict[str, Position] = {}
        self.positions_closed: list[Position] = []
        self.risk = RiskManager()
        self.strategies_mgr = StrategyManager()
        self.strategies_mgr.register(OrderBookScalper())
        self.signal_log: list[dict[str, Any]] = []
        self.audit_log: list[dict[str, Any]] = []
        self.subscribers: list[EventCallback] = []
        self.trading = True
        self.started_at = time.monotonic()
        self.wallet = balance
        self.realised_today = Decimal(0)
        self.health_status = {c: "ok" for c in COMPONENTS}
        self.ids = ClientOrderIdGenerator()
        self.seq = itertools.count(1)
        self.exec_seq = itertools.count(1)
        self.registry = Registry()
        self.m_orders = self.registry.counter("bot_orders_placed_total", "orders placed", ("venue",))
        self.m_fills = self.registry.counter("bot_orders_filled_total", "orders filled", ("venue",))
        self.config = validate({})

    # ---- test helpers -----------------------------------------------------------------------

    def set_book(self, symbol: str, bids: Levels, asks: Levels) -> None:
        ts = _ms()
        self.books[symbol] = (list(bids), list(asks), ts)
        self.book_updates[symbol] = self.book_updates.get(symbol, 0) + 1
        for pos in self.positions_open.values():
            if pos.symbol == symbol and (mark := self._mid(symbol)) is not None:
                pos.mark(mark)
        self.emit({"type": "market_data", "ts": ts, "symbol": symbol, "data": self._ticker(symbol)})

    def record_trade(self, symbol: str, price: Decimal, qty: Decimal, ts: int | None = None) -> None:
        self.trades.setdefault(symbol, []).append((ts if ts is not None else _ms(), price, qty))

    def ingest_signal(self, signal: Signal) -> dict[str, Any]:
        """A strategy's signal arriving: recorded with the decision trading state allows."""
        if self.risk.kill_switch.engaged:
            decision, reason = "rejected", "kill switch engaged"
        elif not self.trading:
            decision, reason = "rejected", "trading stopped"
        else:
            decision, reason = "approved", ""
        row = {**signal.to_dict(), "decision": decision, "reason": reason, "order_id": None}
        self.signal_log.append(row)
        self.emit({"type": "signal", "ts": signal.ts, "symbol": signal.symbol, "data": row})
        return row

    def emit(self, event: Mapping[str, Any]) -> None:
        for cb in list(self.subscribers):
            cb(event)

    def set_health(self, component: str, status: str) -> None:
        self.health_status[component] = status

    # ---- helpers --------------------------------------------------------------------------------

    def _spec(self, symbol: str) -> InstrumentSpec:
        spec = self.specs.get(symbol)
        if spec is None:
            raise NotFound(f"symbol {symbol}")
        return spec

    def _best(self, symbol: str) -> tuple[Decimal | None, Decimal | None]:
        book = self.books.get(symbol)
        if book is None:
            return None, None
        bids, asks, _ = book
        return (Decimal(bids[0][0]) if bids else None, Decimal(asks[0][0]) if asks else None)

    def _mid(self, symbol: str) -> Decimal | None:
        bid, ask = self._best(symbol)
        return (bid + ask) / 2 if bid is not None and ask is not None else None

    def _ticker(self, symbol: str) -> dict[str, Any]:
        bid, ask = self._best(symbol)
        trades = self.trades.get(symbol)
        book = self.books.get(symbol)
        return {
            "symbol": symbol,
            "ts": book[2] if book else None,
            "bid": dec(bid),
            "ask": dec(ask),
            "last": dec(trades[-1][1]) if trades else None,
            "mark": dec(self._mid(symbol)),
            "volume_24h": dec(sum((q for _, _, q in trades), Decimal(0))) if trades else None,
            "turnover_24h": dec(sum((p * q for _, p, q in trades), Decimal(0))) if trades else None,
            "change_24h": None,
        }

    def _find(self, order_id: str) -> Order:
        link = order_id if order_id in self.orders else self.exchange_ids.get(order_id)
        if link is None:
            raise NotFound(f"order {order_id}")
        return self.orders[link]

    def _portfolio(self) -> PortfolioState:
        held = tuple(
            OpenPosition(p.symbol, p.side, p.size, p.entry_price or Decimal(1), p.mark_price, p.stop_loss)
            for p in self.positions_open.values()
        )
        return PortfolioState(
            balance=self.wallet,
            positions=held,
            day=datetime.now(UTC).date().isoformat(),
            realized_pnl_today=self.realised_today,
        )

    def _status(self) -> dict[str, Any]:
        live = sum(1 for o in self.orders.values() if not o.is_terminal)
        return {
            "state": "running",
            "trading": self.trading,
            "mode": "paper",
            "kill_switch": self.risk.kill_switch.engaged,
            "uptime_s": time.monotonic() - self.started_at,
            "symbols": len(self.specs),
            "symbols_live": len(self.books),
            "open_orders": live,
            "open_positions": len(self.positions_open),
            "signals": len(self.signal_log),
            "version": "test",
        }

    def _execute(self, order: Order, price: Decimal) -> None:
        """Fill ``order`` completely at ``price`` through the real reducers."""
        n = next(self.exec_seq)
        e = Execution(
            exec_id=f"x{n}",
            symbol=order.symbol,
            side=order.side,
            qty=order.leaves_qty,
            price=price,
            order_id=order.exchange_order_id,
            order_link_id=order.order_link_id,
            exec_time=_ms(),
        )
        on_exchange_update(order, e)
        self.m_fills.inc(venue="paper")
        self.record_trade(order.symbol, price, e.qty)
        pos = self.positions_open.get(order.symbol)
        if pos is None:
            pos = Position(position_id=f"p{n}", symbol=order.symbol, side=order.side, strategy=order.strategy)
        before = pos.realised_pnl
        update = on_execution(pos, e)
        self.wallet += pos.realised_pnl - before
        self.realised_today += pos.realised_pnl - before
        if pos.is_terminal:
            self.positions_open.pop(order.symbol, None)
            self.positions_closed.append(pos)
        else:
            self.positions_open[order.symbol] = pos
        if update.opened is not None:
            self.positions_open[order.symbol] = update.opened
        current = self.positions_open.get(order.symbol, pos)
        if (mark := self._mid(order.symbol)) is not None:
            current.mark(mark)
        self.emit({"type": "position_update", "ts": _ms(), "symbol": order.symbol, "data": position_view(current)})

    def _submit(self, order: Order, reserve_params: dict[str, Any] | None) -> Order:
        """Record, acknowledge and match one order (no await: atomic on the loop)."""
        self.orders[order.order_link_id] = order
        self.order_seq[order.order_link_id] = next(self.seq)
        if reserve_params is not None:
            self.requests[order.order_link_id] = reserve_params
        exchange_id = f"ex{self.order_seq[order.order_link_id]}"
        order.submit()
        order.confirm_submit(exchange_id)
        order.acknowledge()
        self.exchange_ids[exchange_id] = order.order_link_id
        self.m_orders.inc(venue="paper")
        bid, ask = self._best(order.symbol)
        if order.order_type is OrderType.MARKET:
            self._execute(order, ask if order.side is Side.BUY else bid)  # type: ignore[arg-type]
        elif order.side is Side.BUY and ask is not None and order.price is not None and order.price >= ask:
            self._execute(order, ask)
        elif order.side is Side.SELL and bid is not None and order.price is not None and order.price <= bid:
            self._execute(order, bid)
        return order

    def _cancel(self, order: Order, reason: str) -> None:
        order.request_cancel()
        order.confirm_cancel(reason)

    def _check_steps(self, spec: InstrumentSpec, qty: Decimal | None, price: Decimal | None) -> None:
        if qty is not None:
            if qty % spec.qty_step != 0:
                raise Invalid("qty", f"must be a multiple of the quantity step {spec.qty_step}")
            if qty < spec.min_qty:
                raise Invalid("qty", f"below the minimum quantity {spec.min_qty}")
        if price is not None and price % spec.tick_size != 0:
            raise Invalid("price", f"must be a multiple of the tick size {spec.tick_size}")

    def _close(self, pos: Position, reason: str) -> Order:
        bid, ask = self._best(pos.symbol)
        side = pos.side.opposite
        if (ask if side is Side.BUY else bid) is None:
            raise Unavailable("books", f"no book for {pos.symbol}: cannot close at market")
        pos.request_close(reason)
        order = Order(
            order_link_id=self.ids.next_id(pos.symbol, "close"),
            symbol=pos.symbol,
            side=side,
            order_type=OrderType.MARKET,
            qty=pos.size,
            reduce_only=True,
            strategy="api",
        )
        return self._submit(order, None)

    # ---- Backend: bot -----------------------------------------------------------------------------

    async def status(self) -> dict[str, Any]:
        return self._status()

    async def start_trading(self) -> dict[str, Any]:
        if self.risk.kill_switch.engaged:
            raise Conflict("the kill switch is engaged; release it first", code="kill_switch_engaged")
        self.trading = True
        return self._status()

    async def stop_trading(self) -> dict[str, Any]:
        self.trading = False
        return self._status()

    async def get_config(self) -> dict[str, Any]:
        out: dict[str, Any] = redact(self.config)
        return out

    # ---- Backend: trading -------------------------------------------------------------------

    async def list_orders(self, filters: OrderFilters) -> list[dict[str, Any]]:
        rows = sorted(self.orders.values(), key=lambda o: -self.order_seq[o.order_link_id])
        out = []
        for o in rows:
            if filters.symbol and o.symbol != filters.symbol:
                continue
            if filters.side and o.side.value != filters.side:
                continue
            if filters.status and o.state.value != filters.status:
                continue
            if filters.active is not None and filters.active == o.is_terminal:
                continue
            if filters.strategy and o.strategy != filters.strategy:
                continue
            out.append(order_view(o))
            if len(out) >= filters.limit:
                break
        return out

    async def place_order(self, req: NewOrder) -> dict[str, Any]:
        params = req.params()
        if req.client_order_id is not None and req.client_order_id in self.requests:
            if self.requests[req.client_order_id] != params:
                raise Conflict(
                    f"client_order_id {req.client_order_id} was used for a different order",
                    code="idempotency_mismatch",
                    field="client_order_id",
                )
            return order_view(self.orders[req.client_order_id])
        spec = self.specs.get(req.symbol)
        if spec is None:
            raise Invalid("symbol", f"unknown symbol {req.symbol}")
        if self.risk.kill_switch.engaged:
            raise Conflict("the kill switch is engaged", code="kill_switch_engaged")
        if not self.trading:
            raise Conflict("trading is stopped", code="trading_stopped")
        self._check_steps(spec, req.qty, req.price)
        bid, ask = self._best(req.symbol)
        ref = req.price if req.price is not None else (ask if req.side == "Buy" else bid)
        if ref is None:
            raise Unavailable("books", f"no book for {req.symbol}: a market order needs one")
        notional = req.qty * ref
        if notional < self.risk.limits.min_order_usdt:
            raise Conflict(f"order value {notional} below min_order_usdt", code="risk_rejected")
        exposure = self._portfolio().exposure
        if exposure + notional > self.risk.limits.max_exposure_usdt:
            raise Conflict(
                f"exposure {exposure + notional} would exceed max_exposure_usdt", code="risk_rejected"
            )
        link = req.client_order_id or self.ids.next_id(req.symbol, "api")
        order = Order(
            order_link_id=link,
            symbol=req.symbol,
            side=Side(req.side),
            order_type=OrderType(req.order_type),
            qty=req.qty,
            price=req.price,
            strategy="api",
        )
        return order_view(self._submit(order, params))

    async def order(self, order_id: str) -> dict[str, Any]:
        return order_detail(self._find(order_id))

    async def cancel_order(self, order_id: str) -> dict[str, Any]:
        order = self._find(order_id)
        if order.state is OrderState.CANCELLED:
            return order_view(order)
        if order.is_terminal:
            raise Conflict(f"order {order_id} is {order.state.value}", code="order_final")
        self._cancel(order, "cancelled via the API")
        return order_view(order)

    async def modify_order(self, order_id: str, changes: OrderChanges) -> dict[str, Any]:
        order = self._find(order_id)
        if order.is_terminal:
            raise Conflict(f"order {order_id} is {order.state.value}", code="order_final")
        if order.order_type is OrderType.MARKET:
            raise Invalid("price" if changes.price is not None else "qty", "a market order cannot be amended")
        self._check_steps(self.specs[order.symbol], changes.qty, changes.price)
        if changes.qty is not None and changes.qty < order.filled_qty:
            raise Invalid("qty", f"below the filled quantity {order.filled_qty}")
        meta = {}
        if changes.qty is not None:
            meta["qty"] = str(changes.qty)
        if changes.price is not None:
            meta["price"] = str(changes.price)
        order.apply(OrderEvent.AMEND, metadata=meta)
        return order_view(order)

    async def signals(self, limit: int, symbol: str | None = None) -> list[dict[str, Any]]:
        rows = [s for s in reversed(self.signal_log) if symbol is None or s["symbol"] == symbol]
        return rows[:limit]

    async def balance(self) -> dict[str, Any]:
        unreal = sum((p.unrealised_pnl for p in self.positions_open.values()), Decimal(0))
        return {
            "currency": "USDT",
            "equity": dec(self.wallet + unreal),
            "wallet_balance": dec(self.wallet),
            "available": dec(self.wallet),
            "unrealised_pnl": dec(unreal),
            "realised_pnl_today": dec(self.realised_today),
            "day_pnl": dec(self._portfolio().day_pnl),
        }

    async def risk_status(self) -> dict[str, Any]:
        return self.risk.status(self._portfolio())

    async def execution_stats(self) -> dict[str, Any]:
        states = [o.state for o in self.orders.values()]
        placed = len(states)
        filled = states.count(OrderState.FILLED)
        return {
            "orders_placed": placed,
            "orders_filled": filled,
            "orders_cancelled": states.count(OrderState.CANCELLED),
            "orders_rejected": states.count(OrderState.REJECTED),
            "orders_failed": states.count(OrderState.FAILED),
            "fill_ratio": filled / placed if placed else None,
            "submit_latency_ms": {"p50": None, "p99": None},
            "venue": "paper",
        }

    async def engage_kill_switch(self, actor: str, reason: str) -> dict[str, Any]:
        decision = self.risk.engage_kill_switch(reason, by=actor)
        cancelled = closed = 0
        if decision.actions:
            for order in list(self.orders.values()):
                if order.is_live:
                    self._cancel(order, "kill switch")
                    cancelled += 1
            for pos in list(self.positions_open.values()):
                self._close(pos, "kill_switch")
                closed += 1
            self.trading = False
            self.risk.kill_switch.acknowledge_halt()
        if decision.newly_engaged:
            self.emit(
                {
                    "type": "alert",
                    "ts": _ms(),
                    "symbol": None,
                    "data": {"level": "critical", "event": "kill_switch_engaged", "message": reason},
                }
            )
        out = self.risk.status(self._portfolio())
        out.update(cancelled_orders=cancelled, closed_positions=closed)
        return out

    async def release_kill_switch(self, actor: str, reason: str) -> dict[str, Any]:
        if self.risk.kill_switch.engaged:
            self.risk.release_kill_switch(actor, self._portfolio())
        return self.risk.status(self._portfolio())

    # ---- Backend: positions -----------------------------------------------------------------

    async def positions(self) -> list[dict[str, Any]]:
        return [position_view(p) for p in self.positions_open.values()]

    def _open(self, symbol: str) -> Position:
        pos = self.positions_open.get(symbol)
        if pos is None:
            raise NotFound(f"position {symbol}")
        return pos

    async def position(self, symbol: str) -> dict[str, Any]:
        return position_view(self._open(symbol))

    def _protect(self, symbol: str, price: Decimal, which: str) -> dict[str, Any]:
        pos = self._open(symbol)
        spec = self.specs[symbol]
        if price % spec.tick_size != 0:
            raise Invalid("price", f"must be a multiple of the tick size {spec.tick_size}")
        mark = pos.mark_price or pos.entry_price
        assert mark is not None
        above = price > mark
        wants_above = (which == "take_profit") == (pos.side is Side.BUY)
        if above != wants_above:
            where = "above" if wants_above else "below"
            raise Invalid("price", f"a {pos.side.value} position's {which} must be {where} the mark {mark}")
        previous = pos.take_profit if which == "take_profit" else pos.stop_loss
        if which == "take_profit":
            pos.set_protection(take_profit=price)
        else:
            pos.set_protection(stop_loss=price)
        out = position_view(pos)
        out["previous"] = dec(previous)
        return out

    async def update_tp(self, symbol: str, price: Decimal) -> dict[str, Any]:
        return self._protect(symbol, price, "take_profit")

    async def update_sl(self, symbol: str, price: Decimal) -> dict[str, Any]:
        return self._protect(symbol, price, "stop_loss")

    async def close_position(self, symbol: str) -> dict[str, Any]:
        pos = self._open(symbol)
        if pos.state is PositionState.CLOSING:
            raise Conflict(f"a close of {symbol} is in flight", code="position_closing")
        order = self._close(pos, "api")
        return {"position": position_view(pos), "order": order_view(order)}

    # ---- Backend: market --------------------------------------------------------------------

    async def symbols(self) -> list[dict[str, Any]]:
        return [
            {
                "symbol": s.symbol,
                "usable": s.symbol in self.books,
                "tick_size": dec(s.tick_size),
                "qty_step": dec(s.qty_step),
                "min_qty": dec(s.min_qty),
                "min_notional": dec(s.min_notional),
            }
            for s in self.specs.values()
        ]

    async def ticker(self, symbol: str) -> dict[str, Any]:
        self._spec(symbol)
        if symbol not in self.books:
            raise Unavailable("feed", f"no data for {symbol} yet")
        return self._ticker(symbol)

    async def candles(self, symbol: str, interval: str, limit: int) -> list[dict[str, Any]]:
        self._spec(symbol)
        if interval == "M":
            raise Unavailable("exchange", "monthly candles come from the exchange, not the local trades")
        span = 60_000 * (int(interval) if interval.isdigit() else _MINUTES[interval])
        buckets: dict[int, list[tuple[Decimal, Decimal]]] = {}
        for ts, price, qty in self.trades.get(symbol, []):
            buckets.setdefault(ts - ts % span, []).append((price, qty))
        out = []
        for start in sorted(buckets)[-limit:]:
            rows = buckets[start]
            prices = [p for p, _ in rows]
            out.append(
                {
                    "start": start,
                    "open": dec(prices[0]),
                    "high": dec(max(prices)),
                    "low": dec(min(prices)),
                    "close": dec(prices[-1]),
                    "volume": dec(sum((q for _, q in rows), Decimal(0))),
                    "turnover": dec(sum((p * q for p, q in rows), Decimal(0))),
                }
            )
        return out

    async def orderbook(self, symbol: str, depth: int) -> dict[str, Any]:
        self._spec(symbol)
        book = self.books.get(symbol)
        if book is None:
            raise Unavailable("books", f"the {symbol} book is not live")
        bids, asks, ts = book
        return {
            "symbol": symbol,
            "ts": ts,
            "update_id": self.book_updates[symbol],
            "bids": [list(x) for x in bids[:depth]],
            "asks": [list(x) for x in asks[:depth]],
        }

    def _metrics(self, symbol: str) -> dict[str, Any]:
        bid, ask = self._best(symbol)
        book = self.books.get(symbol)
        out: dict[str, Any] = {"usable": book is not None, "updates": self.book_updates.get(symbol, 0)}
        if book is None or bid is None or ask is None:
            out.update(mid=None, spread_bps=None, imbalance_5=None)
            return out
        mid = (bid + ask) / 2
        bq = sum(Decimal(q) for _, q in book[0][:5])
        aq = sum(Decimal(q) for _, q in book[1][:5])
        out.update(
            mid=dec(mid),
            spread_bps=float((ask - bid) / mid * 10_000),
            imbalance_5=float((bq - aq) / (bq + aq)) if bq + aq else None,
        )
        return out

    async def market_metrics(self, symbol: str | None = None) -> dict[str, Any]:
        if symbol is not None:
            self._spec(symbol)
            return {"symbol": symbol, **self._metrics(symbol)}
        return {
            "symbols": {s: self._metrics(s) for s in self.specs},
            "totals": {"symbols": len(self.specs), "usable": len(self.books)},
        }

    # ---- Backend: strategies ----------------------------------------------------------------

    def _strategy_row(self, name: str) -> dict[str, Any]:
        for row in self.strategies_mgr.status():
            if row["name"] == name:
                return row
        raise NotFound(f"strategy {name}")

    async def strategies(self) -> list[dict[str, Any]]:
        return self.strategies_mgr.status()

    async def strategy(self, name: str) -> dict[str, Any]:
        row = self._strategy_row(name)
        row["parameter_schema"] = self.strategies_mgr.get(name).describe_parameters()
        return row

    async def update_strategy(self, name: str, params: Mapping[str, Any]) -> dict[str, Any]:
        try:
            self.strategies_mgr.update_parameters(name, params)
        except UnknownStrategy:
            raise NotFound(f"strategy {name}") from None
        except ParameterError as exc:
            raise Invalid(exc.key, str(exc)) from None
        return self._strategy_row(name)

    async def enable_strategy(self, name: str) -> dict[str, Any]:
        try:
            self.strategies_mgr.enable(name)
        except UnknownStrategy:
            raise NotFound(f"strategy {name}") from None
        return self._strategy_row(name)

    async def disable_strategy(self, name: str) -> dict[str, Any]:
        try:
            self.strategies_mgr.disable(name)
        except UnknownStrategy:
            raise NotFound(f"strategy {name}") from None
        return self._strategy_row(name)

    # ---- Backend: configuration -------------------------------------------------------------

    async def get_sizing(self) -> dict[str, Any]:
        return self.risk.sizing.to_dict()

    async def put_sizing(self, values: Mapping[str, Any]) -> dict[str, Any]:
        try:
            return self.risk.update_sizing(values).to_dict()
        except RiskConfigError as exc:
            raise Invalid(exc.key, str(exc)) from None

    async def get_risk(self) -> dict[str, Any]:
        return self.risk.limits.to_dict()

    async def put_risk(self, values: Mapping[str, Any]) -> dict[str, Any]:
        try:
            return self.risk.update_limits(values).to_dict()
        except RiskConfigError as exc:
            raise Invalid(exc.key, str(exc)) from None

    # ---- Backend: health, metrics, audit, events ------------------------------------------------

    async def health(self) -> dict[str, Any]:
        comps: dict[str, Any] = {c: {"status": s, "detail": ""} for c, s in self.health_status.items()}
        comps["exchange"]["breakers"] = {"orders": "closed", "queries": "closed"}
        states = set(self.health_status.values())
        overall = "down" if "down" in states else "degraded" if "degraded" in states else "ok"
        return {"status": overall, "components": comps}

    async def metrics_text(self) -> str:
        return self.registry.render()

    async def audit(
        self,
        actor: str,
        action: str,
        params: Mapping[str, Any],
        *,
        ok: bool,
        result: Mapping[str, Any] | None = None,
        error: str | None = None,
        trace_id: str | None = None,
    ) -> None:
        self.audit_log.append(
            {
                "actor": actor,
                "action": action,
                "params": dict(params),
                "ok": ok,
                "result": None if result is None else dict(result),
                "error": error,
                "trace_id": trace_id,
            }
        )

    def subscribe_events(self, callback: EventCallback) -> Callable[[], None]:
        self.subscribers.append(callback)

        def unsubscribe() -> None:
            if callback in self.subscribers:
                self.subscribers.remove(callback)

        return unsubscribe
