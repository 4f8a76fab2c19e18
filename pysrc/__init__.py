"""Bybit trading bot: a Rust order-book core under a thin asyncio Python layer."""

__version__ = "0.1.0"
