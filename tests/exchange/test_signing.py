"""Signing: the bybit-v5.md Appendix A vectors, and pybit's own signing code as the reference."""

from __future__ import annotations

from decimal import Decimal

import orjson
import pytest
from pybit import _helpers as pybit_helpers
from pybit._http_manager import _V5HTTPManager, generate_signature

from pysrc.exchange.bybit.signing import (
    build_query,
    hmac_sha256_hex,
    normalise_body,
    rest_headers,
    rest_sign_payload,
    rest_signature,
    ws_auth_args,
    ws_auth_message,
    ws_auth_signature,
)

SECRET = "test_secret"
KEY = "XXXXXXXXXX"

# Appendix A of bybit-v5.md: (plaintext, HMAC-SHA256 hex with key "test_secret")
VECTORS = [
    (
        "1658384314791XXXXXXXXXX5000category=option&symbol=BTC-29JUL22-25000-C",
        "2c42d015234a3fc985e5294b2665235b3f51cf59dfbbde6be0097d0bc33256bf",
    ),
    (
        '1658385579423XXXXXXXXXX5000{"category": "option"}',
        "7fdd84061f25faa9566fa013c0dd25adcb78a0ab90cbb992c0f12427d82f7221",
    ),
    ("GET/realtime1662350400000", "dad2d67a66c9ee401d2e6e7bf26ebd10eb1026db8a703bf3139c6950ce11a5c6"),
]


@pytest.mark.parametrize(("plaintext", "expected"), VECTORS)
def test_appendix_a_vectors(plaintext: str, expected: str) -> None:
    assert hmac_sha256_hex(SECRET, plaintext) == expected
    assert hmac_sha256_hex(SECRET, plaintext.encode()) == expected


def test_rest_signature_builds_the_documented_plaintext() -> None:
    get_payload = build_query({"symbol": "BTC-29JUL22-25000-C", "category": "option"})
    assert get_payload == "category=option&symbol=BTC-29JUL22-25000-C"
    assert rest_sign_payload(1658384314791, KEY, 5000, get_payload) == VECTORS[0][0].encode()
    assert rest_signature(SECRET, 1658384314791, KEY, 5000, get_payload) == VECTORS[0][1]
    post_body = b'{"category": "option"}'
    assert rest_signature(SECRET, 1658385579423, KEY, 5000, post_body) == VECTORS[1][1]


def test_ws_auth_vector_and_expiry_margin() -> None:
    assert ws_auth_signature(SECRET, 1662350400000) == VECTORS[2][1]
    assert ws_auth_args(KEY, SECRET, 1662350400000) == [KEY, 1662350400000, VECTORS[2][1]]
    msg = ws_auth_message(KEY, SECRET, 1662350390000, req_id="a")
    assert msg["op"] == "auth" and msg["req_id"] == "a"
    key, expires, sign = msg["args"]
    assert key == KEY
    # expires is integer ms, 10 s ahead (pybit uses 1 s, too tight for slow links)
    assert isinstance(expires, int) and expires == 1662350400000
    assert sign == VECTORS[2][1]
    with pytest.raises(ValueError):
        ws_auth_message(KEY, SECRET, 1, margin_ms=0)


# ---- pybit as the reference -------------------------------------------------------------------


def test_matches_pybit_generate_signature_on_our_exact_payloads() -> None:
    query = build_query({"category": "linear", "symbol": "BTCUSDT", "orderLinkId": "abc-1", "limit": 50})
    body = orjson.dumps(normalise_body({"category": "linear", "symbol": "BTCUSDT", "qty": Decimal("0.010"),
                                         "price": Decimal("65000.5"), "reduceOnly": False}))
    for payload in (query, body.decode()):
        ours = rest_signature(SECRET, 1700000000123, KEY, 5000, payload)
        theirs = generate_signature(False, SECRET, f"1700000000123{KEY}5000{payload}")
        assert ours == theirs
    expires = 1700000010000
    assert ws_auth_signature(SECRET, expires) == generate_signature(False, SECRET, f"GET/realtime{expires}")


def test_matches_pybit_http_manager_query_and_headers(monkeypatch: pytest.MonkeyPatch) -> None:
    """pybit's HTTP manager builds the GET query (sorted, None dropped) and signs it; ours must
    produce the same query string and the same X-BAPI-* headers for the same timestamp."""
    manager = _V5HTTPManager(api_key=KEY, api_secret=SECRET, recv_window=5000)
    params = {"symbol": "ETHUSDT", "category": "linear", "orderId": None, "limit": 20, "settleCoin": "USDT"}
    pybit_query = manager.prepare_payload("GET", dict(params))
    assert build_query(params) == pybit_query

    monkeypatch.setattr(pybit_helpers, "generate_timestamp", lambda: 1700000000999)
    pybit_headers = manager._prepare_headers(pybit_query, 5000)
    ours = rest_headers(KEY, SECRET, 1700000000999, 5000, pybit_query, post=True)
    assert ours == pybit_headers

    # pybit's POST body (json.dumps with spaces) signed by us == signed by pybit
    pybit_body = manager.prepare_payload("POST", {"category": "linear", "symbol": "BTCUSDT", "qty": "1"})
    assert rest_headers(KEY, SECRET, 1700000000999, 5000, pybit_body, post=True) == manager._prepare_headers(
        pybit_body, 5000
    )
    # GET headers carry no Content-Type
    assert "Content-Type" not in rest_headers(KEY, SECRET, 1, 5000, "a=b", post=False)


def test_query_encoding_is_what_gets_sent() -> None:
    q = build_query({"b": "x y&z=1", "a": Decimal("1.50"), "c": True, "cursor": "abc%3D%3D"})
    # sorted keys; reserved characters escaped; an already-encoded cursor echoed verbatim
    assert q == "a=1.50&b=x%20y%26z%3D1&c=true&cursor=abc%3D%3D"


def test_floats_are_refused_and_decimals_are_plain_strings() -> None:
    with pytest.raises(TypeError):
        build_query({"price": 1.1})
    with pytest.raises(TypeError):
        normalise_body({"qty": 0.1})
    body = normalise_body({"qty": Decimal("1E-3"), "price": Decimal("100.10"), "positionIdx": 0, "x": None})
    assert body == {"qty": "0.001", "price": "100.10", "positionIdx": 0}
