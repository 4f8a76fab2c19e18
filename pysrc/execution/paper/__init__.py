"""Paper trading: a :class:`~pysrc.execution.venue.Venue` whose fills are simulated against the
live order books of the native engine, with nothing sent to any exchange.

Why a venue and not a flag: the execution layer (idempotent placement, the order and position
state machines, persistence, audit, reconciliation) must run the *same* code paths on paper as
live. So the paper venue answers in Bybit's own shapes: :meth:`PaperVenue.place` returns the
client's :class:`PlaceOrderResult` (a duplicate ``orderLinkId`` is ``CreateStatus.DUPLICATE``
carrying a ``BybitApiError(110072)``, as ``BybitRest.place_order`` reports it), business rejects
raise :class:`BybitApiError` with Bybit's retCodes, and the private pushes are the items of
Bybit's ``order``/``execution``/``position``/``wallet`` topics, delivered to the ``on_push``
handler in Bybit's order (order ``New`` -> executions -> order ``PartiallyFilled``/``Filled`` ->
position -> wallet).

The fill model (``docs/paper-trading.md`` has the full text):

* **Takers walk the book.** A market order, or the marketable part of a limit order, takes the
  opposite side level by level (up to the limit price), at each level's price: slippage is what
  the book gives. What the book cannot fill is cancelled (market, IOC) or rests (GTC). The paper
  venue never writes into the shared book, so the liquidity it took is remembered per level
  (the *taken overlay*) until the feed reports a new size for that level; two paper orders in a
  row cannot take the same liquidity twice.
* **Resting orders queue.** When a limit order rests, the queue ahead of it is the book's size at
  its price (0 on a new level). Public trades at that price by the opposite aggressor consume the
  queue first, then fill the order (maker). A trade *through* the price (a sell printing below a
  resting buy) proves the whole level was consumed: the queue is gone and the trade's volume fills
  the order. Size decreases of the level that trades do not explain are cancellations, spread
  evenly over the queue: the queue ahead shrinks in proportion (rounded up to the qty step).
  If the opposite best price reaches the order's price, the order fills in full at its price.
* **Fees** are the taker rate on taker fills and the maker rate on maker fills, on the exact
  notional; **PnL** is average-cost, as in :mod:`pysrc.domain.positions`; the **mark** is the
  book's mid.

Money is exact: prices, quantities, fees, balances and PnL are ``Decimal`` sums and products in a
context that traps rounding; the only divisions (average price, the released cost of a partial
close, margin) are rounded explicitly and the rounding is kept inside the books, so
``walletBalance == initial - fees + realised PnL`` holds to the last digit.

Layout: :mod:`.records` (the persisted order and position records, number formatting, errors),
:mod:`.book` (reading the engine, the taken overlay, the queue model), :mod:`.venue`
(:class:`PaperVenue`: validation, matching, accounting, pushes, persistence).
"""

from pysrc.execution.paper.book import BookSource, LiveBook, Queues
from pysrc.execution.paper.records import (
    NO_BOOK_CODE,
    SNAPSHOT_VERSION,
    PaperOrder,
    PaperPosition,
    api_error,
)
from pysrc.execution.paper.venue import PaperVenue

__all__ = [
    "NO_BOOK_CODE",
    "SNAPSHOT_VERSION",
    "BookSource",
    "LiveBook",
    "PaperOrder",
    "PaperPosition",
    "PaperVenue",
    "Queues",
    "api_error",
]
