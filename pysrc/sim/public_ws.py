"""``/v5/public/linear``: subscribe / unsubscribe / ping with Bybit's linear ack and pong shapes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import WSMsgType, web

from pysrc.sim.wsconn import WsConn

if TYPE_CHECKING:
    from pysrc.sim.server import SimExchange

# The doc's cap on the total length of the ``args`` of one request (section 1.3).
MAX_ARGS_CHARS = 21_000


async def public_ws(sim: SimExchange, request: web.Request) -> web.StreamResponse:
    ws = web.WebSocketResponse(autoping=True, compress=False, max_msg_size=1 << 20)
    await ws.prepare(request)
    transport = request.transport
    if transport is None:  # pragma: no cover - connection vanished during the handshake
        return ws
    conn = WsConn(ws, transport, "public")
    pub = sim.publisher
    pub.conns.add(conn)
    sim.stats["public_connections_total"] += 1
    try:
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                handle(sim, conn, msg.data)
            elif msg.type in (WSMsgType.ERROR, WSMsgType.CLOSE):
                break
    finally:
        conn.closed = True
        pub.remove(conn)
    return ws


def _reply(conn: WsConn, req_id: Any, op: str, success: bool, ret_msg: str) -> None:
    conn.send_obj({
        "success": success, "ret_msg": ret_msg, "conn_id": conn.conn_id,
        "req_id": "" if req_id is None else req_id, "op": op,
    })


def handle(sim: SimExchange, conn: WsConn, text: str) -> None:
    try:
        req = orjson.loads(text)
    except orjson.JSONDecodeError:
        _reply(conn, None, "", False, "error:invalid json")
        return
    if not isinstance(req, dict):
        _reply(conn, None, "", False, "error:invalid request")
        return
    op = req.get("op")
    req_id = req.get("req_id")
    if op == "ping":
        if not conn.stalled():
            _reply(conn, req_id, "ping", True, "pong")
        return
    if conn.stalled():
        return  # a stalled stream answers nothing
    pub = sim.publisher
    if op in ("subscribe", "unsubscribe"):
        args = req.get("args")
        if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
            _reply(conn, req_id, op, False, "error:args must be a list of topics")
            return
        if sum(len(a) for a in args) > MAX_ARGS_CHARS:
            _reply(conn, req_id, op, False, f"error:args exceed {MAX_ARGS_CHARS} characters")
            return
        if op == "subscribe":
            for a in args:
                err = pub.parse_topic(a)
                if err is not None:
                    _reply(conn, req_id, op, False, err)
                    return
                if a in conn.topics:
                    _reply(conn, req_id, op, False, f"error:already subscribed,topic:{a}")
                    return
            _reply(conn, req_id, op, True, "")
            for a in args:
                pub.subscribe(conn, a)
        else:
            for a in args:
                if a not in conn.topics:
                    _reply(conn, req_id, op, False, f"error:not subscribed,topic:{a}")
                    return
            _reply(conn, req_id, op, True, "")
            for a in args:
                pub.unsubscribe(conn, a)
        return
    _reply(conn, req_id, str(op or ""), False, f"error:unknown op {op}")
