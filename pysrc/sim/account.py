"""The simulated unified account: orders, matching against the simulated book, positions (one-way
mode, ``positionIdx`` 0), TP/SL, the USDT wallet, and the private stream pushes.

Money is exact: prices and quantities are integer ticks and lots; notional, fees and PnL are
``Decimal`` built from those integers (never floats).

Matching: an incoming order first takes liquidity from the opposite side of the symbol's book
(walking it level by level, printing public trades), then a Limit GTC/PostOnly remainder rests
*in* the public book at the back of its level's queue. Market-model takers later consume that
queue in order, so a resting order fills once the flow trades through the model quantity in
front of it (see :mod:`pysrc.sim.book`).
"""

from __future__ import annotations

import asyncio
import random
import re
import time
import uuid
from collections import deque
from decimal import ROUND_DOWN, Decimal
from typing import TYPE_CHECKING, Any

from pysrc.sim.envelope import BybitError, params_error
from pysrc.sim.instruments import Instrument
from pysrc.sim.market import SymbolMarket
from pysrc.sim.wsconn import WsConn, frame_of

if TYPE_CHECKING:
    from pysrc.sim.server import SimExchange

TAKER_FEE = Decimal("0.00055")
MAKER_FEE = Decimal("0.0002")
DEFAULT_LEVERAGE = Decimal(10)
MARKET_SLIPPAGE = Decimal("0.05")  # market orders are IOC limits 5% through the best price
LINK_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,36}$")
OPEN = ("New", "PartiallyFilled", "Untriggered")
Q8 = Decimal("0.00000001")
PRIVATE_TOPICS = ("order", "execution", "execution.fast", "position", "wallet")


def dec_str(d: Decimal) -> str:
    """A money value as Bybit prints it: plain notation, at most 8 decimals, no trailing zeros."""
    if d.as_tuple().exponent < -8:  # type: ignore[operator]
        d = d.quantize(Q8)
    s = format(d.normalize(), "f")
    return "0" if s in ("-0", "") else s


class Order:
    __slots__ = (
        "ahead",
        "buy",
        "cancel_type",
        "close_on_trigger",
        "closed_pnl",
        "create_type",
        "created_ms",
        "cum_fee",
        "cum_lots",
        "cum_value",
        "filled_ms",
        "inst",
        "last_price_on_created",
        "leaves_lots",
        "link_id",
        "market",
        "order_id",
        "order_type",
        "price_ticks",
        "qty_lots",
        "reduce_only",
        "reject_reason",
        "resting_key",
        "status",
        "stop_loss",
        "stop_order_type",
        "take_profit",
        "tif",
        "updated_ms",
    )

    def __init__(self, order_id: str, link_id: str, market: SymbolMarket, buy: bool, order_type: str,
                 price_ticks: int, qty_lots: int, tif: str, reduce_only: bool, close_on_trigger: bool,
                 now_ms: int) -> None:
        self.order_id = order_id
        self.link_id = link_id
        self.market = market
        self.inst: Instrument = market.inst
        self.buy = buy
        self.order_type = order_type
        self.price_ticks = price_ticks
        self.qty_lots = qty_lots
        self.leaves_lots = qty_lots
        self.ahead = 0
        self.cum_lots = 0
        self.cum_value = Decimal(0)
        self.cum_fee = Decimal(0)
        self.status = "New"
        self.tif = tif
        self.reduce_only = reduce_only
        self.close_on_trigger = close_on_trigger
        self.created_ms = now_ms
        self.updated_ms = now_ms
        self.cancel_type = "UNKNOWN"
        self.reject_reason = "EC_NoError"
        self.stop_order_type = ""
        self.create_type = "CreateByUser"
        self.take_profit = ""
        self.stop_loss = ""
        self.resting_key: int | None = None
        self.closed_pnl = Decimal(0)
        self.last_price_on_created = market.last_ticks
        self.filled_ms = 0

    @property
    def is_open(self) -> bool:
        return self.status in OPEN

    def to_dict(self, ws: bool = False) -> dict[str, Any]:
        inst = self.inst
        avg = "" if not self.cum_lots else dec_str(self.cum_value / inst.size_dec(self.cum_lots))
        leaves_value = inst.value_dec(self.price_ticks, self.leaves_lots) if self.is_open else Decimal(0)
        d: dict[str, Any] = {
            "category": "linear",
            "orderId": self.order_id,
            "orderLinkId": self.link_id,
            "blockTradeId": "",
            "symbol": inst.symbol,
            "price": inst.price_str(self.price_ticks),
            "qty": inst.size_str(self.qty_lots),
            "side": "Buy" if self.buy else "Sell",
            "isLeverage": "",
            "positionIdx": 0,
            "orderStatus": self.status,
            "createType": self.create_type,
            "cancelType": self.cancel_type,
            "rejectReason": self.reject_reason,
            "avgPrice": avg,
            "leavesQty": inst.size_str(self.leaves_lots if self.is_open else 0),
            "leavesValue": dec_str(leaves_value),
            "cumExecQty": inst.size_str(self.cum_lots),
            "cumExecValue": dec_str(self.cum_value),
            "cumExecFee": dec_str(self.cum_fee),
            "cumFeeDetail": {"USDT": dec_str(self.cum_fee)} if self.cum_lots else {},
            "timeInForce": self.tif,
            "orderType": self.order_type,
            "stopOrderType": self.stop_order_type,
            "orderIv": "",
            "marketUnit": "",
            "triggerPrice": "",
            "takeProfit": self.take_profit,
            "stopLoss": self.stop_loss,
            "tpslMode": "",
            "ocoTriggerBy": "",
            "tpLimitPrice": "",
            "slLimitPrice": "",
            "tpTriggerBy": "",
            "slTriggerBy": "",
            "triggerDirection": 0,
            "triggerBy": "",
            "lastPriceOnCreated": inst.price_str(self.last_price_on_created),
            "basePrice": inst.price_str(self.last_price_on_created),
            "reduceOnly": self.reduce_only,
            "closeOnTrigger": self.close_on_trigger,
            "placeType": "",
            "smpType": "None",
            "smpGroup": 0,
            "smpOrderId": "",
            "createdTime": str(self.created_ms),
            "updatedTime": str(self.updated_ms),
        }
        if ws:
            d["closedPnl"] = dec_str(self.closed_pnl)
            d["feeCurrency"] = ""
            d["slippageToleranceType"] = "UNKNOWN"
            d["slippageTolerance"] = "0"
        return d


class Position:
    __slots__ = (
        "created_ms",
        "cum_realised",
        "cur_realised",
        "entry_value",
        "leverage",
        "market",
        "seq",
        "size",
        "sl_ticks",
        "tp_ticks",
        "updated_ms",
    )

    def __init__(self, market: SymbolMarket, now_ms: int) -> None:
        self.market = market
        self.size = 0  # lots, signed: + long, - short
        self.entry_value = Decimal(0)  # exact notional of the open size at entry
        self.leverage = DEFAULT_LEVERAGE
        self.cum_realised = Decimal(0)
        self.cur_realised = Decimal(0)
        self.tp_ticks: int | None = None
        self.sl_ticks: int | None = None
        self.created_ms = now_ms
        self.updated_ms = now_ms
        self.seq = 0

    def avg_price(self) -> Decimal:
        if not self.size:
            return Decimal(0)
        return self.entry_value / self.market.inst.size_dec(abs(self.size))

    def unrealised(self) -> Decimal:
        if not self.size:
            return Decimal(0)
        inst = self.market.inst
        mark_value = inst.value_dec(self.market.mark_ticks(), abs(self.size))
        return (mark_value - self.entry_value) if self.size > 0 else (self.entry_value - mark_value)

    def im(self) -> Decimal:
        return self.entry_value / self.leverage

    def mm(self) -> Decimal:
        return self.entry_value * Decimal("0.005")

    def to_dict(self, ws: bool = False) -> dict[str, Any]:
        inst = self.market.inst
        side = "Buy" if self.size > 0 else ("Sell" if self.size < 0 else "")
        avg = self.avg_price()
        avg_s = dec_str(avg) if self.size else "0"
        d: dict[str, Any] = {
            "positionIdx": 0,
            "riskId": 1,
            "riskLimitValue": "2000000",
            "symbol": inst.symbol,
            "side": side,
            "size": inst.size_str(abs(self.size)),
            ("entryPrice" if ws else "avgPrice"): avg_s,
            "positionValue": dec_str(self.entry_value),
            "tradeMode": 0,
            "positionStatus": "Normal",
            "autoAddMargin": 0,
            "adlRankIndicator": 2 if self.size else 0,
            "leverage": dec_str(self.leverage),
            "positionBalance": dec_str(self.im()),
            "markPrice": inst.price_str(self.market.mark_ticks()),
            "liqPrice": "",
            "bustPrice": "",
            "positionMM": dec_str(self.mm()),
            "positionIM": dec_str(self.im()),
            "tpslMode": "Full",
            "takeProfit": inst.price_str(self.tp_ticks) if self.tp_ticks else "0",
            "stopLoss": inst.price_str(self.sl_ticks) if self.sl_ticks else "0",
            "trailingStop": "0",
            "unrealisedPnl": dec_str(self.unrealised()),
            "curRealisedPnl": dec_str(self.cur_realised),
            "cumRealisedPnl": dec_str(self.cum_realised),
            "breakEvenPrice": avg_s,
            "sessionAvgPrice": "",
            "isReduceOnly": False,
            "mmrSysUpdatedTime": "",
            "leverageSysUpdatedTime": "",
            "createdTime": str(self.created_ms),
            "updatedTime": str(self.updated_ms),
            "seq": self.seq,
        }
        if ws:
            d["category"] = "linear"
        return d


class Account:
    """The one account of the simulator (UID ``uid``)."""

    def __init__(self, sim: SimExchange, uid: int, balance: Decimal) -> None:
        self.sim = sim
        self.uid = uid
        self.balance = balance
        self.rng = random.Random(f"sim-account:{sim.seed}")
        self.orders: dict[str, Order] = {}
        self.by_link: dict[str, Order] = {}
        self.used_link_ids: set[str] = set()
        self.open: dict[str, dict[str, Order]] = {s: {} for s in sim.markets}
        self.history: deque[Order] = deque(maxlen=20_000)
        self.executions: deque[dict[str, Any]] = deque(maxlen=20_000)
        self.positions: dict[str, Position] = {}
        self.conns: set[WsConn] = set()
        self.exec_seq = 1
        self.push_id = 1
        self.pushes = 0
        self._tpsl_due: set[str] = set()
        for m in sim.markets.values():
            m.on_maker_fill = self._maker_fill
            m.on_trade = self._on_trade

    # ---- helpers ----------------------------------------------------------------------------
    def _uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def position(self, symbol: str) -> Position:
        p = self.positions.get(symbol)
        if p is None:
            p = self.positions[symbol] = Position(self.sim.markets[symbol], int(time.time() * 1000))
        return p

    def market(self, params: dict[str, Any]) -> SymbolMarket:
        cat = params.get("category")
        if cat != "linear":
            raise params_error("params error: category only support linear" if cat else "params error: category is required")
        sym = params.get("symbol")
        if not sym:
            raise params_error("params error: symbol is required")
        m = self.sim.markets.get(str(sym))
        if m is None:
            raise params_error(f"params error: symbol invalid ({sym})")
        return m

    def order_im(self, o: Order) -> Decimal:
        if o.reduce_only or not o.is_open:
            return Decimal(0)
        value = o.inst.value_dec(o.price_ticks, o.leaves_lots)
        return value / self.position(o.inst.symbol).leverage + value * TAKER_FEE

    def totals(self) -> dict[str, Decimal]:
        upl = sum((p.unrealised() for p in self.positions.values()), Decimal(0))
        pos_im = sum((p.im() for p in self.positions.values()), Decimal(0))
        pos_mm = sum((p.mm() for p in self.positions.values()), Decimal(0))
        order_im = sum((self.order_im(o) for opens in self.open.values() for o in opens.values()), Decimal(0))
        cum = sum((p.cum_realised for p in self.positions.values()), Decimal(0))
        equity = self.balance + upl
        im = pos_im + order_im
        return {"upl": upl, "pos_im": pos_im, "pos_mm": pos_mm, "order_im": order_im, "equity": equity,
                "im": im, "available": equity - im, "cum": cum}

    def wallet_dict(self) -> dict[str, Any]:
        t = self.totals()
        eq = t["equity"]
        avail = t["available"]
        withdraw = max(Decimal(0), min(self.balance, avail))
        return {
            "accountType": "UNIFIED",
            "accountIMRate": dec_str((t["im"] / eq).quantize(Decimal("0.0001"))) if eq > 0 else "0",
            "accountMMRate": dec_str((t["pos_mm"] / eq).quantize(Decimal("0.0001"))) if eq > 0 else "0",
            "accountLTV": "0",
            "totalEquity": dec_str(eq),
            "totalWalletBalance": dec_str(self.balance),
            "totalMarginBalance": dec_str(eq),
            "totalAvailableBalance": dec_str(avail),
            "totalPerpUPL": dec_str(t["upl"]),
            "totalInitialMargin": dec_str(t["im"]),
            "totalMaintenanceMargin": dec_str(t["pos_mm"]),
            "coin": [{
                "coin": "USDT",
                "equity": dec_str(eq),
                "usdValue": dec_str(eq),
                "walletBalance": dec_str(self.balance),
                "free": "",
                "locked": "0",
                "spotHedgingQty": "0",
                "borrowAmount": "0",
                "availableToWithdraw": dec_str(withdraw),
                "availableToBorrow": "",
                "accruedInterest": "0",
                "totalOrderIM": dec_str(t["order_im"]),
                "totalPositionIM": dec_str(t["pos_im"]),
                "totalPositionMM": dec_str(t["pos_mm"]),
                "unrealisedPnl": dec_str(t["upl"]),
                "cumRealisedPnl": dec_str(t["cum"]),
                "bonus": "0",
                "collateralSwitch": True,
                "marginCollateral": True,
                "spotBorrow": "0",
            }],
        }

    # ---- private stream ---------------------------------------------------------------------
    def _push(self, topic: str, data: list[dict[str, Any]]) -> None:
        if not data or not self.conns:
            return
        now = int(time.time() * 1000)
        frames: dict[str, bytes] = {}
        sent = 0
        for c in list(self.conns):
            if not c.authed:
                continue
            for name in (topic, f"{topic}.linear"):
                if name in c.topics:
                    f = frames.get(name)
                    if f is None:
                        self.push_id += 1
                        f = frames[name] = frame_of({"id": f"{self.uid}_{self.push_id}", "topic": name,
                                                     "creationTime": now, "data": data})
                    if c.send(f):
                        sent += 1
        self.pushes += sent
        if sent and self.sim.faults.drop_armed:
            self.sim.faults.on_sent("private", sent)

    def push_orders(self, orders: list[Order]) -> None:
        self._push("order", [o.to_dict(ws=True) for o in orders])

    def push_executions(self, execs: list[dict[str, Any]]) -> None:
        if not execs:
            return
        self._push("execution", execs)
        fast = [{k: e[k] for k in ("category", "symbol", "orderId", "isMaker", "orderLinkId", "execId",
                                   "execPrice", "execQty", "side", "execTime", "seq")} for e in execs]
        for f in fast:
            if f["isMaker"]:
                f["orderLinkId"] = ""
        self._push("execution.fast", fast)

    def push_position(self, symbol: str) -> None:
        self._push("position", [self.position(symbol).to_dict(ws=True)])

    def push_wallet(self) -> None:
        self._push("wallet", [self.wallet_dict()])

    def drop_all(self) -> int:
        n = 0
        for c in list(self.conns):
            c.drop()
            n += 1
        return n

    def stall_all(self, seconds: float) -> int:
        until = time.monotonic() + seconds
        for c in self.conns:
            c.stalled_until = until
        return len(self.conns)

    def stats(self) -> dict[str, Any]:
        return {
            "connections": len(self.conns),
            "pushes": self.pushes,
            "orders": len(self.orders),
            "open_orders": sum(len(v) for v in self.open.values()),
            "executions": len(self.executions),
            "wallet_balance": dec_str(self.balance),
        }

    def housekeeping(self, now_ms: int) -> None:
        """Once a second from the clock (nothing periodic is needed yet)."""

    # ---- fills ----------------------------------------------------------------------------------
    def _apply_fill(self, o: Order, ticks: int, lots: int, is_maker: bool, now_ms: int) -> dict[str, Any]:
        """Account for one fill of ``o``: order totals, position, wallet; returns the execution."""
        inst = o.inst
        value = inst.value_dec(ticks, lots)
        rate = MAKER_FEE if is_maker else TAKER_FEE
        # fees and realised PnL are settled at 8 decimals: what the wallet moves by is exactly
        # what the execution reports
        fee = (value * rate).quantize(Q8)
        o.cum_lots += lots
        o.cum_value += value
        o.cum_fee += fee
        o.updated_ms = now_ms
        pos = self.position(inst.symbol)
        signed = lots if o.buy else -lots
        closed = 0
        pnl = Decimal(0)
        s = pos.size
        if s == 0 or (s > 0) == (signed > 0):
            pos.entry_value += value
            pos.size = s + signed
        else:
            closed = min(lots, abs(s))
            avg_value_closed = pos.entry_value * closed / abs(s)
            exit_value = inst.value_dec(ticks, closed)
            pnl = ((exit_value - avg_value_closed) if s > 0 else (avg_value_closed - exit_value)).quantize(Q8)
            new_size = s + signed
            if new_size == 0:
                pos.entry_value = Decimal(0)
            elif (new_size > 0) == (s > 0):
                pos.entry_value -= avg_value_closed
            else:
                pos.entry_value = inst.value_dec(ticks, abs(new_size))
            pos.size = new_size
            if (new_size == 0 or (new_size > 0) != (s > 0)):
                pos.tp_ticks = pos.sl_ticks = None
        if pos.size == 0:
            pos.cur_realised = Decimal(0)
        pos.cur_realised += pnl - fee
        pos.cum_realised += pnl - fee
        pos.updated_ms = now_ms
        self.exec_seq += 1
        pos.seq = self.exec_seq
        o.closed_pnl += pnl - fee if closed else Decimal(0)
        self.balance += pnl - fee
        ex = {
            "category": "linear", "symbol": inst.symbol, "isLeverage": "", "orderId": o.order_id,
            "orderLinkId": o.link_id, "side": "Buy" if o.buy else "Sell",
            "orderPrice": inst.price_str(o.price_ticks), "orderQty": inst.size_str(o.qty_lots),
            "leavesQty": inst.size_str(o.leaves_lots), "createType": o.create_type,
            "orderType": o.order_type, "stopOrderType": o.stop_order_type,
            "execFee": dec_str(fee), "execId": self._uuid(), "execPrice": inst.price_str(ticks),
            "execQty": inst.size_str(lots), "execPnl": dec_str(pnl), "execType": "Trade",
            "execValue": dec_str(value), "execTime": str(now_ms), "isMaker": is_maker,
            "feeRate": str(rate), "tradeIv": "", "markIv": "", "markPrice": inst.price_str(o.market.mark_ticks()),
            "indexPrice": inst.price_str(o.market.mark_ticks()), "underlyingPrice": "", "blockTradeId": "",
            "closedSize": inst.size_str(closed), "seq": pos.seq, "feeCurrency": "USDT", "extraFees": "",
            "marketUnit": "",
        }
        self.executions.append(ex)
        return ex

    def _maker_fill(self, o_any: Any, key: int, lots: int) -> None:
        """A market-model (or own) taker consumed part of a resting order."""
        o: Order = o_any
        now = int(time.time() * 1000)
        ex = self._apply_fill(o, o.market.book.side(o.buy).ticks_of(key), lots, True, now)
        if o.leaves_lots == 0:
            self._close(o, "Filled", now)
        else:
            o.status = "PartiallyFilled"
        self.push_executions([ex])
        self.push_orders([o])
        self._after_position_change(o.inst.symbol, now)
        self.push_position(o.inst.symbol)
        self.push_wallet()

    def _close(self, o: Order, status: str, now_ms: int) -> None:
        o.status = status
        o.updated_ms = now_ms
        if status == "Filled":
            o.filled_ms = now_ms
        if o.resting_key is not None:
            side = o.market.book.side(o.buy)
            if o.leaves_lots:
                side.remove_resting(o.resting_key, o)
            else:
                orders = side.resting.get(o.resting_key)
                if orders and o in orders:
                    orders.remove(o)
                    if not orders:
                        del side.resting[o.resting_key]
            o.resting_key = None
        self.open[o.inst.symbol].pop(o.order_id, None)

    def _after_position_change(self, symbol: str, now_ms: int) -> None:
        """Reduce-only orders may not outgrow the position: trim or cancel them."""
        pos = self.position(symbol)
        changed: list[Order] = []
        for o in list(self.open[symbol].values()):
            if not o.reduce_only:
                continue
            closable = -pos.size if o.buy else pos.size  # >0 when o reduces the position
            if closable <= 0:
                o.cancel_type = "CancelByReduceOnly"
                self._close(o, "Cancelled", now_ms)
                changed.append(o)
            elif o.leaves_lots > closable:
                if o.resting_key is not None:
                    o.market.book.side(o.buy).reduce_resting(o.resting_key, o, closable)
                else:
                    o.leaves_lots = closable
                o.qty_lots = o.cum_lots + closable
                o.updated_ms = now_ms
                changed.append(o)
        if changed:
            self.push_orders(changed)

    def _on_trade(self, market: SymbolMarket, last_ticks: int) -> None:
        pos = self.positions.get(market.symbol)
        if pos is None or not pos.size or (pos.tp_ticks is None and pos.sl_ticks is None):
            return
        if market.symbol in self._tpsl_due:
            return
        self._tpsl_due.add(market.symbol)
        try:
            asyncio.get_running_loop().call_soon(self._check_tpsl, market.symbol)
        except RuntimeError:
            self._check_tpsl(market.symbol)

    def _check_tpsl(self, symbol: str) -> None:
        """Close the position at market when the last price reached its TP or SL."""
        self._tpsl_due.discard(symbol)
        pos = self.positions.get(symbol)
        if pos is None or not pos.size:
            return
        last = pos.market.last_ticks
        long = pos.size > 0
        kind = None
        if pos.tp_ticks is not None and (last >= pos.tp_ticks if long else last <= pos.tp_ticks):
            kind = "TakeProfit"
        elif pos.sl_ticks is not None and (last <= pos.sl_ticks if long else last >= pos.sl_ticks):
            kind = "StopLoss"
        if kind is None:
            return
        pos.tp_ticks = pos.sl_ticks = None
        now = int(time.time() * 1000)
        o = self._new_order(pos.market, not long, "Market", None, abs(pos.size), "IOC", True, True, "", now)
        o.stop_order_type = kind
        o.create_type = "CreateByTakeProfit" if kind == "TakeProfit" else "CreateByStopLoss"
        self._execute(o, now)

    # ---- order entry ----------------------------------------------------------------------------
    def _new_order(self, m: SymbolMarket, buy: bool, order_type: str, price_ticks: int | None, lots: int,
                   tif: str, reduce_only: bool, close_on_trigger: bool, link_id: str, now: int) -> Order:
        if price_ticks is None:
            ref = m.book.asks.best_ticks() if buy else m.book.bids.best_ticks()
            if ref is None:
                ref = m.last_ticks
            slip = int(Decimal(ref) * MARKET_SLIPPAGE)
            price_ticks = ref + slip if buy else max(1, ref - slip)
        o = Order(self._uuid(), link_id, m, buy, order_type, price_ticks, lots, tif, reduce_only,
                  close_on_trigger, now)
        self.orders[o.order_id] = o
        if link_id:
            self.by_link[link_id] = o
            self.used_link_ids.add(link_id)
        self.history.append(o)
        return o

    def _execute(self, o: Order, now: int) -> None:
        """Match a new (or re-priced) order, rest or cancel the remainder, push everything."""
        m = o.market
        opp = m.book.bids if not o.buy else m.book.asks
        best = opp.best_ticks()
        crosses = best is not None and (o.price_ticks >= best if o.buy else o.price_ticks <= best)
        execs: list[dict[str, Any]] = []
        if o.tif == "PostOnly" and crosses:
            o.reject_reason = "EC_PostOnlyWillTakeLiquidity"
            self._close(o, "Cancelled", now)
        elif o.tif == "FOK" and not self._fok_ok(o):
            o.reject_reason = "EC_CancelForNoFullFill"
            self._close(o, "Cancelled", now)
        else:
            if crosses:
                fills: list[tuple[int, int]] = []
                m.sweep(o.buy, o.leaves_lots, o.price_ticks, now, m.on_maker_fill, fills)
                for ticks, lots in fills:
                    o.leaves_lots -= lots
                    execs.append(self._apply_fill(o, ticks, lots, False, now))
            if o.leaves_lots == 0:
                self._close(o, "Filled", now)
            elif o.order_type == "Market" or o.tif in ("IOC", "FOK"):
                if not o.cum_lots:
                    o.reject_reason = "EC_NoImmediateQtyToFill"
                o.cancel_type = "UNKNOWN"
                self._close(o, "Cancelled", now)
            else:
                o.status = "PartiallyFilled" if o.cum_lots else "New"
                key = m.book.side(o.buy).key_of(o.price_ticks)
                m.book.side(o.buy).add_resting(key, o)
                o.resting_key = key
                self.open[m.symbol][o.order_id] = o
                m.seq += 1
                m.change_ms = now
        self.push_executions(execs)
        self.push_orders([o])
        if execs:
            self._after_position_change(m.symbol, now)
        self.push_position(m.symbol)
        self.push_wallet()

    def _fok_ok(self, o: Order) -> bool:
        side = o.market.book.asks if o.buy else o.market.book.bids
        limit_key = side.key_of(o.price_ticks)
        need = o.leaves_lots
        for k in side.keys:
            if k > limit_key:
                break
            need -= side.sizes[k]
            if need <= 0:
                return True
        return False

    def create(self, p: dict[str, Any]) -> dict[str, Any]:
        m = self.market(p)
        inst = m.inst
        side = p.get("side")
        if side not in ("Buy", "Sell"):
            raise params_error("params error: side invalid")
        order_type = p.get("orderType")
        if order_type not in ("Market", "Limit"):
            raise params_error("params error: orderType invalid")
        if p.get("positionIdx", 0) not in (0, "0"):
            raise params_error("position idx not match position mode")
        link = p.get("orderLinkId") or ""
        if not isinstance(link, str) or (link and not LINK_ID_RE.match(link)):
            raise params_error("params error: orderLinkId invalid (at most 36 of A-Z a-z 0-9 - _)")
        if link and link in self.used_link_ids:
            raise BybitError(110072, "OrderLinkedID is duplicate")
        qty_raw = p.get("qty")
        if qty_raw is None or qty_raw == "":
            raise params_error("params error: qty is required")
        try:
            lots = inst.parse_qty(str(qty_raw))
        except ValueError as e:
            raise params_error(f"Qty invalid: {e}") from None
        reduce_only = _bool(p.get("reduceOnly", False))
        close_on_trigger = _bool(p.get("closeOnTrigger", False))
        tif = p.get("timeInForce") or "GTC"
        if tif not in ("GTC", "IOC", "FOK", "PostOnly"):
            raise params_error("params error: timeInForce invalid")
        price_ticks: int | None = None
        if order_type == "Limit":
            price_raw = p.get("price")
            if price_raw is None or price_raw == "":
                raise params_error("params error: price is required for Limit orders")
            try:
                price_ticks = inst.parse_price(str(price_raw))
            except ValueError as e:
                raise params_error(f"Price invalid: {e}") from None
        else:
            tif = "IOC"
        pos = self.position(m.symbol)
        if reduce_only:
            closable = -pos.size if side == "Buy" else pos.size
            if closable <= 0:
                raise BybitError(110017, "Reduce-only rule not satisfied: current position is zero or on the same side")
            if lots == 0 or lots > closable:
                lots = closable  # Bybit trims a reduce-only quantity to the position
        if lots <= 0:
            raise params_error("Qty invalid: qty must be greater than 0")
        if lots < inst.min_qty_lots and not reduce_only:
            raise params_error(f"The number of contracts exceeds minimum limit allowed (minOrderQty {inst.size_str(inst.min_qty_lots)})")
        max_lots = inst.max_mkt_qty_lots if order_type == "Market" else inst.max_qty_lots
        if lots > max_lots:
            raise params_error(f"The number of contracts exceeds maximum limit allowed (max {inst.size_str(max_lots)})")
        ref_ticks = price_ticks if price_ticks is not None else (
            (m.book.asks.best_ticks() if side == "Buy" else m.book.bids.best_ticks()) or m.last_ticks)
        notional = inst.value_dec(ref_ticks, lots)
        if not reduce_only and notional < inst.min_notional:
            raise BybitError(110094, f"Order does not meet minimum order value {inst.min_notional}USDT")
        if not reduce_only:
            closable = max(0, -pos.size if side == "Buy" else pos.size)
            opening = max(0, lots - closable)
            if opening:
                value = inst.value_dec(ref_ticks, opening)
                cost = value / pos.leverage + value * TAKER_FEE
                if cost > self.totals()["available"]:
                    raise BybitError(110007, "ab not enough for new order")
        if sum(len(v) for v in self.open.values()) >= 500 and order_type == "Limit":
            raise BybitError(110020, "Not allowed to have more than 500 active orders")
        now = int(time.time() * 1000)
        o = self._new_order(m, side == "Buy", order_type, price_ticks, lots, tif, reduce_only,
                            close_on_trigger, link, now)
        o.take_profit = str(p.get("takeProfit") or "")
        o.stop_loss = str(p.get("stopLoss") or "")
        self._execute(o, now)
        if o.cum_lots and (o.take_profit or o.stop_loss):
            self._attach_tpsl(o)
        return {"orderId": o.order_id, "orderLinkId": o.link_id}

    def _attach_tpsl(self, o: Order) -> None:
        pos = self.position(o.inst.symbol)
        if not pos.size:
            return
        try:
            if o.take_profit:
                pos.tp_ticks = o.inst.parse_price(o.take_profit)
            if o.stop_loss:
                pos.sl_ticks = o.inst.parse_price(o.stop_loss)
        except ValueError:
            return
        self.push_position(o.inst.symbol)

    def _find(self, p: dict[str, Any], what: str) -> Order:
        m = self.market(p)
        oid = p.get("orderId")
        link = p.get("orderLinkId")
        if not oid and not link:
            raise params_error("params error: orderId or orderLinkId is required")
        o = self.orders.get(str(oid)) if oid else self.by_link.get(str(link))
        if o is None or o.inst.symbol != m.symbol:
            raise BybitError(110001, f"order not exists or too late to {what}")
        return o

    def cancel(self, p: dict[str, Any]) -> dict[str, Any]:
        o = self._find(p, "cancel")
        now = int(time.time() * 1000)
        if not o.is_open:
            if o.status == "Filled" and now - o.filled_ms < 1000:
                # the documented race: the cancel lost against a fill; a second Filled arrives
                d = o.to_dict(ws=True)
                d["cancelType"] = "CancelByUser"
                d["rejectReason"] = "EC_OrigClOrdIDDoesNotExist"
                d["updatedTime"] = str(now)
                self._push("order", [d])
            raise BybitError(110001, "order not exists or too late to cancel")
        o.cancel_type = "CancelByUser"
        self._close(o, "Cancelled", now)
        o.market.seq += 1
        o.market.change_ms = now
        self.push_orders([o])
        self.push_position(o.inst.symbol)
        self.push_wallet()
        return {"orderId": o.order_id, "orderLinkId": o.link_id}

    def cancel_all(self, p: dict[str, Any]) -> dict[str, Any]:
        if p.get("category") != "linear":
            raise params_error("params error: category only support linear")
        sym = p.get("symbol")
        if sym:
            symbols = [self.market(p).symbol]
        elif p.get("settleCoin") == "USDT" or p.get("baseCoin"):
            base = p.get("baseCoin")
            symbols = [s for s, m in self.sim.markets.items() if not base or m.inst.base_coin == base]
        else:
            raise params_error("params error: symbol, baseCoin or settleCoin is required")
        now = int(time.time() * 1000)
        done: list[Order] = []
        for s in symbols:
            for o in list(self.open[s].values()):
                o.cancel_type = "CancelByUser"
                self._close(o, "Cancelled", now)
                done.append(o)
        if done:
            self.push_orders(done)
            for s in {o.inst.symbol for o in done}:
                self.push_position(s)
            self.push_wallet()
        return {"list": [{"orderId": o.order_id, "orderLinkId": o.link_id} for o in done], "success": "1"}

    def amend(self, p: dict[str, Any]) -> dict[str, Any]:
        o = self._find(p, "replace")
        if not o.is_open:
            raise BybitError(110001, "order not exists or too late to replace")
        inst = o.inst
        new_qty = o.qty_lots
        new_price = o.price_ticks
        try:
            if p.get("qty") not in (None, ""):
                new_qty = inst.parse_qty(str(p["qty"]))
            if p.get("price") not in (None, ""):
                new_price = inst.parse_price(str(p["price"]))
        except ValueError as e:
            raise params_error(f"params error: {e}") from None
        tp = p.get("takeProfit")
        sl = p.get("stopLoss")
        if new_qty == o.qty_lots and new_price == o.price_ticks and tp is None and sl is None:
            raise params_error("The order remains unchanged as the parameters entered match the existing ones")
        if new_qty <= o.cum_lots:
            raise params_error("Qty invalid: new qty must be greater than the executed qty")
        if new_qty < inst.min_qty_lots:
            raise params_error("The number of contracts exceeds minimum limit allowed")
        now = int(time.time() * 1000)
        if tp is not None:
            o.take_profit = "" if str(tp) == "0" else str(tp)
        if sl is not None:
            o.stop_loss = "" if str(sl) == "0" else str(sl)
        m = o.market
        side = m.book.side(o.buy)
        new_leaves = new_qty - o.cum_lots
        if new_price != o.price_ticks and o.tif == "PostOnly":
            opp = m.book.asks if o.buy else m.book.bids
            best = opp.best_ticks()
            if best is not None and (new_price >= best if o.buy else new_price <= best):
                raise params_error("PostOnly order would take liquidity at the new price")
        if new_price == o.price_ticks and new_leaves <= o.leaves_lots:
            # a smaller quantity at the same price keeps its place in the queue
            if o.resting_key is not None and new_leaves != o.leaves_lots:
                side.reduce_resting(o.resting_key, o, new_leaves)
            o.qty_lots = new_qty
            o.updated_ms = now
            self.push_orders([o])
            self.push_position(inst.symbol)
            self.push_wallet()
        else:
            # new price or more quantity: back of the queue (and possibly marketable now)
            if o.resting_key is not None:
                side.remove_resting(o.resting_key, o)
                o.resting_key = None
            self.open[inst.symbol].pop(o.order_id, None)
            o.qty_lots = new_qty
            o.leaves_lots = new_leaves
            o.price_ticks = new_price
            o.updated_ms = now
            self._execute(o, now)
        m.seq += 1
        m.change_ms = now
        return {"orderId": o.order_id, "orderLinkId": o.link_id}

    # ---- queries -------------------------------------------------------------------------------
    def _page(self, items: list[dict[str, Any]], p: dict[str, Any], default: int, hi: int) -> dict[str, Any]:
        limit = _int_param(p, "limit", default, 1, hi)
        start = 0
        if p.get("cursor"):
            try:
                start = int(str(p["cursor"]))
            except ValueError:
                raise params_error("params error: cursor invalid") from None
        page = items[start:start + limit]
        nxt = str(start + limit) if start + limit < len(items) else ""
        return {"category": "linear", "list": page, "nextPageCursor": nxt}

    def _order_filter(self, p: dict[str, Any], need_scope: bool) -> tuple[str | None, str | None, str | None]:
        if p.get("category") != "linear":
            raise params_error("params error: category only support linear")
        sym = p.get("symbol") or None
        if sym is not None and sym not in self.sim.markets:
            raise params_error(f"params error: symbol invalid ({sym})")
        oid = p.get("orderId") or None
        link = p.get("orderLinkId") or None
        if need_scope and not (sym or oid or link or p.get("settleCoin") or p.get("baseCoin")):
            raise params_error("Missing some parameters that must be filled in, symbol or settleCoin or baseCoin")
        return sym, oid, link

    def realtime(self, p: dict[str, Any]) -> dict[str, Any]:
        sym, oid, link = self._order_filter(p, True)
        open_only = str(p.get("openOnly", "0"))
        if oid or link:
            o = self.orders.get(oid) if oid else self.by_link.get(link or "")
            items = [o] if o is not None and (sym is None or o.inst.symbol == sym) else []
        elif open_only == "0":
            items = [o for s, opens in self.open.items() if sym is None or s == sym for o in opens.values()]
            items.sort(key=lambda o: o.created_ms, reverse=True)
        else:
            closed = [o for o in reversed(self.history) if not o.is_open and (sym is None or o.inst.symbol == sym)]
            items = closed[:500]
        return self._page([o.to_dict() for o in items], p, 20, 50)

    def history_list(self, p: dict[str, Any]) -> dict[str, Any]:
        sym, oid, link = self._order_filter(p, False)
        status = p.get("orderStatus")
        items = [o for o in reversed(self.history)
                 if (sym is None or o.inst.symbol == sym) and (oid is None or o.order_id == oid)
                 and (link is None or o.link_id == link) and (status is None or o.status == status)]
        return self._page([o.to_dict() for o in items], p, 20, 50)

    def execution_list(self, p: dict[str, Any]) -> dict[str, Any]:
        sym, oid, link = self._order_filter(p, False)
        items = [e for e in reversed(self.executions)
                 if (sym is None or e["symbol"] == sym) and (oid is None or e["orderId"] == oid)
                 and (link is None or e["orderLinkId"] == link)
                 and (p.get("execType") in (None, "") or e["execType"] == p.get("execType"))]
        return self._page(items, p, 50, 100)

    def position_list(self, p: dict[str, Any]) -> dict[str, Any]:
        if p.get("category") != "linear":
            raise params_error("params error: category only support linear")
        sym = p.get("symbol")
        if sym:
            m = self.market(p)
            items = [self.position(m.symbol).to_dict()]
        elif p.get("settleCoin") == "USDT":
            items = [pos.to_dict() for pos in self.positions.values() if pos.size]
        else:
            raise params_error("Missing some parameters that must be filled in, symbol or settleCoin")
        return self._page(items, p, 20, 200)

    def set_leverage(self, p: dict[str, Any]) -> dict[str, Any]:
        m = self.market(p)
        buy, sell = p.get("buyLeverage"), p.get("sellLeverage")
        if buy is None or sell is None:
            raise params_error("params error: buyLeverage and sellLeverage are required")
        try:
            bl, sl = Decimal(str(buy)), Decimal(str(sell))
        except ArithmeticError:
            raise params_error("params error: leverage invalid") from None
        if bl != sl:
            raise params_error("buy leverage must equal sell leverage in one-way mode")
        if not (Decimal(1) <= bl <= m.inst.max_leverage) or bl != bl.quantize(Decimal("0.01"), ROUND_DOWN):
            raise BybitError(10001, f"leverage invalid: must be 1 to {m.inst.max_leverage} in steps of 0.01")
        pos = self.position(m.symbol)
        if pos.leverage == bl:
            raise BybitError(110043, "Set leverage not modified")
        old = pos.leverage
        pos.leverage = bl
        if self.totals()["available"] < 0:
            pos.leverage = old
            raise BybitError(110044, "Available margin is insufficient")
        pos.updated_ms = int(time.time() * 1000)
        self.push_position(m.symbol)
        self.push_wallet()
        return {}

    def trading_stop(self, p: dict[str, Any]) -> dict[str, Any]:
        m = self.market(p)
        inst = m.inst
        if str(p.get("positionIdx", "")) != "0":
            raise params_error("params error: positionIdx is required (0 in one-way mode)")
        mode = p.get("tpslMode", "Full")
        if mode != "Full":
            raise params_error("params error: the simulator supports tpslMode Full only")
        pos = self.position(m.symbol)
        if not pos.size:
            raise params_error("can not set tp/sl/ts for zero position")
        tp_ticks, sl_ticks = pos.tp_ticks, pos.sl_ticks
        last = m.last_ticks
        long = pos.size > 0
        try:
            if p.get("takeProfit") not in (None, ""):
                tp_ticks = None if str(p["takeProfit"]) == "0" else inst.parse_price(str(p["takeProfit"]))
            if p.get("stopLoss") not in (None, ""):
                sl_ticks = None if str(p["stopLoss"]) == "0" else inst.parse_price(str(p["stopLoss"]))
        except ValueError as e:
            raise params_error(f"params error: {e}") from None
        if tp_ticks is not None and tp_ticks != pos.tp_ticks and (tp_ticks <= last if long else tp_ticks >= last):
            raise params_error(f"TakeProfit:{inst.price_str(tp_ticks)} set for {'Buy' if long else 'Sell'} position "
                               f"should be {'higher' if long else 'lower'} than base_price:{inst.price_str(last)}??LastPrice")
        if sl_ticks is not None and sl_ticks != pos.sl_ticks and (sl_ticks >= last if long else sl_ticks <= last):
            raise params_error(f"StopLoss:{inst.price_str(sl_ticks)} set for {'Buy' if long else 'Sell'} position "
                               f"should be {'lower' if long else 'higher'} than base_price:{inst.price_str(last)}??LastPrice")
        if tp_ticks == pos.tp_ticks and sl_ticks == pos.sl_ticks:
            raise BybitError(34040, "not modified")
        pos.tp_ticks, pos.sl_ticks = tp_ticks, sl_ticks
        pos.updated_ms = int(time.time() * 1000)
        self.push_position(m.symbol)
        return {}

    def wallet_balance(self, p: dict[str, Any]) -> dict[str, Any]:
        if p.get("accountType") != "UNIFIED":
            raise params_error("accountType only support UNIFIED")
        coin = p.get("coin")
        w = self.wallet_dict()
        if coin and "USDT" not in str(coin).split(","):
            w["coin"] = []
        return {"list": [w]}


def _bool(v: Any) -> bool:
    if isinstance(v, bool):
        return v
    return str(v).lower() in ("true", "1")


def _int_param(p: dict[str, Any], name: str, default: int, lo: int, hi: int) -> int:
    raw = p.get(name)
    if raw is None or raw == "":
        return default
    try:
        v = int(str(raw))
    except ValueError:
        raise params_error(f"params error: {name} must be an integer") from None
    if not lo <= v <= hi:
        raise params_error(f"params error: {name} must be between {lo} and {hi}")
    return v
