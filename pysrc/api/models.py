"""Request bodies of the API, validated before any route code runs.

Money and quantities are **decimal strings** (``"0.001"``, ``"65000.5"``): a JSON number would be
parsed into a binary float and no longer be the value the client meant, so numbers are refused
with a message saying why. A plain decimal is digits with an optional fraction: no sign, no
exponent, no spaces, at most 40 characters. Every body forbids unknown fields, so a typo
(``"qyt"``) is a 422 naming it instead of a silently ignored value.

Order placing: ``price`` is **required for Limit and refused for Market** orders. Ignoring a price
sent with a market order would let a client believe it had a price limit it does not have.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from pysrc.api.auth import MIN_PASSWORD
from pysrc.domain.ids import is_valid_order_link_id

DECIMAL_PATTERN = r"^[0-9]{1,30}(\.[0-9]{1,30})?$"
_DECIMAL = re.compile(DECIMAL_PATTERN)
SYMBOL_PATTERN = r"^[A-Z0-9]{2,30}$"
STRATEGY_PATTERN = r"^[A-Za-z0-9_\-]{1,64}$"
CLIENT_ORDER_ID_PATTERN = r"^[A-Za-z0-9_\-]{1,36}$"


def _positive_decimal(value: Any) -> Decimal:
    if isinstance(value, Decimal):
        d = value
    elif isinstance(value, str):
        if len(value) > 61 or not _DECIMAL.fullmatch(value):
            raise PydanticCustomError(
                "decimal_string", "expected a plain decimal string such as \"0.01\" (no sign, exponent or spaces)"
            )
        d = Decimal(value)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        raise PydanticCustomError(
            "decimal_string", "send decimal numbers as strings (\"0.01\"): a JSON number may not be exact"
        )
    else:
        raise PydanticCustomError("decimal_string", "expected a decimal string")
    if not d.is_finite() or d <= 0:
        raise PydanticCustomError("decimal_positive", "must be greater than 0")
    return d


PositiveDecimal = Annotated[
    Decimal,
    BeforeValidator(_positive_decimal),
    PlainSerializer(str, return_type=str),
    WithJsonSchema({"type": "string", "pattern": DECIMAL_PATTERN, "examples": ["0.001"]}),
]
"""A Decimal > 0 that arrives as a decimal string (see the module docstring)."""


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)


class LoginRequest(Body):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


class TokenResponse(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int = Field(description="seconds until the token expires")


class ChangePasswordRequest(Body):
    old_password: str = Field(min_length=1, max_length=1024)
    new_password: str = Field(min_length=MIN_PASSWORD, max_length=1024)


class VerifyResponse(BaseModel):
    valid: Literal[True] = True
    username: str
    issued_at: int
    expires_at: int


class PlaceOrderRequest(Body):
    """``POST /api/trading/orders``."""

    symbol: str = Field(pattern=SYMBOL_PATTERN, examples=["BTCUSDT"])
    side: Literal["Buy", "Sell"]
    order_type: Literal["Limit", "Market"]
    qty: PositiveDecimal
    price: PositiveDecimal | None = Field(
        default=None, validate_default=True, description="required for Limit, refused for Market"
    )
    client_order_id: str | None = Field(
        default=None,
        pattern=CLIENT_ORDER_ID_PATTERN,
        description="idempotency key (Bybit orderLinkId rule); the same id twice returns the same order",
    )

    @field_validator("price")
    @classmethod
    def _price_matches_type(cls, price: Decimal | None, info: ValidationInfo) -> Decimal | None:
        kind = info.data.get("order_type")
        if kind == "Limit" and price is None:
            raise PydanticCustomError("price_required", "a Limit order needs a price")
        if kind == "Market" and price is not None:
            raise PydanticCustomError("price_forbidden", "a Market order takes no price (it would not be a limit)")
        return price

    @field_validator("client_order_id")
    @classmethod
    def _link_id(cls, value: str | None) -> str | None:
        if value is not None and not is_valid_order_link_id(value):  # belt and braces with the pattern
            raise PydanticCustomError("client_order_id", "1-36 characters of [A-Za-z0-9_-]")
        return value


class ModifyOrderRequest(Body):
    """``PATCH /api/trading/orders/{id}``: at least one of the two."""

    qty: PositiveDecimal | None = None
    price: PositiveDecimal | None = None

    @model_validator(mode="after")
    def _something(self) -> ModifyOrderRequest:
        if self.qty is None and self.price is None:
            raise PydanticCustomError("nothing_to_change", "give qty, price or both")
        return self


class PriceRequest(Body):
    """``PUT /api/positions/{symbol}/tp`` and ``/sl``."""

    price: PositiveDecimal


class ReasonRequest(Body):
    """Kill switch engage / release."""

    reason: str = Field(default="", max_length=500)


__all__ = [
    "CLIENT_ORDER_ID_PATTERN",
    "DECIMAL_PATTERN",
    "STRATEGY_PATTERN",
    "SYMBOL_PATTERN",
    "ChangePasswordRequest",
    "LoginRequest",
    "ModifyOrderRequest",
    "PlaceOrderRequest",
    "PositiveDecimal",
    "PriceRequest",
    "ReasonRequest",
    "TokenResponse",
    "VerifyResponse",
]
