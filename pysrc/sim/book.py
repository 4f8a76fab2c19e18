"""Integer-tick limit order book of one simulated symbol.

Both sides keep their prices as *keys* that sort best-first: an ask at ``t`` ticks has key ``t``,
a bid at ``t`` ticks has key ``-t``. So "the best N levels" is ``keys[:N]`` on either side and
one piece of window logic serves both.

A level's size is the sum of anonymous market-model liquidity and the resting orders of the
simulated account (the bot). The bot's orders keep their queue position as ``ahead``: the
model quantity in front of them at the level, consumed first by takers.

Every size change is recorded in the *watchers* of the side: one ``set`` per publisher topic
that wants to know which keys changed since its last push. That is what keeps publishing cheap:
a push looks at the changed keys, not at the whole window.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from sortedcontainers import SortedList  # type: ignore[import-untyped]


class RestingOrder(Protocol):
    """What the book needs from a resting order of the simulated account."""

    leaves_lots: int
    ahead: int


MakerFill = Callable[[RestingOrder, int, int], None]
"""Called as ``(order, key, lots)`` when a taker consumes ``lots`` of a resting order."""


class Side:
    """One side of a book: ``keys`` best-first, ``sizes`` key -> total lots."""

    __slots__ = ("is_bid", "keys", "resting", "sizes", "watchers")

    def __init__(self, is_bid: bool) -> None:
        self.is_bid = is_bid
        self.keys: SortedList = SortedList()
        self.sizes: dict[int, int] = {}
        self.resting: dict[int, list[RestingOrder]] = {}
        self.watchers: list[set[int]] = []

    # ---- key <-> tick ----------------------------------------------------------------------
    def key_of(self, ticks: int) -> int:
        return -ticks if self.is_bid else ticks

    def ticks_of(self, key: int) -> int:
        return -key if self.is_bid else key

    def best_key(self) -> int | None:
        return self.keys[0] if self.sizes else None

    def best_ticks(self) -> int | None:
        if not self.sizes:
            return None
        k: int = self.keys[0]
        return -k if self.is_bid else k

    def __len__(self) -> int:
        return len(self.sizes)

    # ---- mutation ------------------------------------------------------------------------------
    def _set(self, key: int, new: int) -> None:
        sizes = self.sizes
        old = sizes.get(key, 0)
        if new == old:
            return
        if new > 0:
            if old == 0:
                self.keys.add(key)
            sizes[key] = new
        else:
            del sizes[key]
            self.keys.remove(key)
        for w in self.watchers:
            w.add(key)

    def resting_lots(self, key: int) -> int:
        orders = self.resting.get(key)
        if not orders:
            return 0
        return sum(o.leaves_lots for o in orders)

    def model_lots(self, key: int) -> int:
        return self.sizes.get(key, 0) - self.resting_lots(key)

    def add_model(self, key: int, lots: int) -> None:
        """Anonymous liquidity joins the back of the queue at ``key``."""
        if lots > 0:
            self._set(key, self.sizes.get(key, 0) + lots)

    def cancel_model(self, key: int, lots: int) -> int:
        """Remove up to ``lots`` of model liquidity at ``key``; returns what was removed.

        Queue positions of resting orders shrink with the model quantity left (cancellations are
        assumed to come from anywhere in the queue, and never from in front of an order more than
        there is)."""
        model = self.model_lots(key)
        q = min(lots, model)
        if q <= 0:
            return 0
        self._set(key, self.sizes[key] - q)
        orders = self.resting.get(key)
        if orders:
            left = model - q
            for o in orders:
                o.ahead = min(o.ahead, left)
        return q

    def set_model(self, key: int, lots: int) -> None:
        """Set the anonymous quantity at ``key`` (replays: the recording states absolute sizes);
        resting account orders stay on top of it."""
        self._set(key, max(0, lots) + self.resting_lots(key))
        orders = self.resting.get(key)
        if orders:
            for o in orders:
                o.ahead = min(o.ahead, lots)

    def add_resting(self, key: int, order: RestingOrder) -> None:
        """A resting order of the account joins the back of the queue at ``key``."""
        order.ahead = self.model_lots(key)
        self.resting.setdefault(key, []).append(order)
        self._set(key, self.sizes.get(key, 0) + order.leaves_lots)

    def remove_resting(self, key: int, order: RestingOrder) -> None:
        """Take a resting order (its leaves) off the book (cancel, or before an amend)."""
        orders = self.resting.get(key)
        if not orders or order not in orders:
            return
        orders.remove(order)
        if not orders:
            del self.resting[key]
        self._set(key, self.sizes.get(key, 0) - order.leaves_lots)

    def reduce_resting(self, key: int, order: RestingOrder, new_leaves: int) -> None:
        """Lower a resting order's leaves in place (amend qty down keeps the queue position)."""
        delta = order.leaves_lots - new_leaves
        order.leaves_lots = new_leaves
        self._set(key, self.sizes.get(key, 0) - delta)

    def take(self, key: int, lots: int, on_fill: MakerFill) -> int:
        """A taker consumes up to ``lots`` at ``key`` in queue order; returns lots taken.

        Model quantity in front of the first resting order goes first, then that order, and so
        on; model quantity behind the last resting order goes last."""
        size = self.sizes.get(key, 0)
        want = min(lots, size)
        if want <= 0:
            return 0
        remaining = want
        orders = self.resting.get(key)
        while remaining > 0 and orders:
            first = orders[0]
            if first.ahead > 0:
                q = min(remaining, first.ahead)
                for o in orders:
                    o.ahead = max(0, o.ahead - q)
                remaining -= q
                continue
            q = min(remaining, first.leaves_lots)
            first.leaves_lots -= q
            remaining -= q
            if first.leaves_lots == 0:
                orders.pop(0)
            on_fill(first, key, q)
        if orders is not None and not orders:
            self.resting.pop(key, None)
        # whatever is left of ``remaining`` comes from model quantity behind all resting orders;
        # re-read the size: a fill callback may have changed this level (trimmed reduce-only)
        self._set(key, self.sizes.get(key, 0) - want)
        return want


class Book:
    """Both sides of one symbol. ``bids``/``asks`` are :class:`Side` objects."""

    __slots__ = ("asks", "bids")

    def __init__(self) -> None:
        self.bids = Side(is_bid=True)
        self.asks = Side(is_bid=False)

    def side(self, is_bid: bool) -> Side:
        return self.bids if is_bid else self.asks

    def top(self, depth: int) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        """Top ``depth`` levels per side as ``(ticks, lots)``, best first."""
        out: list[list[tuple[int, int]]] = []
        for side in (self.bids, self.asks):
            sizes = side.sizes
            if side.is_bid:
                out.append([(-k, sizes[k]) for k in side.keys.islice(0, depth)])
            else:
                out.append([(k, sizes[k]) for k in side.keys.islice(0, depth)])
        return out[0], out[1]
