"""The paper venue: orders, fills, positions, the wallet, pushes and persistence.

Everything here is synchronous and single-threaded (one asyncio loop): a create, a cancel or a
feed callback changes the state completely before it returns, and queues its pushes for the
delivery task. The ``async`` methods of the :class:`~pysrc.execution.venue.Venue` protocol wrap
the synchronous ones (``place_now``, ``cancel_now``), which tests and replays may call directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from typing import Any

from pysrc.domain.values import ZERO, add, div, mul, pro_rata, sub, to_decimal
from pysrc.exchange.bybit.orders import (
    AmendResult,
    AmendStatus,
    CancelResult,
    CancelStatus,
    CreateStatus,
    PlaceOrderResult,
    check_order_link_id,
)
from pysrc.exchange.instruments import (
    Instrument,
    ceil_to_step,
    floor_to_step,
    is_multiple,
)
from pysrc.execution.paper.book import BookSource, BookView, Fill, LiveBook, Queues
from pysrc.execution.paper.records import (
    AMEND_PATH,
    CANCEL_PATH,
    LEVERAGE_PATH,
    MAINTENANCE_RATE,
    MAX_OPEN_ORDERS_PER_SYMBOL,
    NO_BOOK_CODE,
    SNAPSHOT_VERSION,
    TIME_IN_FORCE,
    TRADING_STOP_PATH,
    Json,
    PaperOrder,
    PaperPosition,
    api_error,
    money,
    money8,
    step_quantum,
)
from pysrc.execution.venue import OrderRequest, PushHandler

log = logging.getLogger(__name__)

Clock = Callable[[], int]
"""Epoch milliseconds."""


def _wall_ms() -> int:
    return int(time.time() * 1000)


class PaperVenue:
    """Paper trading venue (``name == "paper"``); the fill model is described in
    :mod:`pysrc.execution.paper` and ``docs/paper-trading.md``.

    ``engine`` is the bot's native book engine (read only). ``instruments`` are the symbols'
    trading rules (steps, minimums). ``balance`` is the initial USDT wallet balance;
    ``taker_fee``/``maker_fee`` the fee rates; ``leverage`` the default leverage of every position
    (:meth:`set_leverage` changes one). ``clock`` gives epoch ms for the exchange timestamps.
    ``id_salt`` makes order and execution ids reproducible (tests); by default a random salt is
    drawn, and it is part of the snapshot. ``history_limit`` bounds the closed orders and
    executions kept in memory (the ``orderLinkId``s stay reserved for ever).

    Feed it: :meth:`on_book` after every book update of a symbol, :meth:`on_trade` (or
    :meth:`on_trades` with a feed ``Trades`` event) for every public trade.
    """

    name = "paper"

    def __init__(
        self,
        engine: BookSource,
        instruments: Iterable[Instrument] | Mapping[str, Instrument],
        *,
        balance: Decimal = Decimal(100000),
        taker_fee: Decimal = Decimal("0.00055"),
        maker_fee: Decimal = Decimal("0.0002"),
        leverage: Decimal = Decimal(10),
        clock: Clock = _wall_ms,
        id_salt: str | None = None,
        history_limit: int = 20_000,
        settle_coin: str = "USDT",
    ) -> None:
        for label, v in (("balance", balance), ("taker_fee", taker_fee), ("maker_fee", maker_fee),
                         ("leverage", leverage)):
            if not isinstance(v, Decimal):
                raise TypeError(f"{label} must be a Decimal (money is exact)")
        if leverage <= 0:
            raise ValueError("leverage must be positive")
        if history_limit < 1:
            raise ValueError("history_limit must be positive")
        self._instruments: dict[str, Instrument] = {}
        self.set_instruments(instruments)
        self.taker_fee = taker_fee
        self.maker_fee = maker_fee
        self.default_leverage = leverage
        self.settle_coin = settle_coin
        self._clock = clock
        self._history_limit = history_limit
        self._salt = id_salt if id_salt is not None else uuid.uuid4().hex
        self._book = LiveBook(engine)
        self._reset_state(balance)
        self._on_push: PushHandler | None = None
        self._queue: asyncio.Queue[tuple[str, Json]] | None = None
        self._task: asyncio.Task[None] | None = None
        self.pushes_dropped = 0
        """Pushes emitted while not started (nobody subscribed, as on a stream not yet live)."""
        self.push_errors = 0

    # ---- state ---------------------------------------------------------------------------------
    def _reset_state(self, balance: Decimal) -> None:
        self.initial_balance = balance
        self.balance = balance
        """USDT wallet balance: initial - fees + realised price PnL, exactly."""
        self.total_fees = ZERO
        """Fees paid since the start (positive = paid)."""
        self.total_realised = ZERO
        """Price PnL realised since the start, gross of fees."""
        self._orders: dict[str, PaperOrder] = {}
        self._by_link: dict[str, PaperOrder] = {}
        self._used_links: set[str] = set()
        self._open: dict[str, dict[str, PaperOrder]] = {}
        self._closed: deque[PaperOrder] = deque()
        self._executions: deque[Json] = deque(maxlen=self._history_limit)
        self._positions: dict[str, PaperPosition] = {}
        self._queues = Queues()
        self._book.clear_marks()
        self._last_price: dict[str, Decimal] = {}
        self._id_counter = 0
        self._seq = 0
        self._last_ms = 0

    def set_instruments(self, instruments: Iterable[Instrument] | Mapping[str, Instrument]) -> None:
        """Replace the trading rules (after an instrument refresh)."""
        items = instruments.values() if isinstance(instruments, Mapping) else instruments
        self._instruments = {i.symbol: i for i in items}
        self._quanta = {sym: (step_quantum(i.tick_size), step_quantum(i.qty_step))
                        for sym, i in self._instruments.items()}

    def _now(self) -> int:
        """Exchange time in ms, never earlier than a time already issued (the domain takes
        amendments only from pushes at least as recent as the last one)."""
        now = max(int(self._clock()), self._last_ms)
        self._last_ms = now
        return now

    def _new_id(self) -> str:
        self._id_counter += 1
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"paper:{self._salt}:{self._id_counter}"))

    def _position(self, symbol: str) -> PaperPosition:
        p = self._positions.get(symbol)
        if p is None:
            now = self._now()
            p = self._positions[symbol] = PaperPosition(symbol, self.default_leverage, created_ms=now,
                                                        updated_ms=now)
        return p

    def _step(self, symbol: str) -> Decimal | None:
        inst = self._instruments.get(symbol)
        return inst.qty_step if inst is not None else None

    # ---- formatting ----------------------------------------------------------------------------
    def _fmt_price(self, symbol: str, p: Decimal) -> str:
        inst = self._instruments.get(symbol)
        if p == 0:
            return "0"
        if inst is not None and p % inst.tick_size == 0:
            return format(p.quantize(self._quanta[symbol][0]), "f")
        return money8(p)

    def _fmt_qty(self, symbol: str, q: Decimal) -> str:
        inst = self._instruments.get(symbol)
        if inst is not None and q % inst.qty_step == 0:
            return format(q.quantize(self._quanta[symbol][1]), "f")
        return money(q)

    # ---- push delivery -------------------------------------------------------------------------
    async def start(self, on_push: PushHandler) -> None:
        """From now on every private push goes to ``on_push``, in order, from one task. The
        handler never runs inside :meth:`place` or a feed callback: like a real stream, pushes
        arrive after the call that caused them has returned (so a handler may take the same
        locks the caller holds)."""
        if self._task is not None:
            raise RuntimeError("paper venue already started")
        self._on_push = on_push
        self._queue = asyncio.Queue()
        self._task = asyncio.create_task(self._dispatch(), name="paper.pushes")

    async def _dispatch(self) -> None:
        assert self._queue is not None
        q = self._queue
        while True:
            topic, item = await q.get()
            try:
                if self._on_push is not None:
                    await self._on_push(topic, item)
            except Exception:  # the stream keeps going, as the live PrivateStream does
                self.push_errors += 1
                log.exception("paper push handler failed on %s", topic)
            finally:
                q.task_done()

    async def drain(self) -> None:
        """Wait until every push emitted so far has been handled."""
        if self._queue is not None:
            await self._queue.join()

    async def close(self) -> None:
        """Deliver what is queued (for up to 5 s), then stop the delivery task."""
        task, self._task = self._task, None
        if task is None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.drain(), 5.0)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        self._queue = None
        self._on_push = None

    def _emit(self, topic: str, item: Json) -> None:
        if self._queue is None:
            self.pushes_dropped += 1
            return
        self._queue.put_nowait((topic, item))

    # The items are built only when someone listens (building them is most of a create's cost).
    def _emit_order(self, o: PaperOrder) -> None:
        if self._queue is None:
            self.pushes_dropped += 1
            return
        self._emit("order", self._order_dict(o, ws=True))

    def _emit_position(self, symbol: str) -> None:
        if self._queue is None:
            self.pushes_dropped += 1
            return
        self._emit("position", self._position_dict(self._position(symbol), ws=True))

    def _emit_wallet(self) -> None:
        if self._queue is None:
            self.pushes_dropped += 1
            return
        self._emit("wallet", self._wallet_dict())

    # ---- create --------------------------------------------------------------------------------
    async def place(self, req: OrderRequest) -> PlaceOrderResult:
        """Create an order. Business rejects raise ``BybitApiError`` (nothing created, the
        ``orderLinkId`` not used up); a reused ``orderLinkId`` answers
        ``CreateStatus.DUPLICATE`` with the existing order and a ``BybitApiError(110072)``, as the
        live client reports it."""
        return self.place_now(req)

    def place_now(self, req: OrderRequest) -> PlaceOrderResult:
        """:meth:`place`, synchronously."""
        link = req.order_link_id
        check_order_link_id(link)  # the live client refuses a bad id before sending (ValueError)
        if link in self._used_links:
            existing = self._by_link.get(link)
            return PlaceOrderResult(
                CreateStatus.DUPLICATE, link, existing.order_id if existing else None,
                self._order_dict(existing) if existing else None,
                error=api_error(110072, "OrderLinkedID is duplicate"),
            )
        o = self._validate_and_create(req)
        self._execute(o)
        return PlaceOrderResult(CreateStatus.ACCEPTED, link, o.order_id)

    def _validate_and_create(self, req: OrderRequest) -> PaperOrder:
        """Bybit's checks, in Bybit's words and retCodes; returns the accepted order."""
        symbol = req.symbol
        inst = self._instruments.get(symbol)
        if inst is None:
            raise api_error(10001, f"params error: symbol invalid ({symbol})")
        if inst.status and inst.status != "Trading":
            raise api_error(10001, f"params error: symbol {symbol} is not trading ({inst.status})")
        if req.side not in ("Buy", "Sell"):
            raise api_error(10001, "params error: side invalid")
        if req.order_type not in ("Market", "Limit"):
            raise api_error(10001, "params error: orderType invalid")
        extra = req.extra or {}
        if str(extra.get("positionIdx", 0)) != "0":
            raise api_error(10001, "position idx not match position mode")
        buy = req.side == "Buy"
        market = req.order_type == "Market"
        tif = req.time_in_force or "GTC"
        if tif not in TIME_IN_FORCE:
            raise api_error(10001, f"params error: timeInForce {tif} not supported")
        if market:
            tif = "FOK" if tif == "FOK" else "IOC"  # Bybit market orders are IOC
        qty = req.qty
        if qty < 0 or not is_multiple(qty, inst.qty_step):
            raise api_error(10001, f"Qty invalid: {qty} is not a multiple of qtyStep {inst.qty_step}")
        price = ZERO
        if not market:
            assert req.price is not None  # OrderRequest guarantees it
            price = req.price
            if price <= 0 or not is_multiple(price, inst.tick_size):
                raise api_error(10001, f"Price invalid: {price} is not a multiple of tickSize {inst.tick_size}")
            if (inst.min_price is not None and price < inst.min_price) or (
                    inst.max_price is not None and price > inst.max_price):
                raise api_error(10001, f"Price invalid: {price} outside [{inst.min_price}, {inst.max_price}]")
        pos = self._position(symbol)
        closable = max(ZERO, -pos.size if buy else pos.size)
        if req.reduce_only:
            if req.take_profit is not None or req.stop_loss is not None:
                raise api_error(10001, "TP/SL cannot be attached to a reduce-only order")
            if closable <= 0:
                raise api_error(110017, "Reduce-only rule not satisfied: current position is zero or on the same side")
            if qty == 0 or qty > closable:
                qty = closable  # Bybit trims a reduce-only quantity to the position
        if qty <= 0:
            raise api_error(10001, "Qty invalid: qty must be greater than 0")
        if qty < inst.min_qty and not req.reduce_only:
            raise api_error(10001, f"The number of contracts exceeds minimum limit allowed (minOrderQty {inst.min_qty})")
        max_q = inst.max_market_qty if market and inst.max_market_qty is not None else inst.max_qty
        if qty > max_q:
            raise api_error(10001, f"The number of contracts exceeds maximum limit allowed (max {max_q})")
        if not self._book.live(symbol):
            raise api_error(NO_BOOK_CODE, f"paper: the order book of {symbol} is not live, try later")
        view = self._book.view(symbol)
        cap = self._market_cap(symbol, buy, extra, inst, view) if market else None
        ref = price
        if market:
            # what it would cost: the deepest price the walk reaches (an upper bound)
            fills = self._book.walk(symbol, buy, qty, cap, view)
            ref = fills[-1].price if fills else (self._book.best(symbol, not buy, view) or ZERO)
        self._check_tpsl_prices(symbol, buy, req.take_profit, req.stop_loss,
                                price if not market else (self._last_price.get(symbol) or self._book.mid(symbol)))
        if inst.min_notional is not None and not req.reduce_only and ref > 0 and mul(qty, ref) < inst.min_notional:
            raise api_error(110094, f"Order does not meet minimum order value {inst.min_notional}USDT")
        if not req.reduce_only:
            opening = max(ZERO, sub(qty, closable))
            if opening > 0:
                value = mul(opening, ref)
                cost = add(div(value, pos.leverage), mul(value, self.taker_fee))
                if cost > self._totals()["available"]:
                    raise api_error(110007, "ab not enough for new order")
        if not market and len(self._open.get(symbol, {})) >= MAX_OPEN_ORDERS_PER_SYMBOL:
            raise api_error(110020, "Not allowed to have more than 500 active orders")
        now = self._now()
        self._seq += 1
        o = PaperOrder(
            order_id=self._new_id(), link_id=req.order_link_id, symbol=symbol, side=req.side,
            order_type=req.order_type, price=price if not market else (cap or ZERO), qty=qty, tif=tif,
            reduce_only=req.reduce_only, close_on_trigger=bool(extra.get("closeOnTrigger", False)),
            created_ms=now, updated_ms=now, seq=self._seq, leaves=qty, take_profit=req.take_profit,
            stop_loss=req.stop_loss,
            last_price_on_created=self._last_price.get(symbol) or self._book.mid(symbol) or ZERO,
        )
        if market and "slippageToleranceType" in extra:
            o.slippage_type = str(extra["slippageToleranceType"])
            o.slippage = str(extra.get("slippageTolerance", "0"))
        self._orders[o.order_id] = o
        self._by_link[o.link_id] = o
        self._used_links.add(o.link_id)
        return o

    def _check_tpsl_prices(self, symbol: str, long: bool, tp: Decimal | None, sl: Decimal | None,
                           base: Decimal | None, path: str | None = None) -> None:
        """Bybit refuses a take profit on the wrong side of the base price (the order's price, or
        the last price) and the same for a stop loss; both must sit on the tick."""
        inst = self._instruments.get(symbol)
        where = {"path": path} if path else {}
        for label, value, above in (("TakeProfit", tp, long), ("StopLoss", sl, not long)):
            if value is None or value == 0:
                continue
            if inst is not None and not is_multiple(value, inst.tick_size):
                raise api_error(10001, f"{label}:{value} is not a multiple of tickSize {inst.tick_size}", **where)
            if base is not None and (value <= base if above else value >= base):
                side = "Buy" if long else "Sell"
                raise api_error(10001, f"{label}:{value} set for {side} position should be "
                                       f"{'higher' if above else 'lower'} than base_price:{base}", **where)

    def _market_cap(self, symbol: str, buy: bool, extra: Mapping[str, Any], inst: Instrument,
                    view: BookView) -> Decimal | None:
        """Protection price of a market order with ``slippageToleranceType``/``slippageTolerance``
        (``Percent`` or ``TickSize`` from the best opposite price); None = no cap."""
        kind = extra.get("slippageToleranceType")
        if kind is None:
            return None
        try:
            amount = to_decimal(str(extra.get("slippageTolerance", "")), "slippageTolerance")
        except (TypeError, ValueError):
            raise api_error(10001, "params error: slippageTolerance invalid") from None
        if kind == "Percent":
            if not Decimal("0.01") <= amount <= Decimal(10):
                raise api_error(10001, "params error: slippageTolerance Percent must be in [0.01, 10]")
        elif kind == "TickSize":
            if not 1 <= amount <= 10000 or amount != amount.to_integral_value():
                raise api_error(10001, "params error: slippageTolerance TickSize must be in [1, 10000]")
        else:
            raise api_error(10001, "params error: slippageToleranceType invalid")
        best = self._book.best(symbol, not buy, view)
        if best is None:
            return None
        delta = div(mul(best, amount), Decimal(100)) if kind == "Percent" else mul(inst.tick_size, amount)
        return floor_to_step(add(best, delta), inst.tick_size) if buy else ceil_to_step(sub(best, delta), inst.tick_size)

    def _execute(self, o: PaperOrder, *, amended: bool = False) -> None:
        """Match a new (or re-priced) order: cancel what Bybit cancels at once (PostOnly that
        would take, FOK that cannot fill), take what is marketable, rest or cancel the rest; push
        all of it in Bybit's order."""
        symbol, buy = o.symbol, o.buy
        market = o.order_type == "Market"
        view = self._book.view(symbol)
        best_opp = self._book.best(symbol, not buy, view)
        marketable = best_opp is not None and (market or (o.price >= best_opp if buy else o.price <= best_opp))
        now = o.updated_ms
        if o.tif == "PostOnly" and marketable:
            o.reject_reason = "EC_PostOnlyWillTakeLiquidity"
            self._close(o, "Cancelled", now)
            self._finish_request(o, [])
            return
        limit = (o.price or None) if market else o.price
        fills = self._book.walk(symbol, buy, o.leaves, limit, view) if marketable else []
        if market and not o.price:
            # Bybit shows its internal IOC limit as a market order's price; the paper stand-in is
            # the worst price the walk reaches (the best opposite price when nothing fills)
            o.price = fills[-1].price if fills else (best_opp or ZERO)
        if o.tif == "FOK" and sum((f.qty for f in fills), ZERO) < o.leaves:
            o.reject_reason = "EC_CancelForNoFullFill"
            self._close(o, "Cancelled", now)
            self._finish_request(o, [])
            return
        if not amended:
            self._emit_order(o)  # New: the exchange has it
        execs: list[Json] = []
        for f in fills:
            self._book.take(symbol, not buy, f)
            execs.append(self._apply_fill(o, f, False, now))
        if o.leaves == 0:
            self._close(o, "Filled", now)
        elif market or o.tif in ("IOC", "FOK"):
            if o.cum_qty == 0:
                o.reject_reason = "EC_NoImmediateQtyToFill"
            self._close(o, "Cancelled", now)
        else:
            o.status = "PartiallyFilled" if o.cum_qty else "New"
            self._open.setdefault(symbol, {})[o.order_id] = o
            self._queues.add(o, view)
        self._finish_request(o, execs, new_sent=not amended)

    def _finish_request(self, o: PaperOrder, execs: list[Json], *, new_sent: bool = False) -> None:
        """The pushes that follow a create: executions, the order's state after them (unless it
        is still the ``New`` already sent), trimmed reduce-only orders, position, wallet."""
        for ex in execs:
            self._emit("execution", ex)
        if not new_sent or execs or not o.is_open:
            self._emit_order(o)
        if execs:
            self._after_position_change(o.symbol, o.updated_ms)
            self._attach_tpsl(o)
        self._emit_position(o.symbol)
        self._emit_wallet()
        if execs:
            self._check_tpsl(o.symbol)

    def _close(self, o: PaperOrder, status: str, now: int) -> None:
        o.status = status
        o.updated_ms = now
        self._queues.remove(o)
        opens = self._open.get(o.symbol)
        if opens is not None:
            opens.pop(o.order_id, None)
            if not opens:
                del self._open[o.symbol]
        self._closed.append(o)
        while len(self._closed) > self._history_limit:
            old = self._closed.popleft()
            self._orders.pop(old.order_id, None)
            if self._by_link.get(old.link_id) is old:
                del self._by_link[old.link_id]  # the id stays reserved in _used_links

    # ---- fills and accounting ------------------------------------------------------------------
    def _apply_fill(self, o: PaperOrder, fill: Fill, is_maker: bool, now: int) -> Json:
        """Account one fill of ``o``: order totals, position (average cost), wallet; returns the
        execution item (the same dict serves the push and ``/v5/execution/list``)."""
        symbol, price, qty = o.symbol, fill.price, fill.qty
        value = mul(price, qty)
        rate = self.maker_fee if is_maker else self.taker_fee
        fee = mul(value, rate)
        o.cum_qty = add(o.cum_qty, qty)
        o.cum_value = add(o.cum_value, value)
        o.cum_fee = add(o.cum_fee, fee)
        o.leaves = sub(o.leaves, qty)
        o.updated_ms = now
        pos = self._position(symbol)
        held = pos.size
        closed = pnl = ZERO
        fresh = held == 0
        if held == 0 or (held > 0) == o.buy:
            pos.entry_value = add(pos.entry_value, value)
            pos.size = add(held, qty) if o.buy else sub(held, qty)
        else:
            size = abs(held)
            closed = min(qty, size)
            released = pos.entry_value if closed == size else pro_rata(pos.entry_value, closed, size)
            exit_value = mul(price, closed)
            pnl = sub(exit_value, released) if held > 0 else sub(released, exit_value)
            pos.entry_value = sub(pos.entry_value, released)
            pos.size = add(held, qty) if o.buy else sub(held, qty)
            if closed == size:
                pos.take_profit = pos.stop_loss = None
            if pos.size != 0 and (pos.size > 0) != (held > 0):  # flipped: the rest opens here
                pos.entry_value = mul(price, abs(pos.size))
                fresh = True
        if fresh:
            pos.cur_realised = ZERO
        net = sub(pnl, fee)
        pos.cur_realised = add(pos.cur_realised, net)
        pos.cum_realised = add(pos.cum_realised, net)
        pos.updated_ms = now
        self._seq += 1
        pos.seq = self._seq
        if closed:
            o.closed_pnl = add(o.closed_pnl, net)
        self.balance = add(self.balance, net)
        self.total_fees = add(self.total_fees, fee)
        self.total_realised = add(self.total_realised, pnl)
        mark = self._book.mid(symbol) or price
        ex: Json = {
            "category": "linear", "symbol": symbol, "isLeverage": "", "orderId": o.order_id,
            "orderLinkId": o.link_id, "side": o.side,
            "orderPrice": self._fmt_price(symbol, o.price), "orderQty": self._fmt_qty(symbol, o.qty),
            "leavesQty": self._fmt_qty(symbol, o.leaves), "createType": o.create_type,
            "orderType": o.order_type, "stopOrderType": o.stop_order_type,
            "execFee": money(fee), "execId": self._new_id(), "execPrice": self._fmt_price(symbol, price),
            "execQty": self._fmt_qty(symbol, qty), "execPnl": money(pnl), "execType": "Trade",
            "execValue": money(value), "execTime": str(now), "isMaker": is_maker,
            "feeRate": money(rate), "tradeIv": "", "markIv": "", "markPrice": self._fmt_price(symbol, mark),
            "indexPrice": self._fmt_price(symbol, mark), "underlyingPrice": "", "blockTradeId": "",
            "closedSize": self._fmt_qty(symbol, closed), "seq": pos.seq, "feeCurrency": self.settle_coin,
            "extraFees": "", "marketUnit": "",
        }
        self._executions.append(ex)
        return ex

    def _fill_cap(self, o: PaperOrder) -> Decimal:
        """How much ``o`` may fill now: its leaves, and for reduce-only never past flat."""
        if not o.is_open:
            return ZERO
        if not o.reduce_only:
            return o.leaves
        held = self._position(o.symbol).size
        return min(o.leaves, max(ZERO, -held if o.buy else held))

    def _maker_fill(self, o: PaperOrder, price: Decimal, qty: Decimal) -> Decimal:
        """A resting order filled by the flow (queue consumed, trade through, or book crossed);
        returns the quantity filled."""
        qty = min(qty, self._fill_cap(o))
        if qty <= 0:
            return ZERO
        now = self._now()
        ex = self._apply_fill(o, Fill(price, qty, ZERO), True, now)
        if o.leaves == 0:
            self._close(o, "Filled", now)
        else:
            o.status = "PartiallyFilled"
        self._emit("execution", ex)
        self._emit_order(o)
        self._after_position_change(o.symbol, now)
        self._attach_tpsl(o)
        self._emit_position(o.symbol)
        self._emit_wallet()
        return qty

    def _after_position_change(self, symbol: str, now: int) -> None:
        """Reduce-only orders may not outgrow the position: trim them, or cancel them once they
        would increase it (Bybit's ``CancelByReduceOnly``)."""
        held = self._position(symbol).size
        changed: list[PaperOrder] = []
        for o in sorted(self._open.get(symbol, {}).values(), key=lambda o: o.seq):
            if not o.reduce_only:
                continue
            closable = -held if o.buy else held
            if closable <= 0:
                o.cancel_type = "CancelByReduceOnly"
                self._close(o, "Cancelled", now)
                changed.append(o)
            elif o.leaves > closable:
                o.leaves = closable
                o.qty = add(o.cum_qty, closable)
                o.updated_ms = now
                changed.append(o)
        for o in changed:
            self._emit_order(o)

    # ---- TP/SL ---------------------------------------------------------------------------------
    def _attach_tpsl(self, o: PaperOrder) -> None:
        """TP/SL given with an order protect the whole position once it holds one (``Full``)."""
        if o.take_profit is None and o.stop_loss is None:
            return
        pos = self._position(o.symbol)
        if pos.size == 0 or (pos.size > 0) != o.buy:
            return
        if o.take_profit is not None:
            pos.take_profit = o.take_profit
        if o.stop_loss is not None:
            pos.stop_loss = o.stop_loss

    def _check_tpsl(self, symbol: str) -> None:
        """Close the position at market when the last traded price reached its TP or SL
        (Bybit's default trigger, ``LastPrice``), with a system order (``orderLinkId`` empty,
        ``stopOrderType`` TakeProfit/StopLoss), as Bybit does."""
        pos = self._positions.get(symbol)
        last = self._last_price.get(symbol)
        if pos is None or pos.size == 0 or last is None or (pos.take_profit is None and pos.stop_loss is None):
            return
        long = pos.size > 0
        kind = None
        if pos.take_profit is not None and (last >= pos.take_profit if long else last <= pos.take_profit):
            kind = "TakeProfit"
        elif pos.stop_loss is not None and (last <= pos.stop_loss if long else last >= pos.stop_loss):
            kind = "StopLoss"
        if kind is None or not self._book.live(symbol):
            return
        pos.take_profit = pos.stop_loss = None
        now = self._now()
        self._seq += 1
        size = abs(pos.size)
        o = PaperOrder(
            order_id=self._new_id(), link_id="", symbol=symbol, side="Sell" if long else "Buy",
            order_type="Market", price=ZERO, qty=size, tif="IOC", reduce_only=True, close_on_trigger=True,
            created_ms=now, updated_ms=now, seq=self._seq, leaves=size, stop_order_type=kind,
            create_type="CreateByTakeProfit" if kind == "TakeProfit" else "CreateByStopLoss",
            last_price_on_created=last,
        )
        self._orders[o.order_id] = o
        self._execute(o)

    # ---- feed callbacks ------------------------------------------------------------------------
    def on_trade(self, symbol: str, side: str, price: Decimal | str, qty: Decimal | str,
                 ts: int | None = None) -> None:
        """One public trade (``side`` is the taker's): consumes the queue ahead of resting orders
        at its price, fills them with what trades beyond it, and checks TP/SL.

        ``ts`` (the exchange's trade time) is informative only: fills are stamped with the venue
        clock, so the times the venue issues never go backwards."""
        p = to_decimal(price, "price")
        q = to_decimal(qty, "qty")
        if q <= 0 or side not in ("Buy", "Sell"):
            return
        self._last_price[symbol] = p
        self._queues.trade(symbol, side, p, q, self._maker_fill, lambda: self._book.view(symbol),
                           self._step(symbol))
        self._check_tpsl(symbol)

    def on_trades(self, event: Any) -> None:
        """A feed :class:`pysrc.feed.events.Trades` event: every on-book trade, in match order
        (block trades are off-book and consume no queue)."""
        for t in event.trades:
            if getattr(t, "block", False):
                continue
            self.on_trade(event.symbol, t.side, t.price, t.size, t.time)

    def on_book(self, symbol: str) -> None:
        """Re-check resting orders after a book update of ``symbol``: the opposite best reaching an
        order's price fills it in full (maker, at its price); size changes at an order's level
        move its queue. Also refreshes the mark. Cheap when nothing rests on the symbol."""
        if not self._book.live(symbol):
            self._book.forget(symbol)  # the book will be rebuilt: what was taken is moot
            self._queues.unanchor(symbol)
            return
        self._book.mid(symbol)
        opens = self._open.get(symbol)
        if not opens and not self._book.has_taken(symbol):
            return  # the common case: nothing of ours in this book
        view = self._book.view(symbol)
        self._book.prune(symbol, view)
        if not opens:
            return
        best_ask = self._book.best(symbol, False, view)
        best_bid = self._book.best(symbol, True, view)
        for o in sorted(opens.values(), key=lambda o: o.seq):
            crossed = (best_ask is not None and o.price >= best_ask) if o.buy else (
                best_bid is not None and o.price <= best_bid)
            if crossed and o.is_open:
                self._maker_fill(o, o.price, o.leaves)
        self._queues.observe(symbol, view, self._step(symbol))

    # ---- cancel --------------------------------------------------------------------------------
    async def cancel(self, symbol: str, order_link_id: str) -> CancelResult:
        """Cancel one open order. Unknown, filled or already cancelled: ``BybitApiError(110001)``,
        as the live client raises it on a first answer."""
        return self.cancel_now(symbol, order_link_id)

    def cancel_now(self, symbol: str, order_link_id: str) -> CancelResult:
        o = self._by_link.get(order_link_id)
        if o is None or o.symbol != symbol or not o.is_open:
            raise api_error(110001, "order not exists or too late to cancel", CANCEL_PATH)
        o.cancel_type = "CancelByUser"
        self._close(o, "Cancelled", self._now())
        self._emit_order(o)
        self._emit_position(symbol)
        self._emit_wallet()
        return CancelResult(CancelStatus.CANCELLED, o.order_id, o.link_id)

    # ---- amend ---------------------------------------------------------------------------------
    async def amend(self, symbol: str, order_link_id: str, *, qty: Decimal | None = None,
                    price: Decimal | None = None) -> AmendResult:
        """Amend a resting order's quantity and/or price (absolute values), like
        ``BybitVenue.amend``. A smaller quantity at the same price keeps the queue position; a new
        price or a larger quantity goes to the back of the queue (and may take liquidity)."""
        return self.amend_now(symbol, order_link_id, qty=qty, price=price)

    def amend_now(self, symbol: str, order_link_id: str, *, qty: Decimal | None = None,
                  price: Decimal | None = None) -> AmendResult:
        o = self._by_link.get(order_link_id)
        if o is None or o.symbol != symbol or not o.is_open:
            raise api_error(110001, "order not exists or too late to replace", AMEND_PATH)
        inst = self._instruments.get(symbol)
        if inst is None:
            raise api_error(10001, f"params error: symbol invalid ({symbol})", AMEND_PATH)
        new_qty = o.qty if qty is None else qty
        new_price = o.price if price is None else price
        if not isinstance(new_qty, Decimal) or not isinstance(new_price, Decimal):
            raise TypeError("qty and price must be Decimal")
        if new_qty <= 0 or not is_multiple(new_qty, inst.qty_step):
            raise api_error(10001, f"Qty invalid: {new_qty} is not a multiple of qtyStep {inst.qty_step}", AMEND_PATH)
        if new_price <= 0 or not is_multiple(new_price, inst.tick_size):
            raise api_error(10001, f"Price invalid: {new_price} is not a multiple of tickSize {inst.tick_size}",
                            AMEND_PATH)
        if new_qty == o.qty and new_price == o.price:
            raise api_error(10001, "The order remains unchanged as the parameters entered match the existing ones",
                            AMEND_PATH)
        if new_qty <= o.cum_qty:
            raise api_error(10001, "Qty invalid: new qty must be greater than the executed qty", AMEND_PATH)
        if new_qty < inst.min_qty or new_qty > inst.max_qty:
            raise api_error(10001, f"Qty invalid: outside [{inst.min_qty}, {inst.max_qty}]", AMEND_PATH)
        if o.reduce_only:
            held = self._position(symbol).size
            new_qty = min(new_qty, add(o.cum_qty, max(ZERO, -held if o.buy else held)))
        new_leaves = sub(new_qty, o.cum_qty)
        if new_price != o.price:
            if not self._book.live(symbol):
                raise api_error(NO_BOOK_CODE, f"paper: the order book of {symbol} is not live, try later",
                                AMEND_PATH)
            best_opp = self._book.best(symbol, not o.buy, self._book.view(symbol))
            takes = best_opp is not None and (new_price >= best_opp if o.buy else new_price <= best_opp)
            if o.tif == "PostOnly" and takes:
                raise api_error(10001, "PostOnly order would take liquidity at the new price", AMEND_PATH)
        if not o.reduce_only:
            old_im = self._order_im(o)
            value = mul(new_price, new_leaves)
            new_im = add(div(value, self._position(symbol).leverage), mul(value, self.taker_fee))
            if new_im > old_im and sub(new_im, old_im) > self._totals()["available"]:
                raise api_error(110007, "ab not enough for new order", AMEND_PATH)
        o.updated_ms = self._now()
        if new_price == o.price and new_leaves <= o.leaves:
            o.qty, o.leaves = new_qty, new_leaves  # keeps its place in the queue
            self._emit_order(o)
            self._emit_position(symbol)
            self._emit_wallet()
        else:
            self._queues.remove(o)
            self._open[symbol].pop(o.order_id, None)
            self._seq += 1
            o.seq = self._seq  # back of the queue
            o.qty, o.leaves, o.price = new_qty, new_leaves, new_price
            self._execute(o, amended=True)
        return AmendResult(AmendStatus.ACCEPTED, o.order_id, o.link_id)

    async def cancel_all(self, symbol: str | None = None) -> list[Json]:
        """Cancel every open order (of ``symbol``, or of all symbols); ``[{orderId, orderLinkId}]``."""
        now = self._now()
        done: list[PaperOrder] = []
        for sym, opens in list(self._open.items()):
            if symbol is not None and sym != symbol:
                continue
            for o in sorted(opens.values(), key=lambda o: o.seq):
                o.cancel_type = "CancelByUser"
                self._close(o, "Cancelled", now)
                done.append(o)
        if done:
            for o in done:
                self._emit_order(o)
            for sym in dict.fromkeys(o.symbol for o in done):
                self._emit_position(sym)
            self._emit_wallet()
        return [{"orderId": o.order_id, "orderLinkId": o.link_id} for o in done]

    # ---- position settings ---------------------------------------------------------------------
    async def set_leverage(self, symbol: str, leverage: Decimal) -> bool:
        """Like ``BybitRest.set_leverage``: True if changed, False if it already was so (110043)."""
        inst = self._instruments.get(symbol)
        if inst is None:
            raise api_error(10001, f"params error: symbol invalid ({symbol})", LEVERAGE_PATH)
        lo = inst.min_leverage or Decimal(1)
        hi = inst.max_leverage or Decimal(100)
        if not lo <= leverage <= hi or (inst.leverage_step and not is_multiple(leverage, inst.leverage_step)):
            raise api_error(10001, f"leverage invalid: must be {lo} to {hi}", LEVERAGE_PATH)
        pos = self._position(symbol)
        if pos.leverage == leverage:
            return False
        old, pos.leverage = pos.leverage, leverage
        if self._totals()["available"] < 0:
            pos.leverage = old
            raise api_error(110044, "Available margin is insufficient", LEVERAGE_PATH)
        pos.updated_ms = self._now()
        self._emit_position(symbol)
        self._emit_wallet()
        return True

    async def trading_stop(self, symbol: str, *, take_profit: Decimal | None = None,
                           stop_loss: Decimal | None = None) -> bool:
        """Set the position's TP/SL (``Decimal(0)`` removes one), like ``BybitRest.trading_stop``:
        False when nothing changed (34040)."""
        pos = self._positions.get(symbol)
        if pos is None or pos.size == 0:
            raise api_error(10001, "can not set tp/sl/ts for zero position", TRADING_STOP_PATH)
        tp = pos.take_profit if take_profit is None else (None if take_profit == 0 else take_profit)
        sl = pos.stop_loss if stop_loss is None else (None if stop_loss == 0 else stop_loss)
        if tp == pos.take_profit and sl == pos.stop_loss:
            return False
        base = self._last_price.get(symbol) or self._book.mid(symbol)
        self._check_tpsl_prices(symbol, pos.size > 0, tp if tp != pos.take_profit else None,
                                sl if sl != pos.stop_loss else None, base, TRADING_STOP_PATH)
        pos.take_profit, pos.stop_loss = tp, sl
        pos.updated_ms = self._now()
        self._emit_position(symbol)
        return True

    # ---- queries -------------------------------------------------------------------------------
    async def find_order(self, symbol: str, order_link_id: str) -> Json | None:
        o = self._by_link.get(order_link_id)
        if o is None or o.symbol != symbol:
            return None
        return self._order_dict(o)

    async def open_orders(self, symbol: str | None = None) -> list[Json]:
        """Open orders, newest first (``/v5/order/realtime`` shape)."""
        items = [o for sym, opens in self._open.items() if symbol is None or sym == symbol
                 for o in opens.values()]
        items.sort(key=lambda o: o.seq, reverse=True)
        return [self._order_dict(o) for o in items]

    async def order_history(self, symbol: str | None = None) -> list[Json]:
        """Closed orders kept in memory, newest first (``/v5/order/history`` shape)."""
        return [self._order_dict(o) for o in reversed(self._closed) if symbol is None or o.symbol == symbol]

    async def executions(self, symbol: str | None = None, *, start_time: int | None = None) -> list[Json]:
        """Fills, newest first (``/v5/execution/list`` shape)."""
        return [dict(e) for e in reversed(self._executions)
                if (symbol is None or e["symbol"] == symbol)
                and (start_time is None or int(e["execTime"]) >= start_time)]

    async def positions(self, symbol: str | None = None) -> list[Json]:
        """``/v5/position/list`` rows: with a symbol, its row even when flat; without, the
        non-zero positions only (as Bybit answers a ``settleCoin`` query)."""
        if symbol is not None:
            if symbol not in self._instruments and symbol not in self._positions:
                return []
            return [self._position_dict(self._position(symbol))]
        return [self._position_dict(p) for p in self._positions.values() if p.size != 0]

    async def wallet(self) -> Json:
        return self._wallet_dict()

    async def instruments(self) -> list[Instrument]:
        return list(self._instruments.values())

    # ---- shapes --------------------------------------------------------------------------------
    def _order_dict(self, o: PaperOrder, ws: bool = False) -> Json:
        sym = o.symbol
        avg = "" if o.cum_qty == 0 else money8(div(o.cum_value, o.cum_qty))
        leaves = o.leaves if o.is_open else ZERO
        has_tpsl = o.take_profit is not None or o.stop_loss is not None
        d: Json = {
            "category": "linear", "orderId": o.order_id, "orderLinkId": o.link_id, "blockTradeId": "",
            "parentOrderLinkId": "", "symbol": sym, "price": self._fmt_price(sym, o.price),
            "qty": self._fmt_qty(sym, o.qty), "side": o.side, "isLeverage": "", "positionIdx": 0,
            "orderStatus": o.status, "createType": o.create_type, "cancelType": o.cancel_type,
            "rejectReason": o.reject_reason, "avgPrice": avg, "leavesQty": self._fmt_qty(sym, leaves),
            "leavesValue": money(mul(o.price, leaves)), "cumExecQty": self._fmt_qty(sym, o.cum_qty),
            "cumExecValue": money(o.cum_value), "cumExecFee": money(o.cum_fee),
            "cumFeeDetail": {self.settle_coin: money(o.cum_fee)} if o.cum_qty else {},
            "timeInForce": o.tif, "orderType": o.order_type, "stopOrderType": o.stop_order_type,
            "orderIv": "", "marketUnit": "", "triggerPrice": "",
            "takeProfit": "" if o.take_profit is None else self._fmt_price(sym, o.take_profit),
            "stopLoss": "" if o.stop_loss is None else self._fmt_price(sym, o.stop_loss),
            "tpslMode": "Full" if has_tpsl else "", "ocoTriggerBy": "", "tpLimitPrice": "",
            "slLimitPrice": "", "tpTriggerBy": "LastPrice" if o.take_profit is not None else "",
            "slTriggerBy": "LastPrice" if o.stop_loss is not None else "", "triggerDirection": 0,
            "triggerBy": "", "lastPriceOnCreated": self._fmt_price(sym, o.last_price_on_created),
            "basePrice": self._fmt_price(sym, o.last_price_on_created),
            "reduceOnly": o.reduce_only, "closeOnTrigger": o.close_on_trigger, "placeType": "",
            "smpType": "None", "smpGroup": 0, "smpOrderId": "",
            "createdTime": str(o.created_ms), "updatedTime": str(o.updated_ms),
        }
        if ws:
            d["closedPnl"] = money(o.closed_pnl)
            d["feeCurrency"] = ""
            d["slippageToleranceType"] = o.slippage_type
            d["slippageTolerance"] = o.slippage
        return d

    def _position_dict(self, pos: PaperPosition, ws: bool = False) -> Json:
        sym = pos.symbol
        size = abs(pos.size)
        side = "Buy" if pos.size > 0 else ("Sell" if pos.size < 0 else "")
        avg = money8(div(pos.entry_value, size)) if size else "0"
        mark = self._book.mid(sym)
        im = div(pos.entry_value, pos.leverage)
        d: Json = {
            "positionIdx": 0, "riskId": 1, "riskLimitValue": "2000000", "symbol": sym, "side": side,
            "size": self._fmt_qty(sym, size), ("entryPrice" if ws else "avgPrice"): avg,
            "positionValue": money(pos.entry_value), "tradeMode": 0, "positionStatus": "Normal",
            "autoAddMargin": 0, "adlRankIndicator": 2 if size else 0, "leverage": money(pos.leverage),
            "positionBalance": money8(im), "markPrice": "" if mark is None else money8(mark),
            "liqPrice": "", "bustPrice": "", "positionMM": money8(mul(pos.entry_value, MAINTENANCE_RATE)),
            "positionIM": money8(im), "tpslMode": "Full",
            "takeProfit": "0" if pos.take_profit is None else self._fmt_price(sym, pos.take_profit),
            "stopLoss": "0" if pos.stop_loss is None else self._fmt_price(sym, pos.stop_loss),
            "trailingStop": "0", "unrealisedPnl": money(self._unrealised(pos, mark)),
            "curRealisedPnl": money(pos.cur_realised), "cumRealisedPnl": money(pos.cum_realised),
            "breakEvenPrice": avg, "sessionAvgPrice": "", "isReduceOnly": False,
            "mmrSysUpdatedTime": "", "leverageSysUpdatedTime": "",
            "createdTime": str(pos.created_ms), "updatedTime": str(pos.updated_ms), "seq": pos.seq,
        }
        if ws:
            d["category"] = "linear"
        return d

    @staticmethod
    def _unrealised(pos: PaperPosition, mark: Decimal | None) -> Decimal:
        """Exact: ``mark x size - entry cost`` for a long, the opposite for a short."""
        if pos.size == 0 or mark is None:
            return ZERO
        mark_value = mul(mark, abs(pos.size))
        return sub(mark_value, pos.entry_value) if pos.size > 0 else sub(pos.entry_value, mark_value)

    def _order_im(self, o: PaperOrder) -> Decimal:
        """Margin an open order reserves: its leaves value / leverage plus the taker fee on it
        (reduce-only orders reserve nothing)."""
        if o.reduce_only or not o.is_open:
            return ZERO
        value = mul(o.price, o.leaves)
        return add(div(value, self._position(o.symbol).leverage), mul(value, self.taker_fee))

    def _totals(self) -> dict[str, Decimal]:
        upl = pos_im = pos_mm = order_im = cum = ZERO
        for p in self._positions.values():
            upl = add(upl, self._unrealised(p, self._book.mid(p.symbol)))
            pos_im = add(pos_im, div(p.entry_value, p.leverage))
            pos_mm = add(pos_mm, mul(p.entry_value, MAINTENANCE_RATE))
            cum = add(cum, p.cum_realised)
        for opens in self._open.values():
            for o in opens.values():
                order_im = add(order_im, self._order_im(o))
        equity = add(self.balance, upl)
        im = add(pos_im, order_im)
        return {"upl": upl, "pos_im": pos_im, "pos_mm": pos_mm, "order_im": order_im,
                "equity": equity, "im": im, "available": sub(equity, im), "cum": cum}

    def _wallet_dict(self) -> Json:
        """The ``/v5/account/wallet-balance`` account entry (and the ``wallet`` push item).
        ``walletBalance`` is exact; derived figures (equity, margins) print at 8 decimals."""
        t = self._totals()
        eq, avail = t["equity"], t["available"]
        withdraw = max(ZERO, min(self.balance, avail))
        return {
            "accountType": "UNIFIED",
            "accountIMRate": money(div(t["im"], eq).quantize(Decimal("0.0001"))) if eq > 0 else "0",
            "accountMMRate": money(div(t["pos_mm"], eq).quantize(Decimal("0.0001"))) if eq > 0 else "0",
            "accountLTV": "0",
            "totalEquity": money8(eq),
            "totalWalletBalance": money(self.balance),
            "totalMarginBalance": money8(eq),
            "totalAvailableBalance": money8(avail),
            "totalPerpUPL": money8(t["upl"]),
            "totalInitialMargin": money8(t["im"]),
            "totalMaintenanceMargin": money8(t["pos_mm"]),
            "coin": [{
                "coin": self.settle_coin, "equity": money8(eq), "usdValue": money8(eq),
                "walletBalance": money(self.balance), "free": "", "locked": "0", "spotHedgingQty": "0",
                "borrowAmount": "0", "availableToWithdraw": money8(withdraw), "availableToBorrow": "",
                "accruedInterest": "0", "totalOrderIM": money8(t["order_im"]),
                "totalPositionIM": money8(t["pos_im"]), "totalPositionMM": money8(t["pos_mm"]),
                "unrealisedPnl": money8(t["upl"]), "cumRealisedPnl": money(t["cum"]), "bonus": "0",
                "collateralSwitch": True, "marginCollateral": True, "spotBorrow": "0",
            }],
        }

    # ---- persistence ---------------------------------------------------------------------------
    def snapshot(self, *, history: int | None = 1000) -> Json:
        """The paper state as JSON-safe data (Decimals as exact strings): balance and totals,
        positions, open orders with their queue positions, the newest ``history`` closed orders
        and executions (None: all kept in memory), every ``orderLinkId`` ever used (so a restarted
        bot cannot reuse one), marks, last prices and the id counters. The taken overlay is not
        kept: the book it refers to is gone after a restart."""
        opens = sorted((o for by_id in self._open.values() for o in by_id.values()), key=lambda o: o.seq)
        closed = list(self._closed)
        execs = list(self._executions)
        if history is not None:
            closed = closed[-history:] if history else []
            execs = execs[-history:] if history else []
        return {
            "version": SNAPSHOT_VERSION,
            "venue": self.name,
            "taken_at": self._now(),
            "balance": str(self.balance),
            "initial_balance": str(self.initial_balance),
            "total_fees": str(self.total_fees),
            "total_realised": str(self.total_realised),
            "id_salt": self._salt,
            "id_counter": self._id_counter,
            "seq": self._seq,
            "last_ms": self._last_ms,
            "positions": [p.to_state() for p in self._positions.values()],
            "open_orders": [o.to_state() for o in opens],
            "closed_orders": [o.to_state() for o in closed],
            "executions": [dict(e) for e in execs],
            "link_ids": sorted(self._used_links),
            "marks": {s: str(m) for s, m in self._book.marks.items()},
            "last_prices": {s: str(p) for s, p in self._last_price.items()},
        }

    def restore(self, state: Mapping[str, Any]) -> None:
        """Replace the paper state with a :meth:`snapshot` (after a restart, before trading).
        Fee rates and the default leverage stay as configured; each restored resting order keeps
        its queue ahead, re-anchored at the first sight of its level (a size seen before the
        restart says nothing about the book now). Sends no pushes."""
        if state.get("version") != SNAPSHOT_VERSION or state.get("venue") != self.name:
            raise ValueError(f"not a paper venue snapshot of version {SNAPSHOT_VERSION}")
        self._reset_state(to_decimal(state["initial_balance"], "initial_balance"))
        self.balance = to_decimal(state["balance"], "balance")
        self.total_fees = to_decimal(state.get("total_fees", "0"), "total_fees")
        self.total_realised = to_decimal(state.get("total_realised", "0"), "total_realised")
        self._salt = str(state["id_salt"])
        self._id_counter = int(state["id_counter"])
        self._seq = int(state["seq"])
        self._last_ms = int(state.get("last_ms", 0))
        for d in state.get("positions", []):
            p = PaperPosition.from_state(d)
            self._positions[p.symbol] = p
        for d in state.get("closed_orders", []):
            o = PaperOrder.from_state(d)
            self._orders[o.order_id] = o
            if o.link_id:
                self._by_link[o.link_id] = o
            self._closed.append(o)
        for d in state.get("open_orders", []):
            o = PaperOrder.from_state(d)
            self._orders[o.order_id] = o
            if o.link_id:
                self._by_link[o.link_id] = o
            self._open.setdefault(o.symbol, {})[o.order_id] = o
            if o.order_type == "Limit":
                self._queues.add(o, None)
        for e in state.get("executions", []):
            self._executions.append(dict(e))
        self._used_links = {str(x) for x in state.get("link_ids", [])}
        self._used_links.update(o.link_id for o in self._orders.values() if o.link_id)
        self._book.set_marks({s: to_decimal(v, "mark") for s, v in state.get("marks", {}).items()})
        self._last_price = {s: to_decimal(v, "last") for s, v in state.get("last_prices", {}).items()}

    # ---- introspection -------------------------------------------------------------------------
    def queue_ahead(self, symbol: str, order_link_id: str) -> Decimal | None:
        """The modelled public quantity ahead of a resting order (None if unknown / not resting)."""
        o = self._by_link.get(order_link_id)
        if o is None or o.symbol != symbol or not o.is_open:
            return None
        return o.ahead

    def stats(self) -> Json:
        return {
            "orders": len(self._orders),
            "open_orders": sum(len(v) for v in self._open.values()),
            "executions": len(self._executions),
            "wallet_balance": money(self.balance),
            "total_fees": money(self.total_fees),
            "total_realised": money(self.total_realised),
            "pushes_dropped": self.pushes_dropped,
            "push_errors": self.push_errors,
        }


__all__ = ["Clock", "PaperVenue"]
