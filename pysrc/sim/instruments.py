"""The simulated exchange's instruments: USDT linear perpetuals with Bybit-like filters.

Every price inside the simulator is an integer number of ticks and every size an integer number
of qty steps ("lots"). Strings appear only at the edge, formatted with the instrument's decimals,
so the wire text is exact (``"65000.10"``, never ``"65000.1000000001"``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from decimal import Decimal, InvalidOperation

# (symbol, start price, tickSize, qtyStep, max leverage, relative activity)
# Tick and step sizes are close to Bybit's real linear contracts; start prices are round figures.
_BUILTIN: tuple[tuple[str, str, str, str, str, float], ...] = (
    ("BTCUSDT", "65000.00", "0.10", "0.001", "100", 1.6),
    ("ETHUSDT", "3500.00", "0.01", "0.01", "100", 1.4),
    ("SOLUSDT", "150.000", "0.010", "0.1", "100", 1.2),
    ("XRPUSDT", "0.6000", "0.0001", "1", "75", 1.1),
    ("DOGEUSDT", "0.15000", "0.00001", "1", "75", 1.0),
    ("BNBUSDT", "600.00", "0.05", "0.01", "75", 0.9),
    ("ADAUSDT", "0.4500", "0.0001", "1", "75", 0.8),
    ("AVAXUSDT", "35.000", "0.001", "0.1", "50", 0.8),
    ("LINKUSDT", "15.000", "0.001", "0.1", "50", 0.8),
    ("DOTUSDT", "7.000", "0.001", "0.1", "50", 0.7),
    ("LTCUSDT", "80.00", "0.01", "0.1", "50", 0.7),
    ("TRXUSDT", "0.12000", "0.00001", "1", "50", 0.6),
    ("TONUSDT", "5.0000", "0.0001", "0.1", "50", 0.6),
    ("SUIUSDT", "1.50000", "0.00010", "10", "50", 0.7),
    ("NEARUSDT", "5.000", "0.001", "0.1", "50", 0.6),
    ("APTUSDT", "9.0000", "0.0005", "0.01", "50", 0.6),
    ("ARBUSDT", "0.8000", "0.0001", "0.1", "50", 0.6),
    ("OPUSDT", "1.800", "0.001", "0.1", "50", 0.5),
    ("ATOMUSDT", "8.000", "0.001", "0.1", "50", 0.5),
    ("FILUSDT", "5.000", "0.001", "0.1", "50", 0.5),
)

# Synthetic instruments cycle through these shapes (start price, tickSize, qtyStep).
_SYNTHETIC_SHAPES: tuple[tuple[str, str, str], ...] = (
    ("12.000", "0.001", "0.1"),
    ("0.25000", "0.00001", "1"),
    ("450.00", "0.01", "0.01"),
    ("2.5000", "0.0001", "1"),
    ("0.0150000", "0.0000010", "10"),
    ("95.00", "0.01", "0.1"),
)

DEFAULT_MIN_NOTIONAL = Decimal(5)


def decimals_of(text: str) -> int:
    """Number of digits after the decimal point in a plain decimal string."""
    return len(text.split(".", 1)[1]) if "." in text else 0


def to_units(text: str, decimals: int) -> int:
    """Exact integer of ``text`` scaled by ``10**decimals``; ValueError when it does not fit."""
    try:
        value = Decimal(text)
    except (InvalidOperation, TypeError, ValueError) as exc:
        raise ValueError(f"not a decimal number: {text!r}") from exc
    if not value.is_finite():
        raise ValueError(f"not a finite number: {text!r}")
    scaled = value.scaleb(decimals)
    if scaled != scaled.to_integral_value():
        raise ValueError(f"{text!r} has more than {decimals} decimals")
    return int(scaled)


def format_units(value: int, decimals: int) -> str:
    """Inverse of :func:`to_units` for non-negative values: ``(6500010, 2) -> "65000.10"``."""
    if decimals == 0:
        return str(value)
    sign = "-" if value < 0 else ""
    q, r = divmod(abs(value), 10**decimals)
    return f"{sign}{q}.{r:0{decimals}d}"


@dataclass(frozen=True)
class Instrument:
    """One linear perpetual. ``price_decimals``/``qty_decimals`` are the wire decimals; a price
    of ``t`` ticks is ``t * tick_units`` units of ``10**-price_decimals``."""

    symbol: str
    base_coin: str
    price_decimals: int
    tick_units: int
    qty_decimals: int
    step_units: int
    start_ticks: int
    min_qty_lots: int
    max_qty_lots: int
    max_mkt_qty_lots: int
    min_notional: Decimal
    max_leverage: Decimal
    activity: float
    typical_lots: int
    _pscale: int = field(init=False, repr=False)
    _qscale: int = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_pscale", 10**self.price_decimals)
        object.__setattr__(self, "_qscale", 10**self.qty_decimals)

    # ---- wire formatting (hot path: keep it tiny) -------------------------------------------
    def price_str(self, ticks: int) -> str:
        v = ticks * self.tick_units
        d = self.price_decimals
        if d == 0:
            return str(v)
        q, r = divmod(v, self._pscale)
        return f"{q}.{r:0{d}d}"

    def size_str(self, lots: int) -> str:
        v = lots * self.step_units
        d = self.qty_decimals
        if d == 0:
            return str(v)
        q, r = divmod(v, self._qscale)
        return f"{q}.{r:0{d}d}"

    # ---- exact conversions --------------------------------------------------------------------
    @property
    def tick_size(self) -> str:
        return format_units(self.tick_units, self.price_decimals)

    @property
    def qty_step(self) -> str:
        return format_units(self.step_units, self.qty_decimals)

    def price_dec(self, ticks: int) -> Decimal:
        return Decimal(ticks * self.tick_units).scaleb(-self.price_decimals)

    def size_dec(self, lots: int) -> Decimal:
        return Decimal(lots * self.step_units).scaleb(-self.qty_decimals)

    def value_dec(self, ticks: int, lots: int) -> Decimal:
        """Exact notional of ``lots`` at ``ticks``."""
        return Decimal(ticks * self.tick_units * lots * self.step_units).scaleb(
            -(self.price_decimals + self.qty_decimals)
        )

    def parse_price(self, text: str) -> int:
        """Ticks of a price string; ValueError with a Bybit-style reason when not on the grid."""
        units = to_units(text, self.price_decimals) if _fits(text, self.price_decimals) else None
        if units is None or units % self.tick_units:
            raise ValueError(f"price {text} is not a multiple of tickSize {self.tick_size}")
        if units <= 0:
            raise ValueError(f"price {text} must be positive")
        return units // self.tick_units

    def parse_qty(self, text: str) -> int:
        """Lots of a quantity string; ValueError when not a multiple of qtyStep."""
        units = to_units(text, self.qty_decimals) if _fits(text, self.qty_decimals) else None
        if units is None or units % self.step_units:
            raise ValueError(f"qty {text} is not a multiple of qtyStep {self.qty_step}")
        if units < 0:
            raise ValueError(f"qty {text} must be positive")
        return units // self.step_units

    def to_dict(self, launch_ms: int) -> dict[str, object]:
        """The ``/v5/market/instruments-info`` item for this contract."""
        return {
            "symbol": self.symbol,
            "contractType": "LinearPerpetual",
            "status": "Trading",
            "baseCoin": self.base_coin,
            "quoteCoin": "USDT",
            "launchTime": str(launch_ms),
            "deliveryTime": "0",
            "deliveryFeeRate": "",
            "priceScale": str(self.price_decimals),
            "leverageFilter": {
                "minLeverage": "1",
                "maxLeverage": f"{self.max_leverage:.2f}",
                "leverageStep": "0.01",
            },
            "priceFilter": {
                "minPrice": self.tick_size,
                "maxPrice": self.price_str(self.start_ticks * 100),
                "tickSize": self.tick_size,
            },
            "lotSizeFilter": {
                "maxOrderQty": self.size_str(self.max_qty_lots),
                "minOrderQty": self.size_str(self.min_qty_lots),
                "qtyStep": self.qty_step,
                "postOnlyMaxOrderQty": self.size_str(self.max_qty_lots),
                "maxMktOrderQty": self.size_str(self.max_mkt_qty_lots),
                "minNotionalValue": str(self.min_notional),
            },
            "unifiedMarginTrade": True,
            "fundingInterval": 480,
            "settleCoin": "USDT",
            "copyTrading": "both",
            "upperFundingRate": "0.005",
            "lowerFundingRate": "-0.005",
            "isPreListing": False,
            "preListingInfo": None,
            "riskParameters": {"priceLimitRatioX": "0.05", "priceLimitRatioY": "0.1"},
            "displayName": "",
        }


def _fits(text: str, decimals: int) -> bool:
    """True when ``text`` is a plain decimal whose value has at most ``decimals`` decimals."""
    try:
        value = Decimal(text)
    except (InvalidOperation, TypeError, ValueError):
        return False
    if not value.is_finite():
        return False
    scaled = value.scaleb(decimals)
    return bool(scaled == scaled.to_integral_value())


def _make(symbol: str, price: str, tick: str, step: str, max_lev: str, activity: float) -> Instrument:
    pd = decimals_of(tick)
    qd = decimals_of(step)
    tick_units = to_units(tick, pd)
    step_units = to_units(step, qd)
    price_units = to_units(price, pd)
    start_ticks = price_units // tick_units
    price_dec = Decimal(price)
    lot_value = price_dec * Decimal(step)  # USDT per lot
    # About 5,000 USDT per typical resting order, at least one lot.
    typical = max(1, int(Decimal(5000) / lot_value))
    # minOrderQty: one step, raised until it is worth at least ~1 USDT (Bybit's small coins).
    min_lots = 1
    while lot_value * min_lots < Decimal("0.5"):
        min_lots *= 10
    max_lots = max(min_lots * 1000, int(Decimal(5_000_000) / lot_value))
    return Instrument(
        symbol=symbol,
        base_coin=symbol[: -len("USDT")],
        price_decimals=pd,
        tick_units=tick_units,
        qty_decimals=qd,
        step_units=step_units,
        start_ticks=start_ticks,
        min_qty_lots=min_lots,
        max_qty_lots=max_lots,
        max_mkt_qty_lots=max(min_lots, max_lots // 5),
        min_notional=DEFAULT_MIN_NOTIONAL,
        max_leverage=Decimal(max_lev),
        activity=activity,
        typical_lots=typical,
    )


def instrument_for_recording(symbol: str, bids: list[list[str]], asks: list[list[str]],
                             known: Instrument | None) -> Instrument:
    """The instrument of a replayed symbol: the built-in filters when the symbol is known (start
    price moved to the recording's mid), else tick and step guessed from the recorded decimals."""
    bid, ask = Decimal(bids[0][0]), Decimal(asks[0][0])
    if known is not None:
        mid_units = to_units(str(bid), known.price_decimals) + to_units(str(ask), known.price_decimals)
        return replace(known, start_ticks=mid_units // 2 // known.tick_units)
    pd = max(decimals_of(p) for p, _ in bids[:50] + asks[:50])
    qd = max(decimals_of(q) for _, q in bids[:50] + asks[:50])
    tick = format_units(1, pd)
    step = format_units(1, qd)
    mid = format_units((to_units(str(bid), pd) + to_units(str(ask), pd)) // 2, pd)
    return _make(symbol, mid, tick, step, "50", 1.0)


def make_instruments(count: int) -> list[Instrument]:
    """``count`` instruments: the built-in real-looking list first, then synthetic names
    (``SYN001USDT``...). Deterministic for a given count."""
    if count < 1:
        raise ValueError("at least one symbol is needed")
    out: list[Instrument] = []
    for row in _BUILTIN[:count]:
        out.append(_make(*row))
    for i in range(len(out), count):
        n = i - len(_BUILTIN) + 1
        price, tick, step = _SYNTHETIC_SHAPES[n % len(_SYNTHETIC_SHAPES)]
        out.append(_make(f"SYN{n:03d}USDT", price, tick, step, "25", 0.4 + 0.1 * (n % 5)))
    return out
