//! One symbol's feature state: everything needed to bring the whole vector up to date after a
//! book update in time independent of history length (windows are bounded rings and deques).

use std::collections::VecDeque;
use std::sync::Arc;

use super::schema::{F, N_FEATURES};
use super::trades::{Trade, TradeFlow};
use super::walls::{find_walls, Detection, Side, SideWalls, WallAt, WallTracker, DETECTION_WINDOW_MS, WALL_LEVELS};
use super::moments::Moments;
use super::temporal::{TemporalSpec, TemporalState};
use super::window::Ring;
use crate::book::L2Book;
use crate::decimal::POW10;

const UPDATE_WINDOW: usize = 100;
const TTL_WINDOW: usize = 100;
const TTL_TOP_RANK: usize = 20;
const TOP: usize = 50;
const IMPACT_QUOTE: f64 = 10_000.0;
const VOLUME_EW_ALPHA: f64 = 0.01;
/// Exponential weight of the running z-scores (about 1,000 updates).
pub const NORM_ALPHA: f64 = 0.001;
const Z_CLIP: f64 = 10.0;

/// A sum over a sliding time window without subtraction (two stacks): when values leave the
/// window nothing is subtracted, so no rounding residue survives them (a window of zeros sums
/// to exactly 0). Amortized O(1) per value.
#[derive(Debug, Clone, Default)]
struct SlidingSum {
    /// Newest values, in arrival order, with their plain running total.
    back: Vec<(i64, f64)>,
    back_sum: f64,
    /// Oldest values, newest first (so `pop` yields the oldest), each with the total of itself
    /// and every newer value in `front`.
    front: Vec<(i64, f64, f64)>,
}

impl SlidingSum {
    fn push(&mut self, ts: i64, x: f64) {
        self.back.push((ts, x));
        self.back_sum += x;
    }

    /// Drop values with `ts <= cut`.
    fn drop_until(&mut self, cut: i64) {
        loop {
            if self.front.is_empty() {
                if self.back.first().is_none_or(|v| v.0 > cut) {
                    return;
                }
                let mut acc = 0.0;
                for &(ts, x) in self.back.iter().rev() {
                    acc += x;
                    self.front.push((ts, x, acc));
                }
                self.back.clear();
                self.back_sum = 0.0;
            }
            match self.front.last() {
                Some(v) if v.0 <= cut => {
                    self.front.pop();
                }
                _ => return,
            }
        }
    }

    fn sum(&self) -> Option<f64> {
        if self.front.is_empty() && self.back.is_empty() {
            return None;
        }
        Some(self.front.last().map_or(0.0, |v| v.2) + self.back_sum)
    }
}

/// Shifted co-moments of paired values, for the correlation.
#[derive(Debug, Clone, Copy, Default)]
struct CoMoments {
    n: usize,
    kx: f64,
    ky: f64,
    sx: f64,
    sy: f64,
    sxx: f64,
    syy: f64,
    sxy: f64,
}

impl CoMoments {
    #[inline]
    fn add(&mut self, x: f64, y: f64, sign: f64) {
        if sign > 0.0 && self.n == 0 {
            *self = CoMoments { kx: x, ky: y, ..CoMoments::default() };
        }
        let (dx, dy) = (x - self.kx, y - self.ky);
        self.sx += sign * dx;
        self.sy += sign * dy;
        self.sxx += sign * dx * dx;
        self.syy += sign * dy * dy;
        self.sxy += sign * dx * dy;
        if sign > 0.0 {
            self.n += 1;
        } else {
            self.n -= 1;
            if self.n == 0 {
                *self = CoMoments { kx: self.kx, ky: self.ky, ..CoMoments::default() };
            }
        }
    }

    fn rebuild(&mut self, pairs: impl Iterator<Item = (f64, f64)> + Clone) {
        let (n, sx, sy) = pairs.clone().fold((0usize, 0.0, 0.0), |(n, a, b), (x, y)| (n + 1, a + x, b + y));
        let (kx, ky) = if n > 0 { (sx / n as f64, sy / n as f64) } else { (0.0, 0.0) };
        *self = CoMoments { kx, ky, ..CoMoments::default() };
        for (x, y) in pairs {
            self.add(x, y, 1.0);
        }
    }

    fn corr(&self) -> Option<f64> {
        if self.n < 3 {
            return None;
        }
        let n = self.n as f64;
        let (mx, my) = (self.sx / n, self.sy / n);
        let vx = self.sxx / n - mx * mx;
        let vy = self.syy / n - my * my;
        if vx <= 0.0 || vy <= 0.0 {
            return None;
        }
        Some((self.sxy / n - mx * my) / (vx * vy).sqrt())
    }
}

/// The last 100 updates as columns (NaN = missing), oldest first once full: tight, predictable
/// loops for the window statistics.
#[derive(Debug, Clone)]
struct Columns {
    len: usize,
    head: usize,
    /// Pushes since the last exact recompute of the running statistics.
    since_rebuild: usize,
    ofi_sum: f64,
    m_depth: Moments,
    m_imb: Moments,
    m_spread: Moments,
    m_ret: Moments,
    m_pair: CoMoments,
    /// The window's returns in order, and the sums of 10 consecutive ones with their moments.
    rets: VecDeque<f64>,
    sums10: VecDeque<f64>,
    sum10: Moments,
    ofi: [f64; UPDATE_WINDOW],
    depth1: [f64; UPDATE_WINDOW],
    ret: [f64; UPDATE_WINDOW],
    imb5: [f64; UPDATE_WINDOW],
    spread: [f64; UPDATE_WINDOW],
    px: [f64; UPDATE_WINDOW],
    py: [f64; UPDATE_WINDOW],
}

impl Columns {
    fn new() -> Self {
        let nan = [f64::NAN; UPDATE_WINDOW];
        Columns {
            len: 0,
            head: 0,
            since_rebuild: 0,
            ofi_sum: 0.0,
            m_depth: Moments::default(),
            m_imb: Moments::default(),
            m_spread: Moments::default(),
            m_ret: Moments::default(),
            m_pair: CoMoments::default(),
            rets: VecDeque::with_capacity(UPDATE_WINDOW),
            sums10: VecDeque::with_capacity(UPDATE_WINDOW),
            sum10: Moments::default(),
            ofi: nan,
            depth1: nan,
            ret: nan,
            imb5: nan,
            spread: nan,
            px: nan,
            py: nan,
        }
    }

    /// Take the value in slot `i` out of the running statistics (it is leaving the window).
    fn retire(&mut self, i: usize) {
        self.ofi_sum -= self.ofi[i];
        if !self.depth1[i].is_nan() {
            self.m_depth.remove(self.depth1[i]);
        }
        if !self.imb5[i].is_nan() {
            self.m_imb.remove(self.imb5[i]);
        }
        if !self.spread[i].is_nan() {
            self.m_spread.remove(self.spread[i]);
        }
        if !self.px[i].is_nan() {
            self.m_pair.add(self.px[i], self.py[i], -1.0);
        }
        if !self.ret[i].is_nan() {
            // The oldest return leaves: so does the oldest sum of 10 that starts with it.
            self.m_ret.remove(self.ret[i]);
            if self.rets.len() >= 10 {
                let s = self.sums10.pop_front().expect("a sum per 10 returns");
                self.sum10.remove(s);
            }
            self.rets.pop_front();
        }
    }

    /// Recompute every running statistic exactly from the window.
    fn rebuild(&mut self) {
        let order: Vec<usize> = self.order().collect();
        self.ofi_sum = order.iter().map(|&i| self.ofi[i]).sum();
        let col = |c: &[f64; UPDATE_WINDOW]| {
            let v: Vec<f64> = order.iter().map(|&i| c[i]).filter(|x| !x.is_nan()).collect();
            v
        };
        let (d, m, sp, r) = (col(&self.depth1), col(&self.imb5), col(&self.spread), col(&self.ret));
        self.m_depth.rebuild(d.iter().copied());
        self.m_imb.rebuild(m.iter().copied());
        self.m_spread.rebuild(sp.iter().copied());
        self.m_ret.rebuild(r.iter().copied());
        let pairs: Vec<(f64, f64)> = order.iter().filter(|&&i| !self.px[i].is_nan()).map(|&i| (self.px[i], self.py[i])).collect();
        self.m_pair.rebuild(pairs.iter().copied());
        self.rets = r.iter().copied().collect();
        self.sums10 = r.windows(10).map(|w| w.iter().sum()).collect();
        self.sum10.rebuild(self.sums10.iter().copied());
        self.since_rebuild = 0;
    }

    #[allow(clippy::too_many_arguments)]
    fn push(&mut self, ofi: f64, depth1: f64, ret: f64, imb5: f64, spread: f64, pair: Option<(f64, f64)>) {
        let i = self.head;
        if self.len == UPDATE_WINDOW {
            self.retire(i);
        }
        self.ofi_sum += ofi;
        if !depth1.is_nan() {
            self.m_depth.add(depth1);
        }
        if !imb5.is_nan() {
            self.m_imb.add(imb5);
        }
        if !spread.is_nan() {
            self.m_spread.add(spread);
        }
        if let Some((x, y)) = pair {
            self.m_pair.add(x, y, 1.0);
        }
        if !ret.is_nan() {
            self.m_ret.add(ret);
            self.rets.push_back(ret);
            if self.rets.len() >= 10 {
                let s: f64 = self.rets.iter().rev().take(10).sum();
                self.sums10.push_back(s);
                self.sum10.add(s);
            }
        }
        self.ofi[i] = ofi;
        self.depth1[i] = depth1;
        self.ret[i] = ret;
        self.imb5[i] = imb5;
        self.spread[i] = spread;
        let (x, y) = pair.unwrap_or((f64::NAN, f64::NAN));
        self.px[i] = x;
        self.py[i] = y;
        self.head = (self.head + 1) % UPDATE_WINDOW;
        self.len = (self.len + 1).min(UPDATE_WINDOW);
        self.since_rebuild += 1;
        if self.since_rebuild >= UPDATE_WINDOW {
            self.rebuild();
        }
    }

    /// Slot indices oldest to newest, as two plain ranges (no division per element).
    #[inline]
    fn order(&self) -> std::iter::Chain<std::ops::Range<usize>, std::ops::Range<usize>> {
        if self.len < UPDATE_WINDOW {
            (0..self.len).chain(0..0)
        } else {
            (self.head..UPDATE_WINDOW).chain(0..self.head)
        }
    }
}

#[inline(always)]
fn opt(x: Option<f64>) -> f64 {
    x.unwrap_or(f64::NAN)
}

#[derive(Debug, Clone, Copy)]
struct TimePoint {
    ts: i64,
    mid: Option<f64>,
    roc1s: Option<f64>,
}

/// The top of one side as the book's fixed-point integers, best first.
#[derive(Debug, Clone, Default)]
struct Top {
    px: Vec<i64>,
    sz: Vec<i64>,
}

#[derive(Debug, Clone)]
pub struct SymbolFeatures {
    /// The base features (`N_FEATURES`) followed by the configured temporal ones.
    values: Vec<f64>,
    present: Vec<bool>,
    updates: u64,
    ew_mean: Vec<f64>,
    ew_var: Vec<f64>,
    ew_seen: Vec<bool>,
    temporal: Arc<[TemporalSpec]>,
    temporal_state: Vec<TemporalState>,
    prev_top: Option<(f64, f64, f64, f64)>,
    prev_mid: Option<f64>,
    prev_ref_mid: Option<f64>,
    cols: Box<Columns>,
    times: VecDeque<TimePoint>,
    rv: SlidingSum,
    ttl: Ring<f64>,
    vol_mean: f64,
    vol_var: f64,
    vol_n: u64,
    pub flow: TradeFlow,
    bid_walls: WallTracker,
    ask_walls: WallTracker,
    detections: Vec<Detection>,
    pub ext_mid: Option<f64>,
    bids: Top,
    asks: Top,
    scratch: Vec<i64>,
    bw: SideWalls,
    aw: SideWalls,
    /// The top-50 sizes `bw` / `aw` were found from: walls depend on the sizes alone, and an
    /// update often leaves one side's top 50 untouched, so that side is not searched again.
    walls_sz: [Vec<i64>; 2],
    wall_list: Vec<WallAt>,
}

impl Default for SymbolFeatures {
    fn default() -> Self {
        SymbolFeatures::new(Arc::from(Vec::new()))
    }
}

impl SymbolFeatures {
    /// A fresh state computing the base features plus `temporal`.
    pub fn new(temporal: Arc<[TemporalSpec]>) -> Self {
        let n = N_FEATURES + temporal.len();
        SymbolFeatures {
            values: vec![0.0; n],
            present: vec![false; n],
            updates: 0,
            ew_mean: vec![0.0; n],
            ew_var: vec![0.0; n],
            ew_seen: vec![false; n],
            temporal_state: vec![TemporalState::default(); temporal.len()],
            temporal,
            prev_top: None,
            prev_mid: None,
            prev_ref_mid: None,
            cols: Box::new(Columns::new()),
            times: VecDeque::new(),
            rv: SlidingSum::default(),
            ttl: Ring::new(TTL_WINDOW),
            vol_mean: 0.0,
            vol_var: 0.0,
            vol_n: 0,
            flow: TradeFlow::default(),
            bid_walls: WallTracker::new(Side::Bid),
            ask_walls: WallTracker::new(Side::Ask),
            detections: Vec::new(),
            ext_mid: None,
            bids: Top::default(),
            asks: Top::default(),
            scratch: Vec::with_capacity(TOP),
            bw: SideWalls::default(),
            aw: SideWalls::default(),
            walls_sz: [Vec::with_capacity(WALL_LEVELS), Vec::with_capacity(WALL_LEVELS)],
            wall_list: Vec::with_capacity(TOP),
        }
    }
}

fn fill_top(top: &mut Top, book: &L2Book, bids: bool) {
    top.px.clear();
    top.sz.clear();
    let lad = if bids { &book.bids } else { &book.asks };
    for l in lad.iter_best().take(TOP) {
        top.px.push(l.px);
        top.sz.push(l.sz);
    }
}

#[inline]
fn sum_i(v: &[i64], n: usize) -> i128 {
    v.iter().take(n).map(|&x| x as i128).sum()
}

/// Total size of the levels within 10 bps of mid, decided exactly in integers:
/// bids with `p >= mid * 0.999` (`2000 p >= 999 (bb + ba)`), asks with `p <= mid * 1.001`
/// (`2000 p <= 1001 (bb + ba)`). The band is a prefix of the side (sorted from best).
fn band_size(book: &L2Book, bids: bool, mid2: i128) -> i128 {
    let lad = if bids { &book.bids } else { &book.asks };
    let mut total: i128 = 0;
    for l in lad.iter_best() {
        let p2000 = 2000 * l.px as i128;
        let inside = if bids { p2000 >= 999 * mid2 } else { p2000 <= 1001 * mid2 };
        if !inside {
            break;
        }
        total += l.sz as i128;
    }
    total
}

/// VWAP of taking `quote` notional from a side (best first), or None if the side holds less.
fn impact_vwap(book: &L2Book, bids: bool, quote: f64) -> Option<f64> {
    let lad = if bids { &book.bids } else { &book.asks };
    let (mut cost, mut qty) = (0.0, 0.0);
    for l in lad.iter_best() {
        let (p, s) = (book.px_f64(l), book.sz_f64(l));
        let level_cost = p * s;
        if cost + level_cost >= quote {
            let q = (quote - cost) / p;
            return Some((cost + q * p) / (qty + q));
        }
        cost += level_cost;
        qty += s;
    }
    None
}

impl SymbolFeatures {
    #[inline]
    fn set(&mut self, f: F, v: Option<f64>) {
        let i = f as usize;
        match v {
            Some(x) if x.is_finite() => {
                self.values[i] = x;
                self.present[i] = true;
            }
            _ => {
                self.values[i] = 0.0;
                self.present[i] = false;
            }
        }
    }

    pub fn updates(&self) -> u64 {
        self.updates
    }

    pub fn on_trade(&mut self, t: Trade) {
        self.flow.on_trade(t);
        self.bid_walls.on_trade(t.px, t.ts);
        self.ask_walls.on_trade(t.px, t.ts);
    }

    /// Current mid, if both sides were present at the last update.
    pub fn mid(&self) -> Option<f64> {
        self.present[F::Mid as usize].then(|| self.values[F::Mid as usize])
    }

    /// Recompute the vector after an applied book message at `now`.
    /// `reference`: `None` when no reference symbol is set or this is it, else its current mid.
    pub fn on_book(&mut self, book: &L2Book, now: i64, reference: Option<Option<f64>>) {
        self.updates += 1;
        let mut bids = std::mem::take(&mut self.bids);
        let mut asks = std::mem::take(&mut self.asks);
        fill_top(&mut bids, book, true);
        fill_top(&mut asks, book, false);
        let both = !bids.px.is_empty() && !asks.px.is_empty();

        let p10 = POW10[book.px_scale as usize] as f64;
        let s10 = POW10[book.sz_scale as usize] as f64;
        let pf = |x: i64| x as f64 / p10;
        let sf = |x: i128| x as f64 / s10;
        self.set(F::BestBid, bids.px.first().map(|&x| pf(x)));
        self.set(F::BestAsk, asks.px.first().map(|&x| pf(x)));
        self.set(F::BidLevels, Some(book.bids.len() as f64));
        self.set(F::AskLevels, Some(book.asks.len() as f64));

        let mut mid = None;
        let mut imb5 = None;
        let mut spread_bps = None;
        let mut ofi = None;
        let mut ret = None;
        if both {
            let (bb, ba) = (pf(bids.px[0]), pf(asks.px[0]));
            let (bs1, as1) = (sf(bids.sz[0] as i128), sf(asks.sz[0] as i128));
            // Mid and spread from the integers, rounded once: an unchanged mid is the same float
            // whichever quotes produced it, so it never shows up as a tiny return.
            let mid2 = bids.px[0] as i128 + asks.px[0] as i128;
            let m = mid2 as f64 / (2.0 * p10);
            let spread = (asks.px[0] - bids.px[0]) as f64 / p10;
            mid = Some(m);
            spread_bps = Some((asks.px[0] - bids.px[0]) as f64 / mid2 as f64 * 2e4);
            let micro = (bb * as1 + ba * bs1) / (bs1 + as1);
            self.set(F::Mid, Some(m));
            self.set(F::Spread, Some(spread));
            self.set(F::SpreadBps, spread_bps);
            self.set(F::Microprice, Some(micro));
            self.set(F::MicropriceOffsetBps, Some((micro - m) / m * 1e4));
            self.set(F::BidSize1, Some(bs1));
            self.set(F::AskSize1, Some(as1));
            // Both sides share the size scale, so the ratios need no conversion.
            for (f, n) in [(F::Imbalance1, 1), (F::Imbalance5, 5), (F::Imbalance10, 10), (F::Imbalance20, 20)] {
                let (b, a) = (sum_i(&bids.sz, n), sum_i(&asks.sz, n));
                let v = (b - a) as f64 / (b + a) as f64;
                if n == 5 {
                    imb5 = Some(v);
                }
                self.set(f, Some(v));
            }
            self.set(F::BidDepth5, Some(sf(sum_i(&bids.sz, 5))));
            self.set(F::AskDepth5, Some(sf(sum_i(&asks.sz, 5))));
            self.set(F::BidDepth20, Some(sf(sum_i(&bids.sz, 20))));
            self.set(F::AskDepth20, Some(sf(sum_i(&asks.sz, 20))));
            let notional = |t: &Top| -> f64 {
                let exact: i128 = t.px.iter().zip(&t.sz).take(10).map(|(&p, &s)| p as i128 * s as i128).sum();
                exact as f64 / (p10 * s10)
            };
            self.set(F::BidNotional10, Some(notional(&bids)));
            self.set(F::AskNotional10, Some(notional(&asks)));
            self.set(F::ImpactBuyBps, impact_vwap(book, false, IMPACT_QUOTE).map(|v| (v - m) / m * 1e4));
            self.set(F::ImpactSellBps, impact_vwap(book, true, IMPACT_QUOTE).map(|v| (m - v) / m * 1e4));
            self.set(F::DensityBid10Bps, Some(sf(band_size(book, true, mid2))));
            self.set(F::DensityAsk10Bps, Some(sf(band_size(book, false, mid2))));
            let (mut num, mut den) = (0.0, 0.0);
            for k in 0..10 {
                let w = 1.0 / (k + 1) as f64;
                let b = bids.sz.get(k).copied().unwrap_or(0) as f64;
                let a = asks.sz.get(k).copied().unwrap_or(0) as f64;
                num += w * (b - a);
                den += w * (b + a);
            }
            self.set(F::Pressure10, Some(num / den));
            if let Some((pbb, pbs, pba, pas)) = self.prev_top {
                let mut e = 0.0;
                if bb >= pbb {
                    e += bs1;
                }
                if bb <= pbb {
                    e -= pbs;
                }
                if ba <= pba {
                    e -= as1;
                }
                if ba >= pba {
                    e += pas;
                }
                ofi = Some(e);
            }
            if let Some(pm) = self.prev_mid {
                ret = Some((m / pm).ln() * 1e4);
            }
            self.prev_top = Some((bb, bs1, ba, as1));
        } else {
            for f in [
                F::Mid, F::Spread, F::SpreadBps, F::Microprice, F::MicropriceOffsetBps, F::BidSize1, F::AskSize1,
                F::Imbalance1, F::Imbalance5, F::Imbalance10, F::Imbalance20, F::BidDepth5, F::AskDepth5,
                F::BidDepth20, F::AskDepth20, F::BidNotional10, F::AskNotional10, F::ImpactBuyBps,
                F::ImpactSellBps, F::DensityBid10Bps, F::DensityAsk10Bps, F::Pressure10,
            ] {
                self.set(f, None);
            }
            self.prev_top = None;
        }
        self.set(F::Ofi, ofi);

        // ---- cross-symbol pair for the correlation --------------------------------------
        let pair = match reference {
            Some(ref_now) => {
                let y = match (ref_now, self.prev_ref_mid) {
                    (Some(r), Some(pr)) => Some((r / pr).ln() * 1e4),
                    _ => None,
                };
                self.prev_ref_mid = ref_now;
                match (ret, y) {
                    (Some(x), Some(y)) => Some((x, y)),
                    _ => None,
                }
            }
            None => {
                self.prev_ref_mid = None;
                None
            }
        };

        // ---- 100-update windows ---------------------------------------------------------
        let depth1 = if both { sf(bids.sz[0] as i128) + sf(asks.sz[0] as i128) } else { f64::NAN };
        self.cols.push(ofi.unwrap_or(0.0), depth1, opt(ret), opt(imb5), opt(spread_bps), pair);
        let c = &self.cols;
        let ofi_sum = c.ofi_sum;
        let depth_mean = c.m_depth.mean();
        let (rm, rs, rk) = (c.m_ret.mean(), c.m_ret.std(), c.m_ret.skew());
        let vr = if c.rets.len() >= 20 {
            match (c.m_ret.var(), c.sum10.var()) {
                (Some(v1), Some(v10)) if v1 > 0.0 => Some(v10 / (10.0 * v1)),
                _ => None,
            }
        } else {
            None
        };
        let (im, is, sm, corr) = (c.m_imb.mean(), c.m_imb.std(), c.m_spread.mean(), c.m_pair.corr());
        self.set(F::OfiSum100, both.then_some(ofi_sum));
        self.set(F::OfiNorm100, if both { depth_mean.map(|d| ofi_sum / d) } else { None });
        self.set(F::MidRetMean100, rm);
        self.set(F::MidRetStd100, rs);
        self.set(F::MidRetSkew100, rk);
        self.set(F::VarianceRatio10, vr);
        self.set(F::Imbalance5Mean100, im);
        self.set(F::Imbalance5Std100, is);
        self.set(F::SpreadBpsMean100, sm);
        self.set(F::CorrRef100, if reference.is_some() { corr } else { None });
        self.set(F::BasisExtBps, match (mid, self.ext_mid) {
            (Some(m), Some(e)) if e > 0.0 => Some((m - e) / e * 1e4),
            _ => None,
        });

        // ---- time lookbacks -------------------------------------------------------------
        // Times are in update order and exchange timestamps do not go backwards within a
        // symbol's feed, so the last point at or before a cut-off is found by binary search.
        let then = |times: &VecDeque<TimePoint>, age: i64| -> Option<TimePoint> {
            let n = times.partition_point(|t| t.ts <= now - age);
            if n == 0 {
                None
            } else {
                Some(times[n - 1])
            }
        };
        let roc = |old: Option<TimePoint>| -> Option<f64> {
            match (mid, old.and_then(|t| t.mid)) {
                (Some(m), Some(o)) => Some((m - o) / o * 1e4),
                _ => None,
            }
        };
        let t1 = then(&self.times, 1_000);
        let roc1 = roc(t1);
        self.set(F::MidRoc1sBps, roc1);
        self.set(F::MidRoc10sBps, roc(then(&self.times, 10_000)));
        self.set(F::MidAccel1sBps, match (roc1, t1.and_then(|t| t.roc1s)) {
            (Some(a), Some(b)) => Some(a - b),
            _ => None,
        });
        self.times.push_back(TimePoint { ts: now, mid, roc1s: roc1 });
        // Keep one point at or before now - 10 s for the 10 s lookback.
        while self.times.len() >= 2 && self.times[1].ts <= now - 10_000 {
            self.times.pop_front();
        }
        if let Some(r) = ret {
            self.rv.push(now, r * r);
        }
        self.rv.drop_until(now - 10_000);
        self.set(F::RealizedVol10sBps, self.rv.sum().map(f64::sqrt));

        // ---- level lifetime -------------------------------------------------------------
        for &(rank, born) in &book.deletions {
            if rank <= TTL_TOP_RANK {
                self.ttl.push((now - born) as f64 / 1000.0);
            }
        }
        self.set(F::LevelTtlMeanS, if self.ttl.is_empty() { None } else { Some(self.ttl.iter().sum::<f64>() / self.ttl.len() as f64) });
        self.set(F::BestBidAgeS, book.bids.best().map(|l| (now - l.born) as f64 / 1000.0));
        self.set(F::BestAskAgeS, book.asks.best().map(|l| (now - l.born) as f64 / 1000.0));

        // ---- walls ----------------------------------------------------------------------
        let mut bw = std::mem::take(&mut self.bw);
        let mut aw = std::mem::take(&mut self.aw);
        // `SideWalls::default()` is what `find_walls` gives for no levels, so the empty start
        // state is consistent with the empty `walls_sz`.
        for (top, seen, out) in [(&bids, 0, &mut bw), (&asks, 1, &mut aw)] {
            let sizes = &top.sz[..top.sz.len().min(WALL_LEVELS)];
            if sizes != self.walls_sz[seen].as_slice() {
                find_walls(sizes, &mut self.scratch, out);
                self.walls_sz[seen].clear();
                self.walls_sz[seen].extend_from_slice(sizes);
            }
        }
        // Exact price keys (18 decimals) survive book rescales and match trade prices exactly.
        let key_mul = POW10[(18 - book.px_scale) as usize] as i128;
        let ratio = |sz: i64, w: &SideWalls| sz as f64 / w.median.unwrap_or(1.0);
        let mid2 = if both { Some(bids.px[0] as i128 + asks.px[0] as i128) } else { None };
        let dist = |p: i64| mid2.map(|m2| ((2 * p as i128 - m2).abs(), m2));
        let px_of = |key: i128| key / key_mul;
        let mut list = std::mem::take(&mut self.wall_list);
        list.clear();
        list.extend(bw.walls.iter().map(|&i| WallAt {
            key: bids.px[i] as i128 * key_mul,
            px: pf(bids.px[i]),
            ratio: ratio(bids.sz[i], &bw),
            dist: dist(bids.px[i]),
        }));
        self.bid_walls.update(now, mid2, px_of, &list, &self.flow, &mut self.detections);
        list.clear();
        list.extend(aw.walls.iter().map(|&i| WallAt {
            key: asks.px[i] as i128 * key_mul,
            px: pf(asks.px[i]),
            ratio: ratio(asks.sz[i], &aw),
            dist: dist(asks.px[i]),
        }));
        self.ask_walls.update(now, mid2, px_of, &list, &self.flow, &mut self.detections);
        self.wall_list = list;
        self.detections.retain(|d| d.ts > now - DETECTION_WINDOW_MS);
        let cnt = |w: &SideWalls| both.then_some(w.count as f64);
        self.set(F::WallBidCount, cnt(&bw));
        self.set(F::WallAskCount, cnt(&aw));
        let (mut wbd, mut wbr, mut wba, mut wad, mut war, mut waa) = (None, None, None, None, None, None);
        if let (Some(m), Some(i)) = (mid, bw.largest) {
            wbd = Some(Side::Bid.dist_bps(pf(bids.px[i]), m));
            wbr = Some(ratio(bids.sz[i], &bw));
            wba = self.bid_walls.first_seen(bids.px[i] as i128 * key_mul).map(|t| (now - t) as f64 / 1000.0);
        }
        if let (Some(m), Some(i)) = (mid, aw.largest) {
            wad = Some(Side::Ask.dist_bps(pf(asks.px[i]), m));
            war = Some(ratio(asks.sz[i], &aw));
            waa = self.ask_walls.first_seen(asks.px[i] as i128 * key_mul).map(|t| (now - t) as f64 / 1000.0);
        }
        self.set(F::WallBidDistBps, wbd);
        self.set(F::WallAskDistBps, wad);
        self.set(F::WallBidSizeRatio, wbr);
        self.set(F::WallAskSizeRatio, war);
        self.set(F::WallBidAgeS, wba);
        self.set(F::WallAskAgeS, waa);
        self.set(F::HotspotBidDistBps, match (mid, bw.hotspot) {
            (Some(m), Some(i)) => Some(Side::Bid.dist_bps(pf(bids.px[i]), m)),
            _ => None,
        });
        self.set(F::HotspotAskDistBps, match (mid, aw.hotspot) {
            (Some(m), Some(i)) => Some(Side::Ask.dist_bps(pf(asks.px[i]), m)),
            _ => None,
        });
        self.set(F::SupportDistBps, match (mid, self.bid_walls.persistent(now)) {
            (Some(m), Some(p)) => Some(Side::Bid.dist_bps(p, m)),
            _ => None,
        });
        self.set(F::ResistanceDistBps, match (mid, self.ask_walls.persistent(now)) {
            (Some(m), Some(p)) => Some(Side::Ask.dist_bps(p, m)),
            _ => None,
        });
        self.bw = bw;
        self.aw = aw;
        let max_score = |kind: &str| self.detections.iter().filter(|d| d.kind == kind).map(|d| d.score).fold(0.0, f64::max);
        let (spoof, layer) = (max_score("spoofing"), max_score("layering"));
        self.set(F::SpoofScore60s, Some(spoof));
        self.set(F::LayeringScore60s, Some(layer));

        // ---- trade flow -----------------------------------------------------------------
        let fv = self.flow.view(now);
        self.set(F::TradeVolume10s, Some(fv.volume_10s));
        self.set(F::TradeCount10s, Some(fv.count_10s as f64));
        self.set(F::VolumeDelta10s, Some(fv.delta_10s));
        self.set(F::BuyRatio10s, fv.buy_ratio_10s);
        let rel = |x: Option<f64>| match (x, mid) {
            (Some(p), Some(m)) => Some((p - m) / m * 1e4),
            _ => None,
        };
        self.set(F::TradeVwapDevBps, rel(fv.vwap_10s));
        self.set(F::PocDistBps, rel(fv.poc));
        self.set(F::VaLowDistBps, rel(fv.va_low));
        self.set(F::VaHighDistBps, rel(fv.va_high));
        self.set(F::AccDist300s, fv.acc_dist);
        self.set(F::Vpin, fv.vpin);
        let x = fv.volume_10s;
        self.vol_n += 1;
        if self.vol_n == 1 {
            self.vol_mean = x;
            self.vol_var = 0.0;
        } else {
            let prev = self.vol_mean;
            self.vol_mean += VOLUME_EW_ALPHA * (x - prev);
            self.vol_var = (1.0 - VOLUME_EW_ALPHA) * (self.vol_var + VOLUME_EW_ALPHA * (x - prev) * (x - prev));
        }
        self.set(F::VolumeAnomalyZ, if self.vol_n >= 2 && self.vol_var > 0.0 { Some((x - self.vol_mean) / self.vol_var.sqrt()) } else { None });

        self.prev_mid = mid;
        self.bids = bids;
        self.asks = asks;

        // ---- configured temporal features, from the base values just computed -----------
        for (k, spec) in self.temporal.iter().enumerate() {
            let x = self.present[spec.source].then_some(self.values[spec.source]);
            let v = self.temporal_state[k].update(spec, now, x);
            let i = N_FEATURES + k;
            match v {
                Some(v) => {
                    self.values[i] = v;
                    self.present[i] = true;
                }
                None => {
                    self.values[i] = 0.0;
                    self.present[i] = false;
                }
            }
        }

        // ---- running z-scores -----------------------------------------------------------
        for i in 0..self.values.len() {
            if !self.present[i] {
                continue;
            }
            let x = self.values[i];
            if !self.ew_seen[i] {
                self.ew_seen[i] = true;
                self.ew_mean[i] = x;
                self.ew_var[i] = 0.0;
            } else {
                let prev = self.ew_mean[i];
                self.ew_mean[i] += NORM_ALPHA * (x - prev);
                self.ew_var[i] = (1.0 - NORM_ALPHA) * (self.ew_var[i] + NORM_ALPHA * (x - prev) * (x - prev));
            }
        }
    }

    /// Raw or normalized values with the presence mask.
    pub fn write(&self, normalized: bool, values: &mut [f64], mask: &mut [u8]) {
        for i in 0..self.values.len() {
            mask[i] = self.present[i] as u8;
            values[i] = if !self.present[i] {
                0.0
            } else if !normalized {
                self.values[i]
            } else if self.ew_var[i] > 0.0 {
                ((self.values[i] - self.ew_mean[i]) / self.ew_var[i].sqrt()).clamp(-Z_CLIP, Z_CLIP)
            } else {
                0.0
            };
        }
    }

    pub fn detections(&self) -> &[Detection] {
        &self.detections
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::book::BookEngine;

    #[test]
    fn book_features_on_a_small_book() {
        let mut e = BookEngine::new("bybit", 0, 10).unwrap();
        let snap = br#"{"topic":"orderbook.50.X","type":"snapshot","ts":1000,"data":{"s":"X","b":[["99","2"],["98","3"]],"a":[["101","1"],["102","4"]],"u":1}}"#;
        e.apply(snap).unwrap();
        let mut f = SymbolFeatures::default();
        f.on_book(e.book("X").unwrap(), 1000, None);
        let v = |x: F| f.values[x as usize];
        assert_eq!(v(F::Mid), 100.0);
        assert_eq!(v(F::Spread), 2.0);
        assert_eq!(v(F::Microprice), (99.0 * 1.0 + 101.0 * 2.0) / 3.0);
        assert_eq!(v(F::Imbalance1), (2.0 - 1.0) / 3.0);
        assert_eq!(v(F::Imbalance5), (5.0 - 5.0) / 10.0);
        assert_eq!(v(F::BidNotional10), 99.0 * 2.0 + 98.0 * 3.0);
        assert!(!f.present[F::ImpactBuyBps as usize], "asks hold only 509 quote");
        assert!(!f.present[F::Ofi as usize]);
        assert!(f.present[F::SpoofScore60s as usize]);
    }
}

