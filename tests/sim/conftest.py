"""Shared helpers of the local-exchange tests.

Tests run with ``--import-mode=importlib`` and cannot import each other, so the deliberately
plain Bybit v5 test client below (aiohttp + hmac; it is not the project's exchange client, it
exercises the server itself) is handed out through the ``bybit`` fixture.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import time
from typing import Any
from urllib.parse import urlencode

import aiohttp
import orjson
import pytest

KEY = "sim-key"
SECRET = "sim-secret"


def sign(secret: str, payload: str) -> str:
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


class Rest:
    """Signs exactly the bytes it sends: the query string for GET, the body text for POST."""

    def __init__(self, session: aiohttp.ClientSession, base: str, key: str = KEY, secret: str = SECRET,
                 recv_window: int = 5000) -> None:
        self.s = session
        self.base = base
        self.key = key
        self.secret = secret
        self.recv_window = recv_window
        self.last_headers: dict[str, str] = {}
        self.last_status = 0
        self.wait_on_limit = False

    def headers(self, payload: str, ts: int | None = None, secret: str | None = None) -> dict[str, str]:
        ts = int(time.time() * 1000) if ts is None else ts
        plain = f"{ts}{self.key}{self.recv_window}{payload}"
        return {
            "X-BAPI-API-KEY": self.key, "X-BAPI-TIMESTAMP": str(ts),
            "X-BAPI-RECV-WINDOW": str(self.recv_window),
            "X-BAPI-SIGN": sign(secret or self.secret, plain), "X-BAPI-SIGN-TYPE": "2",
            "Content-Type": "application/json",
        }

    async def get(self, path: str, params: dict[str, Any] | None = None, signed: bool = True,
                  **hkw: Any) -> dict[str, Any]:
        q = urlencode(params or {})
        url = f"{self.base}{path}" + (f"?{q}" if q else "")
        hdrs = self.headers(q, **hkw) if signed else {}
        async with self.s.get(url, headers=hdrs) as r:
            self.last_status = r.status
            self.last_headers = dict(r.headers)
            if r.content_type != "application/json":
                return {"_http": r.status, "_text": await r.text()}
            body: dict[str, Any] = await r.json()
            return body

    async def post(self, path: str, body: dict[str, Any], **hkw: Any) -> dict[str, Any]:
        for _ in range(5):
            out = await self._post(path, body, **hkw)
            if out.get("retCode") != 10006 or not self.wait_on_limit:
                return out
            # what a polite client does: wait until the window named in the header has passed
            reset = int(self.last_headers["X-Bapi-Limit-Reset-Timestamp"])
            await asyncio.sleep(max(0.0, reset / 1000 - time.time()) + 0.01)
        return out

    async def _post(self, path: str, body: dict[str, Any], **hkw: Any) -> dict[str, Any]:
        text = json.dumps(body)
        async with self.s.post(f"{self.base}{path}", data=text.encode(), headers=self.headers(text, **hkw)) as r:
            self.last_status = r.status
            self.last_headers = dict(r.headers)
            if r.content_type != "application/json":
                return {"_http": r.status, "_text": await r.text()}
            out: dict[str, Any] = await r.json()
            return out


class Private:
    """Private stream: auth, subscribe, and a queue of every pushed message."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.msgs: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.replies: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.backlog: list[dict[str, Any]] = []
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for m in self.ws:
            if m.type != aiohttp.WSMsgType.TEXT:
                break
            d = orjson.loads(m.data)
            (self.msgs if "topic" in d else self.replies).put_nowait(d)

    async def auth(self, key: str = KEY, secret: str = SECRET, expires: int | None = None) -> dict[str, Any]:
        exp = int(time.time() * 1000) + 10_000 if expires is None else expires
        await self.ws.send_str(json.dumps({"op": "auth", "args": [key, exp, sign(secret, f"GET/realtime{exp}")]}))
        return await asyncio.wait_for(self.replies.get(), 10)

    async def subscribe(self, topics: list[str]) -> dict[str, Any]:
        await self.ws.send_str(json.dumps({"op": "subscribe", "args": topics, "req_id": "s1"}))
        return await asyncio.wait_for(self.replies.get(), 10)

    async def next(self, topic: str, pred: Any = None, timeout: float = 10.0) -> dict[str, Any]:
        """The oldest not yet taken push of ``topic`` (whose message satisfies ``pred`` when
        given). Pushes that do not match stay available for later calls."""
        def match(m: dict[str, Any]) -> bool:
            return bool(m["topic"] == topic and (pred is None or pred(m)))

        for i, m in enumerate(self.backlog):
            if match(m):
                return self.backlog.pop(i)

        async def wait() -> dict[str, Any]:
            while True:
                m = await self.msgs.get()
                if match(m):
                    return m
                self.backlog.append(m)
        return await asyncio.wait_for(wait(), timeout)

    async def close(self) -> None:
        await self.ws.close()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError, aiohttp.ClientError):
            await self._task


class Public:
    """Public stream: every message parsed, in arrival order, raw text kept for BookEngine."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.msgs: asyncio.Queue[tuple[dict[str, Any], str]] = asyncio.Queue()
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for m in self.ws:
            if m.type != aiohttp.WSMsgType.TEXT:
                break
            self.msgs.put_nowait((orjson.loads(m.data), m.data))
        self.msgs.put_nowait(({"_closed": True}, ""))

    async def send(self, obj: dict[str, Any]) -> None:
        await self.ws.send_str(json.dumps(obj))

    async def next(self, pred: Any = None, timeout: float = 10.0) -> tuple[dict[str, Any], str]:
        async def wait() -> tuple[dict[str, Any], str]:
            while True:
                d, raw = await self.msgs.get()
                if pred is None or pred(d):
                    return d, raw
        return await asyncio.wait_for(wait(), timeout)

    async def close(self) -> None:
        await self.ws.close()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError, aiohttp.ClientError):
            await self._task


class Helpers:
    Rest = Rest
    Private = Private
    Public = Public
    sign = staticmethod(sign)
    KEY = KEY
    SECRET = SECRET


@pytest.fixture
def bybit() -> type[Helpers]:
    return Helpers
