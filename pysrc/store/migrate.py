"""Versioned schema migrations: ``migrations/NNNN_name.sql``, applied in order, each once.

Safety rules:

* **one migrator at a time:** a session advisory lock (per schema) is held while migrating, so
  several bot processes starting together apply each migration exactly once; the others wait,
  then find nothing left to do;
* **each migration in its own transaction:** a failing migration leaves no trace (PostgreSQL DDL
  is transactional) and is not recorded; the ones before it stay applied;
* **recorded:** ``schema_migrations`` holds version, name, checksum (SHA-256 of the file, line
  endings normalised), when, by whom and how long it took;
* **immutable history:** an applied migration whose file changed since is an error
  (:class:`ChecksumMismatch`), as is an applied version this code does not know (the database is
  newer than the code: :class:`UnknownMigration`) and a new file older than the newest applied one.
  Fix forward with a new migration; never edit an applied one.

``python -m pysrc.bot migrate`` calls :func:`main`; the bot calls :func:`migrate` at start-up.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import logging
import re
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Any

import asyncpg

from .db import Executor, quote_ident

log = logging.getLogger(__name__)

_FILE_RE = re.compile(r"^(\d{4})_([a-z0-9][a-z0-9_]*)\.sql$")
LOCK_CLASS = 0x6D696772  # 'migr': first key of the advisory lock; the second is the schema's hash

SCHEMA_MIGRATIONS_DDL = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version     integer     PRIMARY KEY,
    name        text        NOT NULL,
    checksum    text        NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now(),
    applied_by  text        NOT NULL DEFAULT current_user,
    duration_ms integer     NOT NULL
)
"""
_SELECT_APPLIED = "SELECT version, name, checksum, applied_at, duration_ms FROM schema_migrations ORDER BY version"
_INSERT_APPLIED = "INSERT INTO schema_migrations (version, name, checksum, duration_ms) VALUES ($1, $2, $3, $4)"
_TRY_LOCK = "SELECT pg_try_advisory_lock($1, hashtext(current_schema()))"
_UNLOCK = "SELECT pg_advisory_unlock($1, hashtext(current_schema()))"


class MigrationError(RuntimeError):
    """The migrations cannot be applied as they are."""


class ChecksumMismatch(MigrationError):
    """An applied migration's file has changed since it was applied."""


class UnknownMigration(MigrationError):
    """The database has a migration this code does not know (it is newer than the code)."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str
    checksum: str

    @property
    def label(self) -> str:
        return f"{self.version:04d}_{self.name}"


@dataclass(frozen=True)
class AppliedMigration:
    version: int
    name: str
    checksum: str
    applied_at: datetime
    duration_ms: int


def checksum(sql: str) -> str:
    """SHA-256 of the migration text with line endings normalised (a checkout with CRLF endings
    is the same migration)."""
    return hashlib.sha256(sql.replace("\r\n", "\n").encode("utf-8")).hexdigest()


def parse_migration(filename: str, sql: str) -> Migration:
    m = _FILE_RE.match(filename)
    if not m:
        raise MigrationError(f"migration file name {filename!r} is not NNNN_lowercase_name.sql")
    version = int(m.group(1))
    if version < 1:
        raise MigrationError(f"{filename}: versions start at 0001")
    return Migration(version, m.group(2), sql, checksum(sql))


def load_migrations(directory: str | Path | None = None) -> list[Migration]:
    """The migrations in ``directory`` (default: the package's ``migrations/``), by version.
    Every ``.sql`` file there must be a migration; versions must be unique."""
    if directory is None:
        root: Any = resources.files("pysrc.store").joinpath("migrations")
    else:
        root = Path(directory)
    found: dict[int, Migration] = {}
    for entry in root.iterdir():
        if not entry.name.endswith(".sql"):
            continue
        mig = parse_migration(entry.name, entry.read_text(encoding="utf-8"))
        if mig.version in found:
            raise MigrationError(f"two migrations with version {mig.version:04d}: "
                                 f"{found[mig.version].label} and {mig.label}")
        found[mig.version] = mig
    return [found[v] for v in sorted(found)]


async def _acquire_lock(conn: asyncpg.Connection, timeout: float | None) -> None:
    schema = await conn.fetchval("SELECT current_schema()")
    if schema is None:
        path = await conn.fetchval("SHOW search_path")
        raise MigrationError(f"no schema to migrate: none of search_path ({path}) exists")
    deadline = None if timeout is None else time.monotonic() + timeout
    delay = 0.01
    while not await conn.fetchval(_TRY_LOCK, LOCK_CLASS):
        if deadline is not None and time.monotonic() >= deadline:
            raise MigrationError(f"another migrator held the lock for more than {timeout}s")
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.25)


def _check(migrations: Sequence[Migration], applied: dict[int, AppliedMigration]) -> list[Migration]:
    """Validate history against the files; return the pending migrations."""
    known = {m.version: m for m in migrations}
    changed = [
        f"{m.label} (applied {applied[m.version].checksum[:12]}, file {m.checksum[:12]})"
        for m in migrations
        if m.version in applied and applied[m.version].checksum != m.checksum
    ]
    if changed:
        raise ChecksumMismatch(
            "applied migrations changed since they were applied: " + ", ".join(changed)
            + "; restore them and add a new migration instead"
        )
    unknown = sorted(v for v in applied if v not in known)
    if unknown:
        names = ", ".join(f"{v:04d}_{applied[v].name}" for v in unknown)
        raise UnknownMigration(f"the database has migrations this code does not know: {names}")
    pending = [m for m in migrations if m.version not in applied]
    newest = max(applied, default=0)
    late = [m.label for m in pending if m.version < newest]
    if late:
        raise MigrationError(
            f"migrations {', '.join(late)} are older than the newest applied one ({newest:04d}); "
            "renumber them after it"
        )
    return pending


async def _migrate_conn(
    conn: asyncpg.Connection, migrations: Sequence[Migration], lock_timeout: float | None
) -> list[Migration]:
    await _acquire_lock(conn, lock_timeout)
    try:
        await conn.execute(SCHEMA_MIGRATIONS_DDL)
        applied = {r["version"]: AppliedMigration(**dict(r)) for r in await conn.fetch(_SELECT_APPLIED)}
        pending = _check(migrations, applied)
        done: list[Migration] = []
        for mig in pending:
            started = time.perf_counter()
            try:
                async with conn.transaction():
                    await conn.execute(mig.sql)
                    ms = round((time.perf_counter() - started) * 1000)
                    await conn.execute(_INSERT_APPLIED, mig.version, mig.name, mig.checksum, ms)
            except asyncpg.PostgresError as exc:
                raise MigrationError(f"migration {mig.label} failed and was rolled back: {exc}") from exc
            log.info("applied migration %s in %d ms", mig.label, ms)
            done.append(mig)
        return done
    finally:
        if not conn.is_closed():
            await conn.fetchval(_UNLOCK, LOCK_CLASS)


async def migrate(
    target: str | Executor,
    *,
    migrations: Sequence[Migration] | None = None,
    schema: str | None = None,
    lock_timeout: float | None = 300.0,
) -> list[Migration]:
    """Apply the pending migrations; return the ones applied now (empty: up to date).

    ``target`` is a DSN, a pool or a connection; the connection's ``search_path`` picks the schema.
    ``schema`` (DSN only) creates that schema if missing and migrates it. ``lock_timeout`` bounds
    the wait for another migrator (None: wait forever).
    """
    migs = list(load_migrations() if migrations is None else migrations)
    if isinstance(target, str):
        settings = {"search_path": quote_ident(schema)} if schema else None
        conn = await asyncpg.connect(target, server_settings=settings)
        try:
            if schema:
                await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_ident(schema)}")
            return await _migrate_conn(conn, migs, lock_timeout)
        finally:
            await conn.close()
    if schema is not None:
        raise ValueError("schema= is only supported with a DSN target (a pooled connection's search_path is fixed)")
    if isinstance(target, asyncpg.Pool):
        async with target.acquire() as conn:
            return await _migrate_conn(conn, migs, lock_timeout)
    return await _migrate_conn(target, migs, lock_timeout)


async def status(
    target: str | Executor, *, migrations: Sequence[Migration] | None = None
) -> list[tuple[Migration, AppliedMigration | None]]:
    """Every known migration with its applied record (None: pending). Read-only."""
    migs = list(load_migrations() if migrations is None else migrations)

    async def read(conn: asyncpg.Connection) -> dict[int, AppliedMigration]:
        exists = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
        if not exists:
            return {}
        return {r["version"]: AppliedMigration(**dict(r)) for r in await conn.fetch(_SELECT_APPLIED)}

    if isinstance(target, str):
        conn = await asyncpg.connect(target)
        try:
            applied = await read(conn)
        finally:
            await conn.close()
    elif isinstance(target, asyncpg.Pool):
        async with target.acquire() as conn:
            applied = await read(conn)
    else:
        applied = await read(target)
    return [(m, applied.get(m.version)) for m in migs]


# ---- command line ------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m pysrc.bot migrate",
        description="Apply the database schema migrations (or show their status).",
    )
    p.add_argument("--database-url", help="PostgreSQL URL (default: $DATABASE_URL, else the embedded server)")
    p.add_argument("--data-dir", help="data directory of the embedded server (default: the bot's)")
    p.add_argument("--schema", help="migrate this schema (created if missing) instead of the default search_path")
    p.add_argument("--status", action="store_true", help="list migrations and whether they are applied; change nothing")
    p.add_argument("--lock-timeout", type=float, default=300.0, help="seconds to wait for another migrator")
    return p


async def _main(args: argparse.Namespace) -> int:
    from .servers import start_servers

    servers = await start_servers(args.data_dir, database_url=args.database_url, redis=False)
    try:
        dsn = servers.database_url
        where = "embedded PostgreSQL under " + str(servers.settings.data_dir) if servers.settings.embedded_postgres else "external PostgreSQL"
        if args.status:
            if args.schema:
                conn = await asyncpg.connect(dsn, server_settings={"search_path": quote_ident(args.schema)})
                try:
                    rows = await status(conn)
                finally:
                    await conn.close()
            else:
                rows = await status(dsn)
            for mig, rec in rows:
                state = f"applied {rec.applied_at.isoformat(timespec='seconds')} ({rec.duration_ms} ms)" if rec else "pending"
                print(f"{mig.label}  {state}")
            return 0
        done = await migrate(dsn, schema=args.schema, lock_timeout=args.lock_timeout)
        for mig in done:
            print(f"applied {mig.label}")
        latest = max((m.version for m in load_migrations()), default=0)
        if done:
            print(f"migrated {where} to version {latest:04d} ({len(done)} applied)")
        else:
            print(f"{where} is up to date (version {latest:04d})")
        return 0
    finally:
        await servers.aclose()


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m pysrc.bot migrate [--database-url URL] [--data-dir DIR] [--schema S] [--status]``.
    Prints what it applied; returns 0, 1 on a migration error, 2 on bad arguments."""
    try:
        args = _parser().parse_args(list(argv) if argv is not None else None)
    except SystemExit as exc:
        return int(exc.code or 0)
    try:
        return asyncio.run(_main(args))
    except MigrationError as exc:
        print(f"migrate: {exc}", file=sys.stderr)
        return 1
    except (OSError, asyncpg.PostgresError) as exc:
        print(f"migrate: cannot reach the database: {exc}", file=sys.stderr)
        return 1


__all__ = [
    "AppliedMigration",
    "ChecksumMismatch",
    "Migration",
    "MigrationError",
    "UnknownMigration",
    "checksum",
    "load_migrations",
    "main",
    "migrate",
    "parse_migration",
    "status",
]
