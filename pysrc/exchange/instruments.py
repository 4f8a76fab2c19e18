"""Instrument metadata (tick size, qty step, limits) with a TTL cache, and exact Decimal rounding.

Rounding rules (documented choice):

* **price to tick, direction-aware.** ``PriceRounding.PASSIVE`` rounds a buy *down* and a sell *up*
  to the tick: the order never ends up more aggressive (never pays more / sells cheaper) than the
  caller asked. ``PriceRounding.AGGRESSIVE`` does the opposite (buy up, sell down: keeps a
  marketable limit marketable). ``PriceRounding.NEAREST`` rounds to the closest tick, ties half-up
  (for prices with no side, e.g. TP/SL levels).
* **quantity down to the step**, always: never trade more than asked.
* **validation before sending**: price on the tick and inside ``[minPrice, maxPrice]``, qty on
  the step and inside ``[minOrderQty, maxOrderQty]`` (``maxMktOrderQty`` for market orders) and
  ``qty * price >= minNotionalValue``. Reduce-only orders skip the notional minimum ([inference]:
  Bybit lets you close a position smaller than the minimum notional). Violations raise
  :class:`OrderValidationError` so nothing doomed is ever sent.

All arithmetic is exact ``Decimal`` (integer division against the step), so 0.1 + 0.2 problems
cannot happen and non-power-of-ten ticks (0.5, 0.025) work.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, localcontext
from enum import Enum
from typing import Any

from pysrc.decimals import to_decimal

log = logging.getLogger(__name__)

DEFAULT_TTL_SECONDS = 3600.0
"""Mission section 2: instrument metadata cached for at least one hour."""


class PriceRounding(str, Enum):
    PASSIVE = "passive"
    AGGRESSIVE = "aggressive"
    NEAREST = "nearest"


class OrderValidationError(ValueError):
    """An order that the exchange would reject (or that would be silently mangled)."""

    def __init__(self, symbol: str, field: str, message: str) -> None:
        self.symbol = symbol
        self.field = field
        super().__init__(f"{symbol}: {field}: {message}")


class UnknownInstrument(KeyError):
    """No instrument with that symbol (after a refresh)."""


_dec = to_decimal


def _opt_dec(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    return _dec(value)


def floor_to_step(value: Decimal, step: Decimal) -> Decimal:
    """Largest multiple of ``step`` that is <= ``value`` (exact)."""
    if step <= 0:
        raise ValueError("step must be positive")
    with localcontext() as ctx:
        ctx.prec = 60
        q, r = divmod(value, step)  # Decimal divmod truncates toward zero
        if r < 0:
            q -= 1
        return _normal(q * step, step)


def ceil_to_step(value: Decimal, step: Decimal) -> Decimal:
    """Smallest multiple of ``step`` that is >= ``value`` (exact)."""
    down = floor_to_step(value, step)
    if down == value:
        return down
    with localcontext() as ctx:
        ctx.prec = 60
        return _normal(down + step, step)


def nearest_step(value: Decimal, step: Decimal) -> Decimal:
    """Closest multiple of ``step``; exact halves go up."""
    with localcontext() as ctx:
        ctx.prec = 60
        n = (value / step).quantize(Decimal(1), rounding=ROUND_HALF_UP)
        return _normal(n * step, step)


def is_multiple(value: Decimal, step: Decimal) -> bool:
    with localcontext() as ctx:
        ctx.prec = 60
        return value % step == 0


def _normal(value: Decimal, step: Decimal) -> Decimal:
    """Express ``value`` with the step's number of decimals (``0.10`` tick -> ``123.40``), which is
    how the exchange prints prices; never more digits than the step has."""
    exp = step.normalize().as_tuple().exponent
    places = -exp if isinstance(exp, int) and exp < 0 else 0
    with localcontext() as ctx:
        ctx.prec = 60
        return value.quantize(Decimal(1).scaleb(-places))


@dataclass(frozen=True)
class Instrument:
    """The trading rules of one symbol (linear/inverse item of ``/v5/market/instruments-info``)."""

    symbol: str
    status: str
    tick_size: Decimal
    qty_step: Decimal
    min_qty: Decimal
    max_qty: Decimal
    min_price: Decimal | None = None
    max_price: Decimal | None = None
    max_market_qty: Decimal | None = None
    min_notional: Decimal | None = None
    min_leverage: Decimal | None = None
    max_leverage: Decimal | None = None
    leverage_step: Decimal | None = None
    base_coin: str = ""
    quote_coin: str = ""
    settle_coin: str = ""
    contract_type: str = ""

    @classmethod
    def from_bybit(cls, item: Mapping[str, Any]) -> Instrument:
        pf = item.get("priceFilter") or {}
        lf = item.get("lotSizeFilter") or {}
        lev = item.get("leverageFilter") or {}
        return cls(
            symbol=str(item["symbol"]),
            status=str(item.get("status", "")),
            tick_size=_dec(pf["tickSize"], "tickSize"),
            qty_step=_dec(lf.get("qtyStep") or lf.get("basePrecision"), "qtyStep"),
            min_qty=_dec(lf.get("minOrderQty") or "0", "minOrderQty"),
            max_qty=_dec(lf.get("maxOrderQty") or lf.get("maxLimitOrderQty"), "maxOrderQty"),
            min_price=_opt_dec(pf.get("minPrice")),
            max_price=_opt_dec(pf.get("maxPrice")),
            max_market_qty=_opt_dec(lf.get("maxMktOrderQty") or lf.get("maxMarketOrderQty")),
            min_notional=_opt_dec(lf.get("minNotionalValue") or lf.get("minOrderAmt")),
            min_leverage=_opt_dec(lev.get("minLeverage")),
            max_leverage=_opt_dec(lev.get("maxLeverage")),
            leverage_step=_opt_dec(lev.get("leverageStep")),
            base_coin=str(item.get("baseCoin", "")),
            quote_coin=str(item.get("quoteCoin", "")),
            settle_coin=str(item.get("settleCoin", "")),
            contract_type=str(item.get("contractType", "")),
        )

    # ---- rounding -----------------------------------------------------------------------
    def round_price(
        self, price: Decimal | str | int, side: str | None = None, mode: PriceRounding = PriceRounding.PASSIVE
    ) -> Decimal:
        """Price on the tick grid. With a side, PASSIVE/AGGRESSIVE apply (see module doc); without
        a side (or with NEAREST) the closest tick."""
        p = _dec(price, "price")
        if side is None or mode is PriceRounding.NEAREST:
            return nearest_step(p, self.tick_size)
        buy = _is_buy(side)
        down = buy if mode is PriceRounding.PASSIVE else not buy
        return floor_to_step(p, self.tick_size) if down else ceil_to_step(p, self.tick_size)

    def round_qty(self, qty: Decimal | str | int) -> Decimal:
        """Quantity down to the step (never more than asked)."""
        return floor_to_step(_dec(qty, "qty"), self.qty_step)

    def round_leverage(self, leverage: Decimal | str | int) -> Decimal:
        lev = _dec(leverage, "leverage")
        return floor_to_step(lev, self.leverage_step) if self.leverage_step else lev

    # ---- validation ---------------------------------------------------------------------
    def validate(
        self,
        qty: Decimal | str | int,
        price: Decimal | str | int | None = None,
        *,
        order_type: str = "Limit",
        reduce_only: bool = False,
    ) -> None:
        """Raise :class:`OrderValidationError` unless the exchange would accept these numbers.
        ``price`` is required for limit orders; for market orders pass a reference price to
        check the notional (or None to skip that check)."""
        q = _dec(qty, "qty")
        sym = self.symbol
        if q <= 0:
            raise OrderValidationError(sym, "qty", f"{q} must be positive")
        if not is_multiple(q, self.qty_step):
            raise OrderValidationError(sym, "qty", f"{q} is not a multiple of qtyStep {self.qty_step}")
        if q < self.min_qty:
            raise OrderValidationError(sym, "qty", f"{q} below minOrderQty {self.min_qty}")
        market = order_type == "Market"
        max_q = self.max_market_qty if market and self.max_market_qty is not None else self.max_qty
        if q > max_q:
            raise OrderValidationError(sym, "qty", f"{q} above max {'market ' if market else ''}qty {max_q}")
        if price is None:
            if not market:
                raise OrderValidationError(sym, "price", "a limit order needs a price")
            return
        p = _dec(price, "price")
        if p <= 0:
            raise OrderValidationError(sym, "price", f"{p} must be positive")
        if not market:
            if not is_multiple(p, self.tick_size):
                raise OrderValidationError(sym, "price", f"{p} is not a multiple of tickSize {self.tick_size}")
            if self.min_price is not None and p < self.min_price:
                raise OrderValidationError(sym, "price", f"{p} below minPrice {self.min_price}")
            if self.max_price is not None and p > self.max_price:
                raise OrderValidationError(sym, "price", f"{p} above maxPrice {self.max_price}")
        if self.min_notional is not None and not reduce_only and q * p < self.min_notional:
            raise OrderValidationError(
                sym, "notional", f"{q} x {p} = {q * p} below minNotionalValue {self.min_notional}"
            )

    def prepare(
        self,
        side: str,
        qty: Decimal | str | int,
        price: Decimal | str | int | None = None,
        *,
        order_type: str = "Limit",
        reduce_only: bool = False,
        mode: PriceRounding = PriceRounding.PASSIVE,
    ) -> tuple[str, str | None]:
        """Round (qty down, price per ``mode``), validate, and return the wire strings."""
        q = self.round_qty(qty)
        p = None if price is None else self.round_price(price, side, mode)
        self.validate(q, p, order_type=order_type, reduce_only=reduce_only)
        return format(q, "f"), None if p is None else format(p, "f")


def _is_buy(side: str) -> bool:
    s = side.lower()
    if s == "buy":
        return True
    if s == "sell":
        return False
    raise ValueError(f"side must be Buy or Sell, not {side!r}")


Loader = Callable[[], Awaitable[Iterable[Instrument]]]


class InstrumentCache:
    """All instruments of one category, refreshed when older than ``ttl`` seconds.

    * one refresh at a time (concurrent callers await the same refresh);
    * a failed refresh keeps serving the previous data (an exchange hiccup must not stop trading
      on known rules) and is retried on the next access;
    * an unknown symbol in fresh data triggers at most one extra refresh per ``miss_refresh``
      seconds (new listings), then raises :class:`UnknownInstrument`.
    """

    def __init__(
        self,
        loader: Loader,
        *,
        ttl: float = DEFAULT_TTL_SECONDS,
        miss_refresh: float = 60.0,
        retry_after_failure: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if ttl <= 0:
            raise ValueError("ttl must be positive")
        self._loader = loader
        self.ttl = ttl
        self.miss_refresh = miss_refresh
        self.retry_after_failure = min(retry_after_failure, ttl)
        self._clock = clock
        self._items: dict[str, Instrument] = {}
        self._loaded_at: float | None = None
        self._last_miss_refresh: float | None = None
        self._lock = asyncio.Lock()
        self.refreshes = 0
        self.refresh_errors = 0
        self.last_error: str | None = None

    @property
    def loaded_at(self) -> float | None:
        return self._loaded_at

    def is_fresh(self) -> bool:
        return self._loaded_at is not None and self._clock() - self._loaded_at < self.ttl

    async def refresh(self) -> None:
        generation = self._loaded_at
        async with self._lock:
            if self._loaded_at != generation:
                return  # someone else refreshed while we waited
            try:
                items = list(await self._loader())
            except Exception as exc:
                self.refresh_errors += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                if not self._items:
                    raise
                log.warning("instrument refresh failed, serving cached data: %s", exc)
                # Try again after ``retry_after_failure`` s rather than on every access.
                self._loaded_at = self._clock() - self.ttl + self.retry_after_failure
                return
            self._items = {i.symbol: i for i in items}
            self._loaded_at = self._clock()
            self.refreshes += 1

    async def get(self, symbol: str) -> Instrument:
        if not self.is_fresh():
            await self.refresh()
        inst = self._items.get(symbol)
        if inst is None:
            now = self._clock()
            if self._last_miss_refresh is None or now - self._last_miss_refresh >= self.miss_refresh:
                self._last_miss_refresh = now
                self._loaded_at = None  # force
                await self.refresh()
                inst = self._items.get(symbol)
        if inst is None:
            raise UnknownInstrument(symbol)
        return inst

    async def all(self) -> dict[str, Instrument]:
        if not self.is_fresh():
            await self.refresh()
        return dict(self._items)

    def cached(self, symbol: str) -> Instrument | None:
        """What is in memory now, fresh or not, without any I/O."""
        return self._items.get(symbol)

    def __len__(self) -> int:
        return len(self._items)


__all__ = [
    "DEFAULT_TTL_SECONDS",
    "Instrument",
    "InstrumentCache",
    "OrderValidationError",
    "PriceRounding",
    "UnknownInstrument",
    "ceil_to_step",
    "floor_to_step",
    "is_multiple",
    "nearest_step",
]
