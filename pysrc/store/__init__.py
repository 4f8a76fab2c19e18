"""Persistence: PostgreSQL (asyncpg) and Redis (redis-py asyncio), embedded or external.

* :mod:`.bundle`: :func:`open_store`, everything below in one call;
* :mod:`.servers`: resolve ``DATABASE_URL`` / ``REDIS_URL`` or start embedded servers;
* :mod:`.db`: pools with the store's codecs (orjson JSONB, exact NUMERIC), transactions;
* :mod:`.migrate`: versioned SQL migrations (``migrations/``), ``python -m pysrc.bot migrate``
  (``from pysrc.store.migrate import migrate``);
* :mod:`.repositories`: orders, positions, executions, trades, idempotency records, kill switch,
  market snapshots (optimistic locking, recorded transitions);
* :mod:`.audit`: the append-only audit log;
* :mod:`.analysis`: the four analysis queries (``queries/*.sql``);
* :mod:`.redis`: idempotency keys, the dead-letter stream, a TTL cache.

See ``docs/persistence.md``.
"""

from __future__ import annotations

from .audit import AuditEntry, AuditLog, audit_context, new_trace_id
from .bundle import Store, open_store
from .db import PoolConfig, create_pool, transaction
from .migrate import ChecksumMismatch, MigrationError
from .repositories import (
    BotState,
    BotStateRepository,
    Change,
    ExecutionRepository,
    IdempotencyConflict,
    IdempotencyStore,
    MarketSnapshot,
    MarketSnapshotRepository,
    NewExecution,
    NewOrder,
    NewPosition,
    NewTrade,
    NotFound,
    OrderRepository,
    OrderRow,
    PositionRepository,
    PositionRow,
    StaleVersion,
    TradeRepository,
    retry_on_stale,
)
from .servers import ConnectionSettings, Servers, start_servers

__all__ = [
    "AuditEntry",
    "AuditLog",
    "BotState",
    "BotStateRepository",
    "Change",
    "ChecksumMismatch",
    "ConnectionSettings",
    "ExecutionRepository",
    "IdempotencyConflict",
    "IdempotencyStore",
    "MarketSnapshot",
    "MarketSnapshotRepository",
    "MigrationError",
    "NewExecution",
    "NewOrder",
    "NewPosition",
    "NewTrade",
    "NotFound",
    "OrderRepository",
    "OrderRow",
    "PoolConfig",
    "PositionRepository",
    "PositionRow",
    "Servers",
    "StaleVersion",
    "Store",
    "TradeRepository",
    "audit_context",
    "create_pool",
    "new_trace_id",
    "open_store",
    "retry_on_stale",
    "start_servers",
    "transaction",
]
