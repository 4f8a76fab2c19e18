"""Bybit hosts per environment (bybit-v5.md 1.1 and 3.1), plus arbitrary hosts such as the local
exchange in :mod:`pysrc.sim`. The client needs nothing but these URLs to switch environment."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BybitEnvironment:
    name: str
    rest_url: str
    """REST base URL without a trailing slash, e.g. ``https://api.bybit.com``."""
    ws_public_base: str
    """Public WS base; append ``/spot``, ``/linear``, ... (see :meth:`ws_public_url`)."""
    ws_private_url: str
    ws_trade_url: str | None
    """WS order entry; ``None`` where Bybit does not offer it (demo)."""

    def ws_public_url(self, category: str = "linear") -> str:
        return f"{self.ws_public_base}/{category}"


MAINNET = BybitEnvironment(
    name="mainnet",
    rest_url="https://api.bybit.com",
    ws_public_base="wss://stream.bybit.com/v5/public",
    ws_private_url="wss://stream.bybit.com/v5/private",
    ws_trade_url="wss://stream.bybit.com/v5/trade",
)
MAINNET_BYTICK = BybitEnvironment(
    name="mainnet-bytick",
    rest_url="https://api.bytick.com",
    ws_public_base="wss://stream.bybit.com/v5/public",
    ws_private_url="wss://stream.bybit.com/v5/private",
    ws_trade_url="wss://stream.bybit.com/v5/trade",
)
TESTNET = BybitEnvironment(
    name="testnet",
    rest_url="https://api-testnet.bybit.com",
    ws_public_base="wss://stream-testnet.bybit.com/v5/public",
    ws_private_url="wss://stream-testnet.bybit.com/v5/private",
    ws_trade_url="wss://stream-testnet.bybit.com/v5/trade",
)
# Demo trading: private streams on stream-demo, public data from mainnet, no WS trade.
DEMO = BybitEnvironment(
    name="demo",
    rest_url="https://api-demo.bybit.com",
    ws_public_base="wss://stream.bybit.com/v5/public",
    ws_private_url="wss://stream-demo.bybit.com/v5/private",
    ws_trade_url=None,
)

ENVIRONMENTS = {env.name: env for env in (MAINNET, MAINNET_BYTICK, TESTNET, DEMO)}


def environment(name: str) -> BybitEnvironment:
    """Named environment: ``mainnet``, ``mainnet-bytick``, ``testnet`` or ``demo``."""
    try:
        return ENVIRONMENTS[name]
    except KeyError:
        raise ValueError(f"unknown Bybit environment {name!r}; known: {sorted(ENVIRONMENTS)}") from None


def custom_environment(rest_url: str, ws_base: str | None = None, *, name: str = "custom") -> BybitEnvironment:
    """Any host speaking Bybit v5 (e.g. ``SimExchange.rest_url``). ``ws_base`` defaults to the
    REST host with ``http`` replaced by ``ws`` (the local exchange serves both on one port)."""
    rest = rest_url.rstrip("/")
    if ws_base is None:
        if rest.startswith("https://"):
            ws_base = "wss://" + rest[len("https://") :]
        elif rest.startswith("http://"):
            ws_base = "ws://" + rest[len("http://") :]
        else:
            raise ValueError(f"cannot derive a WebSocket URL from {rest_url!r}")
    ws = ws_base.rstrip("/")
    return BybitEnvironment(
        name=name,
        rest_url=rest,
        ws_public_base=f"{ws}/v5/public",
        ws_private_url=f"{ws}/v5/private",
        ws_trade_url=f"{ws}/v5/trade",
    )


__all__ = ["DEMO", "ENVIRONMENTS", "MAINNET", "MAINNET_BYTICK", "TESTNET", "BybitEnvironment", "custom_environment", "environment"]
