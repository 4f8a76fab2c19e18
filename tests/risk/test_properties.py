"""Properties of RiskManager.check over random inputs: an approval never breaks a limit, money
stays Decimal, quantities sit on the step, and size never shrinks when the balance grows."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pysrc.risk import (
    Approved,
    InstrumentSpec,
    OpenPosition,
    PortfolioState,
    RiskManager,
    SizingConfig,
    SizingMode,
)
from pysrc.strategy import Side, Signal, SignalKind

D = Decimal

steps = st.sampled_from([D("1"), D("0.1"), D("0.01"), D("0.001"), D("0.5"), D("0.025")])
ticks = st.sampled_from([D("0.0001"), D("0.01"), D("0.1"), D("0.5"), D("1")])
money = st.decimals(min_value=D("1"), max_value=D("1000000"), places=2)
balances = st.one_of(money, st.decimals(min_value=D("500"), max_value=D("1000000"), places=2))
prices = st.decimals(min_value=D("0.01"), max_value=D("100000"), places=2)


@st.composite
def scenario(draw: st.DrawFn) -> tuple[RiskManager, Signal, PortfolioState, InstrumentSpec]:
    step = draw(steps)
    tick = draw(ticks)
    price = draw(prices)
    price = max(tick * 10, (price // tick) * tick)  # on the tick, well above it
    inst = InstrumentSpec(
        "BTCUSDT",
        tick_size=tick,
        qty_step=step,
        min_qty=step * draw(st.integers(1, 5)),
        min_notional=draw(st.sampled_from([D(0), D(1), D(5), D(10)])),
        max_qty=draw(st.one_of(st.none(), st.integers(100, 10**6).map(D))),
        max_leverage=draw(st.sampled_from([D(5), D(25), D(100)])),
    )
    sizing = SizingConfig(
        mode=draw(st.sampled_from(list(SizingMode))),
        position_size_pct=draw(st.sampled_from([D("0.001"), D("0.01"), D("0.1"), D("0.5")])),
        fixed_size_usdt=draw(st.sampled_from([D(5), D(10), D(1000)])),
        stop_loss_pct=draw(st.sampled_from([D("0.005"), D("0.02"), D("0.1")])),
    )
    rm = RiskManager(sizing=sizing)
    side = draw(st.sampled_from(list(Side)))
    signal = Signal(
        symbol="BTCUSDT",
        side=side,
        kind=SignalKind.IMBALANCE,
        strength=0.5,
        confidence=draw(st.floats(0.0, 1.0)),
        price=price,
        ts=0,
        strategy="t",
        features={"realized_vol_10s_bps": draw(st.floats(0.0, 100.0))},
    )
    others = draw(st.lists(st.tuples(st.integers(1, 50), st.integers(1, 50)), max_size=4))
    positions = tuple(OpenPosition(f"P{i}USDT", Side.BUY, D(q), D(p)) for i, (q, p) in enumerate(others))
    balance = draw(balances)
    portfolio = PortfolioState(
        balance=balance,
        positions=positions,
        available_balance=draw(st.one_of(st.none(), balances)),
        day_start_equity=D("1000"),
    )
    return rm, signal, portfolio, inst


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario())
def test_an_approval_never_breaks_a_limit(case: tuple[RiskManager, Signal, PortfolioState, InstrumentSpec]) -> None:
    rm, signal, pf, inst = case
    d = rm.check(signal, pf, inst)
    if not isinstance(d, Approved):
        return
    L = rm.limits
    for name in ("qty", "leverage", "entry_price", "stop_loss", "take_profit", "notional", "margin", "risk_amount"):
        assert isinstance(getattr(d, name), Decimal), name  # never float money
    assert d.qty > 0 and d.qty % inst.qty_step == 0
    assert d.qty >= inst.min_qty
    assert d.notional == d.qty * d.entry_price
    assert d.notional >= inst.min_notional and d.notional >= L.min_order_usdt
    if inst.max_qty is not None:
        assert d.qty <= inst.max_qty
    assert d.leverage <= min(L.max_leverage, inst.max_leverage)
    assert d.risk_amount == d.qty * abs(d.entry_price - d.stop_loss)
    assert d.risk_amount <= L.max_risk_per_trade * pf.balance
    open_risk = sum((p.risk_amount(rm.sizing.stop_loss_pct) for p in pf.positions), D(0))
    assert open_risk + d.risk_amount <= L.max_total_risk * pf.balance
    assert pf.exposure + d.notional <= L.max_exposure_usdt
    assert d.notional / d.leverage <= pf.available
    # protective prices on the tick and on the right sides, the stop within the max loss
    assert d.stop_loss % inst.tick_size == 0 and d.take_profit % inst.tick_size == 0
    sign = signal.side.sign
    assert (d.entry_price - d.stop_loss) * sign > 0 and (d.take_profit - d.entry_price) * sign > 0
    assert (
        abs(d.entry_price - d.stop_loss) <= d.entry_price * rm.sizing.stop_loss_pct
        or abs(d.entry_price - d.stop_loss) == inst.tick_size
    )


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario(), money)
def test_size_is_monotone_in_the_balance(
    case: tuple[RiskManager, Signal, PortfolioState, InstrumentSpec], other: Decimal
) -> None:
    rm, signal, pf, inst = case
    low, high = sorted((pf.balance, other))

    def qty(balance: Decimal) -> Decimal:
        state = PortfolioState(balance=balance, positions=pf.positions, day_start_equity=pf.day_start_equity)
        d = rm.check(signal, state, inst)
        return d.qty if isinstance(d, Approved) else D(0)

    assert qty(low) <= qty(high)
