"""Risk: sizing, limits, exposure, correlation and the daily-loss kill switch (pure logic).

Nothing here does I/O: :class:`RiskManager.check` turns a signal, the portfolio state and the
instrument's rules into an :class:`Approved` size or a :class:`Rejected` reason, and
:class:`KillSwitchDecision` tells the execution layer when to cancel and close everything.
Rules, defaults and reason codes: ``docs/strategies-and-risk.md``.
"""

from pysrc.risk.config import RiskConfigError, RiskLimits, SizingConfig, SizingMode
from pysrc.risk.correlation import (
    DEFAULT_GROUPS,
    CorrelationTracker,
    SymbolGroups,
    base_asset,
)
from pysrc.risk.instrument import (
    InstrumentSpec,
    ceil_to_step,
    floor_to_step,
    nearest_step,
)
from pysrc.risk.killswitch import HALT_ACTIONS, KillSwitch, KillSwitchDecision
from pysrc.risk.manager import Approved, Decision, RejectCode, Rejected, RiskManager
from pysrc.risk.portfolio import OpenPosition, PortfolioState

__all__ = [
    "DEFAULT_GROUPS",
    "HALT_ACTIONS",
    "Approved",
    "CorrelationTracker",
    "Decision",
    "InstrumentSpec",
    "KillSwitch",
    "KillSwitchDecision",
    "OpenPosition",
    "PortfolioState",
    "RejectCode",
    "Rejected",
    "RiskConfigError",
    "RiskLimits",
    "RiskManager",
    "SizingConfig",
    "SizingMode",
    "SymbolGroups",
    "base_asset",
    "ceil_to_step",
    "floor_to_step",
    "nearest_step",
]
