"""Migrations: fresh, idempotent, one migrator at a time, changed files detected, failures rolled
back, and the command line."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import pytest

from pysrc.store import db
from pysrc.store.migrate import (
    LOCK_CLASS,
    ChecksumMismatch,
    MigrationError,
    UnknownMigration,
    load_migrations,
    main,
    migrate,
    parse_migration,
    status,
)

EXPECTED_TABLES = {
    "audit_log", "bot_state", "executions", "idempotency_records", "market_snapshots",
    "order_transitions", "orders", "position_transitions", "positions", "schema_migrations", "trades",
}


async def _tables(conn: asyncpg.Connection) -> set[str]:
    rows = await conn.fetch(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') AND NOT c.relispartition"
    )
    return {r[0] for r in rows}


def test_packaged_migrations_are_well_formed() -> None:
    migs = load_migrations()
    assert [m.version for m in migs] == sorted({m.version for m in migs})
    assert migs[0].label == "0001_initial"
    assert all(len(m.checksum) == 64 for m in migs)
    # Line endings do not change a migration.
    assert parse_migration("0001_initial.sql", migs[0].sql.replace("\n", "\r\n")).checksum == migs[0].checksum
    with pytest.raises(MigrationError):
        parse_migration("1_initial.sql", "")
    with pytest.raises(MigrationError):
        parse_migration("0002_Bad-Name.sql", "")


def test_fresh_then_idempotent(empty_store) -> None:
    async def body(ctx):
        applied = await migrate(ctx.pool)
        assert [m.label for m in applied] == [m.label for m in load_migrations()]
        assert await migrate(ctx.pool) == []
        async with ctx.pool.acquire() as conn:
            assert await _tables(conn) == EXPECTED_TABLES
            rows = await conn.fetch("SELECT version, name, checksum, applied_at, duration_ms FROM schema_migrations")
        assert [(r["version"], r["name"]) for r in rows] == [(m.version, m.name) for m in load_migrations()]
        assert all(r["checksum"] == m.checksum for r, m in zip(rows, load_migrations(), strict=True))
        st = await status(ctx.pool)
        assert all(rec is not None for _, rec in st)

    empty_store.run(body)


def test_concurrent_migrators_apply_once(empty_store) -> None:
    async def body(ctx):
        # Hold the migration lock from a third session so both migrators are certainly waiting
        # at the same time, then let them go.
        holder = await ctx.connect()
        try:
            assert await holder.fetchval("SELECT pg_try_advisory_lock($1, hashtext(current_schema()))", LOCK_CLASS)
            conns = [await ctx.connect() for _ in range(3)]
            tasks = [asyncio.create_task(migrate(c)) for c in conns]
            for _ in range(20):
                await asyncio.sleep(0.01)
            assert not any(t.done() for t in tasks)  # all blocked on the lock
            assert await holder.fetchval("SELECT count(*) FROM pg_tables WHERE schemaname = current_schema()") == 0
            await holder.fetchval("SELECT pg_advisory_unlock($1, hashtext(current_schema()))", LOCK_CLASS)
            results = await asyncio.gather(*tasks)
            for c in conns:
                await c.close()
        finally:
            await holder.close()
        assert sorted(len(r) for r in results) == [0, 0, len(load_migrations())]
        async with ctx.pool.acquire() as conn:
            assert await conn.fetchval("SELECT count(*) FROM schema_migrations") == len(load_migrations())

    empty_store.run(body)


def _write(d: Path, name: str, sql: str) -> None:
    (d / name).write_text(sql)


def test_changed_unknown_and_late_migrations_are_errors(empty_store, tmp_path: Path) -> None:
    _write(tmp_path, "0001_a.sql", "CREATE TABLE a (id int);")
    _write(tmp_path, "0002_b.sql", "CREATE TABLE b (id int);")

    async def body(ctx):
        assert len(await migrate(ctx.pool, migrations=load_migrations(tmp_path))) == 2
        # An applied file edited afterwards.
        _write(tmp_path, "0001_a.sql", "CREATE TABLE a (id bigint);")
        with pytest.raises(ChecksumMismatch, match="0001_a"):
            await migrate(ctx.pool, migrations=load_migrations(tmp_path))
        _write(tmp_path, "0001_a.sql", "CREATE TABLE a (id int);")
        # The database knows a migration the code does not.
        (tmp_path / "0002_b.sql").unlink()
        with pytest.raises(UnknownMigration, match="0002_b"):
            await migrate(ctx.pool, migrations=load_migrations(tmp_path))
        _write(tmp_path, "0002_b.sql", "CREATE TABLE b (id int);")
        # A new file numbered before the newest applied one.
        _write(tmp_path, "0003_c.sql", "CREATE TABLE c (id int);")
        assert len(await migrate(ctx.pool, migrations=load_migrations(tmp_path))) == 1
        _write(tmp_path, "0000_z.sql", "SELECT 1;")
        with pytest.raises(MigrationError):
            load_migrations(tmp_path)  # versions start at 0001
        (tmp_path / "0000_z.sql").unlink()

    empty_store.run(body)


def test_failing_migration_is_rolled_back(empty_store, tmp_path: Path) -> None:
    _write(tmp_path, "0001_ok.sql", "CREATE TABLE ok (id int);")
    _write(tmp_path, "0002_bad.sql", "CREATE TABLE half (id int);\nSELECT no_such_function();")

    async def body(ctx):
        with pytest.raises(MigrationError, match="0002_bad"):
            await migrate(ctx.pool, migrations=load_migrations(tmp_path))
        async with ctx.pool.acquire() as conn:
            assert await conn.fetchval("SELECT to_regclass('ok') IS NOT NULL")
            assert await conn.fetchval("SELECT to_regclass('half') IS NULL")  # rolled back
            assert [r[0] for r in await conn.fetch("SELECT version FROM schema_migrations")] == [1]
            # The lock was released: another migrator can take it at once.
            assert await conn.fetchval("SELECT pg_try_advisory_lock($1, hashtext(current_schema()))", LOCK_CLASS)
            await conn.fetchval("SELECT pg_advisory_unlock($1, hashtext(current_schema()))", LOCK_CLASS)

    empty_store.run(body)


def test_duplicate_versions_rejected(tmp_path: Path) -> None:
    _write(tmp_path, "0001_a.sql", "SELECT 1;")
    _write(tmp_path, "0001_b.sql", "SELECT 2;")
    with pytest.raises(MigrationError, match="two migrations"):
        load_migrations(tmp_path)


def test_missing_schema_is_reported(store_servers) -> None:
    async def body():
        conn = await db.connect(store_servers.database_url, schema="no_such_schema_here")
        try:
            with pytest.raises(MigrationError, match="no schema"):
                await migrate(conn)
        finally:
            await conn.close()

    asyncio.run(body())


def test_cli_migrate_and_status(empty_store, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--database-url", empty_store.dsn, "--schema", empty_store.schema]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "applied 0001_initial" in out
    assert main(args) == 0
    assert "up to date" in capsys.readouterr().out
    assert main([*args, "--status"]) == 0
    assert "0001_initial  applied" in capsys.readouterr().out
    assert main(["--no-such-option"]) == 2
