"""The four analysis queries of mission section 9, on data whose answers are known."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from pysrc.store import analysis
from pysrc.store.audit import AuditLog
from pysrc.store.repositories import (
    NewPosition,
    NewTrade,
    PositionRepository,
    TradeRepository,
)

D = Decimal
T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)

# (symbol, pnl, entry_reason, exit_reason, signal_type)
ROUND_TRIPS = [
    ("BTCUSDT", "120.50", "breakout", "take_profit", "breakout"),
    ("ETHUSDT", "-40.00", "breakout", "stop_loss", "breakout"),
    ("SOLUSDT", "15.25", "mean_reversion", "take_profit", "mean_reversion"),
    ("AVAXUSDT", "-10.00", "mean_reversion", "stop_loss", "mean_reversion"),
    ("NEARUSDT", "0", "ml_signal", "timeout", "ml"),
    ("UNIUSDT", "300.00", "ml_signal", "trailing_stop", "ml"),
    ("AAVEUSDT", "-5.75", "ml_signal", "stop_loss", "ml"),
    ("COMPUSDT", "42.00", "breakout", "take_profit", None),
]


async def _load_round_trips(pool) -> None:
    positions = PositionRepository(pool)
    trades = TradeRepository(pool)
    for i, (sym, pnl, entry_reason, exit_reason, signal) in enumerate(ROUND_TRIPS):
        opened = T0 + timedelta(hours=i)
        closed = opened + timedelta(minutes=30 + i)
        p = await positions.insert(NewPosition("paper", sym, "Buy", D("1"), D("100"), entry_reason=entry_reason,
                                               signal_type=signal, opened_at=opened, strategy="s1"))
        p, _ = await positions.transition(p, "CLOSED", "closed", None, closed_at=closed, size=D(0),
                                          exit_price=D("100") + D(pnl), realised_pnl=D(pnl), exit_reason=exit_reason)
        await trades.insert(NewTrade("paper", sym, "Buy", D("1"), D("100"), D("100") + D(pnl), opened, closed,
                                     D(pnl), D("0.1"), p.id, "s1", entry_reason, exit_reason, signal,
                                     {"strength": i}))
    # An open position never shows up in the closed-positions query.
    await positions.insert(NewPosition("paper", "BTCUSDT", "Sell", D("2"), D("101"), entry_reason="breakout"))


def test_top_profitable_positions(store) -> None:
    async def body(ctx):
        await _load_round_trips(ctx.pool)
        rows = await analysis.run(ctx.pool, analysis.TOP_PROFITABLE_POSITIONS)
        assert [(r["symbol"], r["realised_pnl"]) for r in rows] == [
            ("UNIUSDT", D("300.00")), ("BTCUSDT", D("120.50")), ("COMPUSDT", D("42.00")),
            ("SOLUSDT", D("15.25")), ("NEARUSDT", D("0")), ("AAVEUSDT", D("-5.75")),
            ("AVAXUSDT", D("-10.00")), ("ETHUSDT", D("-40.00")),
        ]
        top = rows[0]
        assert (top["entry_reason"], top["exit_reason"], top["signal_type"]) == ("ml_signal", "trailing_stop", "ml")
        assert top["held_for"] == timedelta(minutes=35)

    store.run(body)


def test_top_profitable_positions_limit(store) -> None:
    async def body(ctx):
        positions = PositionRepository(ctx.pool)
        for i in range(12):
            p = await positions.insert(NewPosition("paper", f"S{i}USDT", "Buy", D("1"), D("1"), opened_at=T0))
            await positions.transition(p, "CLOSED", "closed", None, closed_at=T0 + timedelta(minutes=1),
                                       realised_pnl=D(i), exit_reason="tp")
        rows = await analysis.run(ctx.pool, analysis.TOP_PROFITABLE_POSITIONS)
        assert [r["realised_pnl"] for r in rows] == [D(i) for i in range(11, 1, -1)]

    store.run(body)


def test_exit_reasons(store) -> None:
    async def body(ctx):
        await _load_round_trips(ctx.pool)
        rows = await analysis.run(ctx.pool, analysis.EXIT_REASONS)
        q = D("1e-10")  # averages are divisions: compare at 10 decimals
        got = {r["exit_reason"]: (r["trades"], r["avg_pnl"].quantize(q), r["total_pnl"], r["winning_trades"])
               for r in rows}
        assert got == {
            "take_profit": (3, (D("177.75") / 3).quantize(q), D("177.75"), 3),
            "stop_loss": (3, (D("-55.75") / 3).quantize(q), D("-55.75"), 0),
            "timeout": (1, D("0").quantize(q), D("0"), 0),
            "trailing_stop": (1, D("300.00").quantize(q), D("300.00"), 1),
        }
        assert [r["exit_reason"] for r in rows][:2] == ["stop_loss", "take_profit"]  # count, then name

    store.run(body)


def test_signal_effectiveness(store) -> None:
    async def body(ctx):
        await _load_round_trips(ctx.pool)
        rows = await analysis.run(ctx.pool, analysis.SIGNAL_EFFECTIVENESS)
        got = {r["signal_type"]: (r["trades"], r["wins"], r["losses"], r["win_rate_pct"], r["total_pnl"])
               for r in rows}
        assert got == {
            "ml": (3, 1, 1, D("33.33"), D("294.25")),
            "breakout": (2, 1, 1, D("50.00"), D("80.50")),
            "unknown": (1, 1, 0, D("100.00"), D("42.00")),
            "mean_reversion": (2, 1, 1, D("50.00"), D("5.25")),
        }
        assert [r["signal_type"] for r in rows] == ["ml", "breakout", "unknown", "mean_reversion"]
        ml = rows[0]
        assert abs(ml["avg_pnl"] - D("294.25") / 3) < D("1e-12")

    store.run(body)


def test_failed_audit_last_24h(store) -> None:
    async def body(ctx):
        audit = AuditLog(ctx.pool)
        await audit.record("bot", "order.place", "ok", success=True)
        recent_fail = await audit.record("bot", "order.place", "breakout", {"symbol": "BTCUSDT"}, success=False,
                                         error="110007 insufficient balance", trace_id="t-9",
                                         entity="order:x1")
        later_fail = await audit.record("user:alice", "position.close", "manual", success=False, error="timeout")
        async with ctx.pool.acquire() as c:  # an old failure: audit rows are written with any time
            await c.execute(
                "INSERT INTO audit_log (at, actor, action, success, error) "
                "VALUES (now() - interval '25 hours', 'bot', 'order.cancel', false, 'old')"
            )
            await c.execute(
                "INSERT INTO audit_log (at, actor, action, success, error) "
                "VALUES (now() - interval '23 hours', 'bot', 'order.amend', false, 'within')"
            )
        rows = await analysis.run(ctx.pool, analysis.FAILED_AUDIT_24H)
        assert [r["error"] for r in rows] == ["timeout", "110007 insufficient balance", "within"]
        assert rows[0]["id"] == later_fail.id and rows[1]["id"] == recent_fail.id
        assert (rows[1]["actor"], rows[1]["action"], rows[1]["reason"], rows[1]["trace_id"], rows[1]["entity"]) == (
            "bot", "order.place", "breakout", "t-9", "order:x1")
        assert rows[1]["params"] == {"symbol": "BTCUSDT"}

    store.run(body)


def test_queries_use_their_indexes(store) -> None:
    """The planner can answer queries 1 and 4 from the partial indexes made for them."""
    async def body(ctx):
        async with ctx.pool.acquire() as c:
            await c.execute("SET enable_seqscan = off")
            plan1 = "\n".join(r[0] for r in await c.fetch("EXPLAIN " + analysis.load(analysis.TOP_PROFITABLE_POSITIONS)))
            plan4 = "\n".join(r[0] for r in await c.fetch("EXPLAIN " + analysis.load(analysis.FAILED_AUDIT_24H)))
            await c.execute("RESET enable_seqscan")
        assert "positions_closed_by_pnl" in plan1
        assert "audit_log_failed_at" in plan4

    store.run(body)
