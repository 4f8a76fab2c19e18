"""Repositories over the store's tables: typed rows in, typed rows out, constant SQL.

Conventions:

* Rows are frozen dataclasses whose fields are the table's columns in order; a row read from the
  database carries its ``version``.
* **Optimistic locking.** ``update(current, **changes)`` writes ``UPDATE ... WHERE id = $1 AND
  version = $2`` with ``current.version`` and bumps the version; when another writer got there
  first nothing matches and :class:`StaleVersion` is raised, so a decision taken on stale state is
  never applied. ``mutate(id, fn)`` re-reads the row and re-runs ``fn`` until the write succeeds
  (bounded); :func:`retry_on_stale` does the same for any operation.
* **Transitions.** ``transition(current, to_state, event, metadata, **changes)`` updates the row
  and appends its history entry (``from_state`` = ``current.state``, ``seq`` = next) in one
  statement. The state machine decides whether a transition is legal; the store records it.
* Every method takes ``conn=`` to run inside the caller's transaction
  (:func:`pysrc.store.db.transaction`), e.g. an order update together with its audit entry.
* SQL text is constant per method, so asyncpg prepares each statement once per connection.
* Money is ``Decimal`` (or ``str``/``int``); the connection codec refuses floats.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, ClassVar, Generic, TypeVar

import asyncpg

from .audit import ACTOR_BOT, AuditLog
from .db import Executor, transaction

T = TypeVar("T")
R = TypeVar("R")

ORDER_STATES = (
    "NEW", "PENDING_SUBMIT", "SUBMITTED", "ACKNOWLEDGED", "PARTIALLY_FILLED",
    "FILLED", "PENDING_CANCEL", "CANCELLED", "REJECTED", "FAILED",
)
ORDER_TERMINAL_STATES = frozenset({"FILLED", "CANCELLED", "REJECTED", "FAILED"})
ORDER_OPEN_STATES = tuple(s for s in ORDER_STATES if s not in ORDER_TERMINAL_STATES)
MODES = ("paper", "testnet", "demo", "live")
POSITION_TERMINAL_STATES = frozenset({"CLOSED", "LIQUIDATED", "CANCELLED"})


# ---- errors and retries -----------------------------------------------------------------------


class StoreError(Exception):
    """Base of the repositories' errors."""


class NotFound(StoreError, KeyError):
    """No row with that key."""


class StaleVersion(StoreError):
    """An optimistic update lost: the row changed since it was read (or is gone)."""

    def __init__(self, table: str, row_id: Any, expected_version: int, actual_version: int | None) -> None:
        self.table = table
        self.row_id = row_id
        self.expected_version = expected_version
        self.actual_version = actual_version
        now = "deleted" if actual_version is None else f"now at version {actual_version}"
        super().__init__(f"{table} {row_id}: expected version {expected_version}, {now}")


class IdempotencyConflict(StoreError):
    """The idempotency key is already used by a different request."""


async def retry_on_stale(
    operation: Callable[[], Awaitable[T]],
    *,
    attempts: int = 5,
    base_delay: float = 0.002,
    max_delay: float = 0.1,
) -> T:
    """Run ``operation`` (which must re-read what it changes) until it does not raise
    :class:`StaleVersion`, at most ``attempts`` times, with jittered exponential backoff."""
    if attempts < 1:
        raise ValueError("attempts must be >= 1")
    delay = base_delay
    for attempt in range(1, attempts + 1):
        try:
            return await operation()
        except StaleVersion:
            if attempt == attempts:
                raise
            await asyncio.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, max_delay)
    raise AssertionError("unreachable")


@dataclass(frozen=True, slots=True)
class Change:
    """What a ``mutate`` callback wants: column changes, and optionally a recorded transition
    (``fields`` then normally includes the new ``state``)."""

    fields: Mapping[str, Any] = field(default_factory=dict)
    event: str | None = None
    metadata: Mapping[str, Any] | None = None


def _cols(cls: type) -> str:
    return ", ".join(f.name for f in fields(cls))


def _row(cls: type[R], rec: asyncpg.Record | None) -> R | None:
    return None if rec is None else cls(*rec)


# ---- rows ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NewOrder:
    """An order to insert. ``state`` is usually NEW or PENDING_SUBMIT (written before the request
    leaves)."""

    order_link_id: str
    mode: str
    symbol: str
    side: str
    order_type: str
    qty: Decimal
    price: Decimal | None = None
    reduce_only: bool = False
    time_in_force: str = "GTC"
    state: str = "NEW"
    category: str = "linear"
    take_profit: Decimal | None = None
    stop_loss: Decimal | None = None
    strategy: str | None = None
    signal: Any = None
    position_id: int | None = None
    exchange_order_id: str | None = None


@dataclass(frozen=True, slots=True)
class OrderRow:
    id: int
    order_link_id: str
    exchange_order_id: str | None
    mode: str
    category: str
    symbol: str
    side: str
    order_type: str
    qty: Decimal
    price: Decimal | None
    reduce_only: bool
    time_in_force: str
    state: str
    filled_qty: Decimal
    avg_fill_price: Decimal | None
    fees: Decimal
    take_profit: Decimal | None
    stop_loss: Decimal | None
    strategy: str | None
    signal: Any
    position_id: int | None
    error: str | None
    created_at: datetime
    updated_at: datetime
    version: int

    MUTABLE: ClassVar[tuple[str, ...]] = (
        "exchange_order_id", "state", "qty", "price", "filled_qty", "avg_fill_price", "fees",
        "take_profit", "stop_loss", "position_id", "error", "signal",
    )

    @property
    def is_open(self) -> bool:
        return self.state not in ORDER_TERMINAL_STATES


@dataclass(frozen=True, slots=True)
class TransitionRow:
    """One recorded state change of an order or a position (``entity_id`` is its id)."""

    id: int
    entity_id: int
    seq: int
    from_state: str | None
    to_state: str
    event: str
    at: datetime
    metadata: Any


@dataclass(frozen=True, slots=True)
class NewPosition:
    mode: str
    symbol: str
    side: str
    size: Decimal = Decimal(0)
    entry_price: Decimal | None = None
    state: str = "OPEN"
    category: str = "linear"
    leverage: Decimal | None = None
    stop_loss: Decimal | None = None
    take_profit: Decimal | None = None
    strategy: str | None = None
    entry_reason: str | None = None
    signal_type: str | None = None
    signal: Any = None
    opened_at: datetime | None = None  # default: now()


@dataclass(frozen=True, slots=True)
class PositionRow:
    id: int
    mode: str
    category: str
    symbol: str
    side: str
    state: str
    size: Decimal
    entry_price: Decimal | None
    exit_price: Decimal | None
    leverage: Decimal | None
    realised_pnl: Decimal
    fees: Decimal
    stop_loss: Decimal | None
    take_profit: Decimal | None
    strategy: str | None
    entry_reason: str | None
    exit_reason: str | None
    signal_type: str | None
    signal: Any
    opened_at: datetime
    closed_at: datetime | None
    created_at: datetime
    updated_at: datetime
    version: int

    MUTABLE: ClassVar[tuple[str, ...]] = (
        "state", "size", "entry_price", "exit_price", "leverage", "realised_pnl", "fees",
        "stop_loss", "take_profit", "exit_reason", "closed_at",
    )

    @property
    def is_active(self) -> bool:
        return self.closed_at is None


@dataclass(frozen=True, slots=True)
class NewExecution:
    exec_id: str
    mode: str
    symbol: str
    side: str
    price: Decimal
    qty: Decimal
    exec_time: datetime
    order_id: int | None = None
    exchange_order_id: str | None = None
    order_link_id: str | None = None
    fee: Decimal = Decimal(0)
    fee_currency: str | None = None
    is_maker: bool | None = None
    exec_type: str = "Trade"
    seq: int | None = None
    closed_size: Decimal | None = None
    category: str = "linear"
    raw: Any = None


@dataclass(frozen=True, slots=True)
class ExecutionRow:
    id: int
    exec_id: str
    order_id: int | None
    exchange_order_id: str | None
    order_link_id: str | None
    mode: str
    category: str
    symbol: str
    side: str
    price: Decimal
    qty: Decimal
    fee: Decimal
    fee_currency: str | None
    is_maker: bool | None
    exec_type: str
    exec_time: datetime
    seq: int | None
    closed_size: Decimal | None
    raw: Any
    received_at: datetime


@dataclass(frozen=True, slots=True)
class FillTotals:
    """Sum of an order's trade executions (``exec_type = 'Trade'``)."""

    count: int
    qty: Decimal
    notional: Decimal
    """Sum of price x qty (exact)."""
    avg_price: Decimal | None
    """notional / qty, as PostgreSQL divides (16 or more significant digits)."""
    fees: Decimal


@dataclass(frozen=True, slots=True)
class NewTrade:
    mode: str
    symbol: str
    side: str
    qty: Decimal
    entry_price: Decimal
    exit_price: Decimal
    entry_time: datetime
    exit_time: datetime
    pnl: Decimal
    fees: Decimal = Decimal(0)
    position_id: int | None = None
    strategy: str | None = None
    entry_reason: str | None = None
    exit_reason: str | None = None
    signal_type: str | None = None
    signal_data: Any = None


@dataclass(frozen=True, slots=True)
class TradeRow:
    id: int
    position_id: int | None
    mode: str
    symbol: str
    side: str
    qty: Decimal
    entry_price: Decimal
    exit_price: Decimal
    entry_time: datetime
    exit_time: datetime
    pnl: Decimal
    fees: Decimal
    strategy: str | None
    entry_reason: str | None
    exit_reason: str | None
    signal_type: str | None
    signal_data: Any
    created_at: datetime


@dataclass(frozen=True, slots=True)
class IdempotencyRecord:
    key: str
    request_hash: str
    status: str
    result: Any
    created_at: datetime
    updated_at: datetime
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class BotState:
    name: str
    halted: bool
    halted_at: datetime | None
    halted_by: str | None
    halt_reason: str | None
    resumed_at: datetime | None
    resumed_by: str | None
    resume_reason: str | None
    data: Any
    updated_at: datetime
    version: int


@dataclass(frozen=True, slots=True)
class MarketSnapshot:
    ts: datetime
    symbol: str
    best_bid: Decimal | None = None
    best_ask: Decimal | None = None
    bid_size: Decimal | None = None
    ask_size: Decimal | None = None
    last_price: Decimal | None = None
    mark_price: Decimal | None = None
    data: Any = None


def ms_to_datetime(ms: int | str) -> datetime:
    """Bybit millisecond timestamps (``execTime``, ``createdTime``) to an aware UTC datetime."""
    return datetime.fromtimestamp(int(ms) / 1000, tz=UTC)


# ---- versioned rows with transitions (orders, positions) -----------------------------------------


class _VersionedRepository(Generic[R]):
    """Shared optimistic-locking and transition logic; subclasses set the table and row type."""

    TABLE: ClassVar[str]
    TRANSITIONS: ClassVar[str]
    FK: ClassVar[str]
    ROW: ClassVar[type]

    def __init__(self, executor: Executor) -> None:
        self._db = executor
        row = self.ROW
        cols = _cols(row)
        mutable = row.MUTABLE  # type: ignore[attr-defined]
        sets = ", ".join(f"{c} = ${i + 3}" for i, c in enumerate(mutable))
        n = len(mutable) + 2
        self._mutable: tuple[str, ...] = mutable
        self._sql_get = f"SELECT {cols} FROM {self.TABLE} WHERE id = $1"
        self._sql_version = f"SELECT version FROM {self.TABLE} WHERE id = $1"
        self._sql_update = (
            f"UPDATE {self.TABLE} SET {sets}, updated_at = now(), version = version + 1 "
            f"WHERE id = $1 AND version = $2 RETURNING {cols}"
        )
        tcols = _cols(TransitionRow).replace("entity_id", f"{self.FK} AS entity_id")
        qualified = ", ".join(f"upd.{f.name}" for f in fields(row))
        self._sql_transition = (
            f"WITH upd AS ({self._sql_update}), "
            f"tr AS (INSERT INTO {self.TRANSITIONS} ({self.FK}, seq, from_state, to_state, event, metadata) "
            f"SELECT upd.id, COALESCE((SELECT max(t.seq) FROM {self.TRANSITIONS} t WHERE t.{self.FK} = $1), 0) + 1, "
            f"${n + 1}, upd.state, ${n + 2}, ${n + 3} FROM upd RETURNING {tcols}) "
            f"SELECT {qualified}, tr.* FROM upd, tr"
        )
        self._sql_add_transition = (
            f"INSERT INTO {self.TRANSITIONS} ({self.FK}, seq, from_state, to_state, event, metadata, at) "
            f"SELECT $1, COALESCE(max(seq), 0) + 1, $2, $3, $4, $5, COALESCE($6, clock_timestamp()) "
            f"FROM {self.TRANSITIONS} WHERE {self.FK} = $1 RETURNING {tcols}"
        )
        self._sql_transitions = f"SELECT {tcols} FROM {self.TRANSITIONS} WHERE {self.FK} = $1 ORDER BY seq"

    def _db_for(self, conn: Executor | None) -> Executor:
        return conn if conn is not None else self._db

    async def get(self, row_id: int, *, conn: Executor | None = None) -> R | None:
        return _row(self.ROW, await self._db_for(conn).fetchrow(self._sql_get, row_id))

    async def require(self, row_id: int, *, conn: Executor | None = None) -> R:
        row = await self.get(row_id, conn=conn)
        if row is None:
            raise NotFound(f"{self.TABLE} {row_id}")
        return row

    def _params(self, current: Any, changes: Mapping[str, Any]) -> list[Any]:
        bad = set(changes) - set(self._mutable)
        if bad:
            raise ValueError(f"{self.TABLE}: cannot change {sorted(bad)} (mutable: {', '.join(self._mutable)})")
        new = dataclasses.replace(current, **changes)
        return [current.id, current.version, *(getattr(new, c) for c in self._mutable)]

    async def _stale(self, db: Executor, current: Any) -> StaleVersion:
        actual = await db.fetchval(self._sql_version, current.id)
        return StaleVersion(self.TABLE, current.id, current.version, actual)

    async def update(self, current: R, *, conn: Executor | None = None, **changes: Any) -> R:
        """Apply ``changes`` to the row as read in ``current``; raises :class:`StaleVersion` if it
        changed since. Returns the new row (version + 1)."""
        db = self._db_for(conn)
        rec = await db.fetchrow(self._sql_update, *self._params(current, changes))
        if rec is None:
            raise await self._stale(db, current)
        return self.ROW(*rec)  # type: ignore[no-any-return]

    async def transition(
        self,
        current: R,
        to_state: str,
        event: str,
        metadata: Mapping[str, Any] | None = None,
        *,
        conn: Executor | None = None,
        **changes: Any,
    ) -> tuple[R, TransitionRow]:
        """Move the row from ``current.state`` to ``to_state`` (plus ``changes``) and append the
        transition, atomically; :class:`StaleVersion` if the row changed since ``current``."""
        db = self._db_for(conn)
        params = self._params(current, {**changes, "state": to_state})
        rec = await db.fetchrow(
            self._sql_transition, *params, current.state, event, dict(metadata or {})  # type: ignore[attr-defined]
        )
        if rec is None:
            raise await self._stale(db, current)
        k = len(fields(self.ROW))
        values = tuple(rec)
        return self.ROW(*values[:k]), TransitionRow(*values[k:])

    async def add_transition(
        self,
        row_id: int,
        from_state: str | None,
        to_state: str,
        event: str,
        metadata: Mapping[str, Any] | None = None,
        *,
        at: datetime | None = None,
        conn: Executor | None = None,
    ) -> TransitionRow:
        """Append a history entry without touching the row (e.g. the initial one on insert)."""
        rec = await self._db_for(conn).fetchrow(
            self._sql_add_transition, row_id, from_state, to_state, event, dict(metadata or {}), at
        )
        return TransitionRow(*rec)

    async def transitions(self, row_id: int, *, conn: Executor | None = None) -> list[TransitionRow]:
        """The row's history, oldest first."""
        return [TransitionRow(*r) for r in await self._db_for(conn).fetch(self._sql_transitions, row_id)]

    async def mutate(
        self,
        row_id: int,
        fn: Callable[[R], Change | Mapping[str, Any] | None],
        *,
        attempts: int = 5,
        conn: Executor | None = None,
    ) -> R:
        """Read the row, ask ``fn`` what to change, write it; on :class:`StaleVersion` read the
        fresh row and ask again (at most ``attempts`` times). ``fn`` returns None (nothing to do),
        a mapping of changes, or a :class:`Change` (with ``event``: a recorded transition)."""

        async def once() -> R:
            current = await self.require(row_id, conn=conn)
            wanted = fn(current)
            if wanted is None:
                return current
            change = wanted if isinstance(wanted, Change) else Change(dict(wanted))
            if not change.fields and change.event is None:
                return current
            if change.event is not None:
                updates = dict(change.fields)
                to_state = updates.pop("state", current.state)  # type: ignore[attr-defined]
                row, _ = await self.transition(
                    current, to_state, change.event, change.metadata, conn=conn, **updates
                )
                return row
            return await self.update(current, conn=conn, **change.fields)

        return await retry_on_stale(once, attempts=attempts)


class OrderRepository(_VersionedRepository[OrderRow]):
    """Orders and their state history."""

    TABLE = "orders"
    TRANSITIONS = "order_transitions"
    FK = "order_id"
    ROW = OrderRow

    _COLS = _cols(OrderRow)
    _INSERT = (
        "INSERT INTO orders (order_link_id, mode, symbol, side, order_type, qty, price, reduce_only, "
        "time_in_force, state, category, take_profit, stop_loss, strategy, signal, position_id, "
        "exchange_order_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, "
        f"$16, $17) RETURNING {_COLS}"
    )
    _INSERT_WITH_TRANSITION = (
        f"WITH ins AS ({_INSERT}), tr AS (INSERT INTO order_transitions (order_id, seq, from_state, "
        "to_state, event, metadata) SELECT ins.id, 1, NULL, ins.state, $18, $19 FROM ins) "
        "SELECT * FROM ins"
    )
    _BY_LINK = f"SELECT {_COLS} FROM orders WHERE order_link_id = $1"
    _BY_EXCHANGE_ID = f"SELECT {_COLS} FROM orders WHERE mode = $1 AND exchange_order_id = $2"
    _OPEN = (
        f"SELECT {_COLS} FROM orders WHERE state NOT IN ('FILLED', 'CANCELLED', 'REJECTED', 'FAILED') "
        "AND ($1::text IS NULL OR mode = $1) AND ($2::text IS NULL OR symbol = $2) ORDER BY id"
    )
    _RECENT = (
        f"SELECT {_COLS} FROM orders WHERE ($1::text IS NULL OR symbol = $1) ORDER BY id DESC LIMIT $2"
    )

    async def insert(
        self,
        order: NewOrder,
        *,
        event: str | None = "create",
        metadata: Mapping[str, Any] | None = None,
        conn: Executor | None = None,
    ) -> OrderRow:
        """Insert the order (a duplicate ``order_link_id`` raises
        :class:`asyncpg.UniqueViolationError`) and, unless ``event`` is None, its first transition
        (``None -> order.state``), in one statement."""
        o = order
        args = (
            o.order_link_id, o.mode, o.symbol, o.side, o.order_type, o.qty, o.price, o.reduce_only,
            o.time_in_force, o.state, o.category, o.take_profit, o.stop_loss, o.strategy, o.signal,
            o.position_id, o.exchange_order_id,
        )
        db = self._db_for(conn)
        if event is None:
            rec = await db.fetchrow(self._INSERT, *args)
        else:
            rec = await db.fetchrow(self._INSERT_WITH_TRANSITION, *args, event, dict(metadata or {}))
        return OrderRow(*rec)

    async def get_by_link_id(self, order_link_id: str, *, conn: Executor | None = None) -> OrderRow | None:
        return _row(OrderRow, await self._db_for(conn).fetchrow(self._BY_LINK, order_link_id))

    async def get_by_exchange_id(
        self, mode: str, exchange_order_id: str, *, conn: Executor | None = None
    ) -> OrderRow | None:
        return _row(OrderRow, await self._db_for(conn).fetchrow(self._BY_EXCHANGE_ID, mode, exchange_order_id))

    async def list_open(
        self, *, mode: str | None = None, symbol: str | None = None, conn: Executor | None = None
    ) -> list[OrderRow]:
        """Orders not in a terminal state (FILLED, CANCELLED, REJECTED, FAILED), oldest first."""
        return [OrderRow(*r) for r in await self._db_for(conn).fetch(self._OPEN, mode, symbol)]

    async def list_recent(
        self, *, symbol: str | None = None, limit: int = 100, conn: Executor | None = None
    ) -> list[OrderRow]:
        return [OrderRow(*r) for r in await self._db_for(conn).fetch(self._RECENT, symbol, limit)]


class PositionRepository(_VersionedRepository[PositionRow]):
    """Positions and their state history. At most one active position per (mode, symbol): a second
    insert raises :class:`asyncpg.UniqueViolationError`. A position is active until it reaches a
    terminal state (CLOSED, LIQUIDATED, CANCELLED), which must be written with ``closed_at`` (the
    database checks both directions)."""

    TABLE = "positions"
    TRANSITIONS = "position_transitions"
    FK = "position_id"
    ROW = PositionRow

    _COLS = _cols(PositionRow)
    _INSERT = (
        "INSERT INTO positions (mode, symbol, side, size, entry_price, state, category, leverage, "
        "stop_loss, take_profit, strategy, entry_reason, signal_type, signal, opened_at) VALUES "
        "($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, COALESCE($15, now())) "
        f"RETURNING {_COLS}"
    )
    _INSERT_WITH_TRANSITION = (
        f"WITH ins AS ({_INSERT}), tr AS (INSERT INTO position_transitions (position_id, seq, "
        "from_state, to_state, event, metadata) SELECT ins.id, 1, NULL, ins.state, $16, $17 FROM ins) "
        "SELECT * FROM ins"
    )
    _OPEN = (
        f"SELECT {_COLS} FROM positions WHERE closed_at IS NULL AND ($1::text IS NULL OR mode = $1) "
        "ORDER BY id"
    )
    _ACTIVE = f"SELECT {_COLS} FROM positions WHERE closed_at IS NULL AND mode = $1 AND symbol = $2"

    async def insert(
        self,
        position: NewPosition,
        *,
        event: str | None = "open",
        metadata: Mapping[str, Any] | None = None,
        conn: Executor | None = None,
    ) -> PositionRow:
        """Insert the position and, unless ``event`` is None, its first transition, in one
        statement."""
        p = position
        args = (
            p.mode, p.symbol, p.side, p.size, p.entry_price, p.state, p.category, p.leverage,
            p.stop_loss, p.take_profit, p.strategy, p.entry_reason, p.signal_type, p.signal, p.opened_at,
        )
        db = self._db_for(conn)
        if event is None:
            rec = await db.fetchrow(self._INSERT, *args)
        else:
            rec = await db.fetchrow(self._INSERT_WITH_TRANSITION, *args, event, dict(metadata or {}))
        return PositionRow(*rec)

    async def list_open(self, *, mode: str | None = None, conn: Executor | None = None) -> list[PositionRow]:
        """Active positions (not closed), oldest first."""
        return [PositionRow(*r) for r in await self._db_for(conn).fetch(self._OPEN, mode)]

    async def get_active(self, mode: str, symbol: str, *, conn: Executor | None = None) -> PositionRow | None:
        return _row(PositionRow, await self._db_for(conn).fetchrow(self._ACTIVE, mode, symbol))


# ---- executions ---------------------------------------------------------------------------------


class ExecutionRepository:
    """Fills, deduplicated by the exchange's ``execId`` (a repeated push is a no-op)."""

    _COLS = _cols(ExecutionRow)
    _INSERT = (
        "INSERT INTO executions (exec_id, order_id, exchange_order_id, order_link_id, mode, category, "
        "symbol, side, price, qty, fee, fee_currency, is_maker, exec_type, exec_time, seq, "
        "closed_size, raw) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, "
        "$16, $17, $18) ON CONFLICT (exec_id) DO NOTHING RETURNING id"
    )
    _GET = f"SELECT {_COLS} FROM executions WHERE exec_id = $1"
    _FOR_ORDER = f"SELECT {_COLS} FROM executions WHERE order_id = $1 ORDER BY exec_time, id"
    _TOTALS = (
        "SELECT count(*), COALESCE(sum(qty), 0), COALESCE(sum(price * qty), 0), "
        "CASE WHEN sum(qty) > 0 THEN sum(price * qty) / sum(qty) END, COALESCE(sum(fee), 0) "
        "FROM executions WHERE order_id = $1 AND exec_type = 'Trade'"
    )

    def __init__(self, executor: Executor) -> None:
        self._db = executor

    async def insert(self, e: NewExecution, *, conn: Executor | None = None) -> bool:
        """Record a fill; True if it is new, False if ``exec_id`` was already recorded."""
        db = conn if conn is not None else self._db
        new_id = await db.fetchval(
            self._INSERT,
            e.exec_id, e.order_id, e.exchange_order_id, e.order_link_id, e.mode, e.category,
            e.symbol, e.side, e.price, e.qty, e.fee, e.fee_currency, e.is_maker, e.exec_type,
            e.exec_time, e.seq, e.closed_size, e.raw,
        )
        return new_id is not None

    async def get(self, exec_id: str, *, conn: Executor | None = None) -> ExecutionRow | None:
        db = conn if conn is not None else self._db
        return _row(ExecutionRow, await db.fetchrow(self._GET, exec_id))

    async def for_order(self, order_id: int, *, conn: Executor | None = None) -> list[ExecutionRow]:
        db = conn if conn is not None else self._db
        return [ExecutionRow(*r) for r in await db.fetch(self._FOR_ORDER, order_id)]

    async def fill_totals(self, order_id: int, *, conn: Executor | None = None) -> FillTotals:
        """Filled quantity, volume-weighted average price and fees of the order's trade fills
        (what ``orders.filled_qty`` / ``avg_fill_price`` / ``fees`` should say)."""
        db = conn if conn is not None else self._db
        rec = await db.fetchrow(self._TOTALS, order_id)
        return FillTotals(int(rec[0]), rec[1], rec[2], rec[3], rec[4])


# ---- trades -------------------------------------------------------------------------------------


class TradeRepository:
    """Closed round trips (the input of the exit-reason and signal-effectiveness queries)."""

    _COLS = _cols(TradeRow)
    _INSERT = (
        "INSERT INTO trades (position_id, mode, symbol, side, qty, entry_price, exit_price, entry_time, "
        "exit_time, pnl, fees, strategy, entry_reason, exit_reason, signal_type, signal_data) VALUES "
        "($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16) "
        f"RETURNING {_COLS}"
    )
    _GET = f"SELECT {_COLS} FROM trades WHERE id = $1"
    _FOR_POSITION = f"SELECT {_COLS} FROM trades WHERE position_id = $1 ORDER BY exit_time, id"
    _RECENT = (
        f"SELECT {_COLS} FROM trades WHERE ($1::text IS NULL OR symbol = $1) "
        "AND ($2::timestamptz IS NULL OR exit_time >= $2) ORDER BY exit_time DESC, id DESC LIMIT $3"
    )

    def __init__(self, executor: Executor) -> None:
        self._db = executor

    async def insert(self, t: NewTrade, *, conn: Executor | None = None) -> TradeRow:
        db = conn if conn is not None else self._db
        rec = await db.fetchrow(
            self._INSERT,
            t.position_id, t.mode, t.symbol, t.side, t.qty, t.entry_price, t.exit_price,
            t.entry_time, t.exit_time, t.pnl, t.fees, t.strategy, t.entry_reason, t.exit_reason,
            t.signal_type, t.signal_data,
        )
        return TradeRow(*rec)

    async def get(self, trade_id: int, *, conn: Executor | None = None) -> TradeRow | None:
        db = conn if conn is not None else self._db
        return _row(TradeRow, await db.fetchrow(self._GET, trade_id))

    async def for_position(self, position_id: int, *, conn: Executor | None = None) -> list[TradeRow]:
        db = conn if conn is not None else self._db
        return [TradeRow(*r) for r in await db.fetch(self._FOR_POSITION, position_id)]

    async def recent(
        self,
        *,
        symbol: str | None = None,
        since: datetime | None = None,
        limit: int = 100,
        conn: Executor | None = None,
    ) -> list[TradeRow]:
        db = conn if conn is not None else self._db
        return [TradeRow(*r) for r in await db.fetch(self._RECENT, symbol, since, limit)]


# ---- idempotency records (PostgreSQL) -------------------------------------------------------------


class IdempotencyStore:
    """Durable idempotency records: ``reserve`` a key with the request's hash, ``complete`` it with
    the result; a repeat of the same request finds the record (and its result), a different request
    under the same key is an :class:`IdempotencyConflict`. Expired records can be taken over."""

    _COLS = _cols(IdempotencyRecord)
    _RESERVE = (
        "INSERT INTO idempotency_records (key, request_hash, status, expires_at) "
        "VALUES ($1, $2, 'pending', now() + make_interval(secs => $3)) "
        "ON CONFLICT (key) DO UPDATE SET request_hash = EXCLUDED.request_hash, status = 'pending', "
        "result = NULL, created_at = now(), updated_at = now(), expires_at = EXCLUDED.expires_at "
        "WHERE idempotency_records.expires_at <= now() "
        f"RETURNING {_COLS}"
    )
    _GET = f"SELECT {_COLS} FROM idempotency_records WHERE key = $1"
    _COMPLETE = (
        "UPDATE idempotency_records SET status = $2, result = $3, updated_at = now() "
        f"WHERE key = $1 RETURNING {_COLS}"
    )
    _RELEASE = "DELETE FROM idempotency_records WHERE key = $1 AND status = 'pending' RETURNING key"
    _PURGE = "DELETE FROM idempotency_records WHERE expires_at <= now()"

    def __init__(self, executor: Executor, *, ttl: float = 86_400.0) -> None:
        if ttl <= 0:
            raise ValueError("ttl must be > 0")
        self._db = executor
        self.ttl = ttl

    async def reserve(
        self, key: str, request_hash: str, *, ttl: float | None = None, conn: Executor | None = None
    ) -> tuple[bool, IdempotencyRecord]:
        """``(True, record)`` if this call reserved the key; ``(False, existing)`` if the same
        request holds it already (pending or completed). Raises :class:`IdempotencyConflict` if a
        different request holds it."""
        db = conn if conn is not None else self._db
        rec = await db.fetchrow(self._RESERVE, key, request_hash, float(ttl or self.ttl))
        if rec is not None:
            return True, IdempotencyRecord(*rec)
        existing = _row(IdempotencyRecord, await db.fetchrow(self._GET, key))
        if existing is None:  # deleted between the two statements: try once more
            rec = await db.fetchrow(self._RESERVE, key, request_hash, float(ttl or self.ttl))
            if rec is not None:
                return True, IdempotencyRecord(*rec)
            existing = _row(IdempotencyRecord, await db.fetchrow(self._GET, key))
            assert existing is not None
        if existing.request_hash != request_hash:
            raise IdempotencyConflict(f"idempotency key {key!r} is used by a different request")
        return False, existing

    async def complete(
        self, key: str, result: Any, *, status: str = "completed", conn: Executor | None = None
    ) -> IdempotencyRecord:
        """Store the outcome (``status`` 'completed' or 'failed')."""
        if status not in ("completed", "failed"):
            raise ValueError("status must be 'completed' or 'failed'")
        db = conn if conn is not None else self._db
        rec = await db.fetchrow(self._COMPLETE, key, status, result)
        if rec is None:
            raise NotFound(f"idempotency key {key!r}")
        return IdempotencyRecord(*rec)

    async def get(self, key: str, *, conn: Executor | None = None) -> IdempotencyRecord | None:
        """The record, or None if there is none or it has expired."""
        db = conn if conn is not None else self._db
        rec = _row(IdempotencyRecord, await db.fetchrow(self._GET, key))
        if rec is None or rec.expires_at <= datetime.now(UTC):
            return None
        return rec

    async def release(self, key: str, *, conn: Executor | None = None) -> bool:
        """Drop a *pending* reservation (the request certainly never left), so a retry may
        reserve again. Completed records are kept."""
        db = conn if conn is not None else self._db
        return await db.fetchval(self._RELEASE, key) is not None

    async def purge_expired(self, *, conn: Executor | None = None) -> int:
        db = conn if conn is not None else self._db
        status = await db.execute(self._PURGE)
        return int(status.split()[-1])


# ---- bot state / kill switch --------------------------------------------------------------------


class BotStateRepository:
    """The persisted kill switch: once halted, trading stays halted across restarts until a person
    resumes it. Each change is written with its audit entry in one transaction."""

    _COLS = _cols(BotState)
    _ENSURE = "INSERT INTO bot_state (name) VALUES ($1) ON CONFLICT (name) DO NOTHING"
    _GET = f"SELECT {_COLS} FROM bot_state WHERE name = $1"
    _LOCK = f"SELECT {_COLS} FROM bot_state WHERE name = $1 FOR UPDATE"
    _HALT = (
        "UPDATE bot_state SET halted = true, halted_at = now(), halted_by = $2, halt_reason = $3, "
        f"updated_at = now(), version = version + 1 WHERE name = $1 RETURNING {_COLS}"
    )
    _RESUME = (
        "UPDATE bot_state SET halted = false, resumed_at = now(), resumed_by = $2, resume_reason = $3, "
        f"updated_at = now(), version = version + 1 WHERE name = $1 RETURNING {_COLS}"
    )
    _HALTED = "SELECT halted FROM bot_state WHERE name = $1"

    def __init__(self, executor: Executor, audit: AuditLog | None = None) -> None:
        self._db = executor
        self._audit = audit or AuditLog(executor)

    async def get(self, name: str = "default", *, conn: Executor | None = None) -> BotState:
        db = conn if conn is not None else self._db
        rec = await db.fetchrow(self._GET, name)
        if rec is None:
            await db.execute(self._ENSURE, name)
            rec = await db.fetchrow(self._GET, name)
        return BotState(*rec)

    async def is_halted(self, name: str = "default", *, conn: Executor | None = None) -> bool:
        db = conn if conn is not None else self._db
        return bool(await db.fetchval(self._HALTED, name))

    async def halt(
        self,
        actor: str,
        reason: str,
        *,
        name: str = "default",
        trace_id: str | None = None,
        context: Mapping[str, Any] | None = None,
        conn: Executor | None = None,
    ) -> BotState:
        """Halt trading (idempotent: halting a halted bot keeps the first halt's who/why/when and
        still records the attempt)."""
        if not reason:
            raise ValueError("a halt needs a reason")
        async with transaction(conn if conn is not None else self._db) as c:
            await c.execute(self._ENSURE, name)
            old = BotState(*await c.fetchrow(self._LOCK, name))
            new = old if old.halted else BotState(*await c.fetchrow(self._HALT, name, actor, reason))
            await self._audit.record(
                actor, "kill_switch.halt", reason,
                {"name": name, "already_halted": old.halted}, old, new, True, None, trace_id, context,
                entity=f"bot_state:{name}", conn=c,
            )
        return new

    async def resume(
        self,
        actor: str,
        reason: str,
        *,
        name: str = "default",
        trace_id: str | None = None,
        context: Mapping[str, Any] | None = None,
        conn: Executor | None = None,
    ) -> BotState:
        """Re-enable trading. Only a person may: ``actor`` ``"bot"`` (or ``"bot:..."``) is refused,
        and the refusal is audited."""
        if not reason:
            raise ValueError("resuming needs a reason")
        async with transaction(conn if conn is not None else self._db) as c:
            await c.execute(self._ENSURE, name)
            old = BotState(*await c.fetchrow(self._LOCK, name))
            if actor == ACTOR_BOT or actor.startswith(ACTOR_BOT + ":"):
                error = "trading can only be re-enabled by a person"
                await self._audit.record(
                    actor, "kill_switch.resume", reason, {"name": name}, old, old, False, error,
                    trace_id, context, entity=f"bot_state:{name}", conn=c,
                )
            else:
                error = None
                new = BotState(*await c.fetchrow(self._RESUME, name, actor, reason)) if old.halted else old
                await self._audit.record(
                    actor, "kill_switch.resume", reason, {"name": name, "was_halted": old.halted},
                    old, new, True, None, trace_id, context, entity=f"bot_state:{name}", conn=c,
                )
        if error is not None:
            raise PermissionError(error)
        return new


# ---- market-data snapshots ----------------------------------------------------------------------


class MarketSnapshotRepository:
    """Market-data snapshots in a TimescaleDB hypertable or a day-partitioned table. Inserting into
    a day without a partition creates it (so a missed maintenance run never loses data)."""

    _COLS = _cols(MarketSnapshot)
    _INSERT = (
        "INSERT INTO market_snapshots (ts, symbol, best_bid, best_ask, bid_size, ask_size, "
        "last_price, mark_price, data) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, COALESCE($9, '{}'::jsonb))"
    )
    _LATEST = f"SELECT {_COLS} FROM market_snapshots WHERE symbol = $1 ORDER BY ts DESC LIMIT 1"
    _RANGE = (
        f"SELECT {_COLS} FROM market_snapshots WHERE symbol = $1 AND ts >= $2 AND ts < $3 ORDER BY ts"
    )
    _CREATE_PARTITION = "SELECT market_snapshots_create_partition($1::date)"
    _MAINTAIN = "SELECT action, partition_name FROM market_snapshots_maintain($1, $2, COALESCE($3, now()))"
    _STORAGE = "SELECT market_snapshots_storage()"
    _PARTITIONS = (
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = 'market_snapshots'::regclass ORDER BY c.relname"
    )

    def __init__(self, executor: Executor) -> None:
        self._db = executor

    @staticmethod
    def _args(s: MarketSnapshot) -> tuple[Any, ...]:
        return (s.ts, s.symbol, s.best_bid, s.best_ask, s.bid_size, s.ask_size, s.last_price,
                s.mark_price, s.data)

    async def insert_many(self, snapshots: Sequence[MarketSnapshot], *, conn: Executor | None = None) -> int:
        """Insert snapshots (one statement, prepared once); returns how many."""
        if not snapshots:
            return 0
        args = [self._args(s) for s in snapshots]
        db = conn if conn is not None else self._db
        for attempt in (1, 2):
            try:
                async with transaction(db) as c:  # a savepoint inside the caller's transaction
                    await c.executemany(self._INSERT, args)
                return len(args)
            except asyncpg.CheckViolationError as exc:
                if attempt == 2 or "no partition" not in str(exc):
                    raise
                days = sorted({s.ts.astimezone(UTC).date() for s in snapshots})
                async with transaction(db) as c:
                    for d in days:
                        await c.fetchval(self._CREATE_PARTITION, d)
        raise AssertionError("unreachable")

    async def insert(self, snapshot: MarketSnapshot, *, conn: Executor | None = None) -> None:
        await self.insert_many([snapshot], conn=conn)

    async def latest(self, symbol: str, *, conn: Executor | None = None) -> MarketSnapshot | None:
        db = conn if conn is not None else self._db
        return _row(MarketSnapshot, await db.fetchrow(self._LATEST, symbol))

    async def between(
        self, symbol: str, start: datetime, end: datetime, *, conn: Executor | None = None
    ) -> list[MarketSnapshot]:
        db = conn if conn is not None else self._db
        return [MarketSnapshot(*r) for r in await db.fetch(self._RANGE, symbol, start, end)]

    async def maintain(
        self,
        *,
        ahead_days: int = 7,
        retain_days: int = 30,
        as_of: datetime | None = None,
        conn: Executor | None = None,
    ) -> list[tuple[str, str]]:
        """Create the coming days' partitions and drop those older than ``retain_days``; returns
        ``[(action, partition), ...]``. A no-op under TimescaleDB (its retention policy runs)."""
        db = conn if conn is not None else self._db
        rows = await db.fetch(self._MAINTAIN, ahead_days, retain_days, as_of)
        return [(r[0], r[1]) for r in rows]

    async def storage(self, *, conn: Executor | None = None) -> str:
        """``'partitioned'`` or ``'timescaledb'``."""
        db = conn if conn is not None else self._db
        return str(await db.fetchval(self._STORAGE))

    async def partitions(self, *, conn: Executor | None = None) -> list[str]:
        db = conn if conn is not None else self._db
        return [r[0] for r in await db.fetch(self._PARTITIONS)]


__all__ = [
    "MODES",
    "ORDER_OPEN_STATES",
    "ORDER_STATES",
    "ORDER_TERMINAL_STATES",
    "POSITION_TERMINAL_STATES",
    "BotState",
    "BotStateRepository",
    "Change",
    "ExecutionRepository",
    "ExecutionRow",
    "FillTotals",
    "IdempotencyConflict",
    "IdempotencyRecord",
    "IdempotencyStore",
    "MarketSnapshot",
    "MarketSnapshotRepository",
    "NewExecution",
    "NewOrder",
    "NewPosition",
    "NewTrade",
    "NotFound",
    "OrderRepository",
    "OrderRow",
    "PositionRepository",
    "PositionRow",
    "StaleVersion",
    "StoreError",
    "TradeRepository",
    "TradeRow",
    "TransitionRow",
    "ms_to_datetime",
    "retry_on_stale",
]
