"""RiskManager.check with hand-computed numbers, one rule at a time, and the kill switch."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

import pytest

from pysrc.risk import (
    HALT_ACTIONS,
    Approved,
    CorrelationTracker,
    InstrumentSpec,
    KillSwitch,
    OpenPosition,
    PortfolioState,
    RejectCode,
    Rejected,
    RiskManager,
    SizingConfig,
)
from pysrc.strategy import Side, Signal

D = Decimal
SignalFactory = Callable[..., Signal]


def pf(balance: str = "10000", positions: tuple[OpenPosition, ...] = (), **kw: object) -> PortfolioState:
    return PortfolioState(balance=D(balance), positions=positions, **kw)  # type: ignore[arg-type]


def pos(symbol: str, qty: str = "1", entry: str = "100", side: Side = Side.BUY, **kw: object) -> OpenPosition:
    return OpenPosition(symbol, side, D(qty), D(entry), **kw)  # type: ignore[arg-type]


def approved(d: Approved | Rejected) -> Approved:
    assert isinstance(d, Approved), d
    return d


def rejected(d: Approved | Rejected, code: RejectCode) -> Rejected:
    assert isinstance(d, Rejected), d
    assert d.code is code, d
    return d


# ---- sizing --------------------------------------------------------------------------------------


def test_percent_sizing_hand_computed(btc: InstrumentSpec, make_signal: SignalFactory) -> None:
    rm = RiskManager()
    a = approved(rm.check(make_signal(), pf(), btc))
    # margin 1 % of 10000 = 100; x leverage 10 (volatility unknown) = 1000 notional; / 50000 = 0.02
    assert a.qty == D("0.020") and a.leverage == 10 and a.notional == D("1000.000") and a.margin == 100
    # stop 2 % below: 49000 (distance 1000) -> risk 20 = 0.2 % of the balance; target +3 %: 51500
    assert a.stop_loss == D("49000") and a.take_profit == D("51500") and a.risk_amount == 20
    assert a.entry_price == D("50000") and a.side is Side.BUY
    assert any("volatility regime unknown" in r for r in a.reasons)
    # sized by confidence: 0.5 -> half
    assert approved(rm.check(make_signal(confidence=0.5), pf(), btc)).qty == D("0.010")
    # rounded down to the step: 12345 -> margin 123.45 x 10 / 50000 = 0.024690 -> 0.024
    assert approved(rm.check(make_signal(), pf("12345"), btc)).qty == D("0.024")
    assert rm.counts["approved"] == 3


def test_fixed_and_exchange_minimum_sizing(btc: InstrumentSpec, make_signal: SignalFactory) -> None:
    rm = RiskManager(sizing=SizingConfig(mode="fixed"))  # type: ignore[arg-type]
    # 10 margin x 10 = 100 notional -> 0.002
    assert approved(rm.check(make_signal(), pf(), btc)).qty == D("0.002")
    rm.update_sizing({"mode": "exchange_min"})
    # max(min_qty 0.001, 5 / 50000, 5 / 50000) -> 0.001 (50 USDT)
    a = approved(rm.check(make_signal(), pf(), btc))
    assert a.qty == D("0.001") and a.notional == D("50.000")
    # a cheap coin: min_notional decides. 5 / 0.37 = 13.51 -> ceil to step 1 -> 14 (5.18 USDT)
    doge = InstrumentSpec("DOGEUSDT", D("0.00001"), D("1"), D("1"), D("5"))
    a = approved(rm.check(make_signal("DOGEUSDT", price="0.37"), pf(), doge))
    assert a.qty == 14 and a.notional >= 5


def test_adaptive_leverage(btc: InstrumentSpec, make_signal: SignalFactory) -> None:
    rm = RiskManager()
    assert rm.leverage_for(30.0, btc) == (D(5), "high")
    assert rm.leverage_for(25.0, btc) == (D(5), "high")
    assert rm.leverage_for(10.0, btc) == (D(10), "medium")
    assert rm.leverage_for(5.0, btc) == (D(20), "low")
    assert rm.leverage_for(None, btc) == (D(10), "unknown")
    low_cap = InstrumentSpec("BTCUSDT", D("0.1"), D("0.001"), D("0.001"), max_leverage=D("12.5"))
    assert rm.leverage_for(1.0, low_cap) == (D("12.5"), "low")
    # from the signal's features: realized_vol_10s_bps = 2 -> low -> 20x -> 0.04
    a = approved(rm.check(make_signal(features={"realized_vol_10s_bps": 2.0}), pf(), btc))
    assert a.leverage == 20 and a.qty == D("0.040")
    # an explicit volatility wins over the feature
    assert (
        approved(rm.check(make_signal(features={"realized_vol_10s_bps": 2.0}), pf(), btc, volatility_bps=50.0)).leverage
        == 5
    )
    rm.update_limits({"adaptive_leverage": False})
    assert rm.leverage_for(1.0, btc) == (D(10), "fixed")


def test_caps(btc: InstrumentSpec, make_signal: SignalFactory) -> None:
    # risk per trade: 5 % margin x 10 = 5000 notional = 0.1 BTC; stop 10 % away -> risk 500 > 200
    rm = RiskManager(sizing=SizingConfig(position_size_pct=D("0.05"), stop_loss_pct=D("0.10")))
    a = approved(rm.check(make_signal(), pf(), btc))
    # 200 / (50000 - 45000) = 0.04
    assert a.qty == D("0.040") and a.risk_amount == 200 and any("max_risk_per_trade" in r for r in a.reasons)

    # exposure: 9500 open of 10000 -> room 500 -> 0.01 BTC
    rm = RiskManager()
    a = approved(rm.check(make_signal(), pf(positions=(pos("XRPUSDT", "9500", "1"),)), btc))
    assert a.qty == D("0.010") and any("max_exposure_usdt" in r for r in a.reasons)

    # margin: 20 available x 10 / 50000 = 0.004
    a = approved(rm.check(make_signal(), pf(available_balance=D("20")), btc))
    assert a.qty == D("0.004")

    # instrument max qty
    small_max = InstrumentSpec("BTCUSDT", D("0.1"), D("0.001"), D("0.001"), D("5"), max_qty=D("0.005"))
    assert approved(rm.check(make_signal(), pf(), small_max)).qty == D("0.005")

    # symbol exposure
    rm.update_limits({"max_symbol_exposure_usdt": 300})
    assert approved(rm.check(make_signal(), pf(), btc)).qty == D("0.006")


def test_stop_hint_and_short_rounding(btc: InstrumentSpec, make_signal: SignalFactory) -> None:
    rm = RiskManager()
    # a tighter stop hint is used: 49500 -> distance 500
    a = approved(rm.check(make_signal(stop_price=D("49500")), pf(), btc))
    assert a.stop_loss == D("49500.0")
    # a hint farther than the max loss is ignored
    assert approved(rm.check(make_signal(stop_price=D("40000")), pf(), btc)).stop_loss == D("49000")
    # short at 50000.3 (tick 0.1 for rounding): stop 51000.306 -> down to 51000.3; target 48500.291 -> up to 48500.3
    a = approved(rm.check(make_signal(side=Side.SELL, price="50000.3"), pf(), btc))
    assert a.stop_loss == D("51000.3") and a.take_profit == D("48500.3")
    # long at 50000.3: stop 49000.294 -> up to 49000.3 (toward entry); target 51500.309 -> down to 51500.3
    a = approved(rm.check(make_signal(price="50000.3"), pf(), btc))
    assert a.stop_loss == D("49000.3") and a.take_profit == D("51500.3")


# ---- rejections, in order -------------------------------------------------------------------------


def test_rejections(btc: InstrumentSpec, make_signal: SignalFactory) -> None:
    rm = RiskManager()
    sig = make_signal()
    rejected(rm.check(make_signal("ETHUSDT"), pf(), btc), RejectCode.INVALID_SIGNAL)
    r = rejected(rm.check(sig, pf(positions=(pos("BTCUSDT"),)), btc), RejectCode.SYMBOL_POSITION_LIMIT)
    assert "max_positions_per_symbol is 1" in r.message
    ten = tuple(pos(f"C{i}USDT", "0.01") for i in range(10))
    rejected(rm.check(sig, pf(positions=ten), btc), RejectCode.MAX_POSITIONS)
    rejected(rm.check(sig, pf("0"), btc), RejectCode.INSUFFICIENT_MARGIN)
    # open risk: five positions each risking 200 (2 % stop on 10000 notional) = 10 % of 10000
    risky = tuple(pos(f"R{i}USDT", "100", "100", stop_loss=D("98")) for i in range(5))
    rm.update_limits({"max_exposure_usdt": 10**9})
    rejected(rm.check(sig, pf(positions=risky), btc), RejectCode.TOTAL_RISK_LIMIT)
    # a stop moved to break-even takes the risk off
    safe = tuple(pos(f"R{i}USDT", "100", "100", stop_loss=D("100")) for i in range(5))
    approved(rm.check(sig, pf(positions=safe), btc))
    rm.update_limits({"max_exposure_usdt": 10_000})
    rejected(rm.check(sig, pf(positions=(pos("XRPUSDT", "10000", "1"),)), btc), RejectCode.EXPOSURE_LIMIT)
    # too small: 1 % of 10 = 0.1 margin x 10 = 1 USDT < 5
    r = rejected(rm.check(sig, pf("10"), btc), RejectCode.BELOW_MINIMUM)
    assert "min_order_usdt 5" in r.message
    # a cap making it too small carries the cap's code. Exchange minimum 0.001 BTC risks 1 USDT at
    # a 2 % stop; with 25 USDT the per-trade cap is 0.5 / 1000 = 0.0005 BTC < 0.001
    rm.update_sizing({"mode": "exchange_min"})
    r = rejected(rm.check(sig, pf("25"), btc), RejectCode.RISK_PER_TRADE_LIMIT)
    assert "capped by max_risk_per_trade" in r.message
    rm.update_sizing({"mode": "percent"})
    rm.update_sizing({"min_confidence": 0.6})
    rejected(rm.check(make_signal(confidence=0.5), pf(), btc), RejectCode.LOW_CONFIDENCE)
    assert rm.counts["symbol_position_limit"] == 1 and rm.counts["below_minimum"] == 1


def test_correlation_limit_by_group_and_by_tracker(btc: InstrumentSpec, make_signal: SignalFactory) -> None:
    rm = RiskManager()
    rm.update_limits({"max_correlated_positions": 2})
    # ETH (majors, like BTC) open: BTC would be the 2nd correlated -> allowed at 2
    approved(rm.check(make_signal(), pf(positions=(pos("ETHUSDT", "0.01"),)), btc))
    rm.update_limits({"max_correlated_positions": 1})
    r = rejected(rm.check(make_signal(), pf(positions=(pos("ETHUSDT", "0.01"),)), btc), RejectCode.CORRELATION_LIMIT)
    assert "ETHUSDT" in r.message
    # by the tracker: three unrelated-by-group symbols whose returns follow BTC's
    tracker = CorrelationTracker(window=50, min_samples=20)
    for i in range(40):
        base = 0.001 * ((i * 7) % 11 - 5)
        tracker.observe(
            {"BTCUSDT": base, "XRPUSDT": base * 2, "ADAUSDT": base + 1e-5, "DOGEUSDT": base * 0.5, "TRXUSDT": -base}
        )
    rm = RiskManager(correlations=tracker)
    assert rm.correlated_symbols("BTCUSDT", {"XRPUSDT", "ADAUSDT", "DOGEUSDT", "TRXUSDT"}) == {
        "XRPUSDT",
        "ADAUSDT",
        "DOGEUSDT",
    }
    three = (pos("XRPUSDT", "1", "1"), pos("ADAUSDT", "1", "1"), pos("DOGEUSDT", "1", "1"))
    rejected(rm.check(make_signal(), pf(positions=three), btc), RejectCode.CORRELATION_LIMIT)
    approved(rm.check(make_signal(), pf(positions=three[:2]), btc))


# ---- the kill switch ------------------------------------------------------------------------------


def test_daily_loss_trips_the_kill_switch(btc: InstrumentSpec, make_signal: SignalFactory) -> None:
    now = [1000.0]
    rm = RiskManager(clock=lambda: now[0])
    # realised -300 and unrealised -150 since the day started on 10000: 4.5 % <= 5 %: trading on
    ok = pf(day="2024-05-01", day_start_equity=D("10000"), realized_pnl_today=D("-300"), unrealized_pnl=D("-150"))
    d = rm.evaluate_kill_switch(ok)
    assert not d.halt and d.loss_fraction == D("0.045") and d.actions == ()
    approved(rm.check(make_signal(), ok, btc))
    # exactly 5 % is not "exceeds"
    assert not rm.evaluate_kill_switch(pf(day_start_equity=D("10000"), realized_pnl_today=D("-500"))).halt
    # -500.01 exceeds: the check rejects and the switch latches, with the halt actions pending
    bad = pf(day="2024-05-01", day_start_equity=D("10000"), realized_pnl_today=D("-450"), unrealized_pnl=D("-50.01"))
    r = rejected(rm.check(make_signal(), bad, btc), RejectCode.DAILY_LOSS)
    assert "exceeds max_daily_loss" in r.message
    assert rm.kill_switch.engaged and rm.kill_switch.engaged_at == 1000.0 and rm.kill_switch.engaged_by == "risk"
    d = rm.evaluate_kill_switch(ok)  # even with the loss back under: stays engaged until a person acts
    assert d.halt and not d.newly_engaged and d.actions == HALT_ACTIONS
    rejected(rm.check(make_signal(), ok, btc), RejectCode.KILL_SWITCH)
    rm.kill_switch.acknowledge_halt()  # execution cancelled and closed everything
    assert rm.evaluate_kill_switch(ok).actions == () and rm.evaluate_kill_switch(ok).halt
    assert rm.status(ok)["kill_switch"] is True
    # released by a person with the state: today's loss so far becomes the new zero
    rm.release_kill_switch("alice", bad)
    assert not rm.kill_switch.engaged and rm.kill_switch.released_by == "alice"
    assert rm.kill_switch.effective_day_pnl(bad) == 0
    approved(rm.check(make_signal(), bad, btc))
    # a new day: the rebase no longer applies
    assert rm.kill_switch.effective_day_pnl(pf(day="2024-05-02", realized_pnl_today=D("-1"))) == -1


def test_unrealized_pnl_from_positions_and_day_start() -> None:
    ks = KillSwitch(clock=lambda: 0.0)
    p = pf(
        positions=(
            pos("BTCUSDT", "1", "100", mark_price=D("90")),
            pos("ETHUSDT", "2", "50", side=Side.SELL, mark_price=D("55")),
        ),
        day_start_equity=D("1000"),
        unrealized_pnl_day_start=D("-5"),
    )
    # long -10, short -10 -> -20 unrealised; minus -5 at the day start -> day PnL -15 = 1.5 %
    assert p.total_unrealized == -20 and p.day_pnl == -15
    assert ks.loss_fraction(p) == D("0.015")
    assert not ks.evaluate(p, D("0.05")).halt and ks.evaluate(p, D("0.01")).newly_engaged


def test_manual_engage_and_persistence() -> None:
    ks = KillSwitch(clock=lambda: 5.0)
    d = ks.engage("operator pressed the button", by="bob")
    assert d.halt and d.newly_engaged and d.actions == HALT_ACTIONS
    again = ks.engage("twice")
    assert not again.newly_engaged and again.reason == "operator pressed the button"
    restored = KillSwitch.from_dict(ks.to_dict())
    assert restored.engaged and restored.halt_pending and restored.engaged_by == "bob"
    with pytest.raises(ValueError):
        restored.release("")
    restored.release("bob")
    assert not restored.engaged and not restored.halt_pending


def test_money_is_never_float(btc: InstrumentSpec) -> None:
    with pytest.raises(TypeError):
        PortfolioState(balance=10_000.0)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        OpenPosition("X", Side.BUY, D("1"), 100.0)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        InstrumentSpec("X", 0.1, D("1"), D("1"))  # type: ignore[arg-type]
    assert InstrumentSpec.from_mapping("X", {"tick_size": "0.5", "qty_step": "1", "min_qty": "1"}).tick_size == D("0.5")
