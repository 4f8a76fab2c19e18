"""The embedded local exchange as a child process of the bot.

In paper mode on a fresh machine the bot's market comes from the local Bybit exchange
(``pysrc.sim``). It runs as a child process rather than on the bot's event loop: the market model
and the publishers then use the machine's other core, the bot talks to it over loopback exactly
as it would talk to Bybit, and a bot killed with SIGKILL takes nothing of the exchange's state
with it that the bot relies on (paper positions live with the bot, the exchange only supplies
market data).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from dataclasses import dataclass


class SimStartError(RuntimeError):
    """The local exchange did not report ready."""


@dataclass(frozen=True, slots=True)
class SimUrls:
    rest: str
    ws_public: str
    ws_private: str


class SimChild:
    """``python -m pysrc.bot sim-exchange`` on a free loopback port, owned by the bot."""

    def __init__(
        self, *, symbols: int, seed: int, api_key: str, api_secret: str, balance: str, phases: int = 5
    ) -> None:
        self.args = [
            sys.executable, "-m", "pysrc.bot", "sim-exchange", "--host", "127.0.0.1", "--port", "0",
            "--symbols", str(symbols), "--seed", str(seed), "--api-key", api_key,
            "--api-secret", api_secret, "--balance", balance, "--phases", str(phases),
            "--parent-pid", str(os.getpid()),
        ]
        self.proc: asyncio.subprocess.Process | None = None
        self.urls: SimUrls | None = None
        self._drain: asyncio.Task[None] | None = None

    async def start(self, timeout: float = 30.0) -> SimUrls:
        # The child must not receive the terminal's SIGINT on its own: the bot stops it in order.
        self.proc = await asyncio.create_subprocess_exec(
            *self.args, stdout=asyncio.subprocess.PIPE, stderr=None, start_new_session=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        assert self.proc.stdout is not None
        try:
            line = (await asyncio.wait_for(self.proc.stdout.readline(), timeout)).decode()
        except TimeoutError as exc:
            await self.stop()
            raise SimStartError(f"the local exchange did not start within {timeout:.0f} s") from exc
        fields = dict(part.split("=", 1) for part in line.split() if "=" in part)
        if "ready" not in line or not {"rest", "ws_public", "ws_private"} <= set(fields):
            await self.stop()
            raise SimStartError(f"unexpected first line from the local exchange: {line!r}")
        self.urls = SimUrls(fields["rest"], fields["ws_public"], fields["ws_private"])
        self._drain = asyncio.create_task(self._drain_stdout(), name="sim-stdout")
        return self.urls

    async def _drain_stdout(self) -> None:
        # Keep reading so a chatty child can never block on a full pipe.
        assert self.proc is not None and self.proc.stdout is not None
        while await self.proc.stdout.readline():
            pass

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    async def stop(self, timeout: float = 5.0) -> None:
        proc = self.proc
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), timeout)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        if self._drain is not None:
            self._drain.cancel()
            await asyncio.gather(self._drain, return_exceptions=True)
            self._drain = None


__all__ = ["SimChild", "SimStartError", "SimUrls"]
