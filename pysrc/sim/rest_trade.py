"""Signed REST endpoints (trade, position, account): path -> (HTTP method, account method)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pysrc.sim.account import Account

Handler = Callable[[Account, dict[str, Any]], dict[str, Any]]

HANDLERS: dict[str, tuple[str, Handler]] = {
    "/v5/order/create": ("POST", Account.create),
    "/v5/order/amend": ("POST", Account.amend),
    "/v5/order/cancel": ("POST", Account.cancel),
    "/v5/order/cancel-all": ("POST", Account.cancel_all),
    "/v5/order/realtime": ("GET", Account.realtime),
    "/v5/order/history": ("GET", Account.history_list),
    "/v5/execution/list": ("GET", Account.execution_list),
    "/v5/position/list": ("GET", Account.position_list),
    "/v5/position/set-leverage": ("POST", Account.set_leverage),
    "/v5/position/trading-stop": ("POST", Account.trading_stop),
    "/v5/account/wallet-balance": ("GET", Account.wallet_balance),
}
