"""Results of order writes whose acknowledgement may have been lost.

``retCode 0`` on create/amend/cancel only means *accepted* (the order/execution streams carry the
state). When the answer itself is lost (timeout, reset, 5xx, 10000/10016) the client never resends
a create blindly: it looks the order up by ``orderLinkId`` and reports what the exchange has.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from pysrc.exchange.errors import ExchangeError

ORDER_LINK_ID_MAX = 36
_LINK_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,36}$")


def new_order_link_id(prefix: str = "") -> str:
    """A fresh ``orderLinkId``: ``prefix`` + random hex, at most 36 characters of ``[A-Za-z0-9_-]``."""
    link = prefix + uuid.uuid4().hex
    link = link[:ORDER_LINK_ID_MAX]
    check_order_link_id(link)
    return link


def check_order_link_id(link_id: str) -> None:
    """Bybit: at most 36 characters, digits, letters, ``-`` and ``_`` (bybit-v5.md section 6)."""
    if not _LINK_ID_RE.match(link_id):
        raise ValueError(f"orderLinkId {link_id!r}: 1-36 characters of [A-Za-z0-9_-] required")


class CreateStatus(str, Enum):
    ACCEPTED = "accepted"
    """Normal acknowledgement."""
    RECOVERED = "recovered"
    """The acknowledgement was lost; the exchange has the order (found by ``orderLinkId``)."""
    NOT_FOUND = "not_found"
    """The acknowledgement was lost and the exchange confirms no order with this ``orderLinkId``
    (neither open/recent nor in history). Safe to retry with the SAME ``orderLinkId`` (a late
    arrival of the first attempt would then be rejected as a duplicate, 110072)."""
    DUPLICATE = "duplicate"
    """110072: an order with this ``orderLinkId`` already exists (``order`` holds it when found)."""


@dataclass
class PlaceOrderResult:
    status: CreateStatus
    order_link_id: str
    order_id: str | None = None
    order: dict[str, Any] | None = None
    """The exchange's order record when it was looked up."""
    error: ExchangeError | None = None
    """The error that left the outcome unknown (RECOVERED/NOT_FOUND) or the duplicate answer."""
    resent: bool = False
    """True if the create was sent a second time (same ``orderLinkId``) after a NOT_FOUND."""

    @property
    def exists(self) -> bool:
        """The exchange has (or had) an order with this ``orderLinkId``."""
        return self.status is not CreateStatus.NOT_FOUND

    @property
    def safe_to_retry(self) -> bool:
        return self.status is CreateStatus.NOT_FOUND


class AmendStatus(str, Enum):
    ACCEPTED = "accepted"
    CONFIRMED = "confirmed"
    """Ack lost; the order on the exchange already shows the requested values."""
    RESENT = "resent"
    """Ack lost and the order did not show the values yet; the (absolute, idempotent) amend was
    sent again and acknowledged."""
    ORDER_CLOSED = "order_closed"
    """Ack lost; the order is no longer open (filled or cancelled meanwhile)."""


@dataclass
class AmendResult:
    status: AmendStatus
    order_id: str | None
    order_link_id: str | None
    order: dict[str, Any] | None = None
    error: ExchangeError | None = None


class CancelStatus(str, Enum):
    CANCELLED = "cancelled"
    """Acknowledged (state comes from the order stream)."""
    RESENT = "resent"
    """Ack lost; the cancel was resent and acknowledged (cancel is idempotent in effect)."""
    ALREADY_GONE = "already_gone"
    """Ack lost; the resend answered 110001/110008/110010 (order does not exist / already closed):
    the first cancel landed, or the order filled. Either way nothing is left to cancel."""


@dataclass
class CancelResult:
    status: CancelStatus
    order_id: str | None
    order_link_id: str | None
    error: ExchangeError | None = None
    attempts: int = 1
    extra: dict[str, Any] = field(default_factory=dict)


__all__ = [
    "ORDER_LINK_ID_MAX",
    "AmendResult",
    "AmendStatus",
    "CancelResult",
    "CancelStatus",
    "CreateStatus",
    "PlaceOrderResult",
    "check_order_link_id",
    "new_order_link_id",
]
