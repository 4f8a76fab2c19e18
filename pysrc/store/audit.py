"""The append-only audit log of every capital-affecting action (mission section 10).

The database enforces append-only: triggers on ``audit_log`` reject UPDATE, DELETE and TRUNCATE
for every role, the owner included (``docs/persistence.md`` says what a superuser can still do and
how to run the bot as a role that cannot). This class can only append and read.

Write the entry in the same transaction as the change it describes (pass ``conn=``), so there is
never a change without its entry or an entry for a change that was rolled back. A failed action
is recorded too, with ``success=False`` and the error (the database refuses a failure without one).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from .db import Executor

ACTOR_BOT = "bot"


def new_trace_id() -> str:
    return uuid.uuid4().hex


def audit_context(
    *,
    signal: Any = None,
    market: Any = None,
    indicators: Any = None,
    **extra: Any,
) -> dict[str, Any]:
    """The ``context`` of an entry: the signal, market data and indicators at that moment (plus
    anything else worth keeping). Values are stored as JSONB (Decimals as strings)."""
    ctx: dict[str, Any] = {}
    if signal is not None:
        ctx["signal"] = signal
    if market is not None:
        ctx["market"] = market
    if indicators is not None:
        ctx["indicators"] = indicators
    ctx.update(extra)
    return ctx


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    at: datetime
    actor: str
    action: str
    entity: str | None
    reason: str | None
    params: Any
    old_value: Any
    new_value: Any
    success: bool
    error: str | None
    trace_id: str | None
    context: Any


_COLS = ", ".join(f.name for f in fields(AuditEntry))
_INSERT = (
    "INSERT INTO audit_log (actor, action, entity, reason, params, old_value, new_value, success, "
    "error, trace_id, context) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) "
    f"RETURNING {_COLS}"
)
_SELECT_RECENT = (
    f"SELECT {_COLS} FROM audit_log WHERE ($1::timestamptz IS NULL OR at >= $1) "
    "AND ($2::text IS NULL OR action = $2) AND ($3::text IS NULL OR entity = $3) "
    "ORDER BY at DESC, id DESC LIMIT $4"
)
_SELECT_TRACE = f"SELECT {_COLS} FROM audit_log WHERE trace_id = $1 ORDER BY at, id"


class AuditLog:
    """Append and read audit entries. ``executor`` is a pool (or a connection)."""

    def __init__(self, executor: Executor) -> None:
        self._db = executor

    async def record(
        self,
        actor: str,
        action: str,
        reason: str | None = None,
        params: Mapping[str, Any] | None = None,
        old: Any = None,
        new: Any = None,
        success: bool = True,
        error: str | None = None,
        trace_id: str | None = None,
        context: Mapping[str, Any] | None = None,
        *,
        entity: str | None = None,
        conn: Executor | None = None,
    ) -> AuditEntry:
        """Append one entry and return it. ``trace_id`` defaults to a fresh one; ``old`` / ``new``
        may be dataclasses (rows), mappings or any JSON-able value."""
        if not success and not error:
            raise ValueError("a failed action must say why (error=...)")
        db = conn if conn is not None else self._db
        rec = await db.fetchrow(
            _INSERT,
            actor,
            action,
            entity,
            reason,
            dict(params) if params is not None else {},
            old,
            new,
            success,
            error,
            trace_id or new_trace_id(),
            dict(context) if context is not None else {},
        )
        return AuditEntry(*rec)

    async def recent(
        self,
        *,
        since: datetime | None = None,
        action: str | None = None,
        entity: str | None = None,
        limit: int = 100,
    ) -> list[AuditEntry]:
        """Newest first."""
        rows = await self._db.fetch(_SELECT_RECENT, since, action, entity, limit)
        return [AuditEntry(*r) for r in rows]

    async def by_trace(self, trace_id: str) -> list[AuditEntry]:
        """Every entry of one trace, oldest first."""
        return [AuditEntry(*r) for r in await self._db.fetch(_SELECT_TRACE, trace_id)]


__all__ = ["ACTOR_BOT", "AuditEntry", "AuditLog", "audit_context", "new_trace_id"]
