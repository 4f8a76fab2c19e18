"""Per-topic subscription state of one public connection, driven by the exchange's acks.

Bybit's linear ack names no topics, only the echoed ``req_id``::

    {"success": true, "ret_msg": "", "conn_id": "...", "req_id": "7", "op": "subscribe"}

so every request gets a unique ``req_id`` and the tracker remembers which topics it carried. A
failed request with several topics may have failed because of one bad topic (bybit-v5.md 1.2), so
each of its topics is re-sent alone at once; a topic that fails alone is retried with a growing
delay and given up (state ``failed``, logged) after ``max_attempts``. A request without an ack
within ``ack_timeout`` counts as failed. ``"already subscribed"`` for a single topic means it is
active.

States: ``new`` (not sent on this connection yet) -> ``pending`` (sent, awaiting the ack) ->
``active``; or -> ``retry`` (failed, re-sent at ``retry_at``) -> ``pending`` ...; ``failed``
(given up). A reconnect puts every topic back to ``new``.

The tracker does no I/O: it returns :class:`Request` objects for the caller to send, so it is
tested without a socket and reused by anything that speaks Bybit's subscribe protocol.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import orjson

from pysrc.feed.topics import DEFAULT_MAX_ARGS_PER_REQUEST, MAX_ARGS_CHARS, split_args

log = logging.getLogger("pysrc.feed.subscriptions")

NEW = "new"
PENDING = "pending"
ACTIVE = "active"
RETRY = "retry"
FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Request:
    """One subscribe/unsubscribe request to send."""

    req_id: str
    op: str
    args: tuple[str, ...]

    def encode(self) -> str:
        return orjson.dumps({"req_id": self.req_id, "op": self.op, "args": list(self.args)}).decode()


@dataclass(slots=True)
class _Pending:
    request: Request
    sent_at: float


@dataclass(slots=True)
class _TopicState:
    state: str = NEW
    attempts: int = 0
    """Consecutive failures of this topic sent alone."""
    retry_at: float = 0.0
    last_error: str = ""
    failures: int = 0
    """Failures ever (for metrics)."""


@dataclass(frozen=True, slots=True)
class AckResult:
    """What an ack meant, for the caller's metrics and logs."""

    op: str
    success: bool
    topics: tuple[str, ...]
    activated: tuple[str, ...] = ()
    failed: tuple[str, ...] = ()


@dataclass(slots=True)
class SubscriptionTracker:
    topics: Iterable[str]
    req_prefix: str = ""
    """Prefix of every ``req_id`` (e.g. the connection name) so ids are unique across sockets."""
    max_chars: int = MAX_ARGS_CHARS
    max_args: int | None = DEFAULT_MAX_ARGS_PER_REQUEST
    ack_timeout: float = 10.0
    retry_base: float = 1.0
    retry_cap: float = 30.0
    max_attempts: int = 8
    clock: Callable[[], float] = field(default=time.monotonic, repr=False)
    _states: dict[str, _TopicState] = field(init=False, repr=False)
    _pending: dict[str, _Pending] = field(init=False, repr=False)
    _next_id: int = field(init=False, default=0, repr=False)

    def __post_init__(self) -> None:
        self._states = {topic: _TopicState() for topic in self.topics}
        self.topics = tuple(self._states)
        self._pending = {}

    # ---- queries ------------------------------------------------------------------------------

    def state(self, topic: str) -> str:
        return self._states[topic].state

    def states(self) -> dict[str, str]:
        return {topic: s.state for topic, s in self._states.items()}

    def counts(self) -> dict[str, int]:
        out = {NEW: 0, PENDING: 0, ACTIVE: 0, RETRY: 0, FAILED: 0}
        for s in self._states.values():
            out[s.state] += 1
        return out

    def failures(self) -> int:
        return sum(s.failures for s in self._states.values())

    def last_error(self, topic: str) -> str:
        return self._states[topic].last_error

    def pending_requests(self) -> int:
        return len(self._pending)

    # ---- building requests ----------------------------------------------------------------------

    def _request(self, op: str, args: Iterable[str]) -> Request:
        self._next_id += 1
        return Request(f"{self.req_prefix}{self._next_id}", op, tuple(args))

    def _send(self, op: str, topics: list[str], now: float) -> list[Request]:
        out: list[Request] = []
        for batch in split_args(topics, max_chars=self.max_chars, max_args=self.max_args):
            request = self._request(op, batch)
            if op == "subscribe":
                for topic in batch:
                    self._states[topic].state = PENDING
            self._pending[request.req_id] = _Pending(request, now)
            out.append(request)
        return out

    def reset(self) -> None:
        """A new connection: nothing is subscribed, no ack will come for earlier requests."""
        self._pending.clear()
        for s in self._states.values():
            s.state = NEW
            s.attempts = 0
            s.retry_at = 0.0

    def subscribe_all(self) -> list[Request]:
        """Requests for every topic not yet sent on this connection."""
        todo = [t for t, s in self._states.items() if s.state == NEW]
        return self._send("subscribe", todo, self.clock()) if todo else []

    def resubscribe(self, topic: str) -> list[Request]:
        """Unsubscribe then subscribe ``topic`` (a fresh snapshot follows the new subscription)."""
        if topic not in self._states:
            raise KeyError(topic)
        now = self.clock()
        s = self._states[topic]
        s.attempts = 0
        return self._send("unsubscribe", [topic], now) + self._send("subscribe", [topic], now)

    # ---- acks and timers ----------------------------------------------------------------------

    def _match(self, req_id: str, op: str) -> _Pending | None:
        pending = self._pending.pop(req_id, None) if req_id else None
        if pending is None and not req_id:
            # A server that does not echo req_id: acks come in request order.
            for key, candidate in self._pending.items():
                if candidate.request.op == op:
                    pending = self._pending.pop(key)
                    break
        return pending

    def on_ack(self, req_id: str, op: str, success: bool, ret_msg: str = "") -> AckResult | None:
        """Handle a subscribe/unsubscribe ack. None when it matches no request of ours."""
        pending = self._match(req_id, op)
        if pending is None:
            return None
        request = pending.request
        if request.op != "subscribe":
            return AckResult(request.op, success, request.args)
        if success:
            for topic in request.args:
                s = self._states[topic]
                if s.state == PENDING:
                    s.state = ACTIVE
                    s.attempts = 0
            return AckResult(request.op, True, request.args, activated=request.args)
        if len(request.args) == 1 and "already subscribed" in ret_msg:
            s = self._states[request.args[0]]
            s.state, s.attempts = ACTIVE, 0
            return AckResult(request.op, False, request.args, activated=request.args)
        failed = self._fail(request, ret_msg or "subscribe failed", self.clock())
        return AckResult(request.op, False, request.args, failed=failed)

    def _fail(self, request: Request, error: str, now: float) -> tuple[str, ...]:
        if len(request.args) > 1:
            # Which topic was bad is unknown: try each alone right away.
            for topic in request.args:
                s = self._states[topic]
                if s.state == PENDING:
                    s.state, s.retry_at, s.last_error = RETRY, now, error
            log.warning("subscribe %s failed (%s); retrying each topic alone", request.req_id, error)
            return ()
        topic = request.args[0]
        s = self._states[topic]
        if s.state != PENDING:
            return ()
        s.attempts += 1
        s.failures += 1
        s.last_error = error
        if s.attempts >= self.max_attempts:
            s.state = FAILED
            log.error("giving up on topic %s after %d attempts: %s", topic, s.attempts, error)
            return (topic,)
        s.state = RETRY
        s.retry_at = now + min(self.retry_cap, self.retry_base * 2 ** (s.attempts - 1))
        log.warning("subscribe %s failed (%s); retry %d in %.1fs", topic, error, s.attempts, s.retry_at - now)
        return (topic,)

    def due(self) -> list[Request]:
        """Requests to send now: retries whose time has come. Requests whose ack did not come
        within ``ack_timeout`` are failed first (and so retried)."""
        now = self.clock()
        for req_id, pending in list(self._pending.items()):
            if now - pending.sent_at >= self.ack_timeout:
                del self._pending[req_id]
                if pending.request.op == "subscribe":
                    self._fail(pending.request, f"no ack within {self.ack_timeout}s", now)
        todo = [t for t, s in self._states.items() if s.state == RETRY and s.retry_at <= now]
        out: list[Request] = []
        for topic in todo:  # one request per topic: a retried topic is always sent alone
            out.extend(self._send("subscribe", [topic], now))
        return out


__all__ = [
    "ACTIVE",
    "FAILED",
    "NEW",
    "PENDING",
    "RETRY",
    "AckResult",
    "Request",
    "SubscriptionTracker",
]
