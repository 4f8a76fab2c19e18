"""The dynamic position manager: every rule with hand-computed prices, reconciliation with the
exchange, and the property that trailing stops only tighten."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pysrc.positions import (
    AdoptPosition,
    CloseAll,
    ClosePartial,
    ExchangePosition,
    MarkClosed,
    MoveStop,
    MoveTakeProfit,
    PositionManager,
    PositionRules,
    SyncQuantity,
    reversal_votes,
)
from pysrc.risk import InstrumentSpec, RiskConfigError
from pysrc.strategy import Side

D = Decimal
INST = InstrumentSpec("X", D("0.01"), D("0.001"), D("0.001"))


def manager(side: Side = Side.BUY, qty: str = "1", entry: str = "100", **kw: object) -> PositionManager:
    pm = PositionManager(clock=lambda: 0.0)
    pm.open("X", side, D(qty), D(entry), INST, ts=0.0, **kw)  # type: ignore[arg-type]
    return pm


def step(pm: PositionManager, price: str, ts: float = 1.0, **kw: object) -> list[object]:
    return list(pm.on_price("X", D(price), ts=ts, **kw))  # type: ignore[arg-type]


def test_a_long_through_its_whole_life() -> None:
    pm = manager()
    B = Side.BUY
    # no stop yet: the max-loss stop, 2 % under the entry
    assert step(pm, "100") == [MoveStop("X", B, D("98.00"), "initial_max_loss")]
    # +1 %: trailing TP activates -> the stop locks +0.3 % (100.30); TP from the price: 101 + 0.5
    assert step(pm, "101") == [
        MoveStop("X", B, D("100.30"), "min_profit_lock"),
        MoveTakeProfit("X", B, D("101.50"), "trailing_take_profit move 1"),
    ]
    # 0.3 from the TP < one step (0.5): moves out by 0.5 x 1.5 = 0.75 -> 102.25
    assert step(pm, "101.2") == [MoveTakeProfit("X", B, D("102.25"), "trailing_take_profit move 2")]
    # +1.5 %: first partial target, 25 % of the initial quantity
    assert step(pm, "101.5") == [ClosePartial("X", B, D("0.250"), "target 1 at +1.50%")]
    # +2 %: trailing stop at 1 % under the peak: 100.98; TP 0.25 away -> + 0.5 x 1.5^2 = 1.125 -> 103.375 -> up to 103.38
    assert step(pm, "102") == [
        MoveStop("X", B, D("100.98"), "trailing_stop 1.00%"),
        MoveTakeProfit("X", B, D("103.38"), "trailing_take_profit move 3"),
    ]
    assert step(pm, "101.5") == []  # a pullback never loosens anything
    # the stop is hit: close what is left once the partial fills (0.75)
    assert step(pm, "100.98") == [CloseAll("X", B, D("0.750"), "stop_loss")]
    assert step(pm, "90") == []  # closing: nothing more until execution reports back
    pm.on_reduced("X", B, D("0"))
    assert pm.get("X", B) is None


def test_trailing_distance_table() -> None:
    pm = manager(stop_loss=D("98"), take_profit=D("200"))
    step(pm, "105")  # +5 %: 1.5 % under 105 = 103.425 -> rounded toward the price: 103.43
    pos = pm.get("X", Side.BUY)
    assert pos is not None and pos.stop_loss == D("103.43")
    step(pm, "109.99")  # still tier 2: 109.99 x 0.985 = 108.34015 -> 108.35
    assert pos.stop_loss == D("108.35")
    # +10 %: the distance widens to 2 %: 110 x 0.98 = 107.80 is lower than 108.35: the stop stays
    assert [a for a in step(pm, "110") if isinstance(a, MoveStop)] == []
    assert pos.stop_loss == D("108.35")
    out = step(pm, "112")  # 112 x 0.98 = 109.76 > 108.35
    assert MoveStop("X", Side.BUY, D("109.76"), "trailing_stop 2.00%") in out
    rules = PositionRules()
    assert [rules.trailing_distance(D(p)) for p in ("0.019", "0.02", "0.049", "0.05", "0.1", "0.5")] == [
        None,
        D("0.01"),
        D("0.01"),
        D("0.015"),
        D("0.02"),
        D("0.02"),
    ]


def test_a_short_mirrors_a_long() -> None:
    pm = manager(Side.SELL)
    S = Side.SELL
    assert step(pm, "100") == [MoveStop("X", S, D("102.00"), "initial_max_loss")]
    assert step(pm, "99") == [
        MoveStop("X", S, D("99.70"), "min_profit_lock"),
        MoveTakeProfit("X", S, D("98.50"), "trailing_take_profit move 1"),
    ]
    # +1.4 %: the TP (98.50) is 0.1 away -> out by 0.5 x 1.5 = 0.75 -> 97.75
    assert step(pm, "98.6") == [MoveTakeProfit("X", S, D("97.75"), "trailing_take_profit move 2")]
    # +1.99 %: partial target 1; TP 0.26 away -> out by 0.5 x 1.5^2 = 1.125 -> 96.625 -> down to 96.62
    assert step(pm, "98.01") == [
        ClosePartial("X", S, D("0.250"), "target 1 at +1.50%"),
        MoveTakeProfit("X", S, D("96.62"), "trailing_take_profit move 3"),
    ]
    # +2 %: trailing stop 1 % above the low of 98: 98.98
    assert step(pm, "98") == [MoveStop("X", S, D("98.98"), "trailing_stop 1.00%")]
    assert step(pm, "96.5") == [CloseAll("X", S, D("0.750"), "take_profit")]


def test_max_loss() -> None:
    pm = manager()  # no stop on the exchange and a gap down: the safety net closes
    assert step(pm, "97.5") == [CloseAll("X", Side.BUY, D("1"), "max_loss")]
    pm = manager(stop_loss=D("95"))  # a stop farther than 2 % is pulled in
    assert step(pm, "100") == [MoveStop("X", Side.BUY, D("98.00"), "max_loss_tighten")]
    pm.on_close_failed("X", Side.BUY)  # harmless when not closing


def test_restored_state_with_a_breached_stop_closes() -> None:
    # loaded at start with a stored extreme of +3 %: the trailing stop would be 103 x 0.99 = 101.97,
    # above the current 101.4
    pm = manager(stop_loss=D("98"), extreme=D("103"))
    assert step(pm, "101.4") == [CloseAll("X", Side.BUY, D("1"), "stop_breached")]


def test_reversal_exit() -> None:
    down = {"a": -1, "b": -1, "c": -1, "d": 1}
    pm = manager(stop_loss=D("98"))
    step(pm, "100.5", ts=10)
    # 3 against, 0.3 % off the 100.5 extreme, but only 30 s after opening: cooldown
    assert step(pm, "100.2", ts=30.0, reversal_votes=down) == []
    # 2 against: not enough
    assert step(pm, "100.2", ts=70.0, reversal_votes={"a": -1, "b": -1, "c": 0}) == []
    # pulled back only 0.1 %: not enough
    assert step(pm, "100.4", ts=70.0, reversal_votes=down) == []
    assert step(pm, "100.2", ts=70.0, reversal_votes=down) == [
        CloseAll("X", Side.BUY, D("1"), "reversal (3 indicators)")
    ]
    # the close failed: the cooldown restarts from the last reversal decision
    pm.on_close_failed("X", Side.BUY)
    assert step(pm, "100.2", ts=100.0, reversal_votes=down) == []
    assert step(pm, "100.2", ts=131.0, reversal_votes=down) != []
    # for a short, votes up are against it
    pm = manager(Side.SELL, stop_loss=D("102"))
    step(pm, "99.5", ts=0)
    assert step(pm, "99.8", ts=61.0, reversal_votes={"a": 1, "b": 1, "c": 1})[0].reason.startswith("reversal")  # type: ignore[attr-defined]


def test_final_target_closes_what_cannot_be_split() -> None:
    pm = manager(qty="0.003", stop_loss=D("98"), take_profit=D("110"))
    # 25 % of 0.003 = 0.00075 -> 0.000 on the 0.001 step: too small, skipped
    assert [a for a in step(pm, "101.5") if isinstance(a, ClosePartial)] == []
    pm = manager(qty="0.004", stop_loss=D("98"), take_profit=D("110"))
    assert ClosePartial("X", Side.BUY, D("0.001"), "target 1 at +1.50%") in step(pm, "101.5")
    rules = PositionRules(partial_target_1_fraction=D("0.5"), partial_target_2_fraction=D("0.5"))
    pm = PositionManager(rules, clock=lambda: 0.0)
    pm.open("X", Side.BUY, D("1"), D("100"), INST, stop_loss=D("98"), take_profit=D("110"))
    assert ClosePartial("X", Side.BUY, D("0.500"), "target 1 at +1.50%") in step(pm, "101.5")
    assert CloseAll("X", Side.BUY, D("0.500"), "final_target") in step(pm, "103")


def test_reconcile_with_the_exchange() -> None:
    clock = [100.0]
    pm = PositionManager(clock=lambda: clock[0])
    pm.open("A", Side.BUY, D("1"), D("10"), InstrumentSpec("A", D("0.01"), D("0.1"), D("0.1")), ts=0.0)
    pm.open("B", Side.SELL, D("2"), D("10"), InstrumentSpec("B", D("0.01"), D("0.1"), D("0.1")), ts=0.0)
    pm.open("C", Side.BUY, D("3"), D("10"), InstrumentSpec("C", D("0.01"), D("0.1"), D("0.1")), ts=98.0)
    snap = [ExchangePosition("B", Side.SELL, D("1.5")), ExchangePosition("D", Side.BUY, D("4"), D("7"))]
    out = pm.reconcile(snap)
    # A missing once: not yet (one snapshot may lag); B changed; D unknown; C too new to judge
    assert out == [
        SyncQuantity("B", Side.SELL, D("1.5"), D("2"), "changed_outside_bot"),
        AdoptPosition("D", Side.BUY, D("4"), D("7"), "unknown_to_bot"),
    ]
    out = pm.reconcile(snap[:1])
    assert out == [MarkClosed("A", Side.BUY, D("1"), True, "closed_outside_bot")]
    assert pm.get("A", Side.BUY) is None and pm.get("C", Side.BUY) is not None  # C: within the 5 s grace
    clock[0] = 104.0
    assert pm.reconcile(snap[:1]) == [MarkClosed("C", Side.BUY, D("3"), True, "closed_outside_bot")]
    # a close the bot asked for is not "outside the bot"; partial fills we emitted are not a change
    pm.open("E", Side.BUY, D("1"), D("100"), INST.__class__("E", D("0.01"), D("0.1"), D("0.1")), ts=0.0)
    pm.on_price("E", D("101.5"))  # target 1: ClosePartial 0.2 (25 % of 1 -> 0.2 on the 0.1 step)
    assert pm.reconcile([ExchangePosition("E", Side.BUY, D("0.8")), snap[0]]) == []
    e = pm.get("E", Side.BUY)
    assert e is not None and e.qty == D("0.8") and e.pending_reduce == 0
    pm.on_price("E", D("50"))  # max loss: CloseAll, closing
    pm.reconcile([snap[0]])
    assert pm.reconcile([snap[0]]) == [MarkClosed("E", Side.BUY, D("0.8"), False, "closed_by_bot")]


def test_rules_validation_names_the_key() -> None:
    pm = PositionManager()
    assert pm.update_rules({"tp_step": 0.004}).tp_step == D("0.004")
    for changes, key in (
        ({"max_loss": 0}, "max_loss"),
        ({"sl_tier2_profit": 0.01}, "sl_tier2_profit"),
        ({"min_profit": 0.02}, "min_profit"),
        ({"reversal_min_indicators": 0}, "reversal_min_indicators"),
        ({"partial_target_2_fraction": 0.9}, "partial_target_2_fraction"),
        ({"trailing": 1}, "trailing"),
    ):
        with pytest.raises(RiskConfigError) as err:
            pm.update_rules(changes)
        assert err.value.key == key
    with pytest.raises(ValueError):
        pm.open("Y", Side.BUY, D("1"), D("1"), INST)  # instrument of another symbol
    with pytest.raises(KeyError):
        pm.on_reduced("nope", Side.BUY, D("1"))


def test_reversal_votes_from_features() -> None:
    votes = reversal_votes(
        {
            "imbalance_5": -0.5,
            "pressure_10": 0.1,  # inside the dead band
            "ofi_norm_100": -2.0,
            "volume_delta_10s": -3.0,
            "mid_roc_1s_bps": None,  # missing never votes
            "microprice_offset_bps": 0.3,
        }
    )
    assert votes == {
        "imbalance_5": -1,
        "pressure_10": 0,
        "ofi_norm_100": -1,
        "volume_delta_10s": -1,
        "mid_roc_1s_bps": 0,
        "microprice_offset_bps": 1,
    }
    pm = manager(stop_loss=D("98"))
    step(pm, "100.5", ts=0)
    out = step(pm, "100.2", ts=61, reversal_votes=votes)
    assert out and isinstance(out[0], CloseAll) and out[0].reason == "reversal (3 indicators)"


# ---- properties ----------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(list(Side)),
    st.lists(st.integers(min_value=-30, max_value=30), min_size=1, max_size=120),
    st.sampled_from([D("0.01"), D("0.5"), D("0.0001")]),
)
def test_trailing_stops_only_tighten(side: Side, moves: list[int], tick: Decimal) -> None:
    """Random walks in steps of up to 3 % (in 0.1 % units): a long's stop never moves down, a short's never up, each new
    stop is on the tick and on the right side of the price, and take-profits only move outward."""
    inst = InstrumentSpec("X", tick, D("0.001"), D("0.001"))
    pm = PositionManager(clock=lambda: 0.0)
    pm.open("X", side, D("1"), D("100"), inst, ts=0.0)
    price = D("100")
    stop: Decimal | None = None
    tp: Decimal | None = None
    sign = side.sign
    for i, m in enumerate(moves):
        price = max(D("1"), price * (1 + D(m) / 1000))
        for a in pm.on_price("X", price, ts=float(i)):
            if isinstance(a, MoveStop):
                assert a.price % tick == 0
                assert (price - a.price) * sign > 0  # placed on the protective side of the price
                if stop is not None:
                    assert (a.price - stop) * sign > 0  # tighter, never looser
                stop = a.price
            elif isinstance(a, MoveTakeProfit):
                if tp is not None:
                    assert (a.price - tp) * sign > 0
                tp = a.price
            elif isinstance(a, CloseAll):
                return
