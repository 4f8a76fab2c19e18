"""The audit log is append-only in the database itself: UPDATE, DELETE and TRUNCATE are rejected
by triggers, for the table owner too."""

from __future__ import annotations

from decimal import Decimal

import asyncpg
import pytest

from pysrc.store.audit import AuditLog, audit_context
from pysrc.store.repositories import NewOrder, OrderRepository


def test_record_full_context(store) -> None:
    async def body(ctx):
        audit = AuditLog(ctx.pool)
        order = await OrderRepository(ctx.pool).insert(
            NewOrder("a-1", "paper", "BTCUSDT", "Buy", "Limit", Decimal("0.01"), Decimal(65000)))
        e = await audit.record(
            "bot", "order.place", "breakout above 65k",
            {"qty": Decimal("0.01"), "price": Decimal(65000)}, None, order, True, None, "trace-1",
            audit_context(signal={"type": "breakout", "strength": 0.8},
                          market={"bid": Decimal("64999.5"), "ask": Decimal(65000)},
                          indicators={"rsi": 61.2}),
            entity="order:a-1",
        )
        assert e.id > 0 and e.at is not None and e.success and e.trace_id == "trace-1"
        assert e.params == {"qty": "0.01", "price": "65000"}
        assert e.new_value["order_link_id"] == "a-1" and e.new_value["qty"] == "0.01"
        assert e.old_value is None
        assert e.context == {"signal": {"type": "breakout", "strength": 0.8},
                             "market": {"bid": "64999.5", "ask": "65000"}, "indicators": {"rsi": 61.2}}
        f = await audit.record("user:bob", "order.cancel", "manual", {"id": 1}, success=False,
                               error="110001 order not exists")
        assert f.trace_id and len(f.trace_id) == 32  # one is made up when none is given
        with pytest.raises(ValueError):
            await audit.record("bot", "order.cancel", success=False)  # a failure must say why
        assert [x.id for x in await audit.recent()] == [f.id, e.id]
        assert [x.id for x in await audit.by_trace("trace-1")] == [e.id]
        assert [x.id for x in await audit.recent(action="order.place")] == [e.id]

    store.run(body)


def test_update_delete_truncate_rejected_by_the_database(store) -> None:
    async def body(ctx):
        audit = AuditLog(ctx.pool)
        e = await audit.record("bot", "position.close", "stop loss", {"symbol": "ETHUSDT"})
        async with ctx.pool.acquire() as c:
            # The connection is the table's owner (it created it): privileges would allow all of
            # these; the triggers do not.
            assert await c.fetchval("SELECT tableowner = current_user FROM pg_tables "
                                    "WHERE schemaname = current_schema() AND tablename = 'audit_log'")
            for sql in (
                "UPDATE audit_log SET reason = 'rewritten' WHERE id = $1",
                "UPDATE audit_log SET success = false, error = 'x' WHERE id = $1",
                "DELETE FROM audit_log WHERE id = $1",
            ):
                with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
                    await c.execute(sql, e.id)
            with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only: TRUNCATE"):
                await c.execute("TRUNCATE audit_log")
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await c.execute("DELETE FROM audit_log")
            # A failure without an error is refused even through plain SQL.
            with pytest.raises(asyncpg.CheckViolationError):
                await c.execute("INSERT INTO audit_log (actor, action, success) VALUES ('bot', 'x', false)")
            row = await c.fetchrow("SELECT reason, success FROM audit_log WHERE id = $1", e.id)
            assert tuple(row) == ("stop loss", True)
            assert await c.fetchval("SELECT count(*) FROM audit_log") == 1

    store.run(body)


def test_non_owner_role_cannot_even_try(store) -> None:
    """The documented deployment: the bot's role may INSERT and SELECT only."""
    role = f"{store.schema}_bot"

    async def body(ctx):
        async with ctx.pool.acquire() as c:
            try:
                await c.execute(f'CREATE ROLE "{role}" NOLOGIN')
            except asyncpg.InsufficientPrivilegeError:
                pytest.skip("the test database user may not create roles")
            try:
                await c.execute(f'GRANT USAGE ON SCHEMA "{ctx.schema}" TO "{role}"')
                await c.execute(f'GRANT SELECT, INSERT ON audit_log TO "{role}"')
                async with c.transaction():
                    await c.execute(f'SET LOCAL ROLE "{role}"')
                    await c.execute("INSERT INTO audit_log (actor, action, success) VALUES ('bot', 'x', true)")
                    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="permission denied"):
                        async with c.transaction():
                            await c.execute("UPDATE audit_log SET reason = 'y'")
            finally:
                await c.execute(f'REVOKE ALL ON audit_log FROM "{role}"')
                await c.execute(f'REVOKE ALL ON SCHEMA "{ctx.schema}" FROM "{role}"')
                await c.execute(f'DROP ROLE "{role}"')

    store.run(body)
