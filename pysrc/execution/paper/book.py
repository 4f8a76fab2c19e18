"""What the paper venue knows about the market: the live book (read from the native engine, never
written), the liquidity paper takers already took from it, and the modelled queues in front of
paper orders resting in it.

Two models live here (``docs/paper-trading.md`` states them for users):

**The taken overlay.** Paper orders are not in the real book, so a paper taker cannot remove
the liquidity it took. Without a correction, two market orders a millisecond apart would both
take the same best ask. The overlay remembers, per level, the size the feed showed and how much
paper takers took from it; while the feed still shows that size the level offers only the rest.
Once the feed reports a new size there (the level was traded, refilled or cancelled for real),
the overlay entry is dropped and the feed's number is the truth again.

**The queue.** A resting paper order at price P sits behind ``ahead``: the public quantity
queued at P when it arrived (0 on a price without a level). Own orders at one price keep time
priority among themselves. Public trades at P by the opposite aggressor consume the public queue
first and then fill own orders; a trade *through* P (a sell printing below a resting buy) proves
the whole public level was consumed, so the queue is gone and the trade's volume fills own
orders. A level that shrinks by more than what traded there lost the difference to
cancellations; those are assumed spread evenly over the queue, so ``ahead`` scales by
``new size / (old size - traded)``, rounded *up* to the qty step. Growth joins behind.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Protocol

from pysrc.domain.values import ZERO, add, div, mul, sub
from pysrc.exchange.instruments import ceil_to_step
from pysrc.execution.paper.records import PaperOrder

Side = list[tuple[str, str]]
"""One side of the book as the engine gives it: ``(price, size)`` exact strings, best first."""


class BookSource(Protocol):
    """What the paper venue reads from the native :class:`pysrc.book.BookEngine`."""

    def has_book(self, symbol: str) -> bool: ...

    def is_live(self, symbol: str) -> bool: ...

    def levels(self, symbol: str, n: int = 20) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]: ...

    def best_bid(self, symbol: str) -> tuple[str, str] | None: ...

    def best_ask(self, symbol: str) -> tuple[str, str] | None: ...


@dataclass(frozen=True, slots=True)
class Fill:
    """One level of a taker walk: ``qty`` at ``price``, from a level the feed showed at
    ``level_size``."""

    price: Decimal
    qty: Decimal
    level_size: Decimal


class BookView:
    """One symbol's book at one moment, fetched lazily: the top :attr:`START` levels a side
    first, every level only when a reader runs past those (``levels(symbol, 0)`` converts the
    whole book to strings, ten times the cost of the top levels on a 200-level book)."""

    START = 32

    def __init__(self, engine: BookSource, symbol: str) -> None:
        self._engine = engine
        self._symbol = symbol
        self._bids, self._asks = engine.levels(symbol, self.START)
        self._full = False

    def _side(self, bids: bool) -> Side:
        return self._bids if bids else self._asks

    def iter(self, bids: bool) -> Iterator[tuple[Decimal, Decimal]]:
        """``(price, size)`` of one side, best first, parsed as they are consumed."""
        i = 0
        while True:
            side = self._side(bids)
            if i >= len(side):
                if self._full or len(side) < self.START:
                    return
                self._bids, self._asks = self._engine.levels(self._symbol, 0)
                self._full = True
                continue
            p_s, s_s = side[i]
            yield Decimal(p_s), Decimal(s_s)
            i += 1

    def level_size(self, price: Decimal, bids: bool) -> tuple[Decimal, bool]:
        """``(size at price, known)``: 0 when the price is inside the visible book but has no
        level; not known when it lies beyond the deepest visible level (a truncated book)."""
        for p, size in self.iter(bids):
            if p == price:
                return size, True
            if (p < price) if bids else (p > price):
                return ZERO, True
        return ZERO, False


class LiveBook:
    """The engine's books as a paper taker sees them (after the taken overlay), and the marks."""

    def __init__(self, engine: BookSource) -> None:
        self.engine = engine
        self._taken: dict[str, dict[tuple[bool, Decimal], list[Decimal]]] = {}
        self.marks: dict[str, Decimal] = {}
        """Last mid per symbol (kept while a book is being rebuilt; part of the snapshot)."""
        self._mark_top: dict[str, tuple[str, str]] = {}
        """The best prices each mark was computed from."""

    def live(self, symbol: str) -> bool:
        try:
            return self.engine.has_book(symbol) and self.engine.is_live(symbol)
        except KeyError:
            return False

    def view(self, symbol: str) -> BookView:
        return BookView(self.engine, symbol)

    def mid(self, symbol: str) -> Decimal | None:
        """The book's mid (the paper mark), remembered so a book being resynced keeps the last.
        Recomputed only when the best prices changed (most updates leave them alone, and the
        exact decimal division is what costs)."""
        if self.live(symbol):
            bid, ask = self.engine.best_bid(symbol), self.engine.best_ask(symbol)
            if bid is not None and ask is not None:
                top = (bid[0], ask[0])
                if self._mark_top.get(symbol) != top:
                    self.marks[symbol] = div(add(Decimal(top[0]), Decimal(top[1])), Decimal(2))
                    self._mark_top[symbol] = top
        return self.marks.get(symbol)

    def clear_marks(self) -> None:
        self.marks.clear()
        self._mark_top.clear()

    def set_marks(self, marks: dict[str, Decimal]) -> None:
        """Marks from a saved state; the next live update recomputes them from the book."""
        self.marks.update(marks)
        for symbol in marks:
            self._mark_top.pop(symbol, None)

    def forget(self, symbol: str) -> None:
        """Drop the overlay of a symbol (its book is being rebuilt: what was taken is moot)."""
        self._taken.pop(symbol, None)

    def prune(self, symbol: str, view: BookView) -> None:
        """Drop the overlay entries whose level the feed no longer shows at the size it had (the
        lazy check in :meth:`available` misses levels that vanished, so memory stays bounded).
        Reads each side only down to the deepest price with an entry."""
        taken = self._taken.get(symbol)
        if not taken:
            return
        for bids in (True, False):
            prices = [p for (b, p) in taken if b is bids]
            if not prices:
                continue
            deepest = min(prices) if bids else max(prices)
            shown: dict[Decimal, Decimal] = {}
            for p, size in view.iter(bids):
                if (p < deepest) if bids else (p > deepest):
                    break
                shown[p] = size
            for p in prices:
                if shown.get(p) != taken[(bids, p)][0]:
                    del taken[(bids, p)]
        if not taken:
            del self._taken[symbol]

    def has_taken(self, symbol: str) -> bool:
        return bool(self._taken.get(symbol))

    def available(self, symbol: str, bids: bool, price: Decimal, size: Decimal) -> Decimal:
        """Size left at a level after what paper takers took from it, as long as the feed still
        shows the size it showed then (a new size means the level was refreshed)."""
        taken = self._taken.get(symbol)
        if not taken:
            return size
        entry = taken.get((bids, price))
        if entry is None:
            return size
        if entry[0] != size:
            del taken[(bids, price)]
            return size
        return max(ZERO, sub(size, entry[1]))

    def take(self, symbol: str, bids: bool, fill: Fill) -> None:
        """Record that a paper taker took ``fill`` from a level of ``bids`` (or asks)."""
        taken = self._taken.setdefault(symbol, {})
        entry = taken.get((bids, fill.price))
        if entry is None or entry[0] != fill.level_size:
            taken[(bids, fill.price)] = [fill.level_size, fill.qty]
        else:
            entry[1] = add(entry[1], fill.qty)

    def walk(self, symbol: str, buy: bool, qty: Decimal, limit: Decimal | None, view: BookView) -> list[Fill]:
        """What a taker of ``qty`` gets, level by level, up to ``limit`` (pure: nothing is taken
        until :meth:`take`)."""
        if qty <= 0:
            return []
        need = qty
        out: list[Fill] = []
        for p, size in view.iter(not buy):
            if limit is not None and (p > limit if buy else p < limit):
                break
            avail = self.available(symbol, not buy, p, size)
            if avail <= 0:
                continue
            take = min(avail, need)
            out.append(Fill(p, take, size))
            need = sub(need, take)
            if need <= 0:
                break
        return out

    def best(self, symbol: str, bids: bool, view: BookView) -> Decimal | None:
        """Best price of one side after the overlay (None when it is empty)."""
        for p, size in view.iter(bids):
            if self.available(symbol, bids, p, size) > 0:
                return p
        return None


@dataclass(slots=True)
class QueueLevel:
    """Own resting orders at one (side, price), with what the book showed there last."""

    orders: list[PaperOrder] = field(default_factory=list)
    ref: Decimal | None = None
    """Book size at the price at the last observation (None: not observed since a restore or a
    book rebuild)."""
    traded: Decimal = ZERO
    """Public volume traded at the price since that observation (explains part of a decrease)."""


MakerFill = Callable[[PaperOrder, Decimal, Decimal], Decimal]
"""``(order, price, qty) -> qty filled``: the venue's accounting of a maker fill (it may fill less,
e.g. a reduce-only order never past flat)."""


class Queues:
    """The modelled queues of every resting paper limit order, by symbol and (side, price)."""

    def __init__(self) -> None:
        self._levels: dict[str, dict[tuple[str, Decimal], QueueLevel]] = {}

    def symbol_levels(self, symbol: str) -> dict[tuple[str, Decimal], QueueLevel]:
        return self._levels.get(symbol, {})

    def add(self, o: PaperOrder, view: BookView | None) -> None:
        """Queue ``o`` behind what the book shows at its price (``view`` None: restoring, the
        queue ahead kept in ``o.ahead`` is re-anchored at the next observation)."""
        lvl = self._levels.setdefault(o.symbol, {}).setdefault((o.side, o.price), QueueLevel())
        if view is not None:
            size, known = view.level_size(o.price, o.buy)
            if known:
                o.ahead = size
                lvl.ref = size
                lvl.traded = ZERO
            else:
                o.ahead = None  # beyond the visible depth: learnt when the level comes into view
        lvl.orders.append(o)

    def remove(self, o: PaperOrder) -> None:
        levels = self._levels.get(o.symbol)
        if levels is None:
            return
        key = (o.side, o.price)
        lvl = levels.get(key)
        if lvl is not None and o in lvl.orders:
            lvl.orders.remove(o)
            if not lvl.orders:
                del levels[key]
        if not levels:
            del self._levels[o.symbol]

    def unanchor(self, symbol: str) -> None:
        """The book is being rebuilt: the sizes seen so far say nothing about the next one."""
        for lvl in self._levels.get(symbol, {}).values():
            lvl.ref = None
            lvl.traded = ZERO

    def trade(self, symbol: str, taker_side: str, price: Decimal, qty: Decimal, fill: MakerFill,
              view: Callable[[], BookView], step: Decimal | None) -> None:
        """One public trade: share its volume over the own levels it reaches, best level for the
        taker first (a taker sell reaches resting buys at or above its price)."""
        levels = self._levels.get(symbol)
        if not levels:
            return
        maker_buy = taker_side == "Sell"
        maker_side = "Buy" if maker_buy else "Sell"
        keys = [k for k in levels if k[0] == maker_side and (price <= k[1] if maker_buy else price >= k[1])]
        keys.sort(key=lambda k: k[1], reverse=maker_buy)
        remaining = qty
        for key in keys:
            lvl = levels.get(key)
            if lvl is None:
                continue
            at_price = key[1] == price
            if at_price:
                lvl.traded = add(lvl.traded, qty)
                if any(o.ahead is None for o in lvl.orders):
                    size, known = view().level_size(price, maker_buy)
                    if known:
                        self.observe_level(lvl, size, step)
            remaining = self._share(lvl, key[1], remaining, through=not at_price, fill=fill)
            if remaining <= 0:
                break

    @staticmethod
    def _share(lvl: QueueLevel, price: Decimal, volume: Decimal, *, through: bool, fill: MakerFill) -> Decimal:
        """Share ``volume`` over the virtual queue at one level: the public quantity ahead of each
        own order first (``ahead`` of a later own order includes the public quantity ahead of an
        earlier one), then the own orders, in time priority. Returns the volume left."""
        orders = sorted(lvl.orders, key=lambda o: o.seq)
        if through:
            for o in orders:
                o.ahead = ZERO
        consumed_public = ZERO
        remaining = volume
        for o in orders:
            need_public = max(ZERO, sub(o.ahead or ZERO, consumed_public))
            take = min(need_public, remaining)
            consumed_public = add(consumed_public, take)
            remaining = sub(remaining, take)
            if remaining <= 0:
                break
            if o.is_open:
                remaining = sub(remaining, fill(o, price, remaining))
        for o in orders:
            if o.ahead is not None:
                o.ahead = max(ZERO, sub(o.ahead, consumed_public))
        return remaining

    def observe(self, symbol: str, view: BookView, step: Decimal | None) -> None:
        """A book update: apply the queue rule at every own level the book shows."""
        levels = self._levels.get(symbol)
        if not levels:
            return
        for (side, price), lvl in list(levels.items()):
            size, known = view.level_size(price, side == "Buy")
            if known:
                self.observe_level(lvl, size, step)

    @staticmethod
    def observe_level(lvl: QueueLevel, size: Decimal, step: Decimal | None) -> None:
        """The queue rule. A level shrinking by more than the volume traded there lost the
        difference to cancellations, spread evenly over the queue: every own order's queue
        ahead scales by ``size / (previous size - traded)``, rounded up to the qty step (never
        optimistic). Growth joins behind. The queue ahead never exceeds the level."""
        expected = None if lvl.ref is None else max(ZERO, sub(lvl.ref, lvl.traded))
        for o in lvl.orders:
            if o.ahead is None:
                o.ahead = size
                continue
            if expected is not None and size < expected:
                scaled = div(mul(o.ahead, size), expected)
                o.ahead = ceil_to_step(scaled, step) if step is not None else scaled
            o.ahead = min(o.ahead, size)
        lvl.ref = size
        lvl.traded = ZERO


__all__ = ["BookSource", "BookView", "Fill", "LiveBook", "MakerFill", "QueueLevel", "Queues", "Side"]
