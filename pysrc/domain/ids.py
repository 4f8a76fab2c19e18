"""Client order ids (Bybit ``orderLinkId``): the plan's ``{timestamp}_{symbol}_{strategy}_{uuid8}``,
shortened to fit Bybit's limit.

Bybit allows at most 36 characters of ``[A-Za-z0-9_-]`` (``docs/bybit-v5.md`` section 6), and the
plan's format with a millisecond timestamp in decimal (13 digits) plus a symbol such as
``1000PEPEUSDT`` and a strategy name such as ``orderbook_scalper`` does not fit. The layout here::

    0m9x3k2ab_BTCUSDT_breakout_k3j9x0qa
    |-------| |-----| |------| |------|
    time (9)  symbol  strategy nonce (8)
              (<=10)  (rest)

* **time**: Unix milliseconds in base 36 (``0-9a-z``), zero-padded to 9 characters. Fixed width
  makes plain string order equal time order (9 base-36 digits last until the year 5188; 8 would end
  in 2059).
* **symbol**: upper-case letters and digits, at most 10. A longer symbol first loses its quote
  currency (``1000000MOGUSDT`` -> ``1000000MOG``), then is truncated to 10.
* **strategy**: lower-case ``[a-z0-9-]`` (``_`` is the field separator, so ``sar_wave`` becomes
  ``sar-wave``), truncated to the characters left: 16 minus the symbol's length (at least 6).
* **nonce**: 8 base-36 characters (41 random bits, more than the plan's 8 hex digits). Within one
  millisecond a generator increments the previous nonce instead of drawing a new one, so ids from
  one generator are strictly increasing as strings (and unique without relying on chance).

The id is a label for humans and a key for idempotency, not a record: the order row keeps the full
symbol and strategy. Uniqueness across processes rests on the random nonce *and* on the atomic
reservation (Redis ``SET NX`` plus a unique constraint) done by the execution layer.
"""

from __future__ import annotations

import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

ORDER_LINK_ID_MAX = 36
_BYBIT_ID = re.compile(r"[A-Za-z0-9_-]{1,36}")

TIME_WIDTH = 9
NONCE_WIDTH = 8
SYMBOL_MAX = 10
STRATEGY_MIN = 6
_FIXED = TIME_WIDTH + NONCE_WIDTH + 3  # three separators
VARIABLE_BUDGET = ORDER_LINK_ID_MAX - _FIXED  # 16 characters for symbol + strategy
QUOTE_SUFFIXES = ("USDT", "USDC", "PERP", "USD")

_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"
_NONCE_SPACE = 36**NONCE_WIDTH
_TIME_SPACE = 36**TIME_WIDTH

_OURS = re.compile(
    rf"(?P<time>[0-9a-z]{{{TIME_WIDTH}}})_(?P<symbol>[A-Z0-9]{{1,{SYMBOL_MAX}}})_"
    rf"(?P<strategy>[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)_(?P<nonce>[0-9a-z]{{{NONCE_WIDTH}}})"
)


def is_valid_order_link_id(value: str) -> bool:
    """Bybit's rule: 1-36 characters of ``[A-Za-z0-9_-]`` (any id, ours or not)."""
    return isinstance(value, str) and _BYBIT_ID.fullmatch(value) is not None


def check_order_link_id(value: str) -> str:
    """``value`` if :func:`is_valid_order_link_id`, else ``ValueError``."""
    if not is_valid_order_link_id(value):
        raise ValueError(f"orderLinkId {value!r}: 1-36 characters of [A-Za-z0-9_-] required")
    return value


def base36(n: int, width: int) -> str:
    """``n`` in base 36, zero-padded to ``width`` (``ValueError`` if it does not fit)."""
    if n < 0:
        raise ValueError("negative")
    out = []
    while n:
        n, r = divmod(n, 36)
        out.append(_DIGITS[r])
    text = "".join(reversed(out)) or "0"
    if len(text) > width:
        raise ValueError(f"{n} needs more than {width} base-36 digits")
    return text.rjust(width, "0")


def symbol_segment(symbol: str) -> str:
    """The symbol as it appears in an id (see the module docstring)."""
    seg = re.sub(r"[^A-Z0-9]", "", symbol.upper())
    if len(seg) > SYMBOL_MAX:
        for quote in QUOTE_SUFFIXES:
            if seg.endswith(quote) and len(seg) > len(quote):
                seg = seg[: -len(quote)]
                break
    seg = seg[:SYMBOL_MAX]
    if not seg:
        raise ValueError(f"symbol {symbol!r} has no letters or digits")
    return seg


def strategy_segment(strategy: str, room: int) -> str:
    """The strategy as it appears in an id, at most ``room`` characters."""
    seg = re.sub(r"[^a-z0-9]+", "-", strategy.lower()).strip("-")
    seg = seg[:room].rstrip("-")
    if not seg:
        raise ValueError(f"strategy {strategy!r} has no letters or digits")
    return seg


@dataclass(frozen=True, slots=True)
class ClientOrderId:
    """The parts of an id made by :class:`ClientOrderIdGenerator`."""

    value: str
    timestamp_ms: int
    symbol: str
    strategy: str
    nonce: str


def parse_client_order_id(value: str) -> ClientOrderId | None:
    """The parts of one of our ids, or ``None`` for any other string (e.g. an id made by hand on
    the exchange's web page, or by another bot on the same account)."""
    if len(value) > ORDER_LINK_ID_MAX:
        return None
    m = _OURS.fullmatch(value)
    if m is None:
        return None
    return ClientOrderId(
        value=value,
        timestamp_ms=int(m["time"], 36),
        symbol=m["symbol"],
        strategy=m["strategy"],
        nonce=m["nonce"],
    )


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


class ClientOrderIdGenerator:
    """Makes ids; thread-safe; strictly increasing (as strings) for one generator.

    ``clock`` returns Unix milliseconds and ``randbelow`` draws the nonce; both are injectable so
    tests can pin them. A clock that steps backwards does not break the ordering: the generator
    keeps using the last millisecond it issued and increments the nonce.
    """

    def __init__(
        self,
        clock: Callable[[], int] = _wall_ms,
        randbelow: Callable[[int], int] = secrets.randbelow,
    ) -> None:
        self._clock = clock
        self._randbelow = randbelow
        self._lock = threading.Lock()
        self._last_ms = -1
        self._last_nonce = 0

    def next_id(self, symbol: str, strategy: str) -> str:
        sym = symbol_segment(symbol)
        strat = strategy_segment(strategy, max(VARIABLE_BUDGET - len(sym), STRATEGY_MIN))
        with self._lock:
            now = self._clock()
            if now > self._last_ms:
                ms, nonce = now, self._randbelow(_NONCE_SPACE // 2)
                # A fresh draw starts in the lower half of the space, so a burst within one
                # millisecond can increment a long way before the (theoretical) carry below.
            else:
                ms, nonce = self._last_ms, self._last_nonce + 1
                if nonce >= _NONCE_SPACE:
                    ms, nonce = ms + 1, 0
            if not 0 <= ms < _TIME_SPACE:
                raise ValueError(f"timestamp {ms} ms does not fit {TIME_WIDTH} base-36 digits")
            self._last_ms, self._last_nonce = ms, nonce
        value = f"{base36(ms, TIME_WIDTH)}_{sym}_{strat}_{base36(nonce, NONCE_WIDTH)}"
        # By construction: 9 + 1 + <=10 + 1 + <=16-len(sym) + 1 + 8 <= 36.
        return check_order_link_id(value)


_DEFAULT = ClientOrderIdGenerator()


def new_client_order_id(symbol: str, strategy: str) -> str:
    """An id from the process-wide generator."""
    return _DEFAULT.next_id(symbol, strategy)
