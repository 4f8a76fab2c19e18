"""uvloop when available: the helpers pick it, and the feed runs on it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from pysrc.book import BookEngine
from pysrc.feed import PublicFeed, run
from pysrc.feed.loop import best_loop_factory, install_best_event_loop


def test_best_loop_is_uvloop_here() -> None:
    name, factory = best_loop_factory()
    assert name == "uvloop" and factory is not None  # uvloop is installed on these machines


def test_install_sets_the_policy_and_can_be_undone() -> None:
    old = asyncio.get_event_loop_policy()
    try:
        assert install_best_event_loop() == "uvloop"
        import uvloop

        assert isinstance(asyncio.get_event_loop_policy(), uvloop.EventLoopPolicy)
    finally:
        asyncio.set_event_loop_policy(old)


def test_feed_runs_on_uvloop(scripted_server: Callable[[], Any], book_msg: Callable[..., bytes]) -> None:
    async def main() -> tuple[str, bool]:
        import uvloop

        loop_type = type(asyncio.get_running_loop()).__module__
        server = scripted_server()
        await server.start()

        async def on_subscribe(conn: Any, topic: str) -> None:
            if topic.startswith("orderbook."):
                await conn.ws.send_str(book_msg("AAAUSDT", "snapshot", 7, [["1.0", "1"]], [["2.0", "1"]]).decode())

        server.on_subscribe = on_subscribe
        async with PublicFeed(server.url, BookEngine("bybit"), symbols=["AAAUSDT"], tick=0.05) as feed:
            usable = await asyncio.wait_for(feed.wait_usable(timeout=10), 20)
        await server.stop()
        assert isinstance(asyncio.get_running_loop(), uvloop.Loop)
        return loop_type, usable

    loop_type, usable = run(main())
    assert loop_type.startswith("uvloop") and usable
