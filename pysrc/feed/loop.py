"""Run the feed on uvloop when it is installed, else on the standard asyncio loop.

uvloop's loop is a drop-in replacement that cuts the per-frame cost of the socket layer; it is a
declared dependency on Linux and macOS, but the code must still run where it is missing
(Windows, a stripped environment), so it is always optional.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def best_loop_factory() -> tuple[str, Callable[[], asyncio.AbstractEventLoop] | None]:
    """``("uvloop", uvloop.new_event_loop)`` when uvloop imports, else ``("asyncio", None)``."""
    try:
        import uvloop
    except ImportError:
        return "asyncio", None
    return "uvloop", uvloop.new_event_loop


def install_best_event_loop() -> str:
    """Make new event loops uvloop loops when available (``asyncio.run`` and friends then use
    it). Returns the name of the loop in use: ``"uvloop"`` or ``"asyncio"``."""
    name, _ = best_loop_factory()
    if name == "uvloop":
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return name


def run(main: Coroutine[Any, Any, T], *, debug: bool | None = None) -> T:
    """``asyncio.run(main)`` on the best loop, without touching the global loop policy."""
    _, factory = best_loop_factory()
    with asyncio.Runner(debug=debug, loop_factory=factory) as runner:
        return runner.run(main)


__all__ = ["best_loop_factory", "install_best_event_loop", "run"]
