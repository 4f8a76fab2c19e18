"""The running bot: every component composed, started in order and stopped in reverse.

Start-up order (each step needs the previous ones):

1. configuration checked (live needs ``--live`` and keys), logging, the data directory;
2. the API's users and token key (the admin password printed once if it was generated);
3. persistence: embedded or external PostgreSQL and Redis, migrations applied;
4. the market: the embedded local exchange as a child process in paper mode without URLs,
   otherwise Bybit's endpoints for the mode; instruments; the symbols to trade;
5. the native book engine with features, the public feed (its dead letters go to Redis);
6. execution: the venue (paper or Bybit), its saved state, the order service, which reconciles
   with the venue before it accepts any order; the kill switch state (a halt persists);
7. strategies, risk, the position manager; one pipeline task per symbol;
8. the API server, the status line.

Stopping (SIGINT/SIGTERM, or the API): new entries stop first, the pipelines are cancelled, the
API stops accepting requests, the order service finishes in-flight writes and closes the venue,
paper state is saved, the feed and the exchange connections close, the local exchange stops,
the store closes. Each step has a deadline so the whole stop fits in 10 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import socket
import sys
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, TextIO

from pysrc.analytics import FeatureReader
from pysrc.api.auth import AuthStore
from pysrc.book import BookEngine
from pysrc.bot.simchild import SimChild
from pysrc.config import Config, ConfigError
from pysrc.exchange.bybit.environments import DEMO, MAINNET, TESTNET
from pysrc.exchange.bybit.rest import BybitRest
from pysrc.exchange.instruments import Instrument
from pysrc.execution.killswitch import DailyLossMonitor, KillSwitchExecutor
from pysrc.execution.model import OrderIntent
from pysrc.execution.paper import PaperVenue
from pysrc.execution.service import OrderService
from pysrc.execution.venue import BybitVenue, Venue
from pysrc.feed import PublicFeed, Ticker, Trades
from pysrc.obs.log import EVENTS, configure, get_logger, new_trace_id, trace
from pysrc.obs.metrics import Registry
from pysrc.positions import PositionManager, PositionRules
from pysrc.risk import (
    InstrumentSpec,
    OpenPosition,
    PortfolioState,
    Rejected,
    RiskConfigError,
    RiskLimits,
    RiskManager,
)
from pysrc.store.bundle import Store, open_store
from pysrc.store.servers import default_data_dir
from pysrc.strategy import MarketData, OrderBookScalper, ParameterError, Signal, StrategyManager
from pysrc.strategy.scanner import MarketScanner

log = get_logger("pysrc.bot")

SIM_API_KEY = "paper-local-key"
SIM_API_SECRET = "paper-local-secret"  # the local exchange's own simulated account, loopback only
SIGNAL_HISTORY = 500
OVERLOAD_LAG_S = 0.02
"""An event loop waking up this late means the bot is behind: lower-priority symbols are
evaluated less often until it catches up."""
DEFERRED_EVAL_S = 0.25


@dataclass(frozen=True, slots=True)
class Endpoints:
    rest: str
    ws_public: str
    ws_private: str


def _jsonable(tree: Any) -> Any:
    if isinstance(tree, dict):
        return {k: _jsonable(v) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return [_jsonable(v) for v in tree]
    return str(tree) if isinstance(tree, Decimal) else tree


def resolve_data_dir(config: Config, override: Path | None) -> Path:
    if override is not None:
        return override
    configured = config["settings.data_dir"]
    return Path(configured) if configured else default_data_dir()


def instrument_spec(inst: Instrument) -> InstrumentSpec:
    """The risk manager's view of an exchange instrument."""
    return InstrumentSpec(
        symbol=inst.symbol,
        tick_size=inst.tick_size,
        qty_step=inst.qty_step,
        min_qty=inst.min_qty,
        min_notional=inst.min_notional or Decimal(0),
        max_qty=inst.max_qty,
        max_leverage=inst.max_leverage or Decimal(100),
    )


class BotRuntime:
    """Everything ``python -m pysrc.bot run`` runs, with one owner for every task."""

    def __init__(
        self,
        config: Config,
        *,
        data_dir: Path | None = None,
        allow_live: bool = False,
        out: TextIO | None = None,
        status_interval: float | None = None,
    ) -> None:
        self.config = config
        self.allow_live = allow_live
        self.data_dir = resolve_data_dir(config, data_dir)
        self.out = out or sys.stdout
        self.mode = config.mode
        self.status_interval = status_interval if status_interval is not None else float(config["settings.status_interval_s"])
        self.state = "stopped"
        self.started_at = time.monotonic()
        self.trading = False
        self.metrics = Registry()
        self._init_metrics()
        self.signals: deque[dict[str, Any]] = deque(maxlen=SIGNAL_HISTORY)
        self.tickers: dict[str, dict[str, Any]] = {}
        self.instruments: dict[str, Instrument] = {}
        self.symbols: list[str] = []
        self.subscribers: list[Callable[[dict[str, Any]], Awaitable[None] | None]] = []
        self.api_url: str | None = None
        self.admin_password_generated: str | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._pipelines: list[asyncio.Task[None]] = []
        self._stop_event = asyncio.Event()
        self._paper_path = self.data_dir / "paper_state.json"
        self._paper_dirty = asyncio.Event()
        self._decide = asyncio.Lock()
        self._last_eval: dict[str, float] = {}
        self._last_market_event: dict[str, float] = {}
        self._overloaded = False
        self._all_live = False
        self._priority: set[str] = set()
        self._deferred = 0
        self._rate_mark = (time.monotonic(), 0)
        # components (set in start)
        self.auth: AuthStore | None = None
        self.store: Store | None = None
        self.sim: SimChild | None = None
        self.rest: BybitRest | None = None
        self.engine: BookEngine | None = None
        self.reader: FeatureReader | None = None
        self.feed: PublicFeed | None = None
        self.venue: Venue | None = None
        self.orders: OrderService | None = None
        self.killswitch: KillSwitchExecutor | None = None
        self.loss_monitor: DailyLossMonitor | None = None
        self.strategies = StrategyManager()
        try:
            limits = RiskLimits.from_mapping(config["risk_limits"]) if config["risk_limits"] else RiskLimits()
        except RiskConfigError as exc:
            raise ConfigError(f"risk_limits.{exc.key}", str(exc).split(": ", 1)[-1]) from exc
        self.risk = RiskManager(limits)
        self._overrides_path = self.data_dir / "settings_overrides.json"
        self._register_strategies()
        self._apply_overrides()
        self.positions = PositionManager(PositionRules())
        self.scanner = MarketScanner(clock=time.time)  # the tape is stamped with exchange time
        self._server: Any = None
        self._api_app: Any = None
        self._api_socket: socket.socket | None = None

    # ---- metrics ------------------------------------------------------------------------------

    def _init_metrics(self) -> None:
        m = self.metrics
        self.m_signals = m.counter("bot_signals_total", "Signals generated", ["decision"])
        self.m_orders = m.counter("bot_orders_placed_total", "Orders placed by the bot and the API")
        self.m_tick = m.histogram("bot_tick_processing_seconds", "Book update to strategies done",
                                  buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05))
        self.m_e2s = m.histogram("bot_exchange_to_signal_seconds", "Exchange timestamp to signal",
                                 buckets=(0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5))
        # Every book update ends in a decision (a signal or none): this is the signal path's
        # latency whether or not a signal fires, so it has samples even in a quiet market.
        self.m_e2d = m.histogram("bot_exchange_to_decision_seconds",
                                 "Exchange timestamp to strategies evaluated, per book update",
                                 buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5))
        self.e2d_samples: deque[float] = deque(maxlen=20000)
        # Where latency hides in one event loop: collector pauses and loop lag (how late a 50 ms
        # sleep wakes up), both shown on /metrics.
        self.m_gc = m.histogram("bot_gc_pause_seconds", "Garbage-collector pauses",
                                buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25))
        self.m_lag = m.histogram("bot_event_loop_lag_seconds", "Event-loop lag (late wake-ups)",
                                 buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25))
        self._gc_t0 = 0.0
        m.gauge("bot_uptime_seconds", "Seconds since start", fn=lambda: time.monotonic() - self.started_at)
        m.gauge("bot_trading_enabled", "1 when new entries are allowed", fn=lambda: float(self.trading))
        m.gauge("bot_symbols_live", "Books usable now", fn=self._symbols_live)
        m.gauge("bot_ws_connections", "Public WebSocket connections up",
                fn=lambda: float(self.feed.metrics()["totals"]["connected"]) if self.feed else 0.0)
        m.gauge("bot_kill_switch_engaged", "1 while the kill switch holds trading",
                fn=lambda: float(bool(self.orders and self.orders.halted)))
        self.m_order_states = m.counter("bot_order_transitions_total", "Order state transitions", ["to_state"])
        self.m_positions_opened = m.counter("bot_positions_opened_total", "Positions opened")
        self.m_positions_closed = m.counter("bot_positions_closed_total", "Positions closed", ["result"])
        self.m_pnl = m.gauge("bot_realised_pnl_usdt", "Net realised PnL of positions closed since start")
        m.gauge("bot_win_rate", "Share of positions closed since start with a positive net PnL", fn=self._win_rate)
        m.gauge("bot_active_positions", "Positions under management", fn=lambda: float(len(self.positions.positions())))
        m.gauge("bot_reconciliation_discrepancies", "Discrepancies found by the last reconciliation",
                fn=self._last_discrepancies)
        m.gauge("bot_overloaded", "1 while lower-priority symbols are evaluated less often",
                fn=lambda: float(self._overloaded))
        m.gauge("bot_deferred_evaluations", "Book updates whose evaluation was deferred under load",
                fn=lambda: float(self._deferred))
        self.m_breaker = m.gauge("bot_circuit_breaker_open", "1 while an endpoint group's breaker is not closed",
                                 ["group"])

    def decision_latency_ms(self) -> dict[str, float | int | None]:
        """Exchange timestamp to strategies evaluated, over the most recent book updates since
        every book first became live (ms; the exchange stamps whole milliseconds, so each sample
        carries up to 1 ms of rounding)."""
        data = sorted(self.e2d_samples)
        n = len(data)

        def pct(q: float) -> float | None:
            return None if not n else round(1000.0 * data[min(n - 1, max(0, int(q * n + 0.999999) - 1))], 3)

        return {"p50": pct(0.50), "p99": pct(0.99), "samples": n}

    def _gc_callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._gc_t0 = time.perf_counter()
        elif self._gc_t0:
            self.m_gc.observe(time.perf_counter() - self._gc_t0)

    async def _loop_lag_monitor(self) -> None:
        """Event-loop lag, and from it the load state: overloaded when the last second's worst
        late wake-up passed ``OVERLOAD_LAG_S``; the priority set (the most active symbols by the
        scanner's ranking, exploding ones first) is refreshed every second."""
        worst, since = 0.0, time.monotonic()
        while True:
            t0 = time.perf_counter()
            await asyncio.sleep(0.05)
            lag = max(time.perf_counter() - t0 - 0.05, 0.0)
            self.m_lag.observe(lag)
            worst = max(worst, lag)
            if not self._all_live and self.symbols and self._symbols_live() == len(self.symbols):
                # Start-up (every book's first snapshot arriving at once) is not steady state:
                # the latency figures start when the last book has become live.
                self._all_live = True
                self.e2d_samples.clear()
            if time.monotonic() - since >= 1.0:
                self._overloaded = worst > OVERLOAD_LAG_S
                keep = max(10, len(self.symbols) // 4)
                self._priority = {a.symbol for a in self.scanner.ranking(self.symbols)[:keep]}
                worst, since = 0.0, time.monotonic()

    def _win_rate(self) -> float:
        won = self.m_positions_closed.get(result="win")
        total = won + self.m_positions_closed.get(result="loss")
        return won / total if total else 0.0

    def _last_discrepancies(self) -> float:
        report = self.orders.last_reconciliation if self.orders is not None else None
        return float(len(report.discrepancies)) if report is not None else 0.0

    def refresh_metrics(self) -> None:
        """Values owned by other components, copied in just before /metrics renders."""
        board: dict[str, Any] = {}
        for source in (self.rest, getattr(self.venue, "rest", None)):
            if source is not None:
                board.update(source.snapshot().get("breakers", {}))
        for group, snap in board.items():
            state = snap.get("state") if isinstance(snap, dict) else str(snap)
            self.m_breaker.set(0.0 if state == "closed" else 1.0, group=group)

    def _symbols_live(self) -> float:
        return float(sum(1 for s in self.symbols if self.feed is not None and self.feed.is_usable(s)))

    # ---- events ---------------------------------------------------------------------------------

    async def publish(self, channel: str, data: dict[str, Any], symbol: str | None = None) -> None:
        event = {"type": channel, "ts": int(time.time() * 1000), "symbol": symbol, "data": data}
        for cb in list(self.subscribers):
            try:
                r = cb(event)
                if asyncio.iscoroutine(r):
                    await r
            except Exception:  # a subscriber's failure must not stop the bot
                log.exception("event_subscriber_failed")

    def _spawn(self, coro: Awaitable[Any], name: str) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        task.set_name(name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # ---- start ----------------------------------------------------------------------------------

    def _endpoints(self) -> Endpoints | None:
        ex = self.config["settings.exchange"]
        if ex["rest_url"] and ex["ws_public_url"]:
            return Endpoints(ex["rest_url"], ex["ws_public_url"], ex["ws_private_url"] or "")
        if self.mode == "paper":
            return None  # the embedded local exchange
        env = {"testnet": TESTNET, "demo": DEMO, "live": MAINNET}[self.mode]
        return Endpoints(env.rest_url, env.ws_public_url("linear"), env.ws_private_url)

    async def start(self) -> None:
        self.config.check_can_start(allow_live=self.allow_live)
        self.state = "starting"
        settings = self.config.settings
        configure(level=settings["logging"]["level"], fmt=settings["logging"]["format"])
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._print(f"bybit-bot starting: mode {self.mode}, data in {self.data_dir}")
        # The API's port is taken first: a port in use fails the start before anything else
        # (databases, the local exchange) has been started for nothing.
        self._api_socket = self._bind_api()

        self.auth = AuthStore(self.data_dir, token_ttl_s=60.0 * settings["api"]["token_ttl_minutes"])
        generated = self.auth.open(os.environ.get("BOT_ADMIN_PASSWORD") or None)
        if generated:
            self.admin_password_generated = generated
            self._print(f"API user 'admin' created; password (shown once): {generated}")

        self.store = await open_store(self.data_dir, database_url=settings["database_url"],
                                      redis_url=settings["redis_url"])
        endpoints = self._endpoints()
        ex = settings["exchange"]
        key, secret = ex["api_key"], ex["api_secret"]
        if endpoints is None:
            sim = settings["sim"]
            self.sim = SimChild(symbols=sim["symbols"], seed=sim["seed"], api_key=SIM_API_KEY,
                                api_secret=SIM_API_SECRET, balance=sim["balance"], phases=sim["phases"])
            urls = await self.sim.start()
            endpoints = Endpoints(urls.rest, urls.ws_public, urls.ws_private)
            key, secret = SIM_API_KEY, SIM_API_SECRET
        self.endpoints = endpoints
        self.rest = BybitRest(endpoints.rest, key or None, secret or None, recv_window=ex["recv_window_ms"])
        await self.rest.start()
        specs = await self.rest.instrument_specs()
        self.instruments = {i.symbol: i for i in specs if i.status in ("Trading", "")}
        wanted = self.config["symbols"]
        if wanted:
            unknown = [s for s in wanted if s not in self.instruments]
            if unknown:
                raise ValueError(f"symbols: not traded on this exchange: {', '.join(unknown)}")
            self.symbols = list(wanted)
        else:
            self.symbols = list(self.instruments)[: settings["sim"]["symbols"]]

        self.engine = BookEngine("bybit", features=True)
        self.reader = FeatureReader(self.engine)
        feed = settings["feed"]
        self.feed = PublicFeed(endpoints.ws_public, self.engine, symbols=self.symbols, depth=feed["depth"],
                               topics=("orderbook", "publicTrade", "tickers"),
                               pairs_per_connection=feed["pairs_per_connection"],
                               dead_letters=self.store.dead_letters, on_book_applied=self._on_book,
                               book_events=False)  # decisions run in _on_book; nothing to drain
        await self.feed.start()

        if self.mode == "paper":
            paper = PaperVenue(self.engine, list(self.instruments.values()),
                               balance=Decimal(settings["sim"]["balance"]))
            self._restore_paper(paper)
            self.venue = paper
        else:
            self.venue = BybitVenue(BybitRest(endpoints.rest, key, secret, recv_window=ex["recv_window_ms"]),
                                    endpoints.ws_private, key, secret)
        self.orders = OrderService(self.store, self.venue, mode=self.mode)
        self.orders.subscribe(self._on_execution_event)
        await self.orders.start()  # reconciles with the venue before any order
        self.killswitch = KillSwitchExecutor(self.orders, alert=self._on_alert)
        halted = await self.killswitch.is_halted()
        if self.mode == "paper":
            self._spawn(self._paper_saver(), "paper-saver")
        limits = self.risk.limits
        self.loss_monitor = DailyLossMonitor(self.killswitch, Decimal(str(limits.max_daily_loss)),
                                             kill_switch=self.risk.kill_switch)
        self._spawn(self.loss_monitor.run(5.0), "daily-loss-monitor")

        await self._restore_positions()
        for symbol in self.symbols:
            self._pipelines.append(asyncio.create_task(self._pipeline(symbol), name=f"pipeline-{symbol}"))

        await self._start_api()
        if self.status_interval > 0:
            self._spawn(self._status_loop(), "status")
        self._spawn(self._loop_lag_monitor(), "loop-lag")
        gc.callbacks.append(self._gc_callback)
        self.state = "running"
        self.started_at = time.monotonic()
        await self._warm_api()  # running, so the routes answer as they will; not trading yet
        gc.collect()
        gc.freeze()  # long-lived objects out of the collector's way (fewer tail-latency stalls)
        self.trading = not halted
        if halted:
            self._print("kill switch engaged (persisted): trading stays stopped until released")
        log.info(EVENTS.BOT_STARTED, mode=self.mode, symbols=len(self.symbols), api=self.api_url)

    def _register_strategies(self) -> None:
        section = self.config["strategies"]
        unknown = sorted(set(section) - {"orderbook_scalper"})
        if unknown:
            raise ConfigError(f"strategies.{unknown[0]}", "unknown strategy (known: orderbook_scalper)")
        entry = section.get("orderbook_scalper") or {}
        if not isinstance(entry, dict) or set(entry) - {"enabled", "params"}:
            raise ConfigError("strategies.orderbook_scalper", "expected {enabled: bool, params: {...}}")
        try:
            scalper = OrderBookScalper(entry.get("params") or {})
        except ParameterError as exc:
            raise ConfigError(f"strategies.orderbook_scalper.params.{exc.key}", str(exc).split(": ", 1)[-1]) from exc
        self.strategies.register(scalper, enabled=bool(entry.get("enabled", True)))

    # ---- settings changed at run time (API) survive restarts ------------------------------------

    def save_overrides(self) -> None:
        """Strategy parameters and switches, risk limits and sizing as changed through the API,
        written atomically to the data directory and applied over the configuration at start."""
        body = {
            "strategies": {row["name"]: {"enabled": row["enabled"], "params": row["parameters"]}
                           for row in self.strategies.status()},
            "risk": _jsonable(self.risk.limits.to_dict()),
            "sizing": _jsonable(self.risk.sizing.to_dict()),
        }
        tmp = self._overrides_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(body, indent=1))
        os.replace(tmp, self._overrides_path)

    def _apply_overrides(self) -> None:
        if not self._overrides_path.is_file():
            return
        saved = json.loads(self._overrides_path.read_text())
        for name, entry in saved.get("strategies", {}).items():
            if name not in self.strategies.names():
                continue
            with contextlib.suppress(Exception):  # a parameter the code no longer knows is dropped
                self.strategies.update_parameters(name, entry.get("params", {}))
            (self.strategies.enable if entry.get("enabled", True) else self.strategies.disable)(name)
        with contextlib.suppress(Exception):
            self.risk.update_limits(saved.get("risk", {}))
        with contextlib.suppress(Exception):
            self.risk.update_sizing(saved.get("sizing", {}))

    def _bind_api(self) -> socket.socket:
        """The API's listening socket, bound now, or a start-up error naming the setting."""
        api = self.config["settings.api"]
        host, port = api["host"], api["port"]
        try:
            family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
            sock = socket.socket(family, socket.SOCK_STREAM)
        except OSError as exc:
            raise RuntimeError(f"the API cannot listen on {host}:{port}: {exc} (settings.api.host)") from None
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
            sock.listen(2048)
        except OSError as exc:
            sock.close()
            raise RuntimeError(
                f"the API cannot listen on {host}:{port}: {exc.strerror or exc} "
                "(choose another with --api-port or settings.api.port)"
            ) from None
        sock.setblocking(False)
        return sock

    async def _serve_api(self, sock: socket.socket) -> None:
        """uvicorn on the socket bound at start; its ``sys.exit`` on a failure must not take the
        whole process down without a graceful stop, so it becomes a logged error and a stop."""
        try:
            await self._server.serve(sockets=[sock])
        except SystemExit as exc:
            log.error("api_server_failed", code=exc.code)
            self.request_stop()

    async def _warm_api(self) -> None:
        """First-use costs (route state, dependency signatures, the OpenAPI schema) paid now,
        with the bot running but before trading is enabled, rather than as a stall of the
        market-data loop on the first dashboard request."""
        from pysrc.api.auth import ADMIN
        from pysrc.api.warmup import warm_up

        if self._api_app is None or self.auth is None:
            return
        try:
            token = self.auth.issue(self.auth.users[ADMIN])
            statuses = await warm_up(self._api_app, token, self.symbols[0] if self.symbols else "BTCUSDT")
            bad = {p: s for p, s in statuses.items() if s >= 500}
            if bad:
                log.warning("api_warmup_errors", routes=bad)
        except Exception:  # a warm-up failure must not stop the bot; the routes still work
            log.exception("api_warmup_failed")

    async def _start_api(self) -> None:
        import uvicorn

        from pysrc.api.app import create_app_from_config
        from pysrc.bot.backend import RuntimeBackend

        assert self.auth is not None and self._api_socket is not None
        app = create_app_from_config(self.config, RuntimeBackend(self), self.auth, metrics=Registry())
        api = self.config["settings.api"]
        cfg = uvicorn.Config(app, host=api["host"], port=api["port"], log_level="warning",
                             access_log=False, lifespan="on", loop="none")
        self._server = uvicorn.Server(cfg)
        self._server.install_signal_handlers = lambda: None  # the bot owns SIGINT/SIGTERM
        task = self._spawn(self._serve_api(self._api_socket), "api")
        for _ in range(200):
            if self._server.started or task.done():
                break
            await asyncio.sleep(0.05)
        if not self._server.started:
            raise RuntimeError(f"the API did not start on {api['host']}:{api['port']}")
        self._api_app = app
        sock = self._api_socket.getsockname()
        host = f"[{sock[0]}]" if ":" in sock[0] else sock[0]
        self.api_url = f"http://{host}:{sock[1]}"
        self._print(f"API on {self.api_url} (OpenAPI at {self.api_url}/docs)")

    # ---- paper state ----------------------------------------------------------------------------

    def _restore_paper(self, paper: PaperVenue) -> None:
        if self._paper_path.is_file():
            paper.restore(json.loads(self._paper_path.read_text()))

    def _paper_state(self) -> bytes | None:
        """The paper venue's state, taken on the event loop (consistent with what the loop does)."""
        if not isinstance(self.venue, PaperVenue):
            return None
        return json.dumps(self.venue.snapshot(history=200)).encode()

    def _write_paper(self, body: bytes) -> None:
        tmp = self._paper_path.with_suffix(".tmp")
        with open(tmp, "wb") as f:
            f.write(body)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self._paper_path)

    def _save_paper(self) -> None:
        body = self._paper_state()
        if body is not None:
            self._write_paper(body)

    async def _paper_saver(self) -> None:
        """Paper state is the paper 'exchange': saved shortly after every change the venue
        pushes (orders, fills, positions), so a restart (even after SIGKILL, up to this delay)
        reconciles against what the venue really did. The disk write runs off the loop."""
        while True:
            await self._paper_dirty.wait()
            await asyncio.sleep(0.05)
            self._paper_dirty.clear()
            body = self._paper_state()
            if body is not None:
                await asyncio.to_thread(self._write_paper, body)

    # ---- pipeline -------------------------------------------------------------------------------

    def _on_book(self, symbol: str) -> None:
        """Called by the feed right after a book message of ``symbol`` was applied, before the
        next frame is read: the paper venue checks its resting orders, the strategies evaluate
        the features the engine just updated, the position manager re-prices protection. Only
        order placement leaves this path (in its own task), so a decision is taken within
        microseconds of the book changing, without a queue and a task wake-up in between.

        Under load (the event loop running late), symbols outside the most active ones are
        evaluated at most every ``DEFERRED_EVAL_S``: their books stay exact, their decisions wait
        a little, and the busiest markets keep the full rate."""
        engine, reader = self.engine, self.reader
        assert engine is not None and reader is not None
        t0 = time.perf_counter()
        if isinstance(self.venue, PaperVenue):
            self.venue.on_book(symbol)
        if not engine.is_live(symbol):
            return
        if self._overloaded and symbol not in self._priority:
            if t0 - self._last_eval.get(symbol, 0.0) < DEFERRED_EVAL_S:
                self._deferred += 1
                return
        self._last_eval[symbol] = t0
        md = MarketData.from_engine(engine, reader, symbol)
        for signal in self.strategies.on_update(symbol, md):
            self._on_signal(signal, md)
        if md.ts:
            lag = max(time.time() - md.ts / 1000.0, 0.0)
            self.m_e2d.observe(lag)
            self.e2d_samples.append(lag)
        self._manage_positions(symbol, md)
        self.m_tick.observe(time.perf_counter() - t0)
        if self.subscribers:
            now = time.monotonic()
            if now - self._last_market_event.get(symbol, 0.0) >= 0.25:
                self._last_market_event[symbol] = now
                self._spawn(self.publish("market_data", self._top(symbol), symbol), "publish-market")

    async def _pipeline(self, symbol: str) -> None:
        """Trades and tickers of one symbol, in order (book updates are handled in
        :meth:`_on_book` as they are applied; the feed does not queue them, ``book_events=False``)."""
        assert self.feed is not None
        queue = self.feed.queue(symbol)
        paper = self.venue if isinstance(self.venue, PaperVenue) else None
        while True:
            event = await queue.get()
            try:
                if isinstance(event, Trades):
                    if paper is not None:
                        paper.on_trades(event)
                    for t in event.trades:
                        boom = self.scanner.update(symbol, Decimal(t.price), Decimal(t.size), ts=t.time / 1000.0)
                        if boom is not None:
                            log.warning(EVENTS.ALERT, kind="explosion", symbol=symbol, direction=boom.direction,
                                        price_change=boom.price_change, volume_multiple=boom.volume_multiple)
                            await self.publish("alert", {"level": "warning", "event": "explosion",
                                                         "message": f"{symbol} {boom.direction} "
                                                         f"{boom.price_change:+.2%} on {boom.volume_multiple:.1f}x volume"},
                                               symbol)
                elif isinstance(event, Ticker):
                    self.tickers[symbol] = dict(event.state)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("pipeline_error", symbol=symbol)

    def _top(self, symbol: str) -> dict[str, Any]:
        assert self.engine is not None
        bid, ask = self.engine.best_bid(symbol), self.engine.best_ask(symbol)
        return {"symbol": symbol, "ts": self.engine.last_ts(symbol), "bid": bid[0] if bid else None,
                "ask": ask[0] if ask else None, "bid_size": bid[1] if bid else None,
                "ask_size": ask[1] if ask else None}

    def _on_signal(self, signal: Signal, md: MarketData) -> None:
        lag = time.time() - md.ts / 1000.0
        if md.ts:
            self.m_e2s.observe(max(lag, 0.0))
        row = signal.to_dict()
        row.update(decision="suppressed", reason="", order_id=None)
        self.signals.appendleft(row)
        if not self.trading:
            row["reason"] = "trading stopped" if not (self.orders and self.orders.halted) else "kill switch engaged"
            self.m_signals.inc(decision="suppressed")
            self._spawn(self.publish("signal", row, signal.symbol), "publish-signal")
            return
        self._spawn(self._act_on_signal(signal, md, row), f"signal-{signal.symbol}")

    async def _in_flight_exposure(self) -> list[OpenPosition]:
        """Open orders that are not positions yet count as exposure, so two signals decided in
        the same instant cannot both fit under a limit that only one of them may use."""
        assert self.orders is not None and self.engine is not None
        out = []
        for v in await self.orders.list_orders(open_only=True):
            if v.reduce_only or v.symbol not in self.instruments:
                continue
            left = v.qty - v.filled_qty
            ref = v.price
            if ref is None:
                top = self.engine.best_ask(v.symbol) if v.side == "Buy" else self.engine.best_bid(v.symbol)
                ref = Decimal(top[0]) if top else None
            if left > 0 and ref:
                out.append(OpenPosition(v.symbol, v.side, left, ref))
        return out

    async def portfolio(self) -> PortfolioState:
        assert self.orders is not None
        wallet = await self.orders.venue.wallet()
        equity = Decimal(str(wallet.get("totalEquity") or wallet.get("totalWalletBalance") or "0"))
        available = wallet.get("totalAvailableBalance")
        opened = []
        for p in await self.orders.positions():
            if p.size > 0 and p.entry_price:
                opened.append(OpenPosition(p.symbol, p.side, p.size, p.entry_price, mark_price=p.mark_price))
        return PortfolioState(balance=equity, positions=tuple(opened),
                              available_balance=Decimal(str(available)) if available not in (None, "") else None)

    async def _act_on_signal(self, signal: Signal, md: MarketData, row: dict[str, Any]) -> None:
        assert self.orders is not None
        tid = new_trace_id()
        with trace(tid):
            try:
                # One decision at a time, held until the order is placed: each risk check then
                # sees the orders the previous decisions placed (placements are rate-limited by
                # the exchange anyway, so nothing is lost by serialising them).
                async with self._decide:
                    await self._decide_and_place(signal, md, row, tid)
            except Exception as exc:
                row.update(decision="rejected", reason=f"error: {exc}")
                self.m_signals.inc(decision="rejected")
                log.warning("signal_failed", symbol=signal.symbol, error=str(exc))
            finally:
                await self.publish("signal", row, signal.symbol)

    async def _decide_and_place(self, signal: Signal, md: MarketData, row: dict[str, Any], tid: str) -> None:
        assert self.orders is not None
        inst = self.instruments[signal.symbol]
        portfolio = await self.portfolio()
        pending = await self._in_flight_exposure()
        if pending:
            portfolio = PortfolioState(balance=portfolio.balance, positions=portfolio.positions + tuple(pending),
                                       available_balance=portfolio.available_balance)
        decision = self.risk.check(signal, portfolio, instrument_spec(inst),
                                   volatility_bps=md.feature("realized_vol_10s_bps"))
        if isinstance(decision, Rejected):
            row.update(decision="rejected", reason=f"{decision.code.value}: {decision.message}")
            self.m_signals.inc(decision="rejected")
            log.info(EVENTS.SIGNAL_REJECTED, symbol=signal.symbol, reason=row["reason"])
            return
        intent = OrderIntent(
            symbol=signal.symbol, side=signal.side.value, order_type="Market", qty=decision.qty,
            strategy=signal.strategy, reason=signal.kind.value, signal_type=signal.kind.value,
            signal=signal.to_dict(), trace_id=tid, take_profit=decision.take_profit,
            stop_loss=decision.stop_loss, market=self._top(signal.symbol),
        )
        view = await self.orders.place(intent)
        self.m_orders.inc()
        row.update(decision="approved", reason=view.state, order_id=view.order_link_id)
        self.m_signals.inc(decision="approved")
        log.info(EVENTS.SIGNAL_GENERATED, symbol=signal.symbol, side=signal.side.value,
                 order_link_id=view.order_link_id, state=view.state)

    def _manage_positions(self, symbol: str, md: MarketData) -> None:
        """Trailing stops, take-profits, partial closes and reversal exits for open positions."""
        managed = [p for p in self.positions.positions() if p.symbol == symbol]
        if not managed or md.mid is None:
            return
        from pysrc.positions.reversal import DEFAULT_INDICATORS, reversal_votes

        features = {name: md.feature(name) for name in DEFAULT_INDICATORS}
        actions = self.positions.on_price(symbol, md.mid, ts=md.ts / 1000.0, reversal_votes=reversal_votes(features))
        if actions:
            self._spawn(self._apply_position_actions(symbol, actions), f"positions-{symbol}")

    async def _apply_position_actions(self, symbol: str, actions: list[Any]) -> None:
        from pysrc.positions import CloseAll, ClosePartial

        assert self.orders is not None
        for action in actions:
            try:
                if isinstance(action, CloseAll):
                    await self.orders.close_position(symbol, reason=action.reason, strategy="position_manager")
                elif isinstance(action, ClosePartial):
                    pos = [p for p in await self.orders.positions() if p.symbol == symbol]
                    if pos:
                        close_side = "Sell" if pos[0].side == "Buy" else "Buy"
                        await self.orders.place(OrderIntent(symbol=symbol, side=close_side, order_type="Market",
                                                            qty=action.qty, reduce_only=True,
                                                            strategy="position_manager", reason="partial_close"))
            except Exception as exc:
                log.warning("position_action_failed", symbol=symbol, action=type(action).__name__, error=str(exc))

    async def _restore_positions(self) -> None:
        """Open positions from the database become managed again (trailing state restarts from
        the current price: a restart never forgets a position, it re-arms its protection)."""
        assert self.orders is not None
        for p in await self.orders.positions():
            if p.size > 0 and p.entry_price and p.symbol in self.instruments:
                with contextlib.suppress(Exception):
                    self.positions.open(p.symbol, p.side, p.size, p.entry_price,
                                        instrument_spec(self.instruments[p.symbol]), ts=time.time())

    async def _on_execution_event(self, event: Any) -> None:
        name = type(event).__name__
        if name == "OrderTransitioned":
            self.m_order_states.inc(to_state=str(event.to_state))
        elif name == "PositionOpened":
            self.m_positions_opened.inc()
        elif name == "PositionClosed":
            net = Decimal(str(event.net_pnl))
            self.m_positions_closed.inc(result="win" if net > 0 else "loss")
            self.m_pnl.set(self.m_pnl.get() + float(net))
        if name in ("PositionOpened", "PositionChanged", "PositionClosed"):
            data = event.to_dict() if hasattr(event, "to_dict") else {"event": name}
            await self.publish("position_update", data, getattr(event, "symbol", None))
            if name == "PositionOpened" and event.entry_price and event.symbol in self.instruments:
                with contextlib.suppress(Exception):
                    self.positions.open(event.symbol, event.side, Decimal(str(event.size)),
                                        Decimal(str(event.entry_price)),
                                        instrument_spec(self.instruments[event.symbol]), ts=time.time())
            elif name == "PositionClosed":
                with contextlib.suppress(Exception):
                    self.positions.remove(event.symbol, event.side)
        self._paper_dirty.set()

    async def _on_alert(self, alert: Any) -> None:
        self.trading = False
        data = alert.to_dict() if hasattr(alert, "to_dict") else {"message": str(alert)}
        await self.publish("alert", {"level": "critical", "event": EVENTS.KILL_SWITCH_ENGAGED,
                                     "message": str(data.get("reason", data))})

    # ---- status ---------------------------------------------------------------------------------

    def feed_counts(self) -> tuple[int, int, int]:
        """(connections, connected, messages): cheap counters for the status line and health
        probes (the feed's full metrics sort every latency reservoir)."""
        conns = self.feed.connections if self.feed is not None else ()
        return len(conns), sum(1 for c in conns if c.connected), sum(c.metrics.messages for c in conns)

    def status_line(self) -> str:
        _, _, messages = self.feed_counts()
        now = time.monotonic()
        last_t, last_n = self._rate_mark
        rate = (messages - last_n) / (now - last_t) if now > last_t else 0.0
        self._rate_mark = (now, messages)
        approved = self.m_signals.get(decision="approved")
        total_signals = sum(self.m_signals.values.values())
        open_pos = len(self.positions.positions())
        return (f"[{time.strftime('%H:%M:%S')}] live {int(self._symbols_live())}/{len(self.symbols)} "
                f"| {rate:,.0f} msg/s | signals {int(total_signals)} (orders {int(approved)}) "
                f"| positions {open_pos} | realised PnL {self.m_pnl.get():+,.2f} USDT "
                f"| trading {'on' if self.trading else 'off'}")

    async def _status_loop(self) -> None:
        while True:
            await asyncio.sleep(self.status_interval)
            self._print(self.status_line())

    def _print(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    # ---- stop -----------------------------------------------------------------------------------

    def request_stop(self) -> None:
        self._stop_event.set()

    async def wait_stopped(self) -> None:
        await self._stop_event.wait()

    async def stop(self) -> None:
        """Graceful stop within about 10 s (each step bounded)."""
        if self.state in ("stopping", "stopped"):
            return
        self.state = "stopping"
        self.trading = False
        for t in self._pipelines:
            t.cancel()
        await asyncio.gather(*self._pipelines, return_exceptions=True)
        if self._server is not None:
            self._server.should_exit = True
        # Order placements already running finish (their writes are what keeps a restart
        # honest); everything else is cancelled.
        signal_tasks = [t for t in self._tasks if t.get_name().startswith(("signal-", "positions-"))]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*signal_tasks, return_exceptions=True), 4.0)
        for t in list(self._tasks):
            if t.get_name() != "api":
                t.cancel()
        await asyncio.gather(*[t for t in self._tasks if t.get_name() != "api"], return_exceptions=True)
        if self.orders is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.orders.close(), 3.0)
        with contextlib.suppress(Exception):
            self._save_paper()
        if self.feed is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.feed.close(), 2.0)
        if self.rest is not None:
            with contextlib.suppress(Exception):
                await self.rest.close()
        api = [t for t in self._tasks if t.get_name() == "api"]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*api, return_exceptions=True), 2.0)
        if self._api_socket is not None:
            self._api_socket.close()  # uvicorn closes its server; an unused bound socket is ours
        if self.sim is not None:
            await self.sim.stop()
        if self.store is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.store.aclose(), 3.0)
        if self._gc_callback in gc.callbacks:
            gc.callbacks.remove(self._gc_callback)
        self.state = "stopped"
        log.info(EVENTS.BOT_STOPPED)
        self._print("bybit-bot stopped")


__all__ = ["BotRuntime", "Endpoints", "instrument_spec", "resolve_data_dir"]
