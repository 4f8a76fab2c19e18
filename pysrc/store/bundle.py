"""One call to get the whole store: servers, migrations, pool, Redis client and repositories.

```python
store = await open_store(data_dir)          # or open_store(database_url=..., redis_url=...)
row = await store.orders.insert(NewOrder(...))
await store.aclose()
```
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Self

import asyncpg
import redis.asyncio as aioredis

from .audit import AuditLog
from .db import PoolConfig, create_pool
from .migrate import Migration, migrate
from .redis import IdempotencyKeys, RedisDeadLetters, RedisTTLCache, create_redis
from .repositories import (
    BotStateRepository,
    ExecutionRepository,
    IdempotencyStore,
    MarketSnapshotRepository,
    OrderRepository,
    PositionRepository,
    TradeRepository,
)
from .servers import Servers, start_servers


@dataclass
class Store:
    """Everything the bot persists through, on one pool and one Redis client."""

    servers: Servers
    pool: asyncpg.Pool
    redis: aioredis.Redis
    applied: list[Migration]
    orders: OrderRepository
    positions: PositionRepository
    executions: ExecutionRepository
    trades: TradeRepository
    audit: AuditLog
    idempotency: IdempotencyStore
    bot_state: BotStateRepository
    snapshots: MarketSnapshotRepository
    keys: IdempotencyKeys
    dead_letters: RedisDeadLetters
    instruments_cache: RedisTTLCache

    async def aclose(self) -> None:
        """Flush the dead letters, close the client and the pool, release the servers."""
        try:
            await self.dead_letters.flush()
        finally:
            try:
                await self.redis.aclose()
                await self.pool.close()
            finally:
                await self.servers.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


async def open_store(
    data_dir: str | os.PathLike[str] | None = None,
    *,
    database_url: str | None = None,
    redis_url: str | None = None,
    env: Mapping[str, str] | None = None,
    pool: PoolConfig | None = None,
    apply_migrations: bool = True,
    redis_prefix: str = "bybit-bot:",
    **server_options: Any,
) -> Store:
    """Resolve or start the servers (:func:`~pysrc.store.servers.start_servers`), apply pending
    migrations (unless ``apply_migrations=False``), and build the repositories. Redis keys and
    streams are namespaced with ``redis_prefix``."""
    servers = await start_servers(data_dir, database_url=database_url, redis_url=redis_url, env=env, **server_options)
    try:
        applied = await migrate(servers.database_url, schema=pool.schema if pool else None) if apply_migrations else []
        pg = await create_pool(servers.database_url, pool)
        try:
            rd = await create_redis(servers.redis_url)
        except BaseException:
            await pg.close()
            raise
    except BaseException:
        await servers.aclose()
        raise
    audit = AuditLog(pg)
    return Store(
        servers=servers,
        pool=pg,
        redis=rd,
        applied=applied,
        orders=OrderRepository(pg),
        positions=PositionRepository(pg),
        executions=ExecutionRepository(pg),
        trades=TradeRepository(pg),
        audit=audit,
        idempotency=IdempotencyStore(pg),
        bot_state=BotStateRepository(pg, audit),
        snapshots=MarketSnapshotRepository(pg),
        keys=IdempotencyKeys(rd, prefix=redis_prefix + "idem:"),
        dead_letters=RedisDeadLetters(rd, stream=redis_prefix + "deadletters"),
        instruments_cache=RedisTTLCache(rd, redis_prefix + "instruments"),
    )


__all__ = ["Store", "open_store"]
