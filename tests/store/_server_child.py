"""Child process for test_servers.py: start the embedded servers under argv[1], write a row and
a key, print the servers' pids as JSON, then wait to be killed."""

from __future__ import annotations

import asyncio
import json
import sys

import asyncpg

from pysrc.store.redis import create_redis
from pysrc.store.servers import start_servers


async def main(data_dir: str, tag: str) -> None:
    servers = await start_servers(data_dir, env={})
    conn = await asyncpg.connect(servers.database_url)
    await conn.execute("CREATE TABLE IF NOT EXISTS kept (v text)")
    await conn.execute("INSERT INTO kept VALUES ($1)", tag)  # committed before the crash
    await conn.close()
    r = await create_redis(servers.redis_url)
    await r.rpush("kept", tag)
    await r.aclose()
    assert servers.postgres is not None and servers.redis is not None
    print(json.dumps({
        "pg_pid": servers.postgres._pm.pid,
        "redis_pid": servers.redis._pid(),
        "database_url": servers.database_url,
    }), flush=True)
    await asyncio.sleep(3600)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
