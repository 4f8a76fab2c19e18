"""structlog set-up: JSON lines for machines or console rendering for people, with a trace id
carried in a context variable so one signal can be followed through risk, execution, fills and
audit.

    configure(level="INFO", fmt="json")
    with trace("sig-..."):            # every log line inside carries trace_id
        log.info(EVENTS.ORDER_PLACED, symbol="BTCUSDT", order_link_id=...)
"""

from __future__ import annotations

import contextlib
import logging
import sys
import uuid
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

import structlog

_trace_id: ContextVar[str | None] = ContextVar("trace_id", default=None)


class EVENTS:
    """The standard event names (mission section 11); log with these, not free text."""

    BOT_STARTED = "bot_started"
    BOT_STOPPED = "bot_stopped"
    SIGNAL_GENERATED = "signal_generated"
    SIGNAL_REJECTED = "signal_rejected"
    ORDER_PLACED = "order_placed"
    ORDER_ACKNOWLEDGED = "order_acknowledged"
    ORDER_FILLED = "order_filled"
    ORDER_PARTIALLY_FILLED = "order_partially_filled"
    ORDER_CANCELLED = "order_cancelled"
    ORDER_REJECTED = "order_rejected"
    ORDER_FAILED = "order_failed"
    POSITION_OPENED = "position_opened"
    POSITION_CLOSED = "position_closed"
    STOP_LOSS_MOVED = "stop_loss_moved"
    TAKE_PROFIT_MOVED = "take_profit_moved"
    KILL_SWITCH_ENGAGED = "kill_switch_engaged"
    KILL_SWITCH_RELEASED = "kill_switch_released"
    RECONCILIATION_DONE = "reconciliation_done"
    RECONCILIATION_DISCREPANCY = "reconciliation_discrepancy"
    CIRCUIT_BREAKER_OPEN = "circuit_breaker_open"
    CIRCUIT_BREAKER_CLOSED = "circuit_breaker_closed"
    RATE_LIMIT_EXCEEDED = "rate_limit_exceeded"
    WS_CONNECTED = "ws_connected"
    WS_DISCONNECTED = "ws_disconnected"
    BOOK_RESYNC = "book_resync"
    DEAD_LETTER = "dead_letter"
    ALERT = "alert"


def new_trace_id() -> str:
    return uuid.uuid4().hex[:16]


def current_trace_id() -> str | None:
    return _trace_id.get()


@contextlib.contextmanager
def trace(trace_id: str | None = None) -> Iterator[str]:
    """Bind a trace id (a new one by default) for the code inside, including tasks it creates."""
    tid = trace_id or new_trace_id()
    token = _trace_id.set(tid)
    try:
        yield tid
    finally:
        _trace_id.reset(token)


def _add_trace_id(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
    tid = _trace_id.get()
    if tid is not None and "trace_id" not in event:
        event["trace_id"] = tid
    return event


def configure(level: str = "INFO", fmt: str = "console", stream: Any = None) -> None:
    """Route structlog and the standard library's logging through one renderer."""
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _add_trace_id,
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # aiohttp's access log would flood the terminal at API request rates.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


def get_logger(name: str | None = None) -> Any:
    return structlog.get_logger(name)


__all__ = ["EVENTS", "configure", "current_trace_id", "get_logger", "new_trace_id", "trace"]
