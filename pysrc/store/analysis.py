"""The analysis queries of mission section 9, kept as plain SQL files in ``queries/``.

They take no parameters, so each file also runs as it is in ``psql``:

* ``top_profitable_positions``: the 10 most profitable closed positions with entry/exit reasons;
* ``exit_reasons``: per exit reason, the number of trades, average and total PnL, winning trades;
* ``signal_effectiveness``: per signal type, trades, wins, losses, win rate, average and total PnL;
* ``failed_audit_24h``: failed audit entries of the last 24 hours, newest first.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

from .db import Executor

TOP_PROFITABLE_POSITIONS = "top_profitable_positions"
EXIT_REASONS = "exit_reasons"
SIGNAL_EFFECTIVENESS = "signal_effectiveness"
FAILED_AUDIT_24H = "failed_audit_24h"
QUERIES = (TOP_PROFITABLE_POSITIONS, EXIT_REASONS, SIGNAL_EFFECTIVENESS, FAILED_AUDIT_24H)


@cache
def load(name: str) -> str:
    """The SQL text of query ``name``."""
    if name not in QUERIES:
        raise KeyError(f"unknown query {name!r}; known: {', '.join(QUERIES)}")
    return resources.files("pysrc.store").joinpath("queries").joinpath(f"{name}.sql").read_text(encoding="utf-8")


async def run(executor: Executor, name: str) -> list[dict[str, Any]]:
    """Run query ``name``; rows as dicts (numbers as Decimal, times as datetime)."""
    return [dict(r) for r in await executor.fetch(load(name))]


__all__ = [
    "EXIT_REASONS",
    "FAILED_AUDIT_24H",
    "QUERIES",
    "SIGNAL_EFFECTIVENESS",
    "TOP_PROFITABLE_POSITIONS",
    "load",
    "run",
]
