"""asyncpg pools with the codecs the store relies on, and transaction helpers.

Every connection the store hands out has:

* ``jsonb`` / ``json`` encoded and decoded with orjson (``Decimal`` values are written as strings,
  datetimes as ISO 8601);
* ``numeric`` decoded to :class:`~decimal.Decimal` and encoded **only** from ``Decimal``, ``int`` or
  ``str``: a ``float`` (or a non-finite Decimal) is refused with :class:`asyncpg.DataError` before
  anything reaches the server. Money and quantities are exact.

Statements are prepared and cached per connection by asyncpg (``statement_cache_size``); the
repositories keep their SQL text constant so each statement is prepared once per connection.
Behind a transaction-mode pgbouncer, pass ``statement_cache_size=0``.

``Executor`` is anything with asyncpg's query methods: a :class:`asyncpg.Pool` (each call takes a
connection for itself) or a :class:`asyncpg.Connection` (e.g. inside :func:`transaction`, so
several repository calls commit or roll back together).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal, TypeAlias

import asyncpg
import orjson

Executor: TypeAlias = "asyncpg.Pool | asyncpg.Connection"
Isolation = Literal["read_committed", "repeatable_read", "serializable"]


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    if isinstance(value, _dt.timedelta):
        return value.total_seconds()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


_JSON_OPTS = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY


def json_dumps(value: Any) -> bytes:
    """orjson with Decimal -> string, sets/tuples -> lists, numpy arrays and scalars supported."""
    return orjson.dumps(value, default=_json_default, option=_JSON_OPTS)


def _jsonb_encode(value: Any) -> bytes:
    return b"\x01" + json_dumps(value)  # binary jsonb: a version byte, then the text


def _jsonb_decode(data: bytes) -> Any:
    return orjson.loads(data[1:])


def _json_encode(value: Any) -> str:
    return json_dumps(value).decode()


def _numeric_encode(value: Any) -> str:
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"non-finite numeric {value!r} refused (money is exact and finite)")
        return str(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str):
        d = Decimal(value)  # raises on garbage
        if not d.is_finite():
            raise ValueError(f"non-finite numeric {value!r} refused")
        return value
    raise TypeError(
        f"numeric columns take Decimal, int or str, not {type(value).__name__} "
        "(money is exact: never float)"
    )


async def init_connection(conn: asyncpg.Connection) -> None:
    """Install the store's codecs on one connection (pools do it for every new connection)."""
    await conn.set_type_codec(
        "jsonb", schema="pg_catalog", encoder=_jsonb_encode, decoder=_jsonb_decode, format="binary"
    )
    await conn.set_type_codec(
        "json", schema="pg_catalog", encoder=_json_encode, decoder=orjson.loads, format="text"
    )
    await conn.set_type_codec(
        "numeric", schema="pg_catalog", encoder=_numeric_encode, decoder=Decimal, format="text"
    )


@dataclass(frozen=True)
class PoolConfig:
    """Pool sizing and timeouts. ``schema`` sets the connections' ``search_path`` (tests isolate
    themselves in a schema each; the bot uses the default ``public``)."""

    min_size: int = 2
    max_size: int = 10
    command_timeout: float | None = 30.0
    max_inactive_connection_lifetime: float = 300.0
    statement_cache_size: int = 1024
    schema: str | None = None
    application_name: str = "bybit-bot"


async def create_pool(
    dsn: str,
    config: PoolConfig | None = None,
    *,
    init: Callable[[asyncpg.Connection], Awaitable[None]] | None = None,
    **overrides: Any,
) -> asyncpg.Pool:
    """An asyncpg pool whose connections carry the store's codecs.

    ``config`` fields can also be given as keywords (``create_pool(dsn, max_size=20)``); ``init``
    runs after the codecs are installed on each new connection.
    """
    cfg = config or PoolConfig()
    if overrides:
        cfg = dataclasses.replace(cfg, **overrides)
    if cfg.min_size < 0 or cfg.max_size < 1 or cfg.min_size > cfg.max_size:
        raise ValueError(f"bad pool sizes: min_size={cfg.min_size}, max_size={cfg.max_size}")
    server_settings = {"application_name": cfg.application_name}
    if cfg.schema:
        server_settings["search_path"] = quote_ident(cfg.schema)

    async def _init(conn: asyncpg.Connection) -> None:
        await init_connection(conn)
        if init is not None:
            await init(conn)

    pool = await asyncpg.create_pool(
        dsn,
        min_size=cfg.min_size,
        max_size=cfg.max_size,
        command_timeout=cfg.command_timeout,
        max_inactive_connection_lifetime=cfg.max_inactive_connection_lifetime,
        statement_cache_size=cfg.statement_cache_size,
        server_settings=server_settings,
        init=_init,
    )
    assert pool is not None
    return pool


async def connect(dsn: str, *, schema: str | None = None, **kwargs: Any) -> asyncpg.Connection:
    """One connection with the store's codecs (for tools and the migrator)."""
    settings = dict(kwargs.pop("server_settings", {}) or {})
    if schema:
        settings["search_path"] = quote_ident(schema)
    conn = await asyncpg.connect(dsn, server_settings=settings or None, **kwargs)
    await init_connection(conn)
    return conn


def quote_ident(name: str) -> str:
    """A SQL identifier, double-quoted."""
    if not name or "\x00" in name:
        raise ValueError(f"bad identifier {name!r}")
    return '"' + name.replace('"', '""') + '"'


@contextlib.asynccontextmanager
async def connection(executor: Executor) -> AsyncIterator[asyncpg.Connection]:
    """A connection: ``executor`` itself if it is one, else one acquired from the pool."""
    if isinstance(executor, asyncpg.Pool):
        async with executor.acquire() as conn:
            yield conn
    else:
        yield executor


@contextlib.asynccontextmanager
async def transaction(
    executor: Executor,
    *,
    isolation: Isolation | None = None,
    readonly: bool = False,
) -> AsyncIterator[asyncpg.Connection]:
    """``async with transaction(pool) as conn:`` commits on success, rolls back on any exception.

    With a connection that is already in a transaction this opens a savepoint (asyncpg's nested
    transactions), so repository methods can use it unconditionally.
    """
    async with connection(executor) as conn, conn.transaction(isolation=isolation, readonly=readonly):
        yield conn


__all__ = [
    "Executor",
    "Isolation",
    "PoolConfig",
    "connect",
    "connection",
    "create_pool",
    "init_connection",
    "json_dumps",
    "quote_ident",
    "transaction",
]
