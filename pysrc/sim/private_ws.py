"""``/v5/private``: ``auth`` (HMAC over ``"GET/realtime" + expires``), subscribe to ``order``,
``execution``, ``execution.fast``, ``position``, ``wallet`` (and their ``.linear`` variants), and the
private pong shape (``"op": "pong"``)."""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import WSMsgType, web

from pysrc.sim.account import PRIVATE_TOPICS
from pysrc.sim.wsconn import WsConn

if TYPE_CHECKING:
    from pysrc.sim.server import SimExchange

VALID_TOPICS = frozenset(PRIVATE_TOPICS) | frozenset(f"{t}.linear" for t in PRIVATE_TOPICS)


async def private_ws(sim: SimExchange, request: web.Request) -> web.StreamResponse:
    ws = web.WebSocketResponse(autoping=True, compress=False, max_msg_size=1 << 20)
    await ws.prepare(request)
    transport = request.transport
    if transport is None:  # pragma: no cover
        return ws
    conn = WsConn(ws, transport, "private")
    acct = sim.account
    acct.conns.add(conn)
    sim.stats["private_connections_total"] += 1
    try:
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                handle(sim, conn, msg.data)
            elif msg.type in (WSMsgType.ERROR, WSMsgType.CLOSE):
                break
    finally:
        conn.closed = True
        acct.conns.discard(conn)
    return ws


def _reply(conn: WsConn, req_id: Any, op: str, success: bool, ret_msg: str) -> None:
    msg: dict[str, Any] = {"success": success, "ret_msg": ret_msg, "op": op, "conn_id": conn.conn_id}
    if req_id is not None:
        msg["req_id"] = req_id
    conn.send_obj(msg)


def handle(sim: SimExchange, conn: WsConn, text: str) -> None:
    try:
        req = orjson.loads(text)
    except orjson.JSONDecodeError:
        _reply(conn, None, "", False, "error:invalid json")
        return
    if not isinstance(req, dict):
        _reply(conn, None, "", False, "error:invalid request")
        return
    if conn.stalled():
        return
    op = req.get("op")
    req_id = req.get("req_id")
    if op == "ping":
        pong: dict[str, Any] = {"op": "pong", "args": [str(int(time.time() * 1000))], "conn_id": conn.conn_id}
        if req_id is not None:
            pong = {"req_id": req_id, **pong}
        conn.send_obj(pong)
        return
    if op == "auth":
        _auth(sim, conn, req_id, req.get("args"))
        return
    if op in ("subscribe", "unsubscribe"):
        if not conn.authed:
            _reply(conn, req_id, op, False, "Request not authorized")
            return
        args = req.get("args")
        if not isinstance(args, list) or not args or not all(isinstance(a, str) for a in args):
            _reply(conn, req_id, op, False, "error:args must be a list of topics")
            return
        bad = [a for a in args if a not in VALID_TOPICS]
        if bad:
            _reply(conn, req_id, op, False, f"error:handler not found,topic:{bad[0]}")
            return
        if op == "subscribe" and len({a.endswith(".linear") for a in args}) > 1:
            _reply(conn, req_id, op, False, "error:cannot mix all-in-one and categorised topics in one request")
            return
        for a in args:
            if op == "subscribe":
                conn.topics.add(a)
            else:
                conn.topics.discard(a)
        _reply(conn, req_id, op, True, "")
        return
    _reply(conn, req_id, str(op or ""), False, f"error:unknown op {op}")


def _auth(sim: SimExchange, conn: WsConn, req_id: Any, args: Any) -> None:
    if conn.authed:
        _reply(conn, req_id, "auth", False, "Repeat auth")
        return
    if not isinstance(args, list) or len(args) != 3:
        _reply(conn, req_id, "auth", False, "Params Error")
        return
    key, expires, sign = args
    if key != sim.api_key:
        _reply(conn, req_id, "auth", False, "Invalid apikey")
        return
    try:
        exp = int(expires)
    except (TypeError, ValueError):
        _reply(conn, req_id, "auth", False, "Params Error")
        return
    if exp <= int(time.time() * 1000):
        _reply(conn, req_id, "auth", False, "Params Error")
        return
    expected = hmac.new(sim.api_secret.encode(), f"GET/realtime{expires}".encode(), hashlib.sha256).hexdigest()
    if not isinstance(sign, str) or not hmac.compare_digest(expected, sign.lower()):
        _reply(conn, req_id, "auth", False, "Error sign, please check your signature generation algorithm.")
        return
    conn.authed = True
    conn.uid = sim.account.uid
    _reply(conn, req_id, "auth", True, "")
