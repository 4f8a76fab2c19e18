"""Exact decimals from the outside world: the one conversion every layer uses for prices,
quantities, fees and balances.

A ``float`` is refused (a price that went through binary floating point is no longer the
exchange's price), and so are ``bool`` and non-finite values; numeric strings (Bybit sends every
number as a string) and ints are accepted.
"""

from __future__ import annotations

import decimal
from decimal import Decimal


def to_decimal(value: object, name: str = "value") -> Decimal:
    """``Decimal`` from a ``Decimal``, ``int`` or numeric string; anything else raises, naming
    ``name`` (``TypeError`` for a wrong type, ``ValueError`` for a bad or non-finite number)."""
    if isinstance(value, Decimal):
        d = value
    elif isinstance(value, bool):
        raise TypeError(f"{name}={value!r}: a bool is not a number")
    elif isinstance(value, int):
        d = Decimal(value)
    elif isinstance(value, str):
        try:
            d = Decimal(value.strip())
        except decimal.InvalidOperation:
            raise ValueError(f"{name}={value!r} is not a decimal number") from None
    else:
        raise TypeError(f"{name}={value!r}: pass Decimal, int or str (money is exact, never float)")
    if not d.is_finite():
        raise ValueError(f"{name}={value!r} is not finite")
    return d


def optional_decimal(value: object, name: str = "value") -> Decimal | None:
    """Like :func:`to_decimal`, but ``None`` and ``""`` (Bybit's "no value") give ``None``."""
    if value is None or value == "":
        return None
    return to_decimal(value, name)


__all__ = ["optional_decimal", "to_decimal"]
