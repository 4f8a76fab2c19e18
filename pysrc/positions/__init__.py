"""The dynamic position manager's decisions: trailing stop / take-profit, partial closes,
reversal exits and detection of positions changed outside the bot (pure logic; the execution
layer acts on the returned actions). Rules: ``docs/strategies-and-risk.md``."""

from pysrc.positions.manager import (
    Action,
    AdoptPosition,
    CloseAll,
    ClosePartial,
    ExchangePosition,
    ManagedPosition,
    MarkClosed,
    MoveStop,
    MoveTakeProfit,
    PositionManager,
    PositionRules,
    SyncQuantity,
)
from pysrc.positions.reversal import DEFAULT_INDICATORS, reversal_votes

__all__ = [
    "DEFAULT_INDICATORS",
    "Action",
    "AdoptPosition",
    "CloseAll",
    "ClosePartial",
    "ExchangePosition",
    "ManagedPosition",
    "MarkClosed",
    "MoveStop",
    "MoveTakeProfit",
    "PositionManager",
    "PositionRules",
    "SyncQuantity",
    "reversal_votes",
]
