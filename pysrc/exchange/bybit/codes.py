"""Bybit v5 ``retCode`` table and what each code means for a retry.

Source: ``bybit-v5.md`` section 5 (Bybit's ``docs/v5/error.mdx`` plus the retry reading of each
code). The classification is about *safety*, not convenience: a code either proves the request did
nothing (safe to resend after fixing the cause), proves it took effect or was a no-op, or leaves
the outcome unknown (the order may exist: reconcile by ``orderLinkId`` before anything else).
"""

from __future__ import annotations

from typing import Final

from pysrc.exchange.errors import RetryClass

OK_CODES: Final = frozenset({0})

# (code, meaning, class). Kept as one literal table so the docs and the tests can read it.
CODE_TABLE: Final[dict[int, tuple[str, RetryClass]]] = {
    0: ("OK", RetryClass.OK),
    10000: ("server timeout", RetryClass.UNKNOWN_OUTCOME),
    10001: ("request parameter error", RetryClass.FATAL),
    10002: ("request time outside recv_window", RetryClass.RESYNC_CLOCK),
    10003: ("API key invalid (key/domain mismatch)", RetryClass.FATAL),
    10004: ("signature error", RetryClass.FATAL),
    10005: ("permission denied", RetryClass.FATAL),
    10006: ("too many visits (UID rate limit)", RetryClass.RATE_LIMITED),
    10007: ("user authentication failed", RetryClass.FATAL),
    10008: ("common banned / account mode", RetryClass.FATAL),
    10009: ("region restricted", RetryClass.FATAL),
    10010: ("unmatched IP", RetryClass.FATAL),
    10014: ("invalid duplicate request", RetryClass.FATAL),
    10016: ("server error / service restarting", RetryClass.UNKNOWN_OUTCOME),
    10017: ("route not found", RetryClass.FATAL),
    10018: ("exceeded IP rate limit (retired code)", RetryClass.RATE_LIMITED),
    10024: ("compliance rules triggered", RetryClass.FATAL),
    10027: ("transactions banned", RetryClass.FATAL),
    10028: ("endpoint requires unified account", RetryClass.FATAL),
    10029: ("symbol not in whitelist", RetryClass.FATAL),
    10429: ("system frequency protection (WS trade)", RetryClass.BACKOFF),
    20003: ("too frequent on the same session (WS trade)", RetryClass.BACKOFF),
    30034: ("retry later (pybit retry set)", RetryClass.BACKOFF),
    30035: ("option: too fast to cancel", RetryClass.BACKOFF),
    34040: ("TP/SL not modified", RetryClass.NOOP_SUCCESS),
    110001: ("order does not exist", RetryClass.ORDER_GONE),
    110003: ("price outside allowable range", RetryClass.FATAL),
    110004: ("wallet balance insufficient", RetryClass.FATAL),
    110005: ("position status error", RetryClass.FATAL),
    110006: ("assets can't cover position margin", RetryClass.FATAL),
    110007: ("available balance insufficient", RetryClass.FATAL),
    110008: ("order already completed or cancelled", RetryClass.ORDER_GONE),
    110009: ("too many stop orders", RetryClass.FATAL),
    110010: ("order has been cancelled", RetryClass.ORDER_GONE),
    110012: ("insufficient available balance", RetryClass.FATAL),
    110013: ("cannot set leverage due to risk limit", RetryClass.FATAL),
    110017: ("orderQty will be truncated to zero", RetryClass.FATAL),
    110020: ("more than 500 active orders", RetryClass.FATAL),
    110021: ("position limit due to open interest", RetryClass.FATAL),
    110024: ("can't switch position mode with open position", RetryClass.FATAL),
    110025: ("position mode not modified", RetryClass.NOOP_SUCCESS),
    110026: ("margin mode not modified", RetryClass.NOOP_SUCCESS),
    110027: ("margin not modified", RetryClass.NOOP_SUCCESS),
    110028: ("can't switch position mode with open orders", RetryClass.FATAL),
    110040: ("order would trigger liquidation", RetryClass.FATAL),
    110043: ("set leverage not modified", RetryClass.NOOP_SUCCESS),
    110044: ("available margin insufficient", RetryClass.FATAL),
    110045: ("wallet balance insufficient", RetryClass.FATAL),
    110057: ("TP/SL param conflict", RetryClass.FATAL),
    110058: ("TP/SL param conflict", RetryClass.FATAL),
    110059: ("TP/SL param conflict", RetryClass.FATAL),
    110060: ("TP/SL param conflict", RetryClass.FATAL),
    110061: ("TP/SL param conflict", RetryClass.FATAL),
    110063: ("settlement in progress", RetryClass.BACKOFF),
    110072: ("OrderLinkedID is duplicate", RetryClass.DUPLICATE),
    110079: ("order is processing, try later", RetryClass.BACKOFF),
    110090: ("would exceed max position at this leverage", RetryClass.FATAL),
    110092: ("trigger direction vs current price wrong", RetryClass.FATAL),
    110093: ("trigger direction vs current price wrong", RetryClass.FATAL),
    110094: ("order notional below minNotionalValue", RetryClass.FATAL),
    110120: ("price beyond price-limit band", RetryClass.FATAL),
    110121: ("price beyond price-limit band", RetryClass.FATAL),
    170005: ("spot: too many new orders", RetryClass.BACKOFF),
    170007: ("spot: backend timeout", RetryClass.UNKNOWN_OUTCOME),
    170131: ("spot balance insufficient", RetryClass.FATAL),
    170134: ("spot price decimals too long", RetryClass.FATAL),
    170136: ("spot qty below minimum", RetryClass.FATAL),
    170137: ("spot qty decimals too long", RetryClass.FATAL),
    170140: ("spot order value below minOrderAmt", RetryClass.FATAL),
    170141: ("spot duplicate clientOrderId", RetryClass.DUPLICATE),
    170146: ("spot: create order timeout", RetryClass.UNKNOWN_OUTCOME),
    170147: ("spot: cancel order timeout", RetryClass.UNKNOWN_OUTCOME),
    170193: ("spot buy price too high", RetryClass.FATAL),
    170194: ("spot sell price too low", RetryClass.FATAL),
    170213: ("spot order does not exist", RetryClass.ORDER_GONE),
    170222: ("spot: too many requests", RetryClass.BACKOFF),
}


def classify_code(ret_code: int) -> RetryClass:
    """Retry class of a ``retCode``. Unknown non-zero codes are FATAL: never guess that an
    unrecognised answer is safe to resend."""
    entry = CODE_TABLE.get(ret_code)
    return entry[1] if entry is not None else RetryClass.FATAL


def describe_code(ret_code: int) -> str:
    entry = CODE_TABLE.get(ret_code)
    return entry[0] if entry is not None else "unknown retCode"


def classify_http_status(status: int) -> RetryClass:
    """Retry class of a non-200 HTTP status (Bybit returns 200 for business errors).

    403 is handled apart (IP ban: stop all REST); it maps to RATE_LIMITED here for completeness.
    5xx means a gateway/server failure: for a write the request may have reached the matching
    engine, so the outcome is unknown.
    """
    if status == 429:
        return RetryClass.BACKOFF
    if status == 403:
        return RetryClass.RATE_LIMITED
    if status >= 500:
        return RetryClass.UNKNOWN_OUTCOME
    return RetryClass.FATAL


__all__ = ["CODE_TABLE", "OK_CODES", "RetryClass", "classify_code", "classify_http_status", "describe_code"]
