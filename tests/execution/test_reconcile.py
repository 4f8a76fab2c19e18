"""Reconciliation against the real local exchange: an order filled while the service was down,
an order lost before submission, unknown exchange orders and positions (reported, then adopted),
and fills whose pushes were lost, repaired by the periodic task."""

from __future__ import annotations

from decimal import Decimal

import pytest

from pysrc.execution import OrderIntent, OrderService, ReconciliationReport

from .conftest import SYMBOL, World, audit_actions, run_world, wait_until


class SimulatedCrash(BaseException):
    """Stands for the process dying at a step (the crash tests use real SIGKILLs)."""


def kinds(report: ReconciliationReport) -> list[str]:
    return [d.kind for d in report.discrepancies]


async def resting_bid(w: World, svc: OrderService, link: str, qty: Decimal) -> Decimal:
    """A limit buy at the best bid (back of its queue); returns the quantity queued in front."""
    bids, _ = w.book()
    price, front = bids[0]
    await svc.place(OrderIntent(symbol=SYMBOL, side="Buy", order_type="Limit", qty=qty, price=price,
                                client_order_id=link, reason="support"))

    async def live() -> bool:
        v = await svc.get(link)
        return v is not None and v.state == "ACKNOWLEDGED"
    await wait_until(live, what=f"{link} resting")
    return front


def test_order_filled_while_the_service_was_down(store: object) -> None:
    async def body(w: World) -> None:
        a = await w.service()
        qty = Decimal("0.004")
        front = await resting_bid(w, a, "r1_down", qty)
        await w.close_services()
        bids, _ = w.book()
        filled = w.sim.market_trade(SYMBOL, "Sell", str(front + qty), limit_price=str(bids[0][0]))
        assert Decimal(filled) == front + qty  # our order was taken while nobody listened
        b = await w.service()
        report = b.last_reconciliation
        assert report is not None and report.trigger == "startup" and not report.errors
        assert "order_state" in kinds(report)
        assert {a.kind for a in report.actions} >= {"fills_applied", "order_synced"}
        v = await b.get("r1_down")
        assert v is not None and v.state == "FILLED" and v.filled_qty == qty
        (pos,) = await b.positions()
        assert (pos.side, pos.size) == ("Buy", qty) and w.exchange_position() == ("Buy", qty)
        actions = [e.action for e in await audit_actions(w.store, "order:r1_down")]
        assert "reconcile.order_synced" in actions
        runs = [e for e in await audit_actions(w.store, "reconciliation") if e.action == "reconcile.run"]
        assert runs and runs[-1].new_value["discrepancies"][0]["kind"] == "order_state"
        # a second pass finds nothing left to repair
        again = await b.reconciler.run("manual")
        assert again.clean and not again.actions

    run_world(store, body)


def test_order_lost_before_submission_is_marked_failed(store: object) -> None:
    async def body(w: World) -> None:
        def die_before_sending(step: str, link: str) -> None:
            if step == "pending_submit":
                raise SimulatedCrash(link)

        a = await w.service(crash_hook=die_before_sending)
        intent = OrderIntent(symbol=SYMBOL, side="Buy", order_type="Market", qty=Decimal("0.002"),
                             client_order_id="r2_lost")
        with pytest.raises(SimulatedCrash):
            await a.place(intent)
        row = await w.store.orders.get_by_link_id("r2_lost")
        assert row is not None and row.state == "PENDING_SUBMIT"
        await w.close_services()
        b = await w.service()
        report = b.last_reconciliation
        assert report is not None and kinds(report) == ["order_lost_before_submission"]
        assert [a.kind for a in report.actions] == ["marked_failed"]
        v = await b.get("r2_lost")
        assert v is not None and v.state == "FAILED" and "lost before submission" in (v.error or "")
        assert w.exchange_orders("r2_lost") == []
        key = await w.store.keys.get("r2_lost")
        assert key is not None and key.status == "failed"
        again = await b.place(intent)  # the caller's retry gets the recorded result, nothing is sent
        assert again.duplicate and again.state == "FAILED" and w.exchange_orders("r2_lost") == []
        (mark,) = [e for e in await audit_actions(w.store, "order:r2_lost") if e.action == "reconcile.mark_failed"]
        assert mark.actor == "bot:reconciler" and mark.new_value["state"] == "FAILED"

    run_world(store, body)


def test_unknown_exchange_orders_and_positions_reported_then_adopted(store: object) -> None:
    async def body(w: World) -> None:
        rest = await w.rest()
        bids, _ = w.book()
        far = bids[0][0] - Decimal(100)
        placed = await rest.place_order(SYMBOL, "Buy", "Limit", Decimal("0.003"), far, order_link_id="manual_web_1")
        await rest.place_order("ETHUSDT", "Buy", "Market", Decimal("0.10"), order_link_id="manual_web_2")
        b = await w.service()
        report = b.last_reconciliation
        assert report is not None
        unknown = [d for d in report.discrepancies if d.kind == "unknown_exchange_order"]
        assert [d.detail["order_link_id"] for d in unknown] == ["manual_web_1"]
        assert unknown[0].entity == f"exchange_order:{placed.order_id}"
        assert [d.entity for d in report.discrepancies if d.kind == "unknown_position"] == ["position:ETHUSDT"]
        assert not report.actions and await b.get("manual_web_1") is None
        await w.close_services()

        c = await w.service(adopt_unknown=True)
        report = c.last_reconciliation
        assert report is not None
        assert sorted(a.kind for a in report.actions) == ["order_adopted", "position_adopted"]
        v = await c.get("manual_web_1")
        assert v is not None and v.state == "ACKNOWLEDGED" and v.exchange_order_id == placed.order_id
        (pos,) = await c.positions()
        assert (pos.symbol, pos.side, pos.size, pos.entry_reason) == ("ETHUSDT", "Buy", Decimal("0.10"), "adopted")
        first_entry = (await audit_actions(w.store, "order:manual_web_1"))[0]
        assert first_entry.action == "reconcile.adopt_order"
        # adopted orders are managed like ours
        await c.cancel("manual_web_1", actor="user:alice", reason="not ours")

        async def cancelled() -> bool:
            v = await c.get("manual_web_1")
            return v is not None and v.state == "CANCELLED"
        await wait_until(cancelled, what="adopted order cancelled")
        assert (await c.reconciler.run("manual")).clean

    run_world(store, body)


def test_lost_fill_pushes_are_repaired_by_the_periodic_task(store: object) -> None:
    async def body(w: World) -> None:
        svc = await w.service(reconcile_interval=0.2, pending_grace=0.0)
        qty = Decimal("0.005")
        front = await resting_bid(w, svc, "r4_stalled", qty)
        w.sim.faults.stall("private", seconds=30.0)  # pushes sent meanwhile are lost
        bids, _ = w.book()
        w.sim.market_trade(SYMBOL, "Sell", str(front + qty), limit_price=str(bids[0][0]))

        async def repaired() -> bool:
            v = await svc.get("r4_stalled")
            ps = await svc.positions()
            return v is not None and v.state == "FILLED" and bool(ps) and ps[0].size == qty
        await wait_until(repaired, what="reconciliation repairs the missed fill")
        assert w.exchange_position() == ("Buy", qty)

        async def reported() -> bool:  # the run's report is kept when the run ends
            return any(r.trigger == "periodic" and r.actions for r in svc.reconciler.history)
        await wait_until(reported, what="the repairing run's report")
        periodic = [r for r in svc.reconciler.history if r.trigger == "periodic" and r.actions]
        assert "fills_applied" in {a.kind for a in periodic[0].actions}
        assert svc.last_reconciliation is not None and svc.last_reconciliation.trigger == "periodic"

    run_world(store, body)
