"""The kill switch acted on: engage cancels every active order, closes every position with
reduce-only market orders, halts (persisted across restarts) and alerts; only a person releases
it; the daily-loss monitor trips it from the account's real equity."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest

from pysrc.domain.events import DomainEvent
from pysrc.execution import (
    DailyLossMonitor,
    KillSwitchAlert,
    KillSwitchExecutor,
    OrderIntent,
    TradingHalted,
)
from pysrc.risk.killswitch import KillSwitch
from pysrc.risk.portfolio import PortfolioState

from .conftest import SYMBOL, World, audit_actions, run_world, wait_until


def test_engage_cancels_closes_halts_survives_restart_and_needs_a_person(store: object) -> None:
    async def body(w: World) -> None:
        svc = await w.service()
        alerts: list[KillSwitchAlert] = []
        published: list[DomainEvent] = []

        async def on_alert(a: KillSwitchAlert) -> None:
            alerts.append(a)

        async def on_event(e: DomainEvent) -> None:
            published.append(e)

        svc.subscribe(on_event)
        ks = KillSwitchExecutor(svc, alert=on_alert)
        await svc.place(OrderIntent(symbol=SYMBOL, side="Buy", order_type="Market", qty=Decimal("0.010"),
                                    client_order_id="k1_long", reason="breakout"))
        await svc.place(OrderIntent(symbol="ETHUSDT", side="Sell", order_type="Market", qty=Decimal("0.20"),
                                    client_order_id="k1_short"))
        bids, _ = w.book()
        await svc.place(OrderIntent(symbol=SYMBOL, side="Buy", order_type="Limit", qty=Decimal("0.003"),
                                    price=bids[0][0] - Decimal(20), client_order_id="k1_resting"))

        async def ready() -> bool:
            return len(await svc.positions()) == 2 and (await svc.get("k1_resting")).state == "ACKNOWLEDGED"  # type: ignore[union-attr]
        await wait_until(ready, what="two positions and a resting order")

        report = await ks.engage("user:alice", "manual stop: test")
        assert report.complete, report.errors
        assert report.cancelled == ["k1_resting"] and set(report.closed) == {SYMBOL, "ETHUSDT"}
        assert w.sim.account.open[SYMBOL] == {} and w.exchange_position() == ("", Decimal(0))
        assert w.exchange_position("ETHUSDT") == ("", Decimal(0))

        async def flat() -> bool:
            v = await svc.get("k1_resting")
            return not await svc.positions() and v is not None and v.state == "CANCELLED"
        await wait_until(flat, what="local state flat")
        trades = await svc.trades()
        assert {t.symbol: t.exit_reason for t in trades} == {SYMBOL: "kill_switch", "ETHUSDT": "kill_switch"}
        state = await ks.state()
        assert state.halted and state.halted_by == "user:alice" and state.halt_reason == "manual stop: test"
        assert [a.action for a in alerts] == ["engaged"]
        assert any(isinstance(e, KillSwitchAlert) for e in published)

        # new exposure is refused (audited); reduce-only would still pass
        with pytest.raises(TradingHalted):
            await svc.place(OrderIntent(symbol=SYMBOL, side="Buy", order_type="Market", qty=Decimal("0.001"),
                                        client_order_id="k1_refused"))
        assert w.exchange_orders("k1_refused") == []

        actions = [e.action for e in await audit_actions(w.store)]
        for needed in ("kill_switch.halt", "kill_switch.engage", "kill_switch.cancel_all", "kill_switch.close_position",
                       "order.cancel", "position.close_request", "position.closed"):
            assert needed in actions, needed
        (refused,) = [e for e in await audit_actions(w.store, "order:k1_refused")]
        assert refused.action == "order.place" and not refused.success and "halted" in (refused.error or "")

        # a restart comes back halted
        await w.close_services()
        svc2 = await w.service()
        assert svc2.halted
        with pytest.raises(TradingHalted):
            await svc2.place(OrderIntent(symbol=SYMBOL, side="Buy", order_type="Market", qty=Decimal("0.001"),
                                         client_order_id="k1_after_restart"))
        ks2 = KillSwitchExecutor(svc2)
        with pytest.raises(PermissionError):
            await ks2.release("bot", "the bot may not")
        assert await ks2.is_halted()
        await ks2.release("user:alice", "checked the account")
        assert not await ks2.is_halted()
        ok = await svc2.place(OrderIntent(symbol=SYMBOL, side="Buy", order_type="Market", qty=Decimal("0.001"),
                                          client_order_id="k1_after_release"))
        assert ok.state not in ("REJECTED", "FAILED") and len(w.exchange_orders("k1_after_release")) == 1
        resumes = [e for e in await audit_actions(w.store) if e.action == "kill_switch.resume"]
        assert [(e.actor, e.success) for e in resumes] == [("bot", False), ("user:alice", True)]

    run_world(store, body)


def test_daily_loss_over_the_limit_engages_from_real_equity(store: object) -> None:
    """A small account, a long XRP position, the market swept down: realised plus unrealised loss
    of the day passes 5% of the day's starting equity and the monitor engages the kill switch."""

    async def body(w: World) -> None:
        svc = await w.service()
        ks = KillSwitchExecutor(svc)
        monitor = DailyLossMonitor(ks, Decimal("0.05"))
        first = await monitor.check()  # records the day's starting equity
        assert not first.halt
        await svc.place(OrderIntent(symbol="XRPUSDT", side="Buy", order_type="Market", qty=Decimal(5000),
                                    client_order_id="k2_long"))

        async def opened() -> bool:
            return bool(await svc.positions())
        await wait_until(opened, what="XRP position")
        assert not (await monitor.check()).halt  # fees only
        bids, _ = w.book("XRPUSDT")
        w.sim.market_trade("XRPUSDT", "Sell", "100000000", limit_price=str((bids[0][0] * Decimal("0.96")).quantize(Decimal("0.0001"))))
        decision = await monitor.check()
        assert decision.halt and decision.newly_engaged and decision.loss_fraction > Decimal("0.05")
        assert await ks.is_halted() and ks.last_report is not None and ks.last_report.complete
        assert w.exchange_position("XRPUSDT") == ("", Decimal(0))
        assert ks.last_report.actor == "bot:risk"
        engage = [e for e in await audit_actions(w.store) if e.action == "kill_switch.engage"]
        assert engage and Decimal(engage[0].params["loss_fraction"]) > Decimal("0.05")
        # acted once: the decision keeps saying halt, without actions
        again = await monitor.check()
        assert again.halt and not again.actions

    run_world(store, body, sim_kwargs={"balance": "1000"})


def test_decision_from_the_risk_layer_and_its_own_portfolio_state(store: object) -> None:
    async def body(w: World) -> None:
        svc = await w.service()
        ks = KillSwitchExecutor(svc)
        states: Iterator[PortfolioState] = iter([
            PortfolioState(balance=Decimal(10000), day="d1", day_start_equity=Decimal(10000),
                           realized_pnl_today=Decimal(-100)),
            PortfolioState(balance=Decimal(9400), day="d1", day_start_equity=Decimal(10000),
                           realized_pnl_today=Decimal(-450), unrealized_pnl=Decimal(-151)),
        ])

        async def provider() -> PortfolioState:
            return next(states)

        monitor = DailyLossMonitor(ks, Decimal("0.05"), kill_switch=KillSwitch(), state_provider=provider)
        assert not (await monitor.check()).halt
        d = await monitor.check()
        assert d.halt and d.loss_fraction == Decimal("0.0601")
        assert (await ks.state()).halted_by == "bot:risk"
        states = iter([PortfolioState(balance=Decimal(9400), day="d1", day_start_equity=Decimal(10000))])
        later = await monitor.check()  # still halted, the sweep was acknowledged: nothing to redo
        assert later.halt and not later.actions and await ks.apply_decision(later) is None

    run_world(store, body)
