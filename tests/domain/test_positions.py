"""Positions: the table (exhaustive), fills from executions (open, increase, reduce, close, flip,
liquidation, funding), exact accounting, protection, replay, and a hypothesis state machine."""

from __future__ import annotations

import itertools
from decimal import Decimal, localcontext

import pytest
from domain_support import SYM, T0, Clock
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from pysrc.domain.fsm import ForeignUpdate, InvalidTransition
from pysrc.domain.positions import (
    POSITION_TABLE,
    TERMINAL_STATES,
    Position,
    PositionEvent,
    PositionState,
    TrailingState,
    on_execution,
)
from pysrc.domain.values import EXACT, Execution, Side

D = Decimal
S, E = PositionState, PositionEvent

EXPECTED: dict[tuple[PositionState, PositionEvent], PositionState] = {
    (S.PENDING_OPEN, E.OPEN): S.OPEN,
    (S.OPEN, E.INCREASE): S.OPEN,
    (S.CLOSING, E.INCREASE): S.CLOSING,
    (S.OPEN, E.REDUCE): S.OPEN,
    (S.CLOSING, E.REDUCE): S.CLOSING,
    (S.OPEN, E.REQUEST_CLOSE): S.CLOSING,
    (S.CLOSING, E.ABORT_CLOSE): S.OPEN,
    (S.OPEN, E.CLOSE): S.CLOSED,
    (S.CLOSING, E.CLOSE): S.CLOSED,
    (S.OPEN, E.LIQUIDATE): S.LIQUIDATED,
    (S.CLOSING, E.LIQUIDATE): S.LIQUIDATED,
    (S.PENDING_OPEN, E.CANCEL): S.CANCELLED,
    (S.OPEN, E.FUNDING): S.OPEN,
    (S.CLOSING, E.FUNDING): S.CLOSING,
    (S.CLOSED, E.FUNDING): S.CLOSED,
    (S.LIQUIDATED, E.FUNDING): S.LIQUIDATED,
    (S.PENDING_OPEN, E.SET_PROTECTION): S.PENDING_OPEN,
    (S.OPEN, E.SET_PROTECTION): S.OPEN,
    (S.CLOSING, E.SET_PROTECTION): S.CLOSING,
}


def ex(
    exec_id: str, side: Side, qty: str, price: str, fee: str = "0", exec_type: str = "Trade"
) -> Execution:
    return Execution(exec_id, SYM, side, D(qty), D(price), D(fee), exec_type=exec_type, exec_time=1)


def state_of(p: Position) -> PositionState:
    """The state, read through a call so mypy does not keep an earlier assert's narrowing."""
    return p.state


def pending(side: Side = Side.BUY, pid: str = "p1") -> Position:
    return Position(pid, SYM, side, strategy="test", created_at=T0)


def position_in(state: PositionState, clock: Clock) -> Position:
    """A long position brought to ``state`` (size 2 @ 100 where it holds anything)."""
    p = pending()
    if state is S.PENDING_OPEN:
        return p
    if state is S.CANCELLED:
        p.cancel("entry cancelled", clock())
        return p
    on_execution(p, ex("o", Side.BUY, "2", "100"), clock())
    if state is S.OPEN:
        return p
    if state is S.CLOSING:
        p.request_close("signal", clock())
        return p
    if state is S.CLOSED:
        on_execution(p, ex("c", Side.SELL, "2", "110"), clock())
        return p
    assert state is S.LIQUIDATED
    on_execution(p, ex("l", Side.SELL, "2", "80", exec_type="BustTrade"), clock())
    return p


def valid_meta(p: Position, event: PositionEvent) -> dict[str, str]:
    if event is E.OPEN or event is E.INCREASE:
        return {"side": "Buy", "qty": "1", "price": "100", "fee": "0.01"}
    if event is E.REDUCE:
        return {"side": "Sell", "qty": "1", "price": "100", "fee": "0.01"}
    if event is E.CLOSE or event is E.LIQUIDATE:
        return {"side": "Sell", "qty": str(p.size or 1), "price": "100", "fee": "0.01"}
    if event is E.FUNDING:
        return {"amount": "0.5"}
    if event is E.SET_PROTECTION:
        return {"stop_loss": "95", "take_profit": "120"}
    return {"reason": "test"}


def test_table() -> None:
    assert POSITION_TABLE.pairs() == EXPECTED
    assert TERMINAL_STATES == {S.CLOSED, S.LIQUIDATED, S.CANCELLED}


ALL = list(itertools.product(PositionState, PositionEvent))


@pytest.mark.parametrize(("state", "event"), ALL, ids=[f"{s.value}-{e.value}" for s, e in ALL])
def test_every_pair_on_a_real_position(state: PositionState, event: PositionEvent) -> None:
    clock = Clock()
    p = position_in(state, clock)
    before = p.copy()
    expected = EXPECTED.get((state, event))
    if expected is None:
        with pytest.raises(InvalidTransition, match="not in the transition table"):
            p.apply(event, clock(), valid_meta(p, event))
        assert p == before
        return
    t = p.apply(event, clock(), valid_meta(p, event))
    assert (t.from_state, t.to_state) == (state, expected)
    assert p.version == before.version + 1


def test_open_increase_reduce_close_exact_pnl() -> None:
    c = Clock()
    p = pending()
    assert [
        t.event for t in on_execution(p, ex("a", Side.BUY, "1", "100", "0.05"), c()).transitions
    ] == [E.OPEN]
    on_execution(p, ex("b", Side.BUY, "2", "103", "0.1"), c())
    assert p.size == D("3") and p.entry_value == D("306") and p.entry_price == D("102")
    on_execution(p, ex("c", Side.SELL, "1", "110", "0.05"), c())
    assert p.state is S.OPEN and p.size == D("2")
    assert p.realised_pnl == D("8")  # (110 - 102) x 1
    p.request_close("take_profit", c())
    on_execution(p, ex("d", Side.SELL, "2", "99", "0.1"), c())
    assert state_of(p) is S.CLOSED and p.size == 0 and p.entry_value == 0
    assert p.realised_pnl == D("2")  # 8 + (99 - 102) x 2 = exit values 308 - entry values 306
    assert p.fees == D("0.30") and p.net_pnl == D("1.70")
    assert p.close_reason == "take_profit" and p.closed_at is not None


def test_short_pnl_and_unrealised() -> None:
    p = pending(Side.SELL)
    on_execution(p, ex("a", Side.SELL, "2", "100"))
    p.mark(D("90"))
    assert p.unrealised_pnl == D("20")
    on_execution(p, ex("b", Side.BUY, "0.5", "95"))
    assert p.realised_pnl == D("2.5") and p.size == D("1.5")
    assert p.unrealised_pnl == D("15.0")


def test_rounding_never_survives_a_round_trip() -> None:
    p = pending()
    on_execution(p, ex("a", Side.BUY, "3", "100"))
    on_execution(p, ex("b", Side.BUY, "3", "100.01"))
    for i in range(5):  # 1/6 of the cost each time: a repeating decimal
        on_execution(p, ex(f"r{i}", Side.SELL, "1", "101"))
    on_execution(p, ex("z", Side.SELL, "1", "101"))
    assert p.state is S.CLOSED
    assert p.realised_pnl == D("606") - D("600.03")  # exit values - entry values, exactly


def test_flip_closes_and_opens_a_new_position() -> None:
    c = Clock()
    p = pending()
    on_execution(p, ex("a", Side.BUY, "1", "100", "0.1"), c())
    upd = on_execution(p, ex("f", Side.SELL, "3", "110", "0.3"), c(), new_position_id=lambda: "p2")
    assert [t.event for t in upd.transitions] == [E.CLOSE]
    assert p.state is S.CLOSED and p.realised_pnl == D("10")
    assert upd.transitions[0].metadata["flipped_to"] == "p2"
    new = upd.opened
    assert new is not None and new.position_id == "p2"
    assert (
        new.side is Side.SELL
        and new.state is S.OPEN
        and new.size == D("2")
        and new.entry_price == D("110")
    )
    assert new.history[0].metadata["flipped_from"] == "p1"
    assert p.fees + new.fees == D("0.4")  # the fee is split, never duplicated nor lost
    assert "f" in p.exec_ids and "f" in new.exec_ids
    # each one replays from its own start
    assert Position.replay(pending(), p.history) == p
    fresh = Position("p2", SYM, Side.SELL, strategy="test", created_at=new.created_at)
    assert Position.replay(fresh, new.history) == new


def test_liquidation_adl_and_delivery() -> None:
    p = pending()
    on_execution(p, ex("a", Side.BUY, "2", "100"))
    on_execution(p, ex("b", Side.SELL, "1", "80", exec_type="BustTrade"))
    assert p.state is S.OPEN  # partial liquidation is a reduce
    on_execution(p, ex("c", Side.SELL, "1", "79", exec_type="BustTrade"))
    assert state_of(p) is S.LIQUIDATED and p.close_reason == "liquidation"
    q = pending()
    on_execution(q, ex("a", Side.BUY, "1", "100"))
    on_execution(q, ex("b", Side.SELL, "1", "120", exec_type="AdlTrade"))
    assert q.state is S.CLOSED and q.close_reason == "AdlTrade"


def test_funding_after_close_and_dedupe() -> None:
    p = pending()
    on_execution(p, ex("a", Side.BUY, "1", "100"))
    on_execution(p, ex("f1", Side.BUY, "1", "100", "0.25", exec_type="Funding"))
    on_execution(p, ex("c", Side.SELL, "1", "100"))
    on_execution(p, ex("f2", Side.BUY, "1", "100", "-0.05", exec_type="Funding"))
    assert p.funding == D("0.20") and p.size == 0
    before = p.copy()
    assert (
        on_execution(p, ex("f2", Side.BUY, "1", "100", "-0.05", exec_type="Funding")).transitions == ()
    )
    assert on_execution(p, ex("s", Side.BUY, "1", "100", exec_type="Settle")).transitions == ()
    assert p == before


def test_refusals() -> None:
    p = pending()
    with pytest.raises(InvalidTransition, match="cannot open"):
        on_execution(p, ex("a", Side.SELL, "1", "100"))
    on_execution(p, ex("a", Side.BUY, "1", "100"))
    on_execution(p, ex("b", Side.SELL, "1", "100"))
    with pytest.raises(InvalidTransition, match="finished position"):
        on_execution(p, ex("c", Side.BUY, "1", "100"))
    with pytest.raises(ForeignUpdate):
        on_execution(p, Execution("x", "ETHUSDT", Side.BUY, D("1"), D("1")))
    q = pending()
    q.apply(E.OPEN, None, {"side": "Buy", "qty": "2", "price": "100", "fee": "0"})
    for meta in (
        {"side": "Sell", "qty": "2", "price": "100", "fee": "0"},  # reduce by the whole size
        {"side": "Buy", "qty": "1", "price": "100", "fee": "0"},  # reduce on the same side
        {"side": "Sell", "qty": "0", "price": "100", "fee": "0"},
        {"side": "Sell", "qty": "1", "price": "100"},
    ):
        before = q.copy()
        with pytest.raises(InvalidTransition):
            q.apply(E.REDUCE, None, meta)
        assert q == before
    with pytest.raises(InvalidTransition, match="whole size"):
        q.apply(E.CLOSE, None, {"side": "Sell", "qty": "1", "price": "100", "fee": "0"})
    with pytest.raises(ValueError):
        Position("bad", SYM, Side.BUY, size=D("1"))  # size in PENDING_OPEN


def test_protection_and_trailing() -> None:
    c = Clock()
    p = pending()
    p.set_protection(stop_loss=D("95"), take_profit=D("120"), at=c())
    on_execution(p, ex("a", Side.BUY, "1", "100"), c())
    trail = TrailingState(stop_active=True, best_price=D("102"), stop_price=D("100.98"))
    p.set_protection(trailing=trail, at=c(), trigger="+2%")
    assert (p.stop_loss, p.take_profit, p.trailing) == (D("95"), D("120"), trail)
    p.set_protection(take_profit=None, at=c())
    assert p.take_profit is None and p.stop_loss == D("95") and p.trailing == trail
    assert Position.replay(pending(), p.history) == p
    with pytest.raises(InvalidTransition):
        p.set_protection(stop_loss=D("-1"))


def test_request_and_abort_close() -> None:
    p = pending()
    on_execution(p, ex("a", Side.BUY, "1", "100"))
    p.request_close("kill_switch")
    assert p.state is S.CLOSING and p.close_reason == "kill_switch"
    on_execution(p, ex("b", Side.BUY, "1", "100"))  # an entry still resting fills meanwhile
    assert p.state is S.CLOSING and p.size == D("2")
    p.abort_close("close order rejected")
    assert state_of(p) is S.OPEN and p.close_reason == ""


# ---- hypothesis: any sequence of executions and actions --------------------------------------


class PositionChain(RuleBasedStateMachine):
    """Random fills (both sides, any size, liquidations, funding, duplicates) and actions on a
    symbol's chain of positions (a flip continues on the new one)."""

    def __init__(self) -> None:
        super().__init__()
        self.clock = Clock()
        self.n = 0
        self.chain: list[tuple[Position, Position]] = []  # (initial snapshot, live position)
        self._new(Side.BUY)
        self.buys = D(0)
        self.sells = D(0)
        self.net = D(0)
        self.fees = D(0)
        self.funding = D(0)
        self.seen: list[Execution] = []

    def _new(self, side: Side) -> Position:
        self.n += 1
        p = Position(f"p{self.n}", SYM, side, created_at=T0)
        self.chain.append((p.copy(), p))
        return p

    @property
    def current(self) -> Position:
        return self.chain[-1][1]

    @rule(
        side=st.sampled_from(Side),
        qty=st.integers(1, 6).map(lambda n: D(n) / 4),
        price=st.integers(90, 110).map(D),
        fee=st.integers(-5, 20).map(lambda n: D(n) / 1000),
        kind=st.sampled_from(["Trade", "Trade", "Trade", "BustTrade", "Funding", "Settle"]),
    )
    def execution(self, side: Side, qty: Decimal, price: Decimal, fee: Decimal, kind: str) -> None:
        p = self.current
        if p.is_terminal:
            p = self._new(side)
        e = Execution(f"e{len(self.seen)}", SYM, side, qty, price, fee, exec_type=kind)
        try:
            upd = on_execution(p, e, self.clock(), new_position_id=lambda: f"p{self.n + 1}")
        except InvalidTransition:
            # only a fill opposite to a PENDING_OPEN position, or funding before the open
            assert p.state is S.PENDING_OPEN
            return
        self.seen.append(e)
        if kind == "Funding":
            self.funding += fee
            return
        if kind == "Settle":
            assert upd.transitions == ()
            return
        self.fees += fee
        if side is Side.BUY:
            self.buys += qty * price
            self.net += qty
        else:
            self.sells += qty * price
            self.net -= qty
        if upd.opened is not None:
            self.n += 1
            fresh = Position(
                upd.opened.position_id, SYM, upd.opened.side, created_at=upd.opened.created_at
            )
            self.chain.append((fresh, upd.opened))

    @rule(data=st.data())
    def duplicate(self, data: st.DataObject) -> None:
        if not self.seen:
            return
        e = data.draw(st.sampled_from(self.seen))
        p = self.current
        if e.exec_id in p.exec_ids:
            before = p.copy()
            assert on_execution(p, e).transitions == ()
            assert p == before

    @rule(reason=st.sampled_from(["signal", "stop", "kill_switch"]))
    def close_or_abort(self, reason: str) -> None:
        p = self.current
        if p.state is S.OPEN:
            p.request_close(reason, self.clock())
        elif p.state is S.CLOSING:
            p.abort_close(reason, self.clock())
        elif p.state is S.PENDING_OPEN and reason == "kill_switch":
            p.cancel(reason, self.clock())

    @invariant()
    def consistent(self) -> None:
        for _initial, p in self.chain[:-1]:
            assert p.is_terminal and p.size == 0 and p.entry_value == 0
        p = self.current
        assert p.size >= 0 and p.entry_value >= 0
        assert (p.size > 0) == (p.state in (S.OPEN, S.CLOSING))
        signed = p.size if p.side is Side.BUY else -p.size
        assert signed == self.net
        # cash-flow identity, exact:
        # realised over the chain + open value at a mark == sells - buys + net x mark
        mark = D(100)
        p.mark(mark)
        with localcontext(EXACT):  # the identities are exact: any rounding here would raise
            realised = sum((q.realised_pnl for _, q in self.chain), D(0))
            assert realised + p.unrealised_pnl == self.sells - self.buys + self.net * mark
            assert sum((q.fees for _, q in self.chain), D(0)) == self.fees
            assert sum((q.funding for _, q in self.chain), D(0)) == self.funding

    @invariant()
    def replay(self) -> None:
        for initial, p in self.chain:
            assert Position.replay(initial, p.history) == p


TestPositionChain = PositionChain.TestCase
TestPositionChain.settings = settings(
    max_examples=300,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
