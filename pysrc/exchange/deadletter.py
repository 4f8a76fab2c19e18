"""Dead letters: frames that could not be parsed or processed, kept with their raw payload.

One interface for every exchange stream (the public feed, the private stream) and every sink
(this in-memory one; the Redis Stream one in ``pysrc.store``). Nothing the exchange sends is
silently dropped. The feed hands every frame it cannot use to a
:class:`DeadLetterSink` together with the error and where it came from. The in-memory sink below
is bounded (a feed must not grow without limit when an exchange misbehaves for hours), but it
counts every entry it was given, including the ones that no longer fit, so an operator always sees
how many frames were lost and can read the most recent ones. The Redis Stream sink that comes with
persistence implements the same one-method protocol.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@runtime_checkable
class DeadLetterSink(Protocol):
    """Where unusable frames go. ``put`` must not block and must not raise for a valid call:
    it is called from the WebSocket reader, which must keep reading."""

    def put(self, source: str, raw: bytes | str, error: str) -> None: ...


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One frame that could not be used."""

    source: str
    """Where it came from, e.g. ``"bybit.public/conn-0"``."""
    raw: bytes | str
    """The payload exactly as received."""
    error: str
    """Why it could not be used."""
    time: float
    """Wall-clock time (seconds since the epoch) when it was handed over."""


class MemoryDeadLetters:
    """A bounded in-memory :class:`DeadLetterSink`.

    Keeps the newest ``capacity`` entries. ``count`` is the number of entries ever received and
    ``overflowed`` how many of them were evicted to make room, so ``count == len(entries()) +
    overflowed + drained`` always holds.
    """

    def __init__(self, capacity: int = 10_000, *, clock: Callable[[], float] = time.time) -> None:
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self._entries: deque[DeadLetter] = deque()
        self._capacity = capacity
        self._clock = clock
        self.count = 0
        """Every entry ever put, including evicted and drained ones."""
        self.overflowed = 0
        """Entries evicted because the sink was full."""
        self.drained = 0
        """Entries handed out by :meth:`drain`."""

    @property
    def capacity(self) -> int:
        return self._capacity

    def put(self, source: str, raw: bytes | str, error: str) -> None:
        if len(self._entries) >= self._capacity:
            self._entries.popleft()
            self.overflowed += 1
        self._entries.append(DeadLetter(source, raw, error, self._clock()))
        self.count += 1

    def entries(self) -> list[DeadLetter]:
        """The retained entries, oldest first (a copy; the sink keeps them)."""
        return list(self._entries)

    def drain(self) -> list[DeadLetter]:
        """Remove and return the retained entries, oldest first (e.g. to forward them)."""
        out = list(self._entries)
        self._entries.clear()
        self.drained += len(out)
        return out

    def __len__(self) -> int:
        return len(self._entries)

    def stats(self) -> dict[str, int]:
        return {
            "count": self.count,
            "retained": len(self._entries),
            "overflowed": self.overflowed,
            "drained": self.drained,
            "capacity": self._capacity,
        }


__all__ = ["DeadLetter", "DeadLetterSink", "MemoryDeadLetters"]
