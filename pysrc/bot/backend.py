"""The API's :class:`pysrc.api.backend.Backend` over the running bot's real components.

Every method reads or acts on the same objects the trading pipeline uses (the order service, the
books, the strategy manager, the risk manager, the store), so what the API shows is what the bot
does. Shapes are those documented on the protocol; money is returned as exact decimal strings.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from pysrc import __version__ as _pkg_version
from pysrc.api.backend import (
    Conflict,
    Invalid,
    Json,
    NewOrder,
    NotFound,
    OrderChanges,
    OrderFilters,
    Unavailable,
)
from pysrc.api.shapes import iso, redact
from pysrc.api.shapes import order_record_view as order_json
from pysrc.api.shapes import position_record_view as position_json
from pysrc.domain.values import Side
from pysrc.exchange.errors import ExchangeError
from pysrc.execution.model import OrderIntent, OrderView, PositionView, TradingHalted
from pysrc.obs.log import current_trace_id
from pysrc.risk import RiskConfigError
from pysrc.store.repositories import IdempotencyConflict
from pysrc.strategy import ParameterError

if TYPE_CHECKING:
    from pysrc.bot.runtime import BotRuntime

TERMINAL = ("FILLED", "CANCELLED", "REJECTED", "FAILED")


READ_CACHE_S = 0.25
"""Database-backed reads (status, orders, positions, balance, risk) are served from a cache this
old at most, and the cache is dropped on every order or position event and every mutating call:
a dashboard polling many routes then costs the event loop (which also carries the market data)
one query per route per quarter second instead of one per request, and never sees an order or
position state older than the last event."""


class RuntimeBackend:
    """:class:`pysrc.api.backend.Backend` for a :class:`~pysrc.bot.runtime.BotRuntime`."""

    def __init__(self, runtime: BotRuntime) -> None:
        self.rt = runtime
        self._cache: dict[tuple[Any, ...], tuple[float, Any]] = {}
        if runtime.orders is not None:
            runtime.orders.subscribe(self._invalidate)

    async def _invalidate(self, *_: Any) -> None:
        self._cache.clear()

    async def _cached(self, key: tuple[Any, ...], load: Callable[[], Any]) -> Any:
        now = time.monotonic()
        hit = self._cache.get(key)
        if hit is not None and now - hit[0] < READ_CACHE_S:
            return hit[1]
        value = await load()
        self._cache[key] = (now, value)
        return value

    # ---- helpers --------------------------------------------------------------------------------

    @property
    def _orders(self) -> Any:
        if self.rt.orders is None or self.rt.state != "running":
            raise Unavailable("execution", "the bot is not running")
        return self.rt.orders

    def _symbol(self, symbol: str) -> None:
        if symbol not in self.rt.symbols:
            raise NotFound(f"symbol {symbol}")

    async def _find_order(self, order_id: str) -> OrderView:
        svc = self._orders
        view = await svc.get(order_id)
        if view is not None:
            return view  # type: ignore[no-any-return]
        row = await svc.store.orders.get_by_exchange_id(svc.mode, order_id)
        if row is None:
            raise NotFound(f"order {order_id}")
        return OrderView.from_row(row)

    # ---- bot ------------------------------------------------------------------------------------

    async def _counts(self) -> tuple[int, int]:
        rt = self.rt
        if not (rt.orders and rt.state == "running"):
            return 0, 0
        return len(await rt.orders.list_orders(open_only=True)), len(await rt.orders.positions())

    async def status(self) -> Json:
        rt = self.rt
        open_orders, open_positions = await self._cached(("counts",), self._counts)
        return {
            "state": rt.state, "trading": rt.trading, "mode": rt.mode,
            "kill_switch": bool(rt.orders and rt.orders.halted),
            "uptime_s": round(time.monotonic() - rt.started_at, 3), "symbols": len(rt.symbols),
            "symbols_live": int(rt._symbols_live()), "open_orders": open_orders,
            "open_positions": open_positions, "signals": int(sum(rt.m_signals.values.values())),
            "version": _pkg_version if isinstance(_pkg_version, str) else "0",
        }

    async def start_trading(self) -> Json:
        self._cache.clear()
        if self.rt.orders is not None and self.rt.orders.halted:
            raise Conflict("the kill switch is engaged: release it first", code="kill_switch_engaged")
        self.rt.trading = True
        return await self.status()

    async def stop_trading(self) -> Json:
        self._cache.clear()
        self.rt.trading = False
        return await self.status()

    async def get_config(self) -> Json:
        return redact(self.rt.config.data)  # type: ignore[no-any-return]

    # ---- trading --------------------------------------------------------------------------------

    async def list_orders(self, filters: OrderFilters) -> list[Json]:
        svc = self._orders
        key = ("orders", filters.symbol, bool(filters.active), filters.limit)
        views = await self._cached(key, lambda: svc.list_orders(symbol=filters.symbol, open_only=bool(filters.active),
                                                                limit=max(filters.limit, 1) * 4))
        out = []
        for v in views:
            if filters.side and v.side != filters.side:
                continue
            if filters.status and v.state != filters.status:
                continue
            if filters.active is False and v.state not in TERMINAL:
                continue
            if filters.strategy and (v.strategy or "") != filters.strategy:
                continue
            out.append(order_json(v))
            if len(out) >= filters.limit:
                break
        return out

    async def place_order(self, req: NewOrder) -> Json:
        self._cache.clear()
        rt = self.rt
        svc = self._orders
        if req.symbol not in rt.instruments:
            raise Invalid("symbol", f"{req.symbol} is not traded here")
        inst = rt.instruments[req.symbol]
        if req.qty % inst.qty_step != 0:
            raise Invalid("qty", f"qty must be a multiple of {inst.qty_step}")
        if req.qty < inst.min_qty:
            raise Invalid("qty", f"qty must be at least {inst.min_qty}")
        if req.price is not None and req.price % inst.tick_size != 0:
            raise Invalid("price", f"price must be a multiple of {inst.tick_size}")
        if svc.halted:
            raise Conflict("the kill switch is engaged", code="kill_switch_engaged")
        intent = OrderIntent(symbol=req.symbol, side=req.side, order_type=req.order_type, qty=req.qty,
                             price=req.price, client_order_id=req.client_order_id, strategy="manual",
                             reason="api", actor="api", trace_id=current_trace_id())
        try:
            view = await svc.place(intent)
        except TradingHalted as exc:
            raise Conflict(str(exc), code="kill_switch_engaged") from exc
        except IdempotencyConflict as exc:
            raise Conflict(str(exc), code="idempotency_mismatch") from exc
        rt.m_orders.inc()
        return order_json(view)

    async def order(self, order_id: str) -> Json:
        view = await self._find_order(order_id)
        out = order_json(view)
        row = await self.rt.store.orders.get_by_link_id(view.order_link_id)  # type: ignore[union-attr]
        history = await self.rt.store.orders.transitions(row.id) if row is not None else []  # type: ignore[union-attr]
        out["history"] = [
            {"version": getattr(t, "seq", None), "from_state": t.from_state, "to_state": t.to_state,
             "event": t.event, "at": iso(getattr(t, "at", None)), "metadata": dict(t.metadata or {})}
            for t in history
        ]
        return out

    async def cancel_order(self, order_id: str) -> Json:
        self._cache.clear()
        view = await self._find_order(order_id)
        if view.state == "CANCELLED":
            return order_json(view)
        if view.state in TERMINAL:
            raise Conflict(f"order {order_id} is {view.state}", code="order_final")
        if view.state in ("NEW", "PENDING_SUBMIT", "SUBMITTED"):
            raise Conflict(f"order {order_id} is not acknowledged yet", code="order_pending")
        try:
            return order_json(await self._orders.cancel(view.order_link_id, actor="api", reason="api"))
        except ExchangeError as exc:
            raise Conflict(str(exc), code="exchange_rejected") from exc

    async def modify_order(self, order_id: str, changes: OrderChanges) -> Json:
        self._cache.clear()
        view = await self._find_order(order_id)
        if view.state in TERMINAL:
            raise Conflict(f"order {order_id} is {view.state}", code="order_final")
        if view.order_type == "Market" and changes.price is not None:
            raise Invalid("price", "a market order has no price")
        inst = self.rt.instruments[view.symbol]
        if changes.price is not None and changes.price % inst.tick_size != 0:
            raise Invalid("price", f"price must be a multiple of {inst.tick_size}")
        if changes.qty is not None and (changes.qty % inst.qty_step != 0 or changes.qty < view.filled_qty):
            raise Invalid("qty", f"qty must be a multiple of {inst.qty_step} and at least the filled {view.filled_qty}")
        try:
            return order_json(await self._orders.amend(view.order_link_id, qty=changes.qty, price=changes.price,
                                                       actor="api", reason="api"))
        except ExchangeError as exc:
            raise Conflict(str(exc), code="exchange_rejected") from exc

    async def signals(self, limit: int, symbol: str | None = None) -> list[Json]:
        rows = [r for r in self.rt.signals if symbol is None or r.get("symbol") == symbol]
        return rows[:limit]

    async def balance(self) -> Json:
        venue = self._orders.venue
        wallet = await self._cached(("wallet",), venue.wallet)
        coin = next((c for c in wallet.get("coin", []) if c.get("coin") == "USDT"), {})
        day = self.rt.loss_monitor.last_decision if self.rt.loss_monitor else None
        return {
            "currency": "USDT", "equity": str(wallet.get("totalEquity", "0")),
            "wallet_balance": str(wallet.get("totalWalletBalance", coin.get("walletBalance", "0"))),
            "available": str(wallet.get("totalAvailableBalance", "0")),
            "unrealised_pnl": str(wallet.get("totalPerpUPL", coin.get("unrealisedPnl", "0"))),
            "realised_pnl_today": str(coin.get("cumRealisedPnl", "0")),
            "day_pnl": str(getattr(day, "day_pnl", "0")),
        }

    async def risk_status(self) -> Json:
        # The whole answer is read-cached like the other reads (it costs a database read for the
        # kill switch's persisted reason and a pass over the portfolio); the kill switch flag
        # itself is always the live one, and engage/release clear the cache.
        status = dict(await self._cached(("risk-status",), self._risk_status))
        status["kill_switch"] = bool(self.rt.orders and self.rt.orders.halted)
        return status

    async def _risk_status(self) -> Json:
        rt = self.rt
        try:
            portfolio = await self._cached(("portfolio",), rt.portfolio)
            status = rt.risk.status(portfolio)
        except Exception:  # the venue may be unreachable: the kill switch state still answers
            status = {"limits": rt.risk.limits.to_dict(), "sizing": rt.risk.sizing.to_dict()}
        status = {k: (str(v) if isinstance(v, Decimal) else v) for k, v in status.items()}
        status["kill_switch"] = bool(rt.orders and rt.orders.halted)
        state = await rt.killswitch.state() if rt.killswitch else None
        status["kill_switch_reason"] = getattr(state, "reason", None)
        return status

    async def execution_stats(self) -> Json:
        views = await self._orders.list_orders(limit=10000)
        count = {s: sum(1 for v in views if v.state == s) for s in TERMINAL}
        placed = len(views)
        return {
            "orders_placed": placed, "orders_filled": count["FILLED"], "orders_cancelled": count["CANCELLED"],
            "orders_rejected": count["REJECTED"], "orders_failed": count["FAILED"],
            "fill_ratio": (count["FILLED"] / placed) if placed else None,
            "submit_latency_ms": {"p50": None, "p99": None}, "venue": self._orders.venue.name,
        }

    async def engage_kill_switch(self, actor: str, reason: str) -> Json:
        self._cache.clear()
        assert self.rt.killswitch is not None
        self.rt.trading = False
        report = await self.rt.killswitch.engage(actor, reason)
        out = await self.risk_status()
        d = report.to_dict()
        out["cancelled_orders"] = len(d.get("cancelled", []) or []) if isinstance(d.get("cancelled"), list) else int(d.get("cancelled_orders", 0) or 0)
        out["closed_positions"] = len(d.get("closed", []) or []) if isinstance(d.get("closed"), list) else int(d.get("closed_positions", 0) or 0)
        return out

    async def release_kill_switch(self, actor: str, reason: str) -> Json:
        self._cache.clear()
        assert self.rt.killswitch is not None
        await self.rt.killswitch.release(actor, reason)
        self.rt.risk.release_kill_switch(actor)
        return await self.risk_status()

    # ---- positions --------------------------------------------------------------------------------

    def _managed(self, symbol: str, side: str) -> Any:
        try:
            return self.rt.positions.get(symbol, Side(side))
        except ValueError:
            return None

    async def _positions(self) -> list[PositionView]:
        svc = self._orders
        return await self._cached(("positions",), svc.positions)  # type: ignore[no-any-return]

    async def positions(self) -> list[Json]:
        return [position_json(p, self._managed(p.symbol, p.side)) for p in await self._positions()]

    async def position(self, symbol: str) -> Json:
        for p in await self._positions():
            if p.symbol == symbol:
                return position_json(p, self._managed(p.symbol, p.side))
        raise NotFound(f"position {symbol}")

    async def _protect(self, symbol: str, *, tp: Decimal | None = None, sl: Decimal | None = None) -> Json:
        self._cache.clear()
        pos = await self.position(symbol)
        inst = self.rt.instruments[symbol]
        price = tp if tp is not None else sl
        assert price is not None
        if price % inst.tick_size != 0:
            raise Invalid("price", f"price must be a multiple of {inst.tick_size}")
        mark = Decimal(pos["mark_price"] or pos["entry_price"])
        long = pos["side"] == "Buy"
        if tp is not None and ((long and tp <= mark) or (not long and tp >= mark)):
            raise Invalid("price", "a take-profit must be on the profitable side of the mark price")
        if sl is not None and ((long and sl >= mark) or (not long and sl <= mark)):
            raise Invalid("price", "a stop-loss must be on the losing side of the mark price")
        previous = pos["take_profit"] if tp is not None else pos["stop_loss"]
        venue = self._orders.venue
        setter = getattr(venue, "trading_stop", None)
        if setter is not None:
            await setter(symbol, take_profit=tp, stop_loss=sl)
        self.rt.positions.set_protection(symbol, Side(pos["side"]), stop_loss=sl, take_profit=tp)
        out = await self.position(symbol)
        out["previous"] = previous
        return out

    async def update_tp(self, symbol: str, price: Decimal) -> Json:
        return await self._protect(symbol, tp=price)

    async def update_sl(self, symbol: str, price: Decimal) -> Json:
        return await self._protect(symbol, sl=price)

    async def close_position(self, symbol: str) -> Json:
        self._cache.clear()
        pos = await self.position(symbol)
        if pos["status"] == "CLOSING":
            raise Conflict(f"position {symbol} is already closing", code="position_closing")
        view = await self._orders.close_position(symbol, reason="api", actor="api")
        return {"position": pos, "order": order_json(view) if view is not None else None}

    # ---- market ---------------------------------------------------------------------------------

    async def symbols(self) -> list[Json]:
        out = []
        for s in self.rt.symbols:
            i = self.rt.instruments[s]
            out.append({"symbol": s, "usable": bool(self.rt.feed and self.rt.feed.is_usable(s)),
                        "tick_size": str(i.tick_size), "qty_step": str(i.qty_step), "min_qty": str(i.min_qty),
                        "min_notional": str(i.min_notional or 0)})
        return out

    async def ticker(self, symbol: str) -> Json:
        self._symbol(symbol)
        engine = self.rt.engine
        t = self.rt.tickers.get(symbol)
        if engine is None or (t is None and not engine.has_book(symbol)):
            raise Unavailable("feed", "no market data yet")
        bid = engine.best_bid(symbol) if engine.has_book(symbol) else None
        ask = engine.best_ask(symbol) if engine.has_book(symbol) else None
        t = t or {}
        return {"symbol": symbol, "ts": engine.last_ts(symbol) if engine.has_book(symbol) else None,
                "bid": bid[0] if bid else None, "ask": ask[0] if ask else None,
                "last": t.get("lastPrice"), "mark": t.get("markPrice"), "volume_24h": t.get("volume24h"),
                "turnover_24h": t.get("turnover24h"), "change_24h": t.get("price24hPcnt")}

    async def candles(self, symbol: str, interval: str, limit: int) -> list[Json]:
        self._symbol(symbol)
        if self.rt.rest is None:
            raise Unavailable("exchange")
        try:
            rows = await self.rt.rest.klines(symbol, interval, limit=limit)
        except ExchangeError as exc:
            raise Unavailable("exchange", str(exc)) from exc
        out = [{"start": int(r[0]), "open": r[1], "high": r[2], "low": r[3], "close": r[4],
                "volume": r[5], "turnover": r[6]} for r in rows]
        out.sort(key=lambda c: c["start"])  # Bybit answers newest first
        return out

    async def orderbook(self, symbol: str, depth: int) -> Json:
        self._symbol(symbol)
        engine = self.rt.engine
        if engine is None or not engine.has_book(symbol) or not engine.is_live(symbol):
            raise Unavailable("books", f"the {symbol} book is not live")
        bids, asks = engine.levels(symbol, depth)
        return {"symbol": symbol, "ts": engine.last_ts(symbol), "update_id": engine.update_id(symbol),
                "bids": [list(x) for x in bids], "asks": [list(x) for x in asks]}

    def _symbol_metrics(self, symbol: str, feed_symbols: Mapping[str, Any]) -> Json:
        rt = self.rt
        features: dict[str, float | None] = {}
        if rt.engine is not None and rt.reader is not None and rt.engine.has_book(symbol):
            features = rt.reader.read(symbol).as_dict()
        return {"features": features, "feed": feed_symbols.get(symbol, {})}

    async def market_metrics(self, symbol: str | None = None) -> Json:
        feed = self.rt.feed.metrics() if self.rt.feed else {"symbols": {}, "totals": {}}
        if symbol is not None:
            self._symbol(symbol)
            return self._symbol_metrics(symbol, feed["symbols"])
        totals = dict(feed["totals"])
        totals["exchange_to_decision_ms"] = self.rt.decision_latency_ms()
        return {"symbols": {s: self._symbol_metrics(s, feed["symbols"]) for s in self.rt.symbols},
                "totals": totals}

    # ---- strategies -------------------------------------------------------------------------------

    def _strategy_row(self, name: str) -> Json:
        for row in self.rt.strategies.status():
            if row["name"] == name:
                return dict(row)
        raise NotFound(f"strategy {name}")

    async def strategies(self) -> list[Json]:
        return [dict(r) for r in self.rt.strategies.status()]

    async def strategy(self, name: str) -> Json:
        row = self._strategy_row(name)
        row["parameter_schema"] = self.rt.strategies.get(name).describe_parameters()
        return row

    async def update_strategy(self, name: str, params: Mapping[str, Any]) -> Json:
        self._strategy_row(name)
        try:
            self.rt.strategies.update_parameters(name, params)
        except ParameterError as exc:
            raise Invalid(exc.key, str(exc)) from exc
        self.rt.save_overrides()
        return self._strategy_row(name)

    async def enable_strategy(self, name: str) -> Json:
        self._strategy_row(name)
        self.rt.strategies.enable(name)
        self.rt.save_overrides()
        return self._strategy_row(name)

    async def disable_strategy(self, name: str) -> Json:
        self._strategy_row(name)
        self.rt.strategies.disable(name)
        self.rt.save_overrides()
        return self._strategy_row(name)

    # ---- configuration ----------------------------------------------------------------------------

    async def get_sizing(self) -> Json:
        return self.rt.risk.sizing.to_dict()  # type: ignore[no-any-return]

    async def put_sizing(self, values: Mapping[str, Any]) -> Json:
        try:
            self.rt.risk.update_sizing(values)
        except RiskConfigError as exc:
            raise Invalid(exc.key, str(exc)) from exc
        self.rt.save_overrides()
        return await self.get_sizing()

    async def get_risk(self) -> Json:
        return self.rt.risk.limits.to_dict()  # type: ignore[no-any-return]

    async def put_risk(self, values: Mapping[str, Any]) -> Json:
        try:
            self.rt.risk.update_limits(values)
        except RiskConfigError as exc:
            raise Invalid(exc.key, str(exc)) from exc
        self.rt.save_overrides()
        return await self.get_risk()

    # ---- health, metrics, audit, events -----------------------------------------------------------

    async def health(self) -> Json:
        rt = self.rt
        comps: dict[str, Json] = {}
        conns, connected, _ = rt.feed_counts()
        comps["feed"] = {"status": "ok" if conns and connected == conns else ("degraded" if connected else "down"),
                         "detail": f"{connected}/{conns} connections"}
        live = int(rt._symbols_live())
        comps["books"] = {"status": "ok" if live == len(rt.symbols) else ("degraded" if live else "down"),
                          "detail": f"{live}/{len(rt.symbols)} books live"}
        store = rt.store
        try:
            assert store is not None
            await store.pool.fetchval("SELECT 1")
            comps["database"] = {"status": "ok", "detail": "reachable"}
        except Exception as exc:
            comps["database"] = {"status": "down", "detail": str(exc)[:200]}
        try:
            assert store is not None
            await store.redis.ping()
            comps["redis"] = {"status": "ok", "detail": "reachable"}
        except Exception as exc:
            comps["redis"] = {"status": "down", "detail": str(exc)[:200]}
        breakers: dict[str, str] = {}
        if rt.rest is not None:
            snap = rt.rest.snapshot().get("breakers", {})
            breakers = {k: (v.get("state") if isinstance(v, dict) else str(v)) for k, v in snap.items()}
        opened = [k for k, v in breakers.items() if v != "closed"]
        comps["exchange"] = {"status": "degraded" if opened else "ok", "detail": f"mode {rt.mode}",
                             "breakers": breakers}
        states = [c["status"] for c in comps.values()]
        overall = "down" if "down" in (comps["database"]["status"], comps["redis"]["status"]) else (
            "ok" if all(s == "ok" for s in states) else "degraded")
        return {"status": overall, "components": comps}

    async def metrics_text(self) -> str:
        self.rt.refresh_metrics()
        return self.rt.metrics.render()

    async def audit(self, actor: str, action: str, params: Mapping[str, Any], *, ok: bool,
                    result: Mapping[str, Any] | None = None, error: str | None = None,
                    trace_id: str | None = None) -> None:
        store = self.rt.store
        if store is None:
            return
        await store.audit.record(actor=actor, action=action, reason="api", params=dict(params), old=None,
                                 new=dict(result) if result is not None else None, success=ok,
                                 error=error if not ok else None, trace_id=trace_id, context={"source": "api"})

    def subscribe_events(self, callback: Callable[[Mapping[str, Any]], None]) -> Callable[[], None]:
        self.rt.subscribers.append(callback)  # type: ignore[arg-type]

        def unsubscribe() -> None:
            if callback in self.rt.subscribers:
                self.rt.subscribers.remove(callback)  # type: ignore[arg-type]

        return unsubscribe


__all__ = ["RuntimeBackend"]

