"""Where orders go: the execution venue interface, and the Bybit venue behind it.

The execution layer (idempotent placement, the order and position state machines, persistence,
audit, reconciliation, the kill switch) talks to exactly this interface. Two implementations sit
behind it:

* :class:`BybitVenue`: the real client (REST + private stream) against mainnet, testnet, demo or
  the local exchange; nothing but the URLs differs;
* :class:`pysrc.execution.paper.PaperVenue`: paper trading, fills simulated against the live books
  with nothing sent to any exchange.

Both speak Bybit's own shapes: order records are the dicts of ``/v5/order/realtime`` and the
``order`` stream, executions those of ``/v5/execution/list`` and the ``execution`` stream,
positions those of ``/v5/position/list`` and the ``position`` stream. So the same reducer
(``pysrc.domain``) drives the state machines live and on paper, and a paper run exercises the
same code paths as a live one.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol, runtime_checkable

from pysrc.exchange.bybit.orders import AmendResult, CancelResult, PlaceOrderResult
from pysrc.exchange.bybit.private import PrivateStream
from pysrc.exchange.bybit.rest import BybitRest
from pysrc.exchange.instruments import Instrument

Json = dict[str, Any]
PushHandler = Callable[[str, Json], Awaitable[None]]
"""``(topic, item)`` for every item of a private push: topic is ``order``, ``execution``,
``position`` or ``wallet``; items arrive in the order the venue received them."""


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """One order as the execution layer asks for it; prices and quantities already rounded to the
    instrument's steps (exact decimals)."""

    symbol: str
    side: str  # "Buy" | "Sell"
    order_type: str  # "Limit" | "Market"
    qty: Decimal
    order_link_id: str
    price: Decimal | None = None
    time_in_force: str | None = None
    reduce_only: bool = False
    take_profit: Decimal | None = None
    stop_loss: Decimal | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.qty, Decimal) or (self.price is not None and not isinstance(self.price, Decimal)):
            raise TypeError("qty and price must be Decimal")
        if self.order_type == "Limit" and self.price is None:
            raise ValueError("a Limit order needs a price")


@runtime_checkable
class Venue(Protocol):
    """What the execution layer needs from an exchange (or from paper trading)."""

    name: str
    """``"bybit"`` or ``"paper"`` (stored with every order as its mode's venue)."""

    async def start(self, on_push: PushHandler) -> None:
        """Connect; from now on every private push item goes to ``on_push``. Returns once the
        push stream is live, so a snapshot taken afterwards misses nothing."""

    async def close(self) -> None: ...

    async def place(self, req: OrderRequest) -> PlaceOrderResult:
        """Send a create. A lost acknowledgement is resolved by looking the order up by its
        ``orderLinkId`` (never by sending it again blindly)."""

    async def cancel(self, symbol: str, order_link_id: str) -> CancelResult: ...

    async def cancel_all(self, symbol: str | None = None) -> list[Json]: ...

    async def find_order(self, symbol: str, order_link_id: str) -> Json | None:
        """The venue's record of an order (open, recent or history); None if it never existed."""

    async def open_orders(self, symbol: str | None = None) -> list[Json]: ...

    async def executions(self, symbol: str | None = None, *, start_time: int | None = None) -> list[Json]: ...

    async def positions(self, symbol: str | None = None) -> list[Json]: ...

    async def wallet(self) -> Json:
        """The ``/v5/account/wallet-balance`` account entry (``totalEquity``, ``coin`` list...)."""

    async def instruments(self) -> list[Instrument]: ...


class BybitVenue:
    """The Bybit client as a venue: REST for requests, the private stream for pushes."""

    name = "bybit"

    def __init__(self, rest: BybitRest, private_url: str, api_key: str, api_secret: str,
                 *, category: str = "linear", **stream_options: Any) -> None:
        self.rest = rest
        self.category = category
        self._url = private_url
        self._key = api_key
        self._secret = api_secret
        self._stream_options = stream_options
        self.stream: PrivateStream | None = None

    async def start(self, on_push: PushHandler) -> None:
        async def dispatch(msg: Json) -> None:
            topic = str(msg.get("topic", ""))
            for item in msg.get("data") or []:
                await on_push(topic, item)

        await self.rest.start()
        await self.rest.sync_clock()
        self.stream = PrivateStream(self._url, self._key, self._secret, on_message=dispatch,
                                    clock=self.rest.clock, **self._stream_options)
        await self.stream.start()
        await self.stream.wait_live()

    async def close(self) -> None:
        if self.stream is not None:
            await self.stream.close()
        await self.rest.close()

    async def place(self, req: OrderRequest) -> PlaceOrderResult:
        return await self.rest.place_order(
            req.symbol, req.side, req.order_type, req.qty, req.price, category=self.category,
            order_link_id=req.order_link_id, time_in_force=req.time_in_force,
            reduce_only=req.reduce_only or None, take_profit=req.take_profit, stop_loss=req.stop_loss,
            extra=req.extra or None,
        )

    async def cancel(self, symbol: str, order_link_id: str) -> CancelResult:
        return await self.rest.cancel_order(symbol, order_link_id=order_link_id, category=self.category)

    async def amend(self, symbol: str, order_link_id: str, *, qty: Decimal | None = None,
                    price: Decimal | None = None) -> AmendResult:
        """Amend price/qty (absolute values; a lost ack is resolved by the client). Not part of
        :class:`Venue`: ``OrderService.amend`` uses it when the venue has it."""
        return await self.rest.amend_order(symbol, order_link_id=order_link_id, qty=qty, price=price,
                                           category=self.category)

    async def cancel_all(self, symbol: str | None = None) -> list[Json]:
        return await self.rest.cancel_all(symbol=symbol, settle_coin=None if symbol else "USDT",
                                          category=self.category)

    async def find_order(self, symbol: str, order_link_id: str) -> Json | None:
        return await self.rest.find_order(symbol, order_link_id=order_link_id, category=self.category)

    async def open_orders(self, symbol: str | None = None) -> list[Json]:
        return await self.rest.open_orders(symbol, settle_coin=None if symbol else "USDT", open_only=0,
                                           category=self.category)

    async def executions(self, symbol: str | None = None, *, start_time: int | None = None) -> list[Json]:
        return await self.rest.executions(symbol, start_time=start_time, category=self.category)

    async def positions(self, symbol: str | None = None) -> list[Json]:
        return await self.rest.positions(symbol, category=self.category)

    async def wallet(self) -> Json:
        return await self.rest.wallet_balance()

    async def instruments(self) -> list[Instrument]:
        return await self.rest.instrument_specs(category=self.category)


__all__ = ["BybitVenue", "Json", "OrderRequest", "PushHandler", "Venue"]
