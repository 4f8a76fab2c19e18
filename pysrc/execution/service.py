"""The order lifecycle service: idempotent placement, the order and position state machines driven
by the venue's pushes, persistence with history, audit, events, and the reconciliation task.

Placement protocol (``docs/execution.md`` walks through it with what a crash does at each step):

1. **Reserve the client order id** (``orderLinkId``): Redis ``SET NX`` with a 24 h TTL (the fast
   gate). A repeat finds the key: a finished one returns the recorded order; a pending one is
   someone else's request (a concurrent duplicate waits for its result).
2. **Claim it durably and write the order in PENDING_SUBMIT**, in one PostgreSQL transaction: the
   idempotency record (with the request's hash), the order row with its first transition
   (``submit``) and the audit entry. The unique ``order_link_id`` is the arbiter: whoever inserts
   the row owns the sending, everyone else waits for its outcome. Nothing leaves before this commit.
3. **Send** through the venue. A lost acknowledgement is resolved by the venue looking the order up
   by ``orderLinkId`` (never by sending again); only a confirmed ``NOT_FOUND`` is resent, with the
   same id (a late arrival of the first attempt then answers "duplicate").
4. **Record the outcome** through the state machine (``confirm_submit``, the looked-up record, a
   definite reject, or ``fail`` when the exchange confirms it never got the order) with its audit
   entry; an unknown outcome leaves the row in PENDING_SUBMIT for reconciliation.
5. **Complete the idempotency key** (Redis and PostgreSQL) with the result.

Pushes (``order``, ``execution``, ``position``, ``wallet``) run through the domain reducers
(duplicates, disorder, fills before the acknowledgement tolerated); each execution is stored once
(``exec_id``) in the same transaction as the order and position changes it causes, and a closed
round trip writes its trade row. Every change is published to subscribers after it committed.

Concurrency: one asyncio lock per symbol serialises the changes of that symbol's orders and
position in this process; optimistic locking (row version plus the history's sequence) catches any
other writer, and the change is recomputed from the fresh, replayed state. One service per account
and database runs at a time (a PostgreSQL advisory lock, held while the service runs).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Self

import asyncpg
import orjson

from pysrc.domain.events import (
    DomainEvent,
    order_transitioned,
    position_events,
    transition_refused,
)
from pysrc.domain.fsm import DomainError, InvalidTransition
from pysrc.domain.ids import ClientOrderIdGenerator, check_order_link_id
from pysrc.domain.orders import (
    Order,
    OrderState,
    OrderTransition,
    on_exchange_update,
    on_submit_accepted,
    on_submit_rejected,
)
from pysrc.domain.positions import (
    TRADE_LIKE_EXEC_TYPES,
    Position,
    PositionState,
    PositionTransition,
    on_execution,
)
from pysrc.domain.values import Execution, OrderUpdate, Side, optional_decimal
from pysrc.exchange.bybit.errors import BybitApiError
from pysrc.exchange.bybit.orders import CreateStatus, PlaceOrderResult
from pysrc.exchange.errors import ExchangeError, RetryClass
from pysrc.obs.log import EVENTS, current_trace_id, get_logger, new_trace_id, trace
from pysrc.store.audit import audit_context
from pysrc.store.bundle import Store
from pysrc.store.db import Executor, transaction
from pysrc.store.repositories import (
    IdempotencyConflict,
    NewExecution,
    NewOrder,
    NewPosition,
    NewTrade,
    OrderRow,
    PositionRow,
    StaleVersion,
    TradeRow,
    ms_to_datetime,
)

from .events import EventBus, ExchangePositionUpdated, Subscriber, WalletUpdated
from .model import (
    OrderIntent,
    OrderOutcomePending,
    OrderView,
    PositionView,
    ServiceNotStarted,
    TradingHalted,
    request_hash,
)
from .records import (
    K_INITIAL_PRICE,
    K_INITIAL_QTY,
    K_REQUEST_HASH,
    average,
    fills_of,
    order_fields,
    order_from_rows,
    position_fields,
    position_from_rows,
)
from .venue import OrderRequest, Venue

StepHook = Callable[[str, str], "None | Awaitable[None]"]
"""``hook(step, order_link_id)``, called at each step of an order's life (see :data:`STEPS`). The
default does nothing; the crash tests wire it to ``SIGKILL`` the process at a chosen step, other
tests to hold the order at a step while something else happens (e.g. the fill push arriving before
the REST answer is processed)."""

STEPS = ("reserved", "pending_submit", "sent", "acknowledged", "partial_fill")
"""``reserved``: the Redis key is ours, nothing durable yet. ``pending_submit``: the PENDING_SUBMIT
row is committed, nothing sent. ``sent``: the venue answered (the request left and was processed),
the answer is not recorded yet. ``acknowledged``: the outcome is recorded, the idempotency key is
not completed yet. ``partial_fill``: a push that partially fills an order is being recorded (its
transaction is not committed yet)."""

ACTOR_BOT = "bot"
HALTED_ERROR = "trading is halted by the kill switch: only reduce-only orders are accepted"
IDEMPOTENCY_NAMESPACE = "order:"
"""Prefix of the order ids in ``idempotency_records`` (other components may use the table)."""

_CREATE_TYPE_REASONS = {
    "CreateByStopLoss": "stop_loss",
    "CreateByTakeProfit": "take_profit",
    "CreateByTrailingStop": "trailing_stop",
    "CreateByPartialStopLoss": "stop_loss",
    "CreateByPartialTakeProfit": "take_profit",
    "CreateByLiq": "liquidation",
    "CreateByAdl_PassThrough": "adl",
    "CreateByTakeOver_PassThrough": "liquidation",
}

_LOG_EVENT_FOR_STATE = {
    OrderState.ACKNOWLEDGED: EVENTS.ORDER_ACKNOWLEDGED,
    OrderState.PARTIALLY_FILLED: EVENTS.ORDER_PARTIALLY_FILLED,
    OrderState.FILLED: EVENTS.ORDER_FILLED,
    OrderState.CANCELLED: EVENTS.ORDER_CANCELLED,
    OrderState.REJECTED: EVENTS.ORDER_REJECTED,
    OrderState.FAILED: EVENTS.ORDER_FAILED,
}


def now_utc() -> datetime:
    return datetime.now(UTC)


def _noop_hook(step: str, order_link_id: str) -> None:
    return None


class _Stale(Exception):
    """The cached entity is behind the database (another writer): reload and recompute."""


class _Claimed(Exception):
    """The client id's durable record exists: someone else owns the sending."""


@dataclass(slots=True)
class _OrderEntry:
    order: Order
    row: OrderRow


@dataclass(slots=True)
class _PositionEntry:
    position: Position
    row: PositionRow


@dataclass(slots=True)
class _Outcome:
    """What the venue said about a create. ``kind``: ``accepted`` (the exchange has the order),
    ``rejected`` (a definite business reject), ``not_found`` (the exchange confirms it never got
    it, even after the resends), ``not_sent`` (refused locally: breaker, rate limit, ban),
    ``unknown`` (reconciliation decides)."""

    kind: str
    result: PlaceOrderResult | None = None
    error: BaseException | None = None
    attempts: int = 1


class OrderService:
    """Orders and positions for one account and mode, persisted, audited and reconciled.

    ``store`` is the opened :class:`~pysrc.store.bundle.Store` (the caller owns it); ``venue`` the
    exchange or paper venue (the service starts and closes it). ``mode`` is stored with every row
    (``paper``, ``testnet``, ``demo``, ``live``).
    """

    ORDER_CACHE = 5000
    """Entities kept in memory (the database is the truth; a miss replays the history)."""

    def __init__(
        self,
        store: Store,
        venue: Venue,
        *,
        mode: str,
        clock: Callable[[], datetime] = now_utc,
        id_generator: ClientOrderIdGenerator | None = None,
        crash_hook: StepHook | None = None,
        reconcile_interval: float | None = 10.0,
        adopt_unknown: bool = False,
        duplicate_wait: float = 10.0,
        max_resends: int = 1,
        pending_grace: float = 30.0,
        category: str = "linear",
        exclusive: bool = True,
        bot_state_name: str = "default",
        instance: str | None = None,
    ) -> None:
        if mode not in ("paper", "testnet", "demo", "live"):
            raise ValueError(f"mode must be paper, testnet, demo or live, not {mode!r}")
        self.store = store
        self.venue = venue
        self.mode = mode
        self.clock = clock
        self.ids = id_generator or ClientOrderIdGenerator()
        self.crash_hook: StepHook = crash_hook or _noop_hook
        self.reconcile_interval = reconcile_interval
        self.duplicate_wait = duplicate_wait
        self.max_resends = max_resends
        self.pending_grace = pending_grace
        self.category = category
        self.exclusive = exclusive
        self.bot_state_name = bot_state_name
        self.instance = instance or uuid.uuid4().hex[:12]
        self.events = EventBus()
        self.log = get_logger("pysrc.execution").bind(mode=mode, instance=self.instance)
        self.halted = False
        self.wallet: dict[str, Any] | None = None
        self.exchange_positions: dict[str, dict[str, Any]] = {}
        """The latest ``position`` push or snapshot per symbol (the exchange's view)."""
        self.unknown_orders: dict[str, dict[str, Any]] = {}
        """Order pushes for orders this database does not know (by orderId), for reconciliation."""
        self.push_errors = 0
        self.refusals = 0
        self._orders: dict[str, _OrderEntry] = {}
        self._positions: dict[str, _PositionEntry | None] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._inflight: dict[str, asyncio.Future[None]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._ready = asyncio.Event()
        self._closed = False
        self._lock_conn: Any = None
        from .reconcile import Reconciler  # the reconciler uses this class's internals

        self.reconciler = Reconciler(self, adopt_unknown=adopt_unknown)

    # ---- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        """Take the service lock, connect the venue (pushes flow from here on), reconcile with
        the exchange, and only then accept orders; then reconcile every ``reconcile_interval`` s."""
        if self.exclusive:
            await self._take_service_lock()
        try:
            self.halted = await self.store.bot_state.is_halted(self.bot_state_name)
            await self.venue.start(self.on_push)
            report = await self.reconciler.run("startup", grace=0.0)
            if report.errors:
                # Orders must not go out while the local state is unverified: stop here.
                raise RuntimeError(f"start-up reconciliation failed: {report.errors}")
        except BaseException:
            await self._release_service_lock()
            raise
        self._ready.set()
        if self.reconcile_interval:
            self._spawn(self._reconcile_loop(self.reconcile_interval), "reconcile")
        self.log.info(EVENTS.BOT_STARTED, component="execution", halted=self.halted)

    async def close(self) -> None:
        """Stop the owned tasks (awaited), the venue and the service lock."""
        if self._closed:
            return
        self._closed = True
        self._ready.clear()
        tasks = list(self._tasks)
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        try:
            await self.venue.close()
        finally:
            await self._release_service_lock()
        self.log.info(EVENTS.BOT_STOPPED, component="execution")

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _spawn(self, coro: Awaitable[Any], name: str) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        task.set_name(f"execution.{name}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _reconcile_loop(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await self.reconciler.run("periodic")
            except asyncio.CancelledError:
                raise
            except Exception:
                self.log.exception("reconciliation_failed")

    async def _take_service_lock(self) -> None:
        conn = await self.store.pool.acquire()
        try:
            got = await conn.fetchval(
                "SELECT pg_try_advisory_lock(hashtext(current_schema() || ':execution:' || $1))", self.mode
            )
        except BaseException:
            await self.store.pool.release(conn)
            raise
        if not got:
            await self.store.pool.release(conn)
            raise RuntimeError(
                f"another execution service holds mode {self.mode!r} on this database: "
                "one service per account and database"
            )
        self._lock_conn = conn

    async def _release_service_lock(self) -> None:
        conn, self._lock_conn = self._lock_conn, None
        if conn is None:
            return
        try:
            with contextlib.suppress(Exception):  # the connection going away releases it too
                await conn.execute(
                    "SELECT pg_advisory_unlock(hashtext(current_schema() || ':execution:' || $1))", self.mode
                )
        finally:
            with contextlib.suppress(Exception):
                await self.store.pool.release(conn)

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Follow every committed change (domain events and the execution layer's own)."""
        return self.events.subscribe(callback)

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    @property
    def last_reconciliation(self) -> Any:
        """The last :class:`~pysrc.execution.reconcile.ReconciliationReport` (None before the
        first run)."""
        return self.reconciler.last_report

    def _require_ready(self) -> None:
        if not self._ready.is_set():
            raise ServiceNotStarted("the execution service has not finished its start-up reconciliation")

    async def _hook(self, step: str, link: str) -> None:
        res = self.crash_hook(step, link)
        if inspect.isawaitable(res):
            await res

    def _lock(self, symbol: str) -> asyncio.Lock:
        lock = self._locks.get(symbol)
        if lock is None:
            lock = self._locks[symbol] = asyncio.Lock()
        return lock

    def in_flight(self, order_link_id: str) -> bool:
        """A ``place`` of this id is running in this process (reconciliation leaves it alone)."""
        return order_link_id in self._inflight

    # ---- reading --------------------------------------------------------------------------------

    async def get(self, order_link_id: str) -> OrderView | None:
        row = await self.store.orders.get_by_link_id(order_link_id)
        return None if row is None or row.mode != self.mode else OrderView.from_row(row)

    async def list_orders(
        self, *, symbol: str | None = None, open_only: bool = False, limit: int = 100
    ) -> list[OrderView]:
        if open_only:
            rows = await self.store.orders.list_open(mode=self.mode, symbol=symbol)
        else:
            rows = [r for r in await self.store.orders.list_recent(symbol=symbol, limit=limit) if r.mode == self.mode]
        return [OrderView.from_row(r) for r in rows[:limit]]

    async def positions(self) -> list[PositionView]:
        """Active positions with the exchange's latest mark and unrealised PnL."""
        out = []
        for row in await self.store.positions.list_open(mode=self.mode):
            ex = self.exchange_positions.get(row.symbol) or {}
            out.append(
                PositionView.from_row(
                    row,
                    mark_price=optional_decimal(ex.get("markPrice")),
                    unrealised_pnl=optional_decimal(ex.get("unrealisedPnl")),
                    exchange_size=optional_decimal(ex.get("size")),
                )
            )
        return out

    async def trades(self, *, symbol: str | None = None, limit: int = 100) -> list[TradeRow]:
        return [t for t in await self.store.trades.recent(symbol=symbol, limit=limit) if t.mode == self.mode]

    # ---- placement ------------------------------------------------------------------------------

    async def place(self, intent: OrderIntent) -> OrderView:
        """Place ``intent`` exactly once (see the module docstring). Returns the order as recorded:
        for a repeat of an earlier request (same client id), that request's order with
        ``duplicate=True``. Raises :class:`TradingHalted` for a new non-reduce-only order while the
        kill switch is engaged, :class:`IdempotencyConflict` when the id belongs to a different
        request, :class:`OrderOutcomePending` when another process holds the id and has not
        recorded its outcome within ``duplicate_wait``."""
        self._require_ready()
        link = intent.client_order_id or self.ids.next_id(intent.symbol, intent.strategy)
        check_order_link_id(link)
        digest = request_hash(intent)
        trace_id = intent.trace_id or current_trace_id() or new_trace_id()
        with trace(trace_id):
            first = self._inflight.get(link)
            if first is not None:
                # A concurrent duplicate in this process: wait for the first, then ask again
                # (its result is recorded by then, or it was refused before claiming the id).
                await asyncio.shield(first)
                return await self.place(intent)
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._inflight[link] = fut
            try:
                return await self._place(link, digest, intent, trace_id)
            finally:
                if self._inflight.get(link) is fut:
                    del self._inflight[link]
                if not fut.done():
                    fut.set_result(None)

    async def _place(self, link: str, digest: str, intent: OrderIntent, trace_id: str) -> OrderView:
        keys = self.store.keys
        res = await keys.reserve(link, request_hash=digest, owner=self.instance)
        if not res.acquired:
            if res.state.finished:
                # Redis compared the request hashes already (IdempotencyConflict otherwise)
                return await self._recorded(link, digest, verified=res.state.request_hash is not None)
            # Pending: another request holds the key, or held it and died before its durable
            # claim. PostgreSQL decides: if the row exists its owner is known, wait for it.
            if await self.store.orders.get_by_link_id(link) is not None:
                return await self._await_outcome(link, digest)
        await self._hook("reserved", link)

        # Durable claim, one transaction: the halt check, the idempotency record, the
        # PENDING_SUBMIT row with its first transition, the audit entry.
        now = self.clock()
        order = Order(
            order_link_id=link,
            symbol=intent.symbol,
            side=Side(intent.side),
            order_type=intent.order_type,  # type: ignore[arg-type]
            qty=intent.qty,
            price=intent.price,
            time_in_force=intent.effective_time_in_force,  # type: ignore[arg-type]
            reduce_only=intent.reduce_only,
            strategy=intent.strategy,
            created_at=now,
        )
        t0 = order.submit(
            now,
            **{
                K_INITIAL_QTY: str(intent.qty),
                K_INITIAL_PRICE: "" if intent.price is None else str(intent.price),
                K_REQUEST_HASH: digest,
                "trace_id": trace_id,
                "actor": intent.actor,
                "source": "place",
            },
        )
        params = {**intent.params(), "order_link_id": link}
        try:
            async with transaction(self.store.pool) as conn:
                if not intent.reduce_only and await self.store.bot_state.is_halted(self.bot_state_name, conn=conn):
                    raise TradingHalted(HALTED_ERROR)
                claimed, _ = await self.store.idempotency.reserve(IDEMPOTENCY_NAMESPACE + link, digest, conn=conn)
                if not claimed:
                    raise _Claimed
                row = await self.store.orders.insert(
                    NewOrder(
                        order_link_id=link,
                        mode=self.mode,
                        symbol=intent.symbol,
                        side=intent.side,
                        order_type=intent.order_type,
                        qty=intent.qty,
                        price=intent.price,
                        reduce_only=intent.reduce_only,
                        time_in_force=intent.effective_time_in_force,
                        state=OrderState.PENDING_SUBMIT.value,
                        category=self.category,
                        take_profit=intent.take_profit,
                        stop_loss=intent.stop_loss,
                        strategy=intent.strategy,
                        signal=intent.context(),
                    ),
                    event=t0.event.value,
                    metadata=t0.metadata.as_dict(),
                    conn=conn,
                )
                await self.store.audit.record(
                    intent.actor, "order.submit", intent.reason or None, params, None, row, True, None,
                    trace_id, self._context(intent), entity=f"order:{link}", conn=conn,
                )
        except (_Claimed, asyncpg.UniqueViolationError):
            return await self._await_outcome(link, digest)
        except IdempotencyConflict:
            if res.acquired:
                await keys.release(link)
            raise
        except TradingHalted:
            # Refused before anything durable: the id is not used up (released for a later try).
            self.halted = True
            if res.acquired:
                await keys.release(link)
            await self.store.audit.record(
                intent.actor, "order.place", intent.reason or None, {**intent.params(), "order_link_id": link},
                None, None, False, HALTED_ERROR, trace_id, self._context(intent), entity=f"order:{link}",
            )
            raise
        self._cache_order(link, _OrderEntry(order, row))
        await self._publish_order(order, [t0])
        await self._hook("pending_submit", link)

        req = OrderRequest(
            symbol=intent.symbol,
            side=intent.side,
            order_type=intent.order_type,
            qty=intent.qty,
            order_link_id=link,
            price=intent.price,
            time_in_force=intent.time_in_force,
            reduce_only=intent.reduce_only,
            take_profit=intent.take_profit,
            stop_loss=intent.stop_loss,
        )
        self.log.info(EVENTS.ORDER_PLACED, order_link_id=link, symbol=intent.symbol, side=intent.side,
                      order_type=intent.order_type, qty=str(intent.qty),
                      price=None if intent.price is None else str(intent.price), reduce_only=intent.reduce_only)
        outcome = await self._send(req)
        await self._hook("sent", link)
        view = await self._record_outcome(link, intent, outcome, trace_id)
        await self._hook("acknowledged", link)
        await self._settle_idempotency(link, digest, view, durable=False)
        if outcome.kind == "unknown" and outcome.error is not None and not isinstance(outcome.error, ExchangeError):
            raise outcome.error
        return view

    async def _send(self, req: OrderRequest) -> _Outcome:
        attempts = 0
        while True:
            attempts += 1
            try:
                res = await self.venue.place(req)
            except asyncio.CancelledError:
                raise
            except ExchangeError as exc:
                if exc.retry is RetryClass.UNKNOWN_OUTCOME:
                    return _Outcome("unknown", None, exc, attempts)
                if isinstance(exc, BybitApiError):
                    return _Outcome("rejected", None, exc, attempts)
                return _Outcome("not_sent", None, exc, attempts)
            except Exception as exc:  # noqa: BLE001 - unknown: the row stays for reconciliation
                return _Outcome("unknown", None, exc, attempts)
            if res.status is CreateStatus.NOT_FOUND:
                if attempts <= self.max_resends:
                    # Confirmed absent: safe to resend with the SAME orderLinkId (a late arrival
                    # of the first attempt makes this one answer "duplicate").
                    self.log.warning("order_resend_same_link_id", order_link_id=req.order_link_id,
                                     attempt=attempts, cause=str(res.error))
                    continue
                return _Outcome("not_found", res, res.error, attempts)
            if res.status is CreateStatus.DUPLICATE and res.order is None:
                return _Outcome("unknown", res, res.error, attempts)
            return _Outcome("accepted", res, res.error, attempts)

    async def _record_outcome(self, link: str, intent: OrderIntent, out: _Outcome, trace_id: str) -> OrderView:
        res = out.result

        def decide(work: Order) -> list[OrderTransition]:
            if out.kind == "accepted":
                assert res is not None
                ts = on_submit_accepted(work, res.order_id or "")
                if res.order is not None:
                    ts += on_exchange_update(work, OrderUpdate.from_bybit(res.order))
                return ts
            if out.kind == "rejected":
                return on_submit_rejected(work, _error_text(out.error))
            if out.kind in ("not_found", "not_sent"):
                if work.state in (OrderState.PENDING_SUBMIT, OrderState.SUBMITTED):
                    why = (f"not found on the exchange after {out.attempts} attempt(s)" if out.kind == "not_found"
                           else f"not sent: {_error_text(out.error)}")
                    return [work.fail(why)]
                return []
            return []  # unknown: reconciliation resolves it

        success = out.kind == "accepted"
        error = None if success else f"{out.kind}: {_error_text(out.error)}"
        params = {
            **intent.params(),
            "order_link_id": link,
            "outcome": out.kind,
            "create_status": None if res is None else res.status.value,
            "exchange_order_id": None if res is None else res.order_id,
            "attempts": out.attempts,
        }
        async def complete_record(conn: Executor, row: OrderRow) -> None:
            # the durable idempotency record is completed with the outcome, atomically
            if row.state != OrderState.PENDING_SUBMIT.value:
                failed = row.state in (OrderState.REJECTED.value, OrderState.FAILED.value)
                await self.store.idempotency.complete(
                    IDEMPOTENCY_NAMESPACE + link, _result_of(row), status="failed" if failed else "completed", conn=conn
                )

        entry = await self._mutate_order(
            link, decide, actor=intent.actor, action="order.place", reason=intent.reason or None,
            params=params, success=success, error=error, trace_id=trace_id, context=self._context(intent),
            always_audit=True, extra=complete_record,
        )
        if out.kind == "unknown":
            self.log.warning("order_outcome_unknown", order_link_id=link, error=_error_text(out.error))
        return OrderView.from_row(entry.row)

    async def _settle_idempotency(self, link: str, digest: str, view: OrderView, *, durable: bool = True) -> None:
        """Complete the keys once the outcome is known (a PENDING_SUBMIT order is not settled yet:
        reconciliation calls this again when it resolves it). ``durable=False``: the PostgreSQL
        record was completed in the outcome's transaction already."""
        if view.state == OrderState.PENDING_SUBMIT.value:
            return
        failed = view.state in (OrderState.REJECTED.value, OrderState.FAILED.value)
        result = {"order_link_id": link, "state": view.state, "exchange_order_id": view.exchange_order_id,
                  "error": view.error}
        try:
            await self.store.keys.complete(link, result, failed=failed, request_hash=digest or None, owner=self.instance)
            if durable:
                with contextlib.suppress(Exception):  # the record may be missing (adopted orders)
                    await self.store.idempotency.complete(
                        IDEMPOTENCY_NAMESPACE + link, result, status="failed" if failed else "completed"
                    )
        except Exception:
            self.log.exception("idempotency_complete_failed", order_link_id=link)

    async def settle_idempotency(self, link: str) -> None:
        """Complete the keys of an order whose outcome reconciliation just resolved."""
        row = await self.store.orders.get_by_link_id(link)
        if row is None:
            return
        rec = await self.store.idempotency.get(IDEMPOTENCY_NAMESPACE + link)
        await self._settle_idempotency(link, rec.request_hash if rec else "", OrderView.from_row(row))

    async def _stored_hash(self, row: OrderRow) -> str | None:
        rec = await self.store.idempotency.get(IDEMPOTENCY_NAMESPACE + row.order_link_id)
        if rec is not None:
            return rec.request_hash
        history = await self.store.orders.transitions(row.id)
        return (history[0].metadata or {}).get(K_REQUEST_HASH) if history else None

    async def _recorded(self, link: str, digest: str, *, verified: bool = False) -> OrderView:
        """The recorded order of an earlier request with this id (after checking it is the same
        request, unless ``verified``)."""
        row = await self.store.orders.get_by_link_id(link)
        if row is None:
            raise OrderOutcomePending(link)
        stored = None if verified else await self._stored_hash(row)
        if stored is not None and stored != digest:
            raise IdempotencyConflict(f"client order id {link!r} was used for a different request")
        return OrderView.from_row(row, duplicate=True)

    async def _await_outcome(self, link: str, digest: str) -> OrderView:
        """Wait (bounded) until the owner of ``link`` has recorded its outcome."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.duplicate_wait
        delay = 0.005
        while True:
            # (Duplicates within this process never get here: place() waits for the first one.)
            row = await self.store.orders.get_by_link_id(link)
            key = await self.store.keys.get(link)
            if row is not None and row.state != OrderState.PENDING_SUBMIT.value:
                view = await self._recorded(link, digest)
                if key is None or not key.finished:
                    # its owner recorded the outcome but died before completing the key
                    await self._settle_idempotency(link, digest, view)
                return view
            if row is not None and key is not None and key.finished:
                return await self._recorded(link, digest)
            left = deadline - loop.time()
            if left <= 0:
                if row is not None:
                    stored = await self._stored_hash(row)
                    if stored is not None and stored != digest:
                        raise IdempotencyConflict(f"client order id {link!r} was used for a different request")
                raise OrderOutcomePending(link)
            await asyncio.sleep(min(delay, left))
            delay = min(delay * 2, 0.2)

    # ---- cancel / amend / close -------------------------------------------------------------------

    async def cancel(
        self, order_link_id: str, *, actor: str = ACTOR_BOT, reason: str = "", trace_id: str | None = None
    ) -> OrderView:
        """Ask the exchange to cancel the order (``request_cancel`` first when it is live). The
        final state comes from the order stream; a cancel answered "order gone" looks the order up
        and applies what the exchange has."""
        self._require_ready()
        link = order_link_id
        entry = await self._load_order(link)
        if entry is None:
            raise KeyError(f"unknown order {link!r}")
        tid = trace_id or current_trace_id() or new_trace_id()
        with trace(tid):
            if entry.order.is_terminal:
                return OrderView.from_row(entry.row)
            params: dict[str, Any] = {"order_link_id": link, "symbol": entry.row.symbol}

            def request(work: Order) -> list[OrderTransition]:
                if work.state in (OrderState.ACKNOWLEDGED, OrderState.PARTIALLY_FILLED):
                    return [work.request_cancel(actor=actor, reason=reason)]
                return []

            entry = await self._mutate_order(link, request, actor=actor, action="order.cancel_request",
                                             reason=reason or None, params=params, success=True, error=None,
                                             trace_id=tid, context={})
            try:
                result = await self.venue.cancel(entry.row.symbol, link)
            except ExchangeError as exc:
                gone = exc.retry is RetryClass.ORDER_GONE
                await self.store.audit.record(
                    actor, "order.cancel", reason or None, {**params, "order_gone": gone},
                    entry.row, entry.row, False, _error_text(exc), tid, {}, entity=f"order:{link}",
                )
                if not gone:
                    raise
                record = await self.venue.find_order(entry.row.symbol, link)
                if record is not None:
                    await self.apply_order_record(record, source="cancel_lookup")
                return await self._view(link)
            await self.store.audit.record(
                actor, "order.cancel", reason or None,
                {**params, "status": result.status.value, "attempts": result.attempts},
                entry.row, entry.row, True, None, tid, {}, entity=f"order:{link}",
            )
            return await self._view(link)

    async def amend(
        self,
        order_link_id: str,
        *,
        qty: Decimal | None = None,
        price: Decimal | None = None,
        actor: str = ACTOR_BOT,
        reason: str = "",
        trace_id: str | None = None,
    ) -> OrderView:
        """Amend a live order's price and/or quantity (absolute values). The new values are
        recorded when the order stream shows them (the ``amend`` event). Needs a venue with
        ``amend`` (the Bybit venue has it)."""
        self._require_ready()
        amend = getattr(self.venue, "amend", None)
        if amend is None:
            raise NotImplementedError(f"venue {self.venue.name!r} cannot amend orders")
        entry = await self._load_order(order_link_id)
        if entry is None:
            raise KeyError(f"unknown order {order_link_id!r}")
        tid = trace_id or current_trace_id() or new_trace_id()
        params = {"order_link_id": order_link_id, "qty": None if qty is None else str(qty),
                  "price": None if price is None else str(price)}
        with trace(tid):
            if not entry.order.is_live:
                error = f"cannot amend an order in state {entry.order.state.value}"
                await self.store.audit.record(actor, "order.amend", reason or None, params, entry.row, entry.row,
                                              False, error, tid, {}, entity=f"order:{order_link_id}")
                raise InvalidTransition("order", order_link_id, entry.order.state, "amend", error)
            try:
                result = await amend(entry.row.symbol, order_link_id, qty=qty, price=price)
            except ExchangeError as exc:
                await self.store.audit.record(actor, "order.amend", reason or None, params, entry.row, entry.row,
                                              False, _error_text(exc), tid, {}, entity=f"order:{order_link_id}")
                raise
            if getattr(result, "order", None):
                await self.apply_order_record(result.order, source="amend")
            await self.store.audit.record(actor, "order.amend", reason or None,
                                          {**params, "status": getattr(result.status, "value", str(result.status))},
                                          entry.row, entry.row, True, None, tid, {}, entity=f"order:{order_link_id}")
            return await self._view(order_link_id)

    async def cancel_all(self, *, actor: str = ACTOR_BOT, reason: str = "", symbol: str | None = None) -> list[OrderView]:
        """Cancel every open order we know, then sweep the venue (orders we do not know, e.g. one
        whose PENDING_SUBMIT row reconciliation has not resolved yet)."""
        self._require_ready()
        views = []
        for row in await self.store.orders.list_open(mode=self.mode, symbol=symbol):
            try:
                views.append(await self.cancel(row.order_link_id, actor=actor, reason=reason))
            except ExchangeError as exc:
                self.log.warning("cancel_failed", order_link_id=row.order_link_id, error=str(exc))
        swept = await self.venue.cancel_all(symbol)
        await self.store.audit.record(actor, "order.cancel_all", reason or None,
                                      {"symbol": symbol, "swept": [dict(x) for x in swept]},
                                      None, None, True, None, current_trace_id(), {}, entity="orders")
        return views

    async def close_position(
        self, symbol: str, *, reason: str, actor: str = ACTOR_BOT, strategy: str = "close",
        trace_id: str | None = None,
    ) -> OrderView | None:
        """Close the symbol's position at market with a reduce-only order for the size the
        exchange reports (the truth); records ``request_close`` with the reason first. None when
        the exchange shows no position."""
        self._require_ready()
        tid = trace_id or current_trace_id() or new_trace_id()
        with trace(tid):
            rows = [p for p in await self.venue.positions(symbol) if p.get("symbol") == symbol]
            for p in rows:
                self._note_exchange_position(p)
            ex = next((p for p in rows if (optional_decimal(p.get("size")) or Decimal(0)) > 0), None)
            if ex is None:
                return None
            size = Decimal(str(ex["size"]))
            side = Side(ex["side"])
            await self._request_close(symbol, reason, actor, tid)
            intent = OrderIntent(
                symbol=symbol, side=side.opposite.value, order_type="Market", qty=size, reduce_only=True,
                strategy=strategy, reason=reason, actor=actor, trace_id=tid,
            )
            return await self.place(intent)

    async def _request_close(self, symbol: str, reason: str, actor: str, trace_id: str) -> None:
        async with self._lock(symbol):
            for _ in range(3):
                entry = await self._load_position(symbol)
                if entry is None or entry.position.state is not PositionState.OPEN:
                    return
                work = entry.position.copy()
                ts = [work.request_close(reason)]
                try:
                    async with transaction(self.store.pool) as conn:
                        row = await self._commit_position(entry.row, work, ts, conn)
                        await self.store.audit.record(
                            actor, "position.close_request", reason, {"symbol": symbol, "size": str(work.size)},
                            entry.row, row, True, None, trace_id, {}, entity=f"position:{row.id}", conn=conn,
                        )
                except (StaleVersion, _Stale):
                    self._positions.pop(symbol, None)
                    continue
                self._positions[symbol] = _PositionEntry(work, row)
                await self._publish_positions(work, ts)
                return

    # ---- pushes -----------------------------------------------------------------------------------

    async def on_push(self, topic: str, item: Mapping[str, Any]) -> None:
        """One item of a private push. Never raises: a refused event is audited and logged (and
        reconciled), an item that cannot be processed goes to the dead letters."""
        try:
            if topic == "order" or topic.startswith("order."):
                await self.apply_order_record(item, source="push")
            elif topic.startswith("execution.fast"):
                return  # no fee, no execType: the full ``execution`` item carries the same fill
            elif topic == "execution" or topic.startswith("execution."):
                await self.apply_execution(item, source="push")
            elif topic == "position" or topic.startswith("position."):
                self._note_exchange_position(item)
                await self._publish_exchange_position(item)
            elif topic == "wallet":
                self.wallet = dict(item)
                await self.events.publish(
                    WalletUpdated(
                        occurred_at=self.clock(),
                        equity=optional_decimal(item.get("totalEquity")),
                        wallet_balance=optional_decimal(item.get("totalWalletBalance")),
                        available=optional_decimal(item.get("totalAvailableBalance")),
                        unrealised_pnl=optional_decimal(item.get("totalPerpUPL")),
                    )
                )
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.push_errors += 1
            self.log.exception("push_failed", topic=topic, error=str(exc))
            with contextlib.suppress(Exception):  # put() never raises; the payload might not encode
                self.store.dead_letters.put(f"execution.{topic}", orjson.dumps(dict(item), default=str),
                                            f"{type(exc).__name__}: {exc}")

    def _note_exchange_position(self, item: Mapping[str, Any]) -> None:
        symbol = str(item.get("symbol", ""))
        if not symbol:
            return
        self.exchange_positions[symbol] = dict(item)
        entry = self._positions.get(symbol)
        mark = optional_decimal(item.get("markPrice"))
        if entry is not None and mark is not None and mark > 0:
            entry.position.mark(mark)

    async def _publish_exchange_position(self, item: Mapping[str, Any]) -> None:
        await self.events.publish(
            ExchangePositionUpdated(
                occurred_at=self.clock(),
                symbol=str(item.get("symbol", "")),
                side=str(item.get("side", "")),
                size=optional_decimal(item.get("size")) or Decimal(0),
                entry_price=optional_decimal(item.get("entryPrice") or item.get("avgPrice")),
                mark_price=optional_decimal(item.get("markPrice")),
                unrealised_pnl=optional_decimal(item.get("unrealisedPnl")),
            )
        )

    async def apply_order_record(self, item: Mapping[str, Any], *, source: str) -> list[OrderTransition]:
        """Apply the exchange's record of an order (an ``order`` push, or a REST row) through the
        reducer and persist the transitions. Unknown orders are noted for reconciliation."""
        update = OrderUpdate.from_bybit(item)
        entry = await self._find_order(update.order_link_id, update.order_id, update.symbol)
        if entry is None:
            if update.order_id:
                self.unknown_orders[update.order_id] = dict(item)
            return []
        link = entry.row.order_link_id
        async with self._lock(entry.row.symbol):
            entry2 = await self._mutate_order(
                link, lambda work: on_exchange_update(work, update), actor=ACTOR_BOT,
                action="order.exchange_update", reason=source, params={"source": source, "status": update.status},
                success=True, error=None, trace_id=None, context={}, locked=True, partial_hook=True,
            )
        return entry2.order.history[len(entry.order.history):] if entry2 is not None else []

    async def apply_execution(self, item: Mapping[str, Any], *, source: str) -> bool:
        """Store one execution (once: ``exec_id``) and apply it to its order and to the symbol's
        position, in one transaction. Returns True if it was new."""
        e = Execution.from_bybit(item)
        async with self._lock(e.symbol):
            for _attempt in range(4):
                try:
                    return await self._apply_execution_once(e, item, source)
                except (_Stale, StaleVersion):
                    self._positions.pop(e.symbol, None)
                    if e.order_link_id:
                        self._orders.pop(e.order_link_id, None)
                    self._orders = {k: v for k, v in self._orders.items() if v.row.symbol != e.symbol}
            raise RuntimeError(f"execution {e.exec_id}: kept losing optimistic-lock races")

    async def _apply_execution_once(self, e: Execution, item: Mapping[str, Any], source: str) -> bool:
        if await self.store.executions.get(e.exec_id) is not None:
            return False  # a repeat: stored (and applied) already
        entry = await self._find_order(e.order_link_id, e.order_id, e.symbol)
        order_ts: list[OrderTransition] = []
        refused: DomainError | None = None
        work_order: Order | None = None
        if entry is not None:
            work_order = entry.order.copy()
            try:
                order_ts = on_exchange_update(work_order, e)
            except DomainError as exc:
                refused, work_order, order_ts = exc, None, []

        pos_entry = await self._load_position(e.symbol)
        pos_work: Position | None = None
        pos_ts: list[PositionTransition] = []
        opened: Position | None = None
        if e.exec_type in TRADE_LIKE_EXEC_TYPES or (e.exec_type == "Funding" and pos_entry is not None):
            if pos_entry is None:
                strategy = entry.row.strategy if entry is not None and entry.row.strategy else ""
                pos_work = Position(position_id="new", symbol=e.symbol, side=e.side, strategy=strategy,
                                    created_at=self.clock())
            else:
                pos_work = pos_entry.position.copy()
            try:
                upd = on_execution(pos_work, e, new_position_id=lambda: f"flip-{uuid.uuid4().hex[:12]}")
                pos_ts, opened = list(upd.transitions), upd.opened
            except DomainError as exc:
                self.log.error("position_refused_execution", symbol=e.symbol, exec_id=e.exec_id, error=str(exc))
                pos_work, pos_ts = None, []

        partial = any(t.to_state is OrderState.PARTIALLY_FILLED and t.from_state is not OrderState.PARTIALLY_FILLED
                      for t in order_ts)
        new_trades: list[TradeRow] = []
        async with transaction(self.store.pool) as conn:
            new = await self.store.executions.insert(
                NewExecution(
                    exec_id=e.exec_id, mode=self.mode, symbol=e.symbol, side=e.side.value, price=e.price,
                    qty=e.qty, exec_time=ms_to_datetime(e.exec_time or int(self.clock().timestamp() * 1000)),
                    order_id=entry.row.id if entry is not None else None,
                    exchange_order_id=e.order_id or None, order_link_id=e.order_link_id or None,
                    fee=e.fee, fee_currency=e.fee_currency or None, is_maker=e.is_maker, exec_type=e.exec_type,
                    seq=_int_or_none(item.get("seq")), closed_size=optional_decimal(item.get("closedSize")),
                    category=str(item.get("category") or self.category), raw=dict(item),
                ),
                conn=conn,
            )
            if not new:
                return False
            order_row = entry.row if entry is not None else None
            if entry is not None and work_order is not None and order_ts:
                order_row = await self._commit_order(entry.row, work_order, order_ts, conn)
            if refused is not None and entry is not None:
                await self._audit_refusal(entry.row, refused, source, conn)
            pos_row: PositionRow | None = None
            opened_row: PositionRow | None = None
            if pos_work is not None and pos_ts:
                ctx = (order_row.signal or {}) if order_row is not None else {}
                if pos_entry is None:
                    pos_row = await self._insert_position(pos_work, pos_ts, ctx, conn)
                else:
                    pos_row = await self._commit_position(pos_entry.row, pos_work, pos_ts, conn)
                if pos_work.is_terminal:
                    new_trades.append(await self._write_trade(pos_work, pos_row, order_row, item, conn))
                if opened is not None:
                    opened_row = await self._insert_position(opened, list(opened.history), ctx, conn)
                if order_row is not None and order_row.position_id is None:
                    target = opened_row if opened_row is not None else pos_row
                    order_row = await self.store.orders.update(order_row, position_id=target.id, conn=conn)
            if partial and entry is not None:
                await self._hook("partial_fill", entry.row.order_link_id)
        # committed: caches and events
        if entry is not None and work_order is not None and order_row is not None:
            self._cache_order(entry.row.order_link_id, _OrderEntry(work_order, order_row))
            await self._publish_order(work_order, order_ts)
        elif entry is not None and order_row is not None:
            entry.row = order_row
        if refused is not None and entry is not None:
            await self._publish_refusal(refused)
        if pos_work is not None and pos_row is not None:
            if opened is not None and opened_row is not None:
                self._positions[e.symbol] = _PositionEntry(opened, opened_row)
            elif pos_work.is_terminal:
                self._positions[e.symbol] = None
            else:
                self._positions[e.symbol] = _PositionEntry(pos_work, pos_row)
            await self._publish_positions(pos_work, pos_ts)
            if opened is not None:
                await self._publish_positions(opened, list(opened.history))
        for tr in new_trades:
            self.log.info(EVENTS.POSITION_CLOSED, symbol=tr.symbol, position_id=tr.position_id, pnl=str(tr.pnl),
                          exit_reason=tr.exit_reason)
        return True

    # ---- order persistence ------------------------------------------------------------------------

    async def _view(self, link: str) -> OrderView:
        row = await self.store.orders.get_by_link_id(link)
        assert row is not None
        return OrderView.from_row(row)

    async def _find_order(self, link: str, order_id: str, symbol: str = "") -> _OrderEntry | None:
        if link:
            entry = self._orders.get(link)
            if entry is not None:
                return entry
            row = await self.store.orders.get_by_link_id(link)
            if row is not None and row.mode == self.mode:
                return await self._load_order(link, row)
        if order_id:
            for entry in self._orders.values():
                if entry.row.exchange_order_id == order_id:
                    return entry
            row = await self.store.orders.get_by_exchange_id(self.mode, order_id)
            if row is not None:
                return await self._load_order(row.order_link_id, row)
        return None

    async def _load_order(self, link: str, row: OrderRow | None = None, *, fresh: bool = False) -> _OrderEntry | None:
        if not fresh:
            entry = self._orders.get(link)
            if entry is not None:
                return entry
        if row is None or fresh:
            row = await self.store.orders.get_by_link_id(link)
        if row is None:
            return None
        history = await self.store.orders.transitions(row.id)
        entry = _OrderEntry(order_from_rows(row, history), row)
        self._cache_order(link, entry)
        return entry

    def _cache_order(self, link: str, entry: _OrderEntry) -> None:
        """Keep the entity (finished ones too: late pushes, a second ``Filled``, fees after the
        fill, are common); bounded, oldest first out."""
        self._orders.pop(link, None)
        self._orders[link] = entry
        while len(self._orders) > self.ORDER_CACHE:
            self._orders.pop(next(iter(self._orders)))

    async def _commit_order(self, row: OrderRow, work: Order, ts: list[OrderTransition], conn: Executor) -> OrderRow:
        """Write ``ts`` (already applied to ``work``) as the row's next transitions."""
        fields = order_fields(work)
        fields.pop("state")
        for t in ts:
            row, tr = await self.store.orders.transition(
                row, t.to_state.value, t.event.value, t.metadata.as_dict(), conn=conn, **fields
            )
            if tr.seq != t.version:
                raise _Stale(f"order {row.order_link_id}: history at seq {tr.seq}, entity at v{t.version}")
        return row

    async def _mutate_order(
        self,
        link: str,
        decide: Callable[[Order], list[OrderTransition]],
        *,
        actor: str,
        action: str,
        reason: str | None,
        params: Mapping[str, Any],
        success: bool,
        error: str | None,
        trace_id: str | None,
        context: Mapping[str, Any],
        always_audit: bool = False,
        locked: bool = False,
        partial_hook: bool = False,
        extra: Callable[[Executor, OrderRow], Awaitable[None]] | None = None,
    ) -> _OrderEntry:
        """Recompute ``decide`` on a copy of the order until its transitions commit (optimistic
        locking); audit it when ``always_audit`` (capital actions), refusals always."""
        entry0 = await self._load_order(link)
        if entry0 is None:
            raise KeyError(f"unknown order {link!r}")
        lock = contextlib.nullcontext() if locked else self._lock(entry0.row.symbol)
        async with lock:
            for _ in range(4):
                entry = await self._load_order(link)
                assert entry is not None
                work = entry.order.copy()
                try:
                    ts = decide(work)
                except DomainError as exc:
                    await self._audit_refusal(entry.row, exc, action, self.store.pool)
                    await self._publish_refusal(exc)
                    if action.startswith("order.exchange_update"):
                        return entry  # a push the machine refuses: audited, logged, reconciled
                    raise
                if not ts and not always_audit:
                    return entry
                try:
                    async with transaction(self.store.pool) as conn:
                        row = await self._commit_order(entry.row, work, ts, conn) if ts else entry.row
                        if always_audit:
                            await self.store.audit.record(
                                actor, action, reason, dict(params), entry.row, row, success, error,
                                trace_id or current_trace_id(), dict(context), entity=f"order:{link}", conn=conn,
                            )
                        if extra is not None:
                            await extra(conn, row)
                        if partial_hook and any(
                            t.to_state is OrderState.PARTIALLY_FILLED and t.from_state is not OrderState.PARTIALLY_FILLED
                            for t in ts
                        ):
                            await self._hook("partial_fill", link)
                except (StaleVersion, _Stale):
                    self._orders.pop(link, None)
                    continue
                new_entry = _OrderEntry(work, row)
                self._cache_order(link, new_entry)
                await self._publish_order(work, ts)
                return new_entry
        raise RuntimeError(f"order {link}: kept losing optimistic-lock races")

    async def fail_order(self, link: str, reason: str, *, actor: str, action: str, trace_id: str | None = None) -> OrderView:
        """Give an order up (``fail``), audited: used by reconciliation for orders lost before
        submission (confirmed absent on the exchange)."""
        entry = await self._mutate_order(
            link, lambda w: [] if w.is_terminal else [w.fail(reason)], actor=actor, action=action,
            reason=reason, params={"order_link_id": link}, success=True, error=None, trace_id=trace_id,
            context={}, always_audit=True,
        )
        return OrderView.from_row(entry.row)

    async def _audit_refusal(self, row: OrderRow, exc: BaseException, source: str, conn: Executor) -> None:
        self.refusals += 1
        fields = exc.log_fields() if isinstance(exc, InvalidTransition) else {"error": str(exc)}
        self.log.warning("transition_refused", order_link_id=row.order_link_id, source=source, refusal=fields)
        await self.store.audit.record(
            ACTOR_BOT, "order.transition_refused", source, {"order_link_id": row.order_link_id, **fields},
            row, None, False, f"{type(exc).__name__}: {exc}", current_trace_id(), {},
            entity=f"order:{row.order_link_id}", conn=conn,
        )

    async def _publish_refusal(self, exc: BaseException) -> None:
        if isinstance(exc, InvalidTransition):
            await self.events.publish(transition_refused(exc, self.clock()))

    async def _publish_order(self, order: Order, ts: Iterable[OrderTransition]) -> None:
        events: list[DomainEvent] = []
        for t in ts:
            events.append(order_transitioned(order, t))
            name = _LOG_EVENT_FOR_STATE.get(t.to_state) if t.to_state is not t.from_state else None
            if name is not None:
                self.log.info(name, order_link_id=order.order_link_id, symbol=order.symbol,
                              filled_qty=str(order.filled_qty), reason=order.reason or None)
        await self.events.publish_all(events)

    # ---- position persistence ---------------------------------------------------------------------

    async def _load_position(self, symbol: str) -> _PositionEntry | None:
        if symbol in self._positions:
            return self._positions[symbol]
        row = await self.store.positions.get_active(self.mode, symbol)
        if row is None:
            self._positions[symbol] = None
            return None
        history = await self.store.positions.transitions(row.id)
        entry = _PositionEntry(position_from_rows(row, history), row)
        mark = optional_decimal((self.exchange_positions.get(symbol) or {}).get("markPrice"))
        if mark is not None and mark > 0:
            entry.position.mark(mark)
        self._positions[symbol] = entry
        return entry

    async def _insert_position(
        self, pos: Position, ts: list[PositionTransition], ctx: Mapping[str, Any], conn: Executor
    ) -> PositionRow:
        first, rest = ts[0], ts[1:]
        fields = position_fields(pos)
        row = await self.store.positions.insert(
            NewPosition(
                mode=self.mode, symbol=pos.symbol, side=pos.side.value, size=fields["size"],
                entry_price=fields["entry_price"], state=first.to_state.value, category=self.category,
                strategy=pos.strategy or None, entry_reason=ctx.get("reason") or None,
                signal_type=ctx.get("signal_type"), signal=ctx.get("signal"), opened_at=pos.opened_at,
            ),
            event=first.event.value, metadata=first.metadata.as_dict(), conn=conn,
        )
        pos.position_id = str(row.id)
        if rest:
            row = await self._commit_position(row, pos, rest, conn)
        elif row.fees != fields["fees"] or row.realised_pnl != fields["realised_pnl"]:
            # the insert cannot carry them: the opening fill's fee
            row = await self.store.positions.update(row, realised_pnl=fields["realised_pnl"], fees=fields["fees"],
                                                    conn=conn)
        return row

    async def _commit_position(
        self, row: PositionRow, work: Position, ts: list[PositionTransition], conn: Executor
    ) -> PositionRow:
        fields = position_fields(work)
        fields.pop("state")
        for t in ts:
            row, tr = await self.store.positions.transition(
                row, t.to_state.value, t.event.value, t.metadata.as_dict(), conn=conn, **fields
            )
            if tr.seq != t.version:
                raise _Stale(f"position {row.id}: history at seq {tr.seq}, entity at v{t.version}")
        return row

    async def _write_trade(
        self, pos: Position, row: PositionRow, order_row: OrderRow | None, item: Mapping[str, Any], conn: Executor
    ) -> TradeRow:
        """The closed round trip: quantities and average prices from the position's own fills,
        PnL net of fees and funding, the entry's reason and signal, the exit's reason."""
        entries, exits = fills_of(pos)
        _, entry_price = average(entries)
        qty_out, exit_price = average(exits)
        reason = _exit_reason(pos, order_row, item)
        if row.exit_reason != reason:
            row = await self.store.positions.update(row, exit_reason=reason, conn=conn)
        exit_time = pos.closed_at or self.clock()
        entry_time = pos.opened_at or row.opened_at
        trade = await self.store.trades.insert(
            NewTrade(
                mode=self.mode, symbol=pos.symbol, side=pos.side.value, qty=qty_out,
                entry_price=entry_price or Decimal(0), exit_price=exit_price or Decimal(0),
                entry_time=entry_time, exit_time=max(exit_time, entry_time), pnl=pos.net_pnl, fees=pos.fees,
                position_id=row.id, strategy=row.strategy, entry_reason=row.entry_reason, exit_reason=reason,
                signal_type=row.signal_type, signal_data=row.signal,
            ),
            conn=conn,
        )
        await self.store.audit.record(
            ACTOR_BOT, "position.closed", reason,
            {"symbol": pos.symbol, "position_id": row.id, "qty": str(qty_out), "state": pos.state.value},
            None, {"trade_id": trade.id, "pnl": str(trade.pnl), "fees": str(trade.fees),
                   "entry_price": str(trade.entry_price), "exit_price": str(trade.exit_price)},
            True, None, current_trace_id(), audit_context(signal=row.signal), entity=f"position:{row.id}", conn=conn,
        )
        return trade

    async def _publish_positions(self, pos: Position, ts: Iterable[PositionTransition]) -> None:
        events: list[DomainEvent] = []
        for t in ts:
            events.extend(position_events(pos, t))
            if t.to_state is PositionState.OPEN and t.from_state is PositionState.PENDING_OPEN:
                self.log.info(EVENTS.POSITION_OPENED, symbol=pos.symbol, side=pos.side.value, size=str(pos.size),
                              position_id=pos.position_id)
        await self.events.publish_all(events)

    def _context(self, intent: OrderIntent) -> dict[str, Any]:
        return audit_context(
            signal=dict(intent.signal) if intent.signal is not None else None,
            market=dict(intent.market) if intent.market is not None else None,
            indicators=dict(intent.indicators) if intent.indicators is not None else None,
            strategy=intent.strategy,
            signal_type=intent.signal_type,
        )


def _exit_reason(pos: Position, order_row: OrderRow | None, item: Mapping[str, Any]) -> str:
    if pos.state is PositionState.LIQUIDATED:
        return "liquidation"
    if pos.close_reason and pos.close_reason not in TRADE_LIKE_EXEC_TYPES:
        return pos.close_reason  # request_close's reason (kill switch, close_position)
    if order_row is not None and isinstance(order_row.signal, Mapping) and order_row.signal.get("reason"):
        return str(order_row.signal["reason"])
    by_type = _CREATE_TYPE_REASONS.get(str(item.get("createType", "")))
    if by_type:
        return by_type
    return "exit" if order_row is not None else "external"


def _result_of(row: OrderRow) -> dict[str, Any]:
    return {"order_link_id": row.order_link_id, "state": row.state, "exchange_order_id": row.exchange_order_id,
            "error": row.error}


def _error_text(exc: BaseException | None) -> str:
    if exc is None:
        return ""
    return f"{type(exc).__name__}: {exc}"


def _int_or_none(v: Any) -> int | None:
    try:
        return None if v is None or v == "" else int(v)
    except (TypeError, ValueError):
        return None


__all__ = ["ACTOR_BOT", "IDEMPOTENCY_NAMESPACE", "STEPS", "OrderService", "StepHook"]
