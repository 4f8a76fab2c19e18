"""Idempotent placement against the real local exchange and real PostgreSQL/Redis: one order per
client id whatever happens (retries, concurrent duplicates in one process and across services,
lost acknowledgements, timeouts and 5xx on create), definite rejects recorded, and the audit
trail of every placement."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from pysrc.domain.orders import OrderState
from pysrc.execution import OrderIntent, OrderService, OrderView
from pysrc.execution.records import order_from_rows
from pysrc.store.repositories import IdempotencyConflict

from .conftest import SYMBOL, World, audit_actions, run_world, wait_until

QTY = Decimal("0.010")


def market_buy(link: str | None = None, qty: Decimal = QTY, **kw: object) -> OrderIntent:
    return OrderIntent(symbol=SYMBOL, side="Buy", order_type="Market", qty=qty, client_order_id=link,
                       strategy="breakout", reason="breakout", signal_type="breakout",
                       signal={"score": "0.83"}, market={"bid": "64999.9"}, **kw)  # type: ignore[arg-type]


async def settled(svc: OrderService, link: str, state: str) -> None:
    async def cond() -> bool:
        v = await svc.get(link)
        return v is not None and v.state == state
    await wait_until(cond, what=f"{link} {state}")


def test_market_order_fills_opens_position_and_is_audited(store: object) -> None:
    async def body(w: World) -> None:
        svc = await w.service()
        view = await svc.place(market_buy("t1_market"))
        assert not view.duplicate and view.state != "PENDING_SUBMIT"
        await settled(svc, "t1_market", "FILLED")
        v = await svc.get("t1_market")
        assert v is not None and v.filled_qty == QTY and v.avg_fill_price is not None and v.fees > 0
        assert len(w.exchange_orders("t1_market")) == 1
        # the position follows the executions and matches the exchange
        async def has_position() -> bool:
            return bool(await svc.positions())
        await wait_until(has_position, what="position")
        (pos,) = await svc.positions()
        assert (pos.side, pos.size, pos.state) == ("Buy", QTY, "OPEN")
        assert w.exchange_position() == ("Buy", QTY)
        assert pos.entry_reason == "breakout"
        # the stored history replays to the same order the service holds
        row = await w.store.orders.get_by_link_id("t1_market")
        assert row is not None
        replayed = order_from_rows(row, await w.store.orders.transitions(row.id))
        assert replayed.state is OrderState.FILLED and replayed.filled_qty == QTY and replayed.fees == row.fees
        assert replayed.history[0].event.value == "submit"
        # audit: the submission (before sending) and the outcome, with the signal context
        entries = await audit_actions(w.store, "order:t1_market")
        actions = [e.action for e in entries]
        assert actions[:2] == ["order.submit", "order.place"]
        submit, place = entries[0], entries[1]
        assert submit.success and submit.params["qty"] == "0.01" and submit.context["signal"] == {"score": "0.83"}
        assert submit.new_value["state"] == "PENDING_SUBMIT" and submit.old_value is None
        assert place.success and place.params["create_status"] == "accepted" and place.trace_id == submit.trace_id

    run_world(store, body)


def test_same_client_id_twice_returns_the_recorded_order(store: object) -> None:
    async def body(w: World) -> None:
        svc = await w.service()
        first = await svc.place(market_buy("t2_retry"))
        second = await svc.place(market_buy("t2_retry"))
        assert not first.duplicate and second.duplicate
        assert second.exchange_order_id == first.exchange_order_id is not None
        assert len(w.exchange_orders("t2_retry")) == 1
        # after a restart too (Redis key and PostgreSQL row both say so)
        await w.close_services()
        svc2 = await w.service()
        third = await svc2.place(market_buy("t2_retry"))
        assert third.duplicate and third.exchange_order_id == first.exchange_order_id
        assert len(w.exchange_orders("t2_retry")) == 1
        # a different request under the same id is refused, nothing sent
        with pytest.raises(IdempotencyConflict):
            await svc2.place(market_buy("t2_retry", qty=Decimal("0.020")))
        assert len(w.exchange_orders("t2_retry")) == 1

    run_world(store, body)


def test_concurrent_duplicates_in_one_process_get_one_order(store: object) -> None:
    async def body(w: World) -> None:
        svc = await w.service()
        views = await asyncio.gather(*(svc.place(market_buy("t3_concurrent")) for _ in range(5)))
        assert sum(not v.duplicate for v in views) == 1
        assert len({v.exchange_order_id for v in views}) == 1 and views[0].exchange_order_id
        assert len(w.exchange_orders("t3_concurrent")) == 1

    run_world(store, body)


def test_concurrent_duplicates_across_services_get_one_order(store: object) -> None:
    """Two services (two instances, as two processes would be) share PostgreSQL and Redis: the
    Redis key and the unique row decide, the loser waits for the winner's result."""

    async def body(w: World) -> None:
        a = await w.service(exclusive=False)
        b = await w.service(exclusive=False)
        for i in range(4):
            link = f"t4_cross_{i}"
            va, vb = await asyncio.gather(a.place(market_buy(link)), b.place(market_buy(link)))
            assert {va.duplicate, vb.duplicate} == {False, True}, (va, vb)
            assert va.exchange_order_id == vb.exchange_order_id is not None
            assert len(w.exchange_orders(link)) == 1

    run_world(store, body)


def test_lost_ack_is_recovered_by_lookup_without_a_second_order(store: object) -> None:
    async def body(w: World) -> None:
        svc = await w.service()
        w.sim.faults.rest("/v5/order/create", "lose_ack")
        view = await svc.place(market_buy("t5_lost_ack"))
        assert w.sim.faults.counts["rest.lose_ack"] == 1
        assert view.state not in ("PENDING_SUBMIT", "FAILED", "REJECTED")
        await settled(svc, "t5_lost_ack", "FILLED")
        assert len(w.exchange_orders("t5_lost_ack")) == 1
        (place,) = [e for e in await audit_actions(w.store, "order:t5_lost_ack") if e.action == "order.place"]
        assert place.params["create_status"] == "recovered" and place.params["attempts"] == 1

    run_world(store, body)


@pytest.mark.parametrize("fault", ["timeout", "503"])
def test_create_that_never_arrived_is_resent_with_the_same_id(store: object, fault: str) -> None:
    """A timeout or a 5xx on create: the outcome is unknown, the lookup by orderLinkId confirms
    the exchange never got it (NOT_FOUND), and only then is it resent, with the same id."""

    async def body(w: World) -> None:
        svc = await w.service(rest_timeout=1.0)
        w.sim.faults.rest("/v5/order/create", fault, count=1, seconds=3.0)
        view = await svc.place(market_buy(f"t6_{fault}"))
        assert w.sim.faults.counts[f"rest.{fault}"] == 1
        await settled(svc, f"t6_{fault}", "FILLED")
        assert len(w.exchange_orders(f"t6_{fault}")) == 1
        assert view.state != "FAILED"
        (place,) = [e for e in await audit_actions(w.store, f"order:t6_{fault}") if e.action == "order.place"]
        assert place.success and place.params["attempts"] == 2

    run_world(store, body)


def test_create_lost_twice_is_failed_and_never_duplicated(store: object) -> None:
    async def body(w: World) -> None:
        svc = await w.service()
        w.sim.faults.rest("/v5/order/create", "503", count=2)
        view = await svc.place(market_buy("t7_lost"))
        assert view.state == "FAILED" and "not found on the exchange after 2" in (view.error or "")
        assert w.exchange_orders("t7_lost") == []
        again = await svc.place(market_buy("t7_lost"))  # the recorded result, nothing sent
        assert again.duplicate and again.state == "FAILED"
        assert w.exchange_orders("t7_lost") == []
        key = await w.store.keys.get("t7_lost")
        assert key is not None and key.status == "failed"

    run_world(store, body)


def test_business_reject_is_recorded_as_rejected(store: object) -> None:
    async def body(w: World) -> None:
        svc = await w.service()
        view = await svc.place(market_buy("t8_reject", qty=Decimal("0.0001")))  # below the qty step
        assert view.state == "REJECTED" and "10001" in (view.error or "")
        again = await svc.place(market_buy("t8_reject", qty=Decimal("0.0001")))
        assert again.duplicate and again.state == "REJECTED"
        assert w.exchange_orders("t8_reject") == []
        (place,) = [e for e in await audit_actions(w.store, "order:t8_reject") if e.action == "order.place"]
        assert not place.success and "rejected" in (place.error or "")

    run_world(store, body)


def test_generated_ids_are_unique_and_bybit_valid(store: object) -> None:
    async def body(w: World) -> None:
        svc = await w.service()
        views: list[OrderView] = []
        for _ in range(3):
            views.append(await svc.place(market_buy(None)))
        links = [v.order_link_id for v in views]
        assert len(set(links)) == 3 and all(len(x) <= 36 and "_BTCUSDT_breakout_" in x for x in links)
        for link in links:
            assert len(w.exchange_orders(link)) == 1

    run_world(store, body)
