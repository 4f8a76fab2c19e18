"""The venue's pushes drive the order and position state machines: fills before the REST answer,
duplicates and disorder, the cancel/fill race (two ``Filled``), partial fills into a position, a
close into a trade row with its reasons and signal, and refusals that are audited, never applied."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import pytest

from pysrc.domain.events import DomainEvent
from pysrc.domain.fsm import InvalidTransition
from pysrc.execution import OrderIntent, OrderService

from .conftest import SYMBOL, World, audit_actions, run_world, wait_until


def tap(svc: OrderService) -> list[tuple[str, dict[str, Any]]]:
    """Record every push the service receives (wraps its handler before ``start``)."""
    seen: list[tuple[str, dict[str, Any]]] = []
    handler = svc.on_push

    async def recording(topic: str, item: Mapping[str, Any]) -> None:
        await handler(topic, item)
        seen.append((topic, dict(item)))  # after it was handled

    svc.on_push = recording  # type: ignore[method-assign]
    return seen


async def state_is(svc: OrderService, link: str, state: str) -> None:
    async def cond() -> bool:
        v = await svc.get(link)
        return v is not None and v.state == state
    await wait_until(cond, what=f"{link} {state}")


def test_fill_push_before_the_rest_answer(store: object) -> None:
    """The REST answer is held until the pushes have filled the order: the late answer is a
    no-op, the history goes PENDING_SUBMIT -> ACKNOWLEDGED -> FILLED without confirm_submit."""

    async def body(w: World) -> None:
        async def hold(step: str, link: str) -> None:
            if step == "sent" and link == "p1_fast_fill":
                await state_is(svc, link, "FILLED")

        svc = await w.service(crash_hook=hold)
        view = await svc.place(OrderIntent(symbol=SYMBOL, side="Buy", order_type="Market", qty=Decimal("0.005"),
                                           client_order_id="p1_fast_fill"))
        assert view.state == "FILLED"
        row = await w.store.orders.get_by_link_id("p1_fast_fill")
        assert row is not None
        events = [(t.from_state, t.to_state, t.event) for t in await w.store.orders.transitions(row.id)]
        assert events == [(None, "PENDING_SUBMIT", "submit"), ("PENDING_SUBMIT", "ACKNOWLEDGED", "acknowledge"),
                          ("ACKNOWLEDGED", "FILLED", "fill")]
        (place,) = [e for e in await audit_actions(w.store, "order:p1_fast_fill") if e.action == "order.place"]
        assert place.success and place.old_value["state"] == "FILLED" == place.new_value["state"]

    run_world(store, body)


def test_partial_fill_cancel_duplicates_and_disorder(store: object) -> None:
    """A limit order that takes the best ask and rests the rest: PARTIALLY_FILLED, a position of
    the filled size; cancelled with its fill kept. Then every recorded push is delivered again,
    twice, newest first: nothing changes (no second execution, no state going back)."""

    async def body(w: World) -> None:
        svc = await w.service(start=False)
        pushes = tap(svc)
        events: list[DomainEvent] = []

        async def collect(e: DomainEvent) -> None:
            events.append(e)

        svc.subscribe(collect)
        await svc.start()
        _, asks = w.book()
        best, size = asks[0]
        qty = size + Decimal("0.015")
        await svc.place(OrderIntent(symbol=SYMBOL, side="Buy", order_type="Limit", qty=qty, price=best,
                                    client_order_id="p2_partial", reason="absorption", strategy="scalper"))
        await state_is(svc, "p2_partial", "PARTIALLY_FILLED")
        v = await svc.get("p2_partial")
        assert v is not None and v.filled_qty == size and v.avg_fill_price == best

        async def position_size() -> bool:
            ps = await svc.positions()
            return bool(ps) and ps[0].size == size
        await wait_until(position_size, what="position of the partial fill")
        assert w.exchange_position() == ("Buy", size)

        cancelled = await svc.cancel("p2_partial", actor="user:alice", reason="test")
        assert cancelled.state in ("PENDING_CANCEL", "CANCELLED")
        await state_is(svc, "p2_partial", "CANCELLED")
        final = await svc.get("p2_partial")
        assert final is not None and final.filled_qty == size
        row = await w.store.orders.get_by_link_id("p2_partial")
        assert row is not None
        n_exec = len(await w.store.executions.for_order(row.id))
        n_hist = len(await w.store.orders.transitions(row.id))
        assert n_exec >= 1
        cancel_audit = [e for e in await audit_actions(w.store, "order:p2_partial") if e.action == "order.cancel"]
        assert cancel_audit and cancel_audit[0].actor == "user:alice" and cancel_audit[0].success

        # every push again, twice, in reverse order (stale, duplicate, out of order)
        replay = [p for p in reversed(pushes) if p[0] in ("order", "execution")] * 2
        for topic, item in replay:
            await svc.on_push(topic, item)
        again = await w.store.orders.get_by_link_id("p2_partial")
        assert again is not None
        assert (again.state, again.filled_qty, again.fees, again.version) == (row.state, row.filled_qty, row.fees,
                                                                              row.version)
        assert len(await w.store.executions.for_order(row.id)) == n_exec
        assert len(await w.store.orders.transitions(row.id)) == n_hist
        (pos,) = await svc.positions()
        assert pos.size == size
        assert svc.push_errors == 0
        kinds = {type(e).__name__ for e in events}
        assert {"OrderTransitioned", "PositionChanged", "PositionOpened"} <= kinds

    run_world(store, body)


def test_cancel_racing_a_fill_gets_two_filled_pushes(store: object) -> None:
    """Bybit's documented race: the cancel loses against the fill (110001) and a second
    ``Filled`` push arrives with cancelType CancelByUser; the order stays FILLED."""

    async def body(w: World) -> None:
        svc = await w.service(start=False)
        pushes = tap(svc)
        await svc.start()
        await svc.place(OrderIntent(symbol=SYMBOL, side="Buy", order_type="Market", qty=Decimal("0.004"),
                                    client_order_id="p3_race"))
        await state_is(svc, "p3_race", "FILLED")
        view = await svc.cancel("p3_race")  # terminal already: nothing is sent
        assert view.state == "FILLED"
        # the race proper: the REST cancel goes out anyway (as if we had not seen the fill yet)
        with_race: list[str] = []
        try:
            await svc.venue.cancel(SYMBOL, "p3_race")
        except Exception as exc:  # noqa: BLE001 - 110001 is the point
            with_race.append(str(exc))
        assert with_race and "110001" in with_race[0]

        async def second_filled_handled() -> bool:
            return any(t == "order" and i.get("orderLinkId") == "p3_race" and i.get("cancelType") == "CancelByUser"
                       and i.get("orderStatus") == "Filled" for t, i in pushes)
        await wait_until(second_filled_handled, what="the second Filled push")
        row = await w.store.orders.get_by_link_id("p3_race")
        assert row is not None and row.state == "FILLED"
        assert svc.refusals == 0

    run_world(store, body)


def test_close_writes_a_trade_with_reasons_and_signal(store: object) -> None:
    async def body(w: World) -> None:
        svc = await w.service()
        qty = Decimal("0.020")
        await svc.place(OrderIntent(symbol=SYMBOL, side="Buy", order_type="Market", qty=qty, client_order_id="p4_open",
                                    strategy="scalper", reason="imbalance", signal_type="imbalance",
                                    signal={"imbalance": "0.71"}))
        await state_is(svc, "p4_open", "FILLED")
        await svc.place(OrderIntent(symbol=SYMBOL, side="Sell", order_type="Market", qty=Decimal("0.005"),
                                    reduce_only=True, client_order_id="p4_partial_exit", reason="partial_target"))
        await state_is(svc, "p4_partial_exit", "FILLED")
        close = await svc.close_position(SYMBOL, reason="take_profit", actor="bot")
        assert close is not None
        await state_is(svc, close.order_link_id, "FILLED")

        async def closed() -> bool:
            return not await svc.positions()
        await wait_until(closed, what="position closed")
        assert w.exchange_position() == ("", Decimal(0))
        (trade,) = await svc.trades(symbol=SYMBOL)
        assert trade.qty == qty and trade.entry_reason == "imbalance" and trade.exit_reason == "take_profit"
        assert trade.signal_type == "imbalance" and trade.signal_data == {"imbalance": "0.71"}
        # PnL net of fees equals what the executions say, exactly
        rows = []
        for link in ("p4_open", "p4_partial_exit", close.order_link_id):
            r = await w.store.orders.get_by_link_id(link)
            assert r is not None
            rows += await w.store.executions.for_order(r.id)
        buys = sum((e.price * e.qty for e in rows if e.side == "Buy"), Decimal(0))
        sells = sum((e.price * e.qty for e in rows if e.side == "Sell"), Decimal(0))
        fees = sum((e.fee for e in rows), Decimal(0))
        assert trade.fees == fees and trade.pnl == sells - buys - fees
        pos = await w.store.positions.get(trade.position_id)
        assert pos is not None and pos.state == "CLOSED" and pos.exit_reason == "take_profit"
        history = [t.event for t in await w.store.positions.transitions(pos.id)]
        assert history == ["open", "reduce", "request_close", "close"]
        audit = [e.action for e in await audit_actions(w.store, f"position:{pos.id}")]
        assert audit == ["position.close_request", "position.closed"]

    run_world(store, body)


def test_refused_push_is_audited_and_not_applied(store: object) -> None:
    """A push that contradicts the recorded state (a fill reported after CANCELLED) raises in the
    state machine; the service audits and logs the refusal and changes nothing."""

    async def body(w: World) -> None:
        svc = await w.service()
        bids, _ = w.book()
        price = bids[0][0] - Decimal(50)
        await svc.place(OrderIntent(symbol=SYMBOL, side="Buy", order_type="Limit", qty=Decimal("0.003"), price=price,
                                    client_order_id="p5_refused"))
        await state_is(svc, "p5_refused", "ACKNOWLEDGED")
        await svc.cancel("p5_refused")
        await state_is(svc, "p5_refused", "CANCELLED")
        row = await w.store.orders.get_by_link_id("p5_refused")
        assert row is not None
        forged = {"orderLinkId": "p5_refused", "orderId": row.exchange_order_id, "symbol": SYMBOL,
                  "orderStatus": "Filled", "qty": "0.003", "price": str(price), "cumExecQty": "0.003",
                  "cumExecValue": str(price * Decimal("0.003")), "updatedTime": "9999999999999"}
        await svc.on_push("order", forged)
        after = await w.store.orders.get_by_link_id("p5_refused")
        assert after is not None and (after.state, after.version) == ("CANCELLED", row.version)
        refusals = [e for e in await audit_actions(w.store, "order:p5_refused") if e.action == "order.transition_refused"]
        assert len(refusals) == 1 and not refusals[0].success and "InvalidTransition" in (refusals[0].error or "")
        assert svc.refusals == 1

    run_world(store, body)


def test_amend_is_recorded_from_the_push_and_audited(store: object) -> None:
    async def body(w: World) -> None:
        svc = await w.service()
        bids, _ = w.book()
        price = bids[0][0] - Decimal(30)
        await svc.place(OrderIntent(symbol=SYMBOL, side="Buy", order_type="Limit", qty=Decimal("0.004"), price=price,
                                    client_order_id="p6_amend"))
        await state_is(svc, "p6_amend", "ACKNOWLEDGED")
        new_price = price - Decimal(10)
        await svc.amend("p6_amend", price=new_price, qty=Decimal("0.006"), actor="user:bob", reason="re-quote")

        async def amended() -> bool:
            v = await svc.get("p6_amend")
            return v is not None and v.price == new_price and v.qty == Decimal("0.006")
        await wait_until(amended, what="amendment recorded")
        row = await w.store.orders.get_by_link_id("p6_amend")
        assert row is not None
        assert [t.event for t in await w.store.orders.transitions(row.id)][-1] == "amend"
        (audit,) = [e for e in await audit_actions(w.store, "order:p6_amend") if e.action == "order.amend"]
        assert audit.actor == "user:bob" and audit.success and audit.params["price"] == str(new_price)
        await svc.cancel("p6_amend")
        await state_is(svc, "p6_amend", "CANCELLED")
        # a finished order cannot be amended: the state machine says so, loudly and audited
        with pytest.raises(InvalidTransition):
            await svc.amend("p6_amend", price=price)
        refused = [e for e in await audit_actions(w.store, "order:p6_amend") if e.action == "order.amend" and not e.success]
        assert len(refused) == 1

    run_world(store, body)
