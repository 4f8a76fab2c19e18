"""Bybit v5 request signing (REST headers and WebSocket auth), byte-exact.

REST: ``sign = hex(HMAC_SHA256(secret, timestamp + api_key + recv_window + payload))`` where the
payload is the query string *exactly as it appears in the URL* for GET and the *exact body bytes*
for POST (bybit-v5.md 3.2). The functions here take the payload as bytes so the caller signs what
it sends: serialise once, sign those bytes, send those bytes.

WebSocket: ``sign = hex(HMAC_SHA256(secret, "GET/realtime" + expires))`` with ``expires`` in
milliseconds in the future. pybit uses now + 1 s, which fails on slow links ("Params Error");
we default to now + 10 s.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from decimal import Decimal
from typing import Any
from urllib.parse import quote

DEFAULT_RECV_WINDOW_MS = 5000
WS_AUTH_EXPIRY_MARGIN_MS = 10_000
"""How far in the future the WS auth ``expires`` is put (pybit's 1 s is too tight)."""

# Characters left unescaped in query values: the RFC 3986 unreserved set plus ``,`` (Bybit's
# comma-separated lists) and ``%`` (Bybit cursors come back already percent-encoded and must be
# echoed verbatim, as pybit does).
_QUERY_SAFE = "-_.~,%"


def hmac_sha256_hex(secret: str, message: bytes | str) -> str:
    """Lowercase hex HMAC-SHA256 of ``message`` keyed with ``secret`` (UTF-8)."""
    data = message.encode("utf-8") if isinstance(message, str) else message
    return hmac.new(secret.encode("utf-8"), data, hashlib.sha256).hexdigest()


def rest_sign_payload(timestamp_ms: int, api_key: str, recv_window_ms: int, payload: bytes | str) -> bytes:
    """The exact plaintext Bybit signs for a REST call."""
    body = payload.encode("utf-8") if isinstance(payload, str) else payload
    return f"{timestamp_ms}{api_key}{recv_window_ms}".encode("ascii") + body


def rest_signature(
    api_secret: str, timestamp_ms: int, api_key: str, recv_window_ms: int, payload: bytes | str
) -> str:
    return hmac_sha256_hex(api_secret, rest_sign_payload(timestamp_ms, api_key, recv_window_ms, payload))


def rest_headers(
    api_key: str,
    api_secret: str,
    timestamp_ms: int,
    recv_window_ms: int,
    payload: bytes | str,
    *,
    post: bool,
) -> dict[str, str]:
    """The ``X-BAPI-*`` headers for a signed call whose exact payload is ``payload``."""
    headers = {
        "X-BAPI-API-KEY": api_key,
        "X-BAPI-TIMESTAMP": str(timestamp_ms),
        "X-BAPI-SIGN": rest_signature(api_secret, timestamp_ms, api_key, recv_window_ms, payload),
        "X-BAPI-RECV-WINDOW": str(recv_window_ms),
        "X-BAPI-SIGN-TYPE": "2",
    }
    if post:
        headers["Content-Type"] = "application/json"
    return headers


def format_param(value: Any) -> str:
    """Wire form of one parameter value. Floats are refused: prices and quantities are exact
    (Decimal or str), and a float's repr is not what a trader meant."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        raise TypeError(f"float parameter {value!r}: pass Decimal or str (money is exact)")
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"non-finite Decimal parameter {value!r}")
        return format(value, "f")
    return str(value)


def build_query(params: Mapping[str, Any]) -> str:
    """Query string with keys sorted (pybit's convention), ``None`` dropped, values percent-encoded
    only where needed. The result is what goes into the URL *and* what gets signed."""
    return "&".join(
        f"{k}={quote(format_param(v), safe=_QUERY_SAFE)}" for k, v in sorted(params.items()) if v is not None
    )


def normalise_body(params: Mapping[str, Any]) -> dict[str, Any]:
    """Body parameters with ``None`` dropped and Decimals as strings (Bybit wants strings for
    prices and quantities); booleans and integers stay JSON booleans/numbers."""
    out: dict[str, Any] = {}
    for k, v in params.items():
        if v is None:
            continue
        if isinstance(v, float):
            raise TypeError(f"float parameter {k}={v!r}: pass Decimal or str (money is exact)")
        if isinstance(v, Decimal):
            out[k] = format_param(v)
        else:
            out[k] = v
    return out


def ws_auth_signature(api_secret: str, expires_ms: int) -> str:
    return hmac_sha256_hex(api_secret, f"GET/realtime{expires_ms}")


def ws_auth_args(api_key: str, api_secret: str, expires_ms: int) -> list[str | int]:
    """``args`` of the private-stream ``{"op": "auth"}`` message: ``[key, expires_ms, sign]``."""
    return [api_key, expires_ms, ws_auth_signature(api_secret, expires_ms)]


def ws_auth_message(
    api_key: str,
    api_secret: str,
    now_ms: int,
    *,
    margin_ms: int = WS_AUTH_EXPIRY_MARGIN_MS,
    req_id: str | None = None,
) -> dict[str, Any]:
    """The full auth message; ``now_ms`` should be server-clock corrected."""
    if margin_ms <= 0:
        raise ValueError("expires must be in the future: margin_ms > 0")
    msg: dict[str, Any] = {"op": "auth", "args": ws_auth_args(api_key, api_secret, now_ms + margin_ms)}
    if req_id is not None:
        msg["req_id"] = req_id
    return msg


__all__ = [
    "DEFAULT_RECV_WINDOW_MS",
    "WS_AUTH_EXPIRY_MARGIN_MS",
    "build_query",
    "format_param",
    "hmac_sha256_hex",
    "normalise_body",
    "rest_headers",
    "rest_sign_payload",
    "rest_signature",
    "ws_auth_args",
    "ws_auth_message",
    "ws_auth_signature",
]
