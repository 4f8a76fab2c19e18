"""The order-book scalper: imbalance, cluster-breakout and absorption entries from native features.

Every number it reads is a feature of ``docs/features.md`` (names, units and missing rules are
there); every rule below is also written out in ``docs/strategies-and-risk.md``. A rule whose
inputs are missing does not fire: a missing value is never read as zero.

Order of work on one update of a symbol:

1. **False-signal filters** (any failing -> no signal, counted in :attr:`filter_counts`):
   book not live or a side empty; fewer than ``warmup_updates`` book updates seen; ``mid`` or
   ``spread_bps`` missing; ``spread_bps > max_spread_bps``; ``realized_vol_10s_bps >
   max_volatility_bps``; ``spoof_score_60s > max_spoof_score`` or ``layering_score_60s >
   max_layering_score`` (the book is being gamed, its imbalance and walls are not to be trusted).
2. **Rules**, each yielding at most one candidate: cluster breakout (run on every update that
   passes the filters, because it remembers levels), absorption, imbalance.
3. **Combination**: candidates on both sides -> no signal (``conflicting_rules``); otherwise the
   most confident one (ties: breakout, absorption, imbalance, in that order); below
   ``min_confidence`` -> no signal.

The signal's price reference is the exact best ask for a buy and the best bid for a sell (what a
taker would pay now). The risk manager sizes by ``confidence``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, ClassVar

from pysrc.strategy.base import (
    MarketData,
    Param,
    ParameterError,
    Side,
    Signal,
    SignalKind,
    Strategy,
)

_EPS = 1e-9  # relative tolerance when comparing prices rebuilt from float features


def _clip01(x: float) -> float:
    return 0.0 if x < 0.0 else min(x, 1.0)


@dataclass(slots=True)
class _Level:
    """A wall/support/resistance price remembered so its breach can be seen after it vanishes."""

    price: float
    seen_ts: int
    evidence: dict[str, float]


@dataclass(slots=True)
class _SymbolState:
    ask_level: _Level | None = None  # resistance above: a breach upward is a buy breakout
    bid_level: _Level | None = None  # support below: a breach downward is a sell breakout


@dataclass(slots=True)
class _Candidate:
    side: Side
    kind: SignalKind
    strength: float
    confidence: float
    reason: str
    features: dict[str, float]
    stop_price: Decimal | None = None


_KIND_ORDER = {SignalKind.CLUSTER_BREAKOUT: 0, SignalKind.ABSORPTION: 1, SignalKind.IMBALANCE: 2}


class OrderBookScalper(Strategy):
    """Order-book scalping entries; parameters and rules in the module docstring and the docs."""

    NAME: ClassVar[str] = "orderbook_scalper"
    PARAMS: ClassVar[tuple[Param, ...]] = (
        # -- filters
        Param(
            "warmup_updates", int, 50, 0, 1_000_000, doc="book updates seen before any signal (rolling windows fill)"
        ),
        Param("max_spread_bps", float, 10.0, 0.0, 10_000.0, doc="no signal while spread_bps is above this"),
        Param(
            "max_volatility_bps", float, 150.0, 0.0, 100_000.0, doc="no signal while realized_vol_10s_bps is above this"
        ),
        Param("max_spoof_score", float, 5.0, 0.0, 1e9, doc="no signal while spoof_score_60s is above this"),
        Param("max_layering_score", float, 20.0, 0.0, 1e9, doc="no signal while layering_score_60s is above this"),
        Param("min_confidence", float, 0.5, 0.0, 1.0, doc="signals below this confidence are dropped"),
        # -- imbalance
        Param("imbalance_enabled", bool, True),
        Param("imbalance_levels", int, 5, choices=(1, 5, 10, 20), doc="N of imbalance_N (top-N levels per side)"),
        Param("imbalance_buy_threshold", float, 0.75, 0.5, 1.0, doc="buy when (imbalance_N + 1) / 2 is above this"),
        Param("imbalance_sell_threshold", float, 0.25, 0.0, 0.5, doc="sell when (imbalance_N + 1) / 2 is below this"),
        Param("require_pressure_agreement", bool, True, doc="pressure_10 must have the imbalance's sign"),
        Param(
            "vol_reference_bps", float, 10.0, 1e-6, 100_000.0, doc="realized_vol_10s_bps above which thresholds widen"
        ),
        Param("vol_sensitivity", float, 0.25, 0.0, 100.0, doc="threshold margin grows by this x (vol / reference - 1)"),
        Param("max_adaptive_threshold", float, 0.95, 0.5, 0.99, doc="cap of the widened buy threshold (sell: 1 - cap)"),
        # -- cluster breakout
        Param("breakout_enabled", bool, True),
        Param(
            "breakout_min_wall_age_s", float, 10.0, 0.0, 86_400.0, doc="largest wall counts as a level from this age"
        ),
        Param("breakout_memory_s", float, 10.0, 0.1, 3_600.0, doc="how long a level is remembered after last seen"),
        Param("min_cluster_volume", float, 10_000.0, 0.0, 1e12, doc="quote volume traded in 10 s needed to confirm"),
        Param(
            "breakout_min_aggressor_ratio", float, 0.6, 0.5, 0.99, doc="share of the 10 s volume on the breakout side"
        ),
        # -- absorption
        Param("absorption_enabled", bool, True),
        Param("absorption_min_age_s", float, 10.0, 0.0, 86_400.0, doc="the wall at the touch must be this old"),
        Param(
            "absorption_min_volume_ratio", float, 1.0, 0.01, 1_000.0, doc="aggressor volume / size left at the touch"
        ),
        Param("absorption_min_trades", int, 5, 1, 1_000_000, doc="trades in 10 s (the level was hit repeatedly)"),
        Param("absorption_min_aggressor_ratio", float, 0.6, 0.5, 0.99, doc="share of the 10 s volume hitting the wall"),
        Param(
            "absorption_vwap_tolerance_bps", float, 1.0, 0.0, 1_000.0, doc="10 s VWAP may be this far beyond the wall"
        ),
        Param("absorption_max_drift_bps", float, 5.0, 0.0, 10_000.0, doc="largest adverse mid_roc_10s_bps allowed"),
        Param("absorption_stop_buffer_bps", float, 5.0, 0.0, 10_000.0, doc="stop hint this far beyond the wall"),
    )

    def __init__(self, params: Mapping[str, Any] | None = None) -> None:
        self._state: dict[str, _SymbolState] = {}
        self.filter_counts: Counter[str] = Counter()
        super().__init__(params)

    # ---- parameters ----------------------------------------------------------------------------

    def _check_parameters(self, params: Mapping[str, Any]) -> None:
        if not params["imbalance_buy_threshold"] > 0.5:
            raise ParameterError("imbalance_buy_threshold", "must be > 0.5 (0.5 is a balanced book)")
        if not params["imbalance_sell_threshold"] < 0.5:
            raise ParameterError("imbalance_sell_threshold", "must be < 0.5 (0.5 is a balanced book)")
        cap = params["max_adaptive_threshold"]
        if cap < params["imbalance_buy_threshold"]:
            raise ParameterError("max_adaptive_threshold", "must be >= imbalance_buy_threshold")
        if 1.0 - cap > params["imbalance_sell_threshold"]:
            raise ParameterError(
                "max_adaptive_threshold", "1 - max_adaptive_threshold must be <= imbalance_sell_threshold"
            )

    def reset(self) -> None:
        self._state.clear()
        self.filter_counts.clear()

    # ---- analysis ------------------------------------------------------------------------------

    def analyze(self, symbol: str, market_data: MarketData) -> Signal | None:
        md = market_data
        p = self._params
        if not md.live:
            self._filtered("book_not_live")
            return None
        if md.best_bid is None or md.best_ask is None:
            self._filtered("book_side_empty")
            return None
        if md.updates < p["warmup_updates"]:
            self._filtered("warming_up")
            return None
        core = md.present("mid", "spread_bps")
        if core is None:
            self._filtered("missing_features")
            return None
        if core["spread_bps"] > p["max_spread_bps"]:
            self._filtered("spread_too_wide")
            return None
        vol = md.feature("realized_vol_10s_bps")
        if vol is not None and vol > p["max_volatility_bps"]:
            self._filtered("volatility_too_high")
            return None
        spoof = md.feature("spoof_score_60s") or 0.0
        layering = md.feature("layering_score_60s") or 0.0
        if spoof > p["max_spoof_score"] or layering > p["max_layering_score"]:
            self._filtered("manipulation")
            return None

        candidates: list[_Candidate] = []
        if p["breakout_enabled"]:
            c = self._breakout(symbol, md, core["mid"])
            if c is not None:
                candidates.append(c)
        if p["absorption_enabled"]:
            c = self._absorption(md)
            if c is not None:
                candidates.append(c)
        if p["imbalance_enabled"]:
            c = self._imbalance(md, vol)
            if c is not None:
                candidates.append(c)
        if not candidates:
            return None
        if len({c.side for c in candidates}) > 1:
            self._filtered("conflicting_rules")
            return None
        best = min(candidates, key=lambda c: (-c.confidence, _KIND_ORDER[c.kind]))
        if best.confidence < p["min_confidence"]:
            self._filtered("low_confidence")
            return None
        best.features.setdefault("spread_bps", core["spread_bps"])
        best.features.setdefault("mid", core["mid"])
        if vol is not None:
            best.features.setdefault("realized_vol_10s_bps", vol)
        return Signal(
            symbol=symbol,
            side=best.side,
            kind=best.kind,
            strength=best.strength,
            confidence=best.confidence,
            price=md.best_ask if best.side is Side.BUY else md.best_bid,
            ts=md.ts,
            strategy=self.NAME,
            reason=best.reason,
            features=best.features,
            stop_price=best.stop_price,
        )

    def _filtered(self, why: str) -> None:
        self.filter_counts[why] += 1

    # ---- rule 1: imbalance ---------------------------------------------------------------------

    def thresholds(self, vol_bps: float | None) -> tuple[float, float]:
        """The effective (buy, sell) thresholds on the normalised imbalance for a volatility.

        Volatility widens both margins from 0.5 by the same factor
        ``1 + vol_sensitivity * max(0, vol / vol_reference_bps - 1)``, capped at
        ``max_adaptive_threshold`` (sell: ``1 - cap``). A missing volatility (no return in 10 s: a
        quiet book) leaves the configured thresholds unchanged."""
        p = self._params
        scale = 1.0
        if vol_bps is not None:
            scale += p["vol_sensitivity"] * max(0.0, vol_bps / p["vol_reference_bps"] - 1.0)
        cap = p["max_adaptive_threshold"]
        buy = min(0.5 + (p["imbalance_buy_threshold"] - 0.5) * scale, cap)
        sell = max(0.5 - (0.5 - p["imbalance_sell_threshold"]) * scale, 1.0 - cap)
        return buy, sell

    def _imbalance(self, md: MarketData, vol: float | None) -> _Candidate | None:
        p = self._params
        name = f"imbalance_{p['imbalance_levels']}"
        imb = md.feature(name)
        if imb is None:
            return None
        norm = (imb + 1.0) / 2.0
        buy_t, sell_t = self.thresholds(vol)
        if norm > buy_t:
            side, excess, t = Side.BUY, (norm - buy_t) / (1.0 - buy_t), buy_t
        elif norm < sell_t:
            side, excess, t = Side.SELL, (sell_t - norm) / sell_t, sell_t
        else:
            return None
        feats = {name: imb, "imbalance_normalized": norm, "threshold_effective": t}
        if p["require_pressure_agreement"]:
            pressure = md.feature("pressure_10")
            if pressure is None or pressure * side.sign <= 0.0:
                self._filtered("pressure_disagrees")
                return None
            feats["pressure_10"] = pressure
        cmp = ">" if side is Side.BUY else "<"
        return _Candidate(
            side=side,
            kind=SignalKind.IMBALANCE,
            strength=_clip01(abs(imb)),
            confidence=_clip01(0.5 + 0.5 * excess),
            reason=f"{name} normalised {norm:.4f} {cmp} threshold {t:.4f}",
            features=feats,
        )

    # ---- rule 2: cluster breakout --------------------------------------------------------------

    def _breakout(self, symbol: str, md: MarketData, mid: float) -> _Candidate | None:
        """Remember the nearest resistance/support level; fire when the book trades through it.

        Levels: above the mid, ``resistance_dist_bps`` (an ask wall at every update for >= 30 s)
        and the largest ask wall when ``wall_ask_age_s >= breakout_min_wall_age_s``; the lowest of
        them is remembered (price = mid * (1 + dist / 1e4)). Below, the same with support and the
        bid wall; the highest is remembered. A remembered level is forgotten ``breakout_memory_s``
        after it was last seen, or when it fires.

        Breakout up: the best ask is above the remembered ask level (every ask at or below it is
        gone), and in the last 10 s ``trade_volume_10s * mid >= min_cluster_volume`` with
        ``buy_ratio_10s >= breakout_min_aggressor_ratio``. Down: the best bid below the support
        level with ``1 - buy_ratio_10s`` at least the ratio. A breached level waits (for the
        trades that often arrive just after the book update) until it confirms or expires, and is
        not replaced by a new level meanwhile.
        """
        p = self._params
        st = self._state.setdefault(symbol, _SymbolState())
        memory_ms = p["breakout_memory_s"] * 1000.0
        now = md.ts
        assert md.best_bid is not None and md.best_ask is not None
        best_ask = float(md.best_ask)
        best_bid = float(md.best_bid)

        fired: _Candidate | None = None
        ask_breached = bid_breached = False
        if st.ask_level is not None:
            if now - st.ask_level.seen_ts > memory_ms:
                st.ask_level = None
            elif best_ask > st.ask_level.price * (1.0 + _EPS):
                ask_breached = True
                fired = self._confirm_breakout(md, mid, Side.BUY, st.ask_level)
                if fired is not None:
                    st.ask_level = None
                    ask_breached = False
        if st.bid_level is not None:
            if now - st.bid_level.seen_ts > memory_ms:
                st.bid_level = None
            elif best_bid < st.bid_level.price * (1.0 - _EPS):
                bid_breached = True
                down = self._confirm_breakout(md, mid, Side.SELL, st.bid_level)
                if down is not None:
                    st.bid_level = None
                    bid_breached = False
                    # Both sides breaking at once means the book jumped over both levels: no view.
                    fired = None if fired is not None else down

        if not ask_breached:
            level = self._nearest_level(md, mid, "ask", p["breakout_min_wall_age_s"])
            if level is not None:
                st.ask_level = _Level(level[0], now, level[1])
        if not bid_breached:
            level = self._nearest_level(md, mid, "bid", p["breakout_min_wall_age_s"])
            if level is not None:
                st.bid_level = _Level(level[0], now, level[1])
        return fired

    @staticmethod
    def _nearest_level(
        md: MarketData, mid: float, side: str, min_age_s: float
    ) -> tuple[float, dict[str, float]] | None:
        sign = 1.0 if side == "ask" else -1.0
        found: list[tuple[float, dict[str, float]]] = []
        persistent = md.feature("resistance_dist_bps" if side == "ask" else "support_dist_bps")
        if persistent is not None:
            name = "resistance_dist_bps" if side == "ask" else "support_dist_bps"
            found.append((mid * (1.0 + sign * persistent / 1e4), {name: persistent}))
        wall = md.present(f"wall_{side}_dist_bps", f"wall_{side}_age_s", f"wall_{side}_size_ratio")
        if wall is not None and wall[f"wall_{side}_age_s"] >= min_age_s:
            found.append((mid * (1.0 + sign * wall[f"wall_{side}_dist_bps"] / 1e4), wall))
        if not found:
            return None
        # Nearest to the mid: the lowest ask level / the highest bid level.
        return min(found, key=lambda f: sign * f[0])

    def _confirm_breakout(self, md: MarketData, mid: float, side: Side, level: _Level) -> _Candidate | None:
        p = self._params
        flow = md.present("trade_volume_10s", "buy_ratio_10s", "volume_delta_10s")
        if flow is None:
            return None
        ratio = flow["buy_ratio_10s"] if side is Side.BUY else 1.0 - flow["buy_ratio_10s"]
        notional = flow["trade_volume_10s"] * mid
        min_ratio, min_notional = p["breakout_min_aggressor_ratio"], p["min_cluster_volume"]
        if ratio < min_ratio or notional < min_notional:
            return None
        flow_excess = _clip01((ratio - min_ratio) / (1.0 - min_ratio))
        volume_excess = 1.0 if min_notional <= 0 else _clip01((notional / min_notional - 1.0) / 2.0)
        feats = dict(level.evidence)
        feats.update(flow)
        feats["level_price"] = level.price
        feats["level_age_ms"] = float(md.ts - level.seen_ts)
        feats["trade_notional_10s"] = notional
        word = "resistance" if side is Side.BUY else "support"
        return _Candidate(
            side=side,
            kind=SignalKind.CLUSTER_BREAKOUT,
            strength=_clip01(ratio),
            confidence=_clip01(0.5 + 0.25 * flow_excess + 0.25 * volume_excess),
            reason=f"{word} {level.price:.8g} broken with {notional:.0f} quote traded in 10 s, {ratio:.0%} aggressor",
            features=feats,
        )

    # ---- rule 3: absorption --------------------------------------------------------------------

    def _absorption(self, md: MarketData) -> _Candidate | None:
        """A large level at the touch traded into repeatedly without disappearing.

        Bid absorption (-> buy): the largest bid wall is the best bid (``wall_bid_dist_bps`` equals
        ``spread_bps / 2``), it has been a wall for ``wall_bid_age_s >= absorption_min_age_s``
        (so it stood through the whole 10 s trade window), the sell volume of the last 10 s,
        ``(trade_volume_10s - volume_delta_10s) / 2``, is at least ``absorption_min_volume_ratio``
        x ``bid_size_1`` (it absorbed at least what is still shown: it is being refilled),
        ``trade_count_10s >= absorption_min_trades``, sellers are ``1 - buy_ratio_10s >=
        absorption_min_aggressor_ratio`` of the volume, the trades happened at the wall and not
        through it (``trade_vwap_dev_bps >= -(wall_bid_dist_bps + absorption_vwap_tolerance_bps)``)
        and the price held (``mid_roc_10s_bps >= -absorption_max_drift_bps``). Ask absorption
        (-> sell) is the mirror image with buyers lifting an ask wall.
        """
        for side in (Side.BUY, Side.SELL):
            c = self._absorption_side(md, side)
            if c is not None:
                return c  # both at once is impossible: the aggressor-ratio tests exclude each other
        return None

    def _absorption_side(self, md: MarketData, side: Side) -> _Candidate | None:
        p = self._params
        book_side = "bid" if side is Side.BUY else "ask"
        f = md.present(
            f"wall_{book_side}_dist_bps",
            f"wall_{book_side}_age_s",
            f"wall_{book_side}_size_ratio",
            f"{book_side}_size_1",
            "spread_bps",
            "trade_volume_10s",
            "volume_delta_10s",
            "trade_count_10s",
            "buy_ratio_10s",
            "trade_vwap_dev_bps",
            "mid_roc_10s_bps",
        )
        if f is None:
            return None
        dist = f[f"wall_{book_side}_dist_bps"]
        half_spread = f["spread_bps"] / 2.0
        if abs(dist - half_spread) > _EPS * max(1.0, half_spread):
            return None  # the wall is not at the touch
        if f[f"wall_{book_side}_age_s"] < p["absorption_min_age_s"]:
            return None
        volume, delta = f["trade_volume_10s"], f["volume_delta_10s"]
        hitting = (volume - delta) / 2.0 if side is Side.BUY else (volume + delta) / 2.0
        shown = f[f"{book_side}_size_1"]
        if shown <= 0.0:
            return None
        absorbed = hitting / shown
        min_ratio = p["absorption_min_volume_ratio"]
        if absorbed < min_ratio:
            return None
        if f["trade_count_10s"] < p["absorption_min_trades"]:
            return None
        aggressor = 1.0 - f["buy_ratio_10s"] if side is Side.BUY else f["buy_ratio_10s"]
        if aggressor < p["absorption_min_aggressor_ratio"]:
            return None
        # Trades at the wall, not through it: their VWAP is on the wall's side of it (with tolerance).
        vwap_dev = f["trade_vwap_dev_bps"]
        limit = dist + p["absorption_vwap_tolerance_bps"]
        if (side is Side.BUY and vwap_dev < -limit) or (side is Side.SELL and vwap_dev > limit):
            return None
        if f["mid_roc_10s_bps"] * side.sign < -p["absorption_max_drift_bps"]:
            return None
        buffer = Decimal(repr(p["absorption_stop_buffer_bps"])) / Decimal(10_000)
        assert md.best_bid is not None and md.best_ask is not None
        stop = md.best_bid * (1 - buffer) if side is Side.BUY else md.best_ask * (1 + buffer)
        feats = dict(f)
        feats["absorbed_ratio"] = absorbed
        return _Candidate(
            side=side,
            kind=SignalKind.ABSORPTION,
            strength=_clip01(absorbed / (4.0 * min_ratio)),
            confidence=_clip01(0.5 + 0.5 * (absorbed / min_ratio - 1.0) / 3.0),
            reason=(
                f"{book_side} wall at the touch absorbed {absorbed:.2f}x its shown size in 10 s "
                f"({int(f['trade_count_10s'])} trades, {aggressor:.0%} aggressor)"
            ),
            features=feats,
            stop_price=stop if stop > 0 else None,
        )


__all__ = ["OrderBookScalper"]
