"""Repositories on a real PostgreSQL: orders (unique link ids, transitions, optimistic locking),
positions, executions (dedupe), trades, exact money, idempotency records, the kill switch."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import asyncpg
import pytest

from pysrc.store.audit import AuditLog
from pysrc.store.db import transaction
from pysrc.store.repositories import (
    BotStateRepository,
    Change,
    ExecutionRepository,
    IdempotencyConflict,
    IdempotencyStore,
    NewExecution,
    NewOrder,
    NewPosition,
    NewTrade,
    NotFound,
    OrderRepository,
    PositionRepository,
    StaleVersion,
    TradeRepository,
    ms_to_datetime,
    retry_on_stale,
)

D = Decimal


def _order(link: str = "o-1", **kw) -> NewOrder:
    base: dict = {"order_link_id": link, "mode": "paper", "symbol": "BTCUSDT", "side": "Buy",
                  "order_type": "Limit", "qty": D("0.010"), "price": D("65000.5"), "strategy": "momentum",
                  "signal": {"type": "breakout", "score": D("0.8")}}
    base.update(kw)
    return NewOrder(**base)  # type: ignore[arg-type]


def test_order_insert_read_and_exact_numbers(store) -> None:
    async def body(ctx):
        orders = OrderRepository(ctx.pool)
        row = await orders.insert(_order(state="PENDING_SUBMIT"))
        assert row.version == 1 and row.state == "PENDING_SUBMIT"
        assert row.qty == D("0.010") and str(row.price) == "65000.5"  # exact, trailing zero kept
        assert row.signal == {"type": "breakout", "score": "0.8"}  # Decimal in JSONB -> string
        assert await orders.get(row.id) == row
        assert await orders.get_by_link_id("o-1") == row
        assert await orders.get_by_link_id("nope") is None
        assert await orders.get(10**9) is None
        with pytest.raises(NotFound):
            await orders.require(10**9)
        hist = await orders.transitions(row.id)
        assert [(t.seq, t.from_state, t.to_state, t.event) for t in hist] == [(1, None, "PENDING_SUBMIT", "create")]
        # Money is never a float: the codec refuses it before the server sees it.
        with pytest.raises(asyncpg.DataError, match="float"):
            await orders.insert(_order("o-2", qty=0.01))
        # str and int are exact too.
        r3 = await orders.insert(_order("o-3", qty="0.5", price=70000))
        assert r3.qty == D("0.5") and r3.price == D("70000")

    store.run(body)


def test_order_link_id_unique_and_format(store) -> None:
    async def body(ctx):
        orders = OrderRepository(ctx.pool)
        await orders.insert(_order("dup_1"))
        with pytest.raises(asyncpg.UniqueViolationError):
            await orders.insert(_order("dup_1"))
        # The failed insert left nothing behind (its transition was in the same transaction).
        async with ctx.pool.acquire() as c:
            assert await c.fetchval("SELECT count(*) FROM orders") == 1
            assert await c.fetchval("SELECT count(*) FROM order_transitions") == 1
        ok36 = "x" * 36
        assert (await orders.insert(_order(ok36))).order_link_id == ok36
        for bad in ("y" * 37, "", "has space", "semi;colon", "ünï"):
            with pytest.raises(asyncpg.CheckViolationError):
                await orders.insert(_order(bad))

    store.run(body)


def test_optimistic_locking_stale_update_fails(store) -> None:
    async def body(ctx):
        orders = OrderRepository(ctx.pool)
        row = await orders.insert(_order())
        a = await orders.get(row.id)
        b = await orders.get(row.id)
        a2 = await orders.update(a, exchange_order_id="ex-1")
        assert a2.version == 2 and a2.exchange_order_id == "ex-1"
        with pytest.raises(StaleVersion) as info:
            await orders.update(b, error="late writer")
        assert info.value.expected_version == 1 and info.value.actual_version == 2
        assert (await orders.get(row.id)).error is None  # the stale write did not land
        with pytest.raises(ValueError, match="cannot change"):
            await orders.update(a2, symbol="ETHUSDT")  # immutable column
        # Transitions are optimistic too, and record from/to atomically.
        a3, tr = await orders.transition(a2, "PENDING_SUBMIT", "submit", {"by": "test"})
        assert (a3.state, a3.version, tr.seq, tr.from_state, tr.to_state, tr.metadata) == (
            "PENDING_SUBMIT", 3, 2, "NEW", "PENDING_SUBMIT", {"by": "test"})
        with pytest.raises(StaleVersion):
            await orders.transition(a2, "FAILED", "fail")
        assert [t.to_state for t in await orders.transitions(row.id)] == ["NEW", "PENDING_SUBMIT"]

    store.run(body)


def test_mutate_retries_from_fresh_state(store) -> None:
    async def body(ctx):
        orders = OrderRepository(ctx.pool)
        row = await orders.insert(_order(state="ACKNOWLEDGED"))
        seen: list[int] = []

        def fill(current):
            seen.append(current.version)
            return Change({"state": "PARTIALLY_FILLED", "filled_qty": current.filled_qty + D("0.004")},
                          event="partial_fill", metadata={"attempt": len(seen)})

        # Another writer changes the row between the first attempt's read and its write.
        real_transition = orders.transition
        raced = False

        async def transition_after_a_race(current, *a, **kw):
            nonlocal raced
            if not raced:
                raced = True
                await orders.update(current, fees=current.fees + D("0.01"))
            return await real_transition(current, *a, **kw)

        orders.transition = transition_after_a_race  # type: ignore[method-assign]
        final = await orders.mutate(row.id, fill)
        assert seen == [1, 2]  # the retry started from the other writer's version
        assert (final.version, final.fees, final.filled_qty, final.state) == (
            3, D("0.01"), D("0.004"), "PARTIALLY_FILLED")
        hist = await orders.transitions(row.id)
        assert [(t.from_state, t.to_state, t.metadata) for t in hist] == [
            (None, "ACKNOWLEDGED", {}), ("ACKNOWLEDGED", "PARTIALLY_FILLED", {"attempt": 2})]
        # Nothing to do: no write, no version bump.
        assert (await orders.mutate(row.id, lambda cur: None)).version == 3

    store.run(body)


def test_concurrent_mutations_lose_nothing(store) -> None:
    async def body(ctx):
        orders = OrderRepository(ctx.pool)
        row = await orders.insert(_order(state="ACKNOWLEDGED"))
        n = 12

        async def add_fee() -> None:
            await orders.mutate(row.id, lambda cur: {"fees": cur.fees + D("0.001")}, attempts=50)

        await asyncio.gather(*(add_fee() for _ in range(n)))
        final = await orders.get(row.id)
        assert final.fees == D("0.001") * n  # no lost update
        assert final.version == 1 + n

    store.run(body, max_size=6)


def test_retry_on_stale_gives_up(store) -> None:
    async def body(ctx):
        attempts = 0

        async def always_stale():
            nonlocal attempts
            attempts += 1
            raise StaleVersion("orders", 1, 1, 2)

        with pytest.raises(StaleVersion):
            await retry_on_stale(always_stale, attempts=3, base_delay=0)
        assert attempts == 3

    store.run(body)


def test_list_open_and_exchange_id(store) -> None:
    async def body(ctx):
        orders = OrderRepository(ctx.pool)
        a = await orders.insert(_order("a", state="ACKNOWLEDGED"))
        b = await orders.insert(_order("b", symbol="ETHUSDT", state="PENDING_SUBMIT"))
        c = await orders.insert(_order("c", mode="live"))
        await orders.transition(c, "FAILED", "fail", {"why": "test"}, error="lost before submission")
        a = await orders.update(a, exchange_order_id="X1")
        assert [o.order_link_id for o in await orders.list_open()] == ["a", "b"]
        assert [o.order_link_id for o in await orders.list_open(symbol="ETHUSDT")] == ["b"]
        assert await orders.list_open(mode="live") == []
        assert (await orders.get_by_exchange_id("paper", "X1")).id == a.id
        assert await orders.get_by_exchange_id("live", "X1") is None
        # One exchange order id per mode.
        with pytest.raises(asyncpg.UniqueViolationError):
            await orders.update(b, exchange_order_id="X1")

    store.run(body)


def test_positions_one_active_per_symbol_and_history(store) -> None:
    async def body(ctx):
        positions = PositionRepository(ctx.pool)
        p = await positions.insert(NewPosition("paper", "BTCUSDT", "Buy", D("0.01"), D("65000"),
                                               entry_reason="breakout", signal_type="breakout"))
        with pytest.raises(asyncpg.UniqueViolationError):
            await positions.insert(NewPosition("paper", "BTCUSDT", "Sell", D("0.01"), D("65000")))
        other_mode = await positions.insert(NewPosition("live", "BTCUSDT", "Buy", D("1"), D("1")))
        assert [x.id for x in await positions.list_open()] == [p.id, other_mode.id]
        p, _ = await positions.transition(p, "CLOSING", "close_requested", {"reason": "tp"})
        with pytest.raises(asyncpg.CheckViolationError):  # CLOSED needs closed_at
            await positions.transition(p, "CLOSED", "closed")
        with pytest.raises(asyncpg.CheckViolationError):  # and only terminal states have one
            await positions.update(p, closed_at=datetime.now(UTC))
        now = datetime.now(UTC)
        p, _ = await positions.transition(
            p, "CLOSED", "closed", None, closed_at=now, size=D(0), exit_price=D("66000"),
            realised_pnl=D("9.5"), exit_reason="take_profit",
        )
        assert await positions.get_active("paper", "BTCUSDT") is None
        assert [t.to_state for t in await positions.transitions(p.id)] == ["OPEN", "CLOSING", "CLOSED"]
        # The symbol is free again; a liquidated or cancelled position frees it too.
        again = await positions.insert(NewPosition("paper", "BTCUSDT", "Sell", D("0.02"), D("66100")))
        assert (await positions.get_active("paper", "BTCUSDT")).id == again.id
        await positions.transition(again, "LIQUIDATED", "liquidate", closed_at=datetime.now(UTC), size=D(0))
        pending = await positions.insert(NewPosition("paper", "BTCUSDT", "Buy", state="PENDING_OPEN"))
        await positions.transition(pending, "CANCELLED", "cancel", closed_at=datetime.now(UTC))
        assert await positions.get_active("paper", "BTCUSDT") is None

    store.run(body)


def test_execution_dedupe_and_totals(store) -> None:
    async def body(ctx):
        orders = OrderRepository(ctx.pool)
        execs = ExecutionRepository(ctx.pool)
        o = await orders.insert(_order(qty=D("0.010")))

        def ex(eid: str, qty: str, price: str, fee: str, kind: str = "Trade") -> NewExecution:
            return NewExecution(eid, "paper", "BTCUSDT", "Buy", D(price), D(qty),
                                ms_to_datetime("1746270400353"), order_id=o.id, fee=D(fee),
                                fee_currency="USDT", is_maker=False, exec_type=kind,
                                raw={"execId": eid, "execPrice": price})

        assert await execs.insert(ex("e1", "0.004", "65000", "0.143")) is True
        assert await execs.insert(ex("e1", "0.004", "65000", "0.143")) is False  # duplicate push
        assert await execs.insert(ex("e2", "0.006", "65010", "0.2145")) is True
        assert await execs.insert(ex("f1", "0", "65005", "-0.5", kind="Funding")) is True
        # Concurrent duplicates: exactly one is new.
        results = await asyncio.gather(*(execs.insert(ex("e3", "0.001", "1", "0")) for _ in range(5)))
        assert sorted(results) == [False] * 4 + [True]
        totals = await execs.fill_totals(o.id)
        assert totals.count == 3
        assert totals.qty == D("0.011")
        assert totals.fees == D("0.3575")
        assert totals.notional == D("0.004") * 65000 + D("0.006") * 65010 + D("0.001")  # exact
        assert abs(totals.avg_price - totals.notional / totals.qty) < D("1e-9")
        got = await execs.get("e1")
        assert got.exec_time == datetime(2025, 5, 3, 11, 6, 40, 353000, tzinfo=UTC)
        assert got.raw == {"execId": "e1", "execPrice": "65000"}
        assert [e.exec_id for e in await execs.for_order(o.id)][:2] == ["e1", "e2"]

    store.run(body)


def test_trades(store) -> None:
    async def body(ctx):
        trades = TradeRepository(ctx.pool)
        t0 = datetime(2025, 1, 1, tzinfo=UTC)
        t = await trades.insert(NewTrade("paper", "BTCUSDT", "Buy", D("0.01"), D("65000"), D("66000"),
                                         t0, t0 + timedelta(hours=1), D("9.9"), D("0.1"),
                                         entry_reason="breakout", exit_reason="take_profit",
                                         signal_type="breakout", signal_data={"rsi": D("71.5")}))
        assert (await trades.get(t.id)) == t and t.signal_data == {"rsi": "71.5"}
        assert [x.id for x in await trades.recent(symbol="BTCUSDT")] == [t.id]
        with pytest.raises(asyncpg.CheckViolationError):
            await trades.insert(NewTrade("paper", "BTCUSDT", "Buy", D("1"), D("1"), D("1"),
                                         t0, t0 - timedelta(seconds=1), D("0")))

    store.run(body)


def test_repository_calls_share_a_transaction(store) -> None:
    async def body(ctx):
        orders = OrderRepository(ctx.pool)
        audit = AuditLog(ctx.pool)
        with pytest.raises(RuntimeError):
            async with transaction(ctx.pool) as conn:
                o = await orders.insert(_order("tx-1"), conn=conn)
                await audit.record("bot", "order.place", "test", {"id": o.id}, conn=conn)
                raise RuntimeError("boom")
        assert await orders.get_by_link_id("tx-1") is None
        assert await audit.recent() == []  # rolled back together

    store.run(body)


def test_idempotency_store(store) -> None:
    async def body(ctx):
        idem = IdempotencyStore(ctx.pool)
        ok, rec = await idem.reserve("k1", "hash-a")
        assert ok and rec.status == "pending"
        assert timedelta(hours=23, minutes=59) < rec.expires_at - rec.created_at <= timedelta(hours=24)
        again, same = await idem.reserve("k1", "hash-a")
        assert not again and same.status == "pending"
        with pytest.raises(IdempotencyConflict):
            await idem.reserve("k1", "hash-b")
        done = await idem.complete("k1", {"orderId": "X1", "qty": D("0.01")})
        assert done.status == "completed" and done.result == {"orderId": "X1", "qty": "0.01"}
        again, rec2 = await idem.reserve("k1", "hash-a")
        assert not again and rec2.result == {"orderId": "X1", "qty": "0.01"}
        assert not await idem.release("k1")  # completed records stay
        # Concurrent reservations: exactly one wins.
        results = await asyncio.gather(*(idem.reserve("k2", "h") for _ in range(8)))
        assert sorted(r[0] for r in results) == [False] * 7 + [True]
        assert await idem.release("k2")
        assert (await idem.reserve("k2", "h"))[0]
        # An expired record can be taken over (by any request) and is invisible to get().
        async with ctx.pool.acquire() as c:
            await c.execute(
                "INSERT INTO idempotency_records (key, request_hash, status, created_at, expires_at) "
                "VALUES ('old', 'h-old', 'completed', now() - interval '2 days', now() - interval '1 day')"
            )
        assert await idem.get("old") is None
        took, fresh = await idem.reserve("old", "h-new")
        assert took and fresh.request_hash == "h-new" and fresh.result is None
        async with ctx.pool.acquire() as c:
            await c.execute("UPDATE idempotency_records SET expires_at = now() - interval '1 s', "
                            "created_at = now() - interval '2 s' WHERE key = 'k2'")
        assert await idem.purge_expired() == 1
        with pytest.raises(NotFound):
            await idem.complete("missing", {})

    store.run(body)


def test_kill_switch_persists_and_is_audited(store) -> None:
    async def body(ctx):
        state = BotStateRepository(ctx.pool)
        assert not await state.is_halted()
        s = await state.halt("bot", "daily loss 5.2% > 5%", trace_id="t-1",
                             context={"market": {"pnl_day": D("-520")}})
        assert s.halted and s.halted_by == "bot" and s.halt_reason.startswith("daily loss")
        s2 = await state.halt("user:alice", "manual")  # already halted: first cause kept
        assert s2.halted_by == "bot" and s2.version == s.version
        return s.version

    version = store.run(body)

    async def after_restart(ctx):  # a new pool and repository: the state came from the database
        state = BotStateRepository(ctx.pool)
        assert await state.is_halted()
        with pytest.raises(PermissionError):
            await state.resume("bot", "auto-recover")
        assert await state.is_halted()
        s = await state.resume("user:alice", "loss reviewed")
        assert not s.halted and s.resumed_by == "user:alice" and s.version == version + 1
        entries = list(reversed(await AuditLog(ctx.pool).recent(entity="bot_state:default")))
        assert [(e.action, e.actor, e.success) for e in entries] == [
            ("kill_switch.halt", "bot", True),
            ("kill_switch.halt", "user:alice", True),
            ("kill_switch.resume", "bot", False),
            ("kill_switch.resume", "user:alice", True),
        ]
        assert entries[0].trace_id == "t-1" and entries[0].context == {"market": {"pnl_day": "-520"}}
        assert entries[0].old_value["halted"] is False and entries[0].new_value["halted"] is True
        assert entries[2].error == "trading can only be re-enabled by a person"

    store.run(after_restart)


def test_open_store_bundle(store) -> None:
    """open_store wires servers, migrations, pool, Redis and repositories (here on the session's
    servers and this test's schema)."""
    from pysrc.store import PoolConfig, open_store
    from pysrc.store.redis import create_redis

    async def main():
        s = await open_store(database_url=store.dsn, redis_url=store.redis_url,
                             pool=PoolConfig(min_size=1, max_size=2, schema=store.schema),
                             redis_prefix=store.prefix)
        try:
            assert s.applied == []  # the fixture migrated already
            row = await s.orders.insert(_order("bundle-1"))
            assert (await s.orders.get_by_link_id("bundle-1")).id == row.id
            assert (await s.keys.reserve(row.order_link_id)).acquired
            s.dead_letters.put("t", b"x", "e")
            assert not await s.bot_state.is_halted()
        finally:
            await s.aclose()  # flushes the dead letters; leaves the external servers running
        r = await create_redis(store.redis_url)
        try:
            assert await r.xlen(store.prefix + "deadletters") == 1
        finally:
            await r.aclose()

    asyncio.run(main())
