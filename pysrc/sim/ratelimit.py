"""Bybit's REST rate limits, enforced: per-UID per-endpoint rolling 1 s windows and the per-IP
600 requests / 5 s limit with a ban (HTTP 403 "access too frequent").

Per-UID limits are the defaults of the doc's table (section 4) for linear; the per-IP ban lasts
``ip_ban_seconds`` (Bybit: at least 10 minutes; the simulator defaults to 60 s, configurable).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

UID_LIMITS: dict[str, int] = {
    "/v5/order/create": 10,
    "/v5/order/amend": 10,
    "/v5/order/cancel": 10,
    "/v5/order/cancel-all": 10,
    "/v5/order/create-batch": 10,
    "/v5/order/amend-batch": 10,
    "/v5/order/cancel-batch": 10,
    "/v5/order/realtime": 50,
    "/v5/order/history": 50,
    "/v5/execution/list": 50,
    "/v5/position/list": 50,
    "/v5/position/set-leverage": 10,
    "/v5/position/trading-stop": 10,
    "/v5/account/wallet-balance": 50,
    "/v5/account/fee-rate": 5,
}

IP_LIMIT = 600
IP_WINDOW_S = 5.0
UID_WINDOW_S = 1.0


@dataclass(frozen=True)
class LimitStatus:
    allowed: bool
    limit: int
    remaining: int
    reset_ms: int

    def headers(self) -> dict[str, str]:
        return {
            "X-Bapi-Limit": str(self.limit),
            "X-Bapi-Limit-Status": str(self.remaining),
            "X-Bapi-Limit-Reset-Timestamp": str(self.reset_ms),
        }


class RateLimits:
    """Rolling-window counters. ``clock`` returns seconds (monotonic in normal use)."""

    def __init__(
        self,
        ip_limit: int = IP_LIMIT,
        ip_window_s: float = IP_WINDOW_S,
        ip_ban_seconds: float = 60.0,
        uid_limits: dict[str, int] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ip_limit = ip_limit
        self.ip_window_s = ip_window_s
        self.ip_ban_seconds = ip_ban_seconds
        self.uid_limits = dict(UID_LIMITS if uid_limits is None else uid_limits)
        self.clock = clock
        self._ip: dict[str, deque[float]] = {}
        self._banned_until: dict[str, float] = {}
        self._uid: dict[tuple[int, str], deque[float]] = {}
        self.rejected_uid = 0
        self.rejected_ip = 0
        self.bans = 0

    def check_ip(self, ip: str) -> bool:
        """Count one request from ``ip``; False when it is banned (now or by this request)."""
        now = self.clock()
        until = self._banned_until.get(ip)
        if until is not None:
            if now < until:
                self.rejected_ip += 1
                return False
            del self._banned_until[ip]
            self._ip.pop(ip, None)
        q = self._ip.setdefault(ip, deque())
        edge = now - self.ip_window_s
        while q and q[0] <= edge:
            q.popleft()
        if len(q) >= self.ip_limit:
            self._banned_until[ip] = now + self.ip_ban_seconds
            self.bans += 1
            self.rejected_ip += 1
            return False
        q.append(now)
        return True

    def ban(self, ip: str, seconds: float | None = None) -> None:
        self._banned_until[ip] = self.clock() + (self.ip_ban_seconds if seconds is None else seconds)
        self.bans += 1

    def banned(self, ip: str) -> bool:
        until = self._banned_until.get(ip)
        return until is not None and self.clock() < until

    def unban_all(self) -> None:
        self._banned_until.clear()
        self._ip.clear()

    def check_uid(self, uid: int, path: str) -> LimitStatus | None:
        """Count one request of ``uid`` on ``path``; None for endpoints without a UID limit."""
        limit = self.uid_limits.get(path)
        if limit is None:
            return None
        now = self.clock()
        q = self._uid.setdefault((uid, path), deque())
        edge = now - UID_WINDOW_S
        while q and q[0] <= edge:
            q.popleft()
        wall_ms = int(time.time() * 1000)
        if len(q) >= limit:
            self.rejected_uid += 1
            reset = wall_ms + int((q[0] + UID_WINDOW_S - now) * 1000) + 1
            return LimitStatus(False, limit, 0, reset)
        q.append(now)
        return LimitStatus(True, limit, limit - len(q), wall_ms)
