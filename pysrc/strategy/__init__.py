"""Strategies: the interface, the manager, the order-book scalper and the market scanner.

Pure logic over :class:`MarketData` (exact top of book + the native feature vector); no I/O.
Rules and defaults: ``docs/strategies-and-risk.md``.
"""

from pysrc.strategy.base import (
    MarketData,
    Param,
    ParameterError,
    PassThroughValidator,
    Side,
    Signal,
    SignalKind,
    SignalValidator,
    Strategy,
    Trade,
    Verdict,
)
from pysrc.strategy.manager import (
    Rejection,
    StrategyManager,
    StrategyStats,
    UnknownStrategy,
)
from pysrc.strategy.orderbook_scalper import OrderBookScalper
from pysrc.strategy.scanner import (
    Activity,
    Explosion,
    MarketScanner,
    ScannerConfig,
    ScannerConfigError,
)

__all__ = [
    "Activity",
    "Explosion",
    "MarketData",
    "MarketScanner",
    "OrderBookScalper",
    "Param",
    "ParameterError",
    "PassThroughValidator",
    "Rejection",
    "ScannerConfig",
    "ScannerConfigError",
    "Side",
    "Signal",
    "SignalKind",
    "SignalValidator",
    "Strategy",
    "StrategyManager",
    "StrategyStats",
    "Trade",
    "UnknownStrategy",
    "Verdict",
]
