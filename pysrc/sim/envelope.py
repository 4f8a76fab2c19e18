"""Bybit's REST response envelope and the errors handlers raise to produce one."""

from __future__ import annotations

import time
from typing import Any

import orjson
from aiohttp import web


class BybitError(Exception):
    """A business or request error answered with HTTP 200 and a non-zero ``retCode``."""

    def __init__(self, code: int, msg: str) -> None:
        super().__init__(f"{code}: {msg}")
        self.code = code
        self.msg = msg


def params_error(msg: str) -> BybitError:
    return BybitError(10001, msg)


def envelope(result: Any, code: int = 0, msg: str = "OK", ext: Any = None) -> dict[str, Any]:
    return {
        "retCode": code,
        "retMsg": msg,
        "result": {} if result is None else result,
        "retExtInfo": {} if ext is None else ext,
        "time": int(time.time() * 1000),
    }


def json_response(body: dict[str, Any], headers: dict[str, str] | None = None, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json", headers=headers)


def error_response(code: int, msg: str, headers: dict[str, str] | None = None) -> web.Response:
    return json_response(envelope(None, code, msg), headers)
