//! Trade flow of one symbol: rolling windows, the volume profile (point of control and value
//! area), accumulation/distribution and VPIN.
//!
//! Prices and sizes stay exact: both are held as integers at 18 decimals (`i128`), so profile
//! volumes added and removed over days never drift, and ties (point of control, value-area
//! expansion) are decided exactly.

use std::collections::{BTreeMap, VecDeque};

use super::window::Ring;
use crate::decimal::{Dec, POW10};

const SCALE: u8 = 18;
pub const FLOW_WINDOW_MS: i64 = 10_000;
pub const PROFILE_WINDOW_MS: i64 = 300_000;
const VPIN_CALIBRATION_TRADES: usize = 50;
const VPIN_BUCKETS: usize = 50;

#[inline]
fn at18(d: Dec) -> i128 {
    d.mant as i128 * POW10[(SCALE - d.dec) as usize] as i128
}

#[inline]
fn f(v: i128) -> f64 {
    // Exact integers at 18 decimals to the nearest double of the decimal value.
    (v as f64) / 1e18
}

#[derive(Debug, Clone, Copy)]
pub struct Trade {
    pub ts: i64,
    pub px: i128,
    pub sz: i128,
    pub buy: bool,
}

impl Trade {
    pub fn new(ts: i64, px: Dec, sz: Dec, buy: bool) -> Self {
        Trade { ts, px: at18(px), sz: at18(sz), buy }
    }
}

/// What the features need from the flow at one instant.
#[derive(Debug, Clone, Copy, Default)]
pub struct FlowView {
    pub volume_10s: f64,
    pub count_10s: u64,
    pub delta_10s: f64,
    pub buy_ratio_10s: Option<f64>,
    pub vwap_10s: Option<f64>,
    pub poc: Option<f64>,
    pub va_low: Option<f64>,
    pub va_high: Option<f64>,
    pub acc_dist: Option<f64>,
    pub vpin: Option<f64>,
}

#[derive(Debug, Clone, Default)]
struct ProfileCache {
    poc: Option<f64>,
    va_low: Option<f64>,
    va_high: Option<f64>,
    acc_dist: Option<f64>,
}

#[derive(Debug, Clone)]
pub struct TradeFlow {
    /// Trades of the profile window, in arrival order (Bybit sends them in time order).
    trades: VecDeque<Trade>,
    /// Volume by exact price over `trades`.
    profile: BTreeMap<i128, i128>,
    profile_dirty: bool,
    cache: ProfileCache,
    // VPIN
    seen: usize,
    calibration: Vec<(i128, bool)>,
    bucket_size: Option<i128>,
    bucket_buy: i128,
    bucket_sell: i128,
    buckets: Ring<f64>,
}

impl Default for TradeFlow {
    fn default() -> Self {
        TradeFlow {
            trades: VecDeque::new(),
            profile: BTreeMap::new(),
            profile_dirty: false,
            cache: ProfileCache::default(),
            seen: 0,
            calibration: Vec::with_capacity(VPIN_CALIBRATION_TRADES),
            bucket_size: None,
            bucket_buy: 0,
            bucket_sell: 0,
            buckets: Ring::new(VPIN_BUCKETS),
        }
    }
}

impl TradeFlow {
    pub fn on_trade(&mut self, t: Trade) {
        self.trades.push_back(t);
        *self.profile.entry(t.px).or_insert(0) += t.sz;
        self.profile_dirty = true;
        self.seen += 1;
        match self.bucket_size {
            Some(_) => self.fill_buckets(t.sz, t.buy),
            None => {
                self.calibration.push((t.sz, t.buy));
                if self.seen == VPIN_CALIBRATION_TRADES {
                    let total: i128 = self.calibration.iter().map(|c| c.0).sum();
                    self.bucket_size = Some(total / 10);
                    // The calibration trades fill the first buckets too, in order.
                    for (sz, buy) in std::mem::take(&mut self.calibration) {
                        self.fill_buckets(sz, buy);
                    }
                }
            }
        }
    }

    fn fill_buckets(&mut self, mut sz: i128, buy: bool) {
        let Some(v) = self.bucket_size.filter(|&v| v > 0) else {
            return;
        };
        while sz > 0 {
            let room = v - self.bucket_buy - self.bucket_sell;
            let take = sz.min(room);
            if buy {
                self.bucket_buy += take;
            } else {
                self.bucket_sell += take;
            }
            sz -= take;
            if self.bucket_buy + self.bucket_sell == v {
                self.buckets.push(f((self.bucket_buy - self.bucket_sell).abs()) / f(v));
                self.bucket_buy = 0;
                self.bucket_sell = 0;
            }
        }
    }

    /// Drop trades that left the profile window at `now`.
    fn expire(&mut self, now: i64) {
        while let Some(front) = self.trades.front() {
            if front.ts > now - PROFILE_WINDOW_MS {
                break;
            }
            let t = self.trades.pop_front().expect("front exists");
            if let Some(v) = self.profile.get_mut(&t.px) {
                *v -= t.sz;
                if *v == 0 {
                    self.profile.remove(&t.px);
                }
            }
            self.profile_dirty = true;
        }
    }

    fn recompute_profile(&mut self) {
        self.profile_dirty = false;
        self.cache = ProfileCache::default();
        let bins: Vec<(i128, i128)> = self.profile.iter().map(|(&p, &v)| (p, v)).filter(|b| b.1 > 0).collect();
        if bins.is_empty() {
            return;
        }
        let total: i128 = bins.iter().map(|b| b.1).sum();
        // Point of control: most volume, ties to the lower price (first in ascending order).
        let mut poc = 0;
        for (i, b) in bins.iter().enumerate() {
            if b.1 > bins[poc].1 {
                poc = i;
            }
        }
        let (mut lo, mut hi, mut acc) = (poc, poc, bins[poc].1);
        while acc * 10 < total * 7 {
            let up = bins.get(hi + 1).map(|b| b.1);
            let down = if lo > 0 { Some(bins[lo - 1].1) } else { None };
            match (up, down) {
                (Some(u), Some(d)) if u >= d => {
                    hi += 1;
                    acc += u;
                }
                (Some(_), Some(d)) => {
                    lo -= 1;
                    acc += d;
                }
                (Some(u), None) => {
                    hi += 1;
                    acc += u;
                }
                (None, Some(d)) => {
                    lo -= 1;
                    acc += d;
                }
                (None, None) => break,
            }
        }
        self.cache.poc = Some(f(bins[poc].0));
        self.cache.va_low = Some(f(bins[lo].0));
        self.cache.va_high = Some(f(bins[hi].0));
        let (l, h) = (bins[0].0, bins[bins.len() - 1].0);
        if h > l {
            // sum v * ((p - L) - (H - p)) / (H - L) / sum v, each term exact in integers.
            let range = f(h - l);
            let num: f64 = bins.iter().map(|&(p, v)| f(v) * f((p - l) - (h - p))).sum();
            self.cache.acc_dist = Some(num / range / f(total));
        }
    }

    pub fn view(&mut self, now: i64) -> FlowView {
        self.expire(now);
        if self.profile_dirty {
            self.recompute_profile();
        }
        let mut v = FlowView {
            poc: self.cache.poc,
            va_low: self.cache.va_low,
            va_high: self.cache.va_high,
            acc_dist: self.cache.acc_dist,
            ..FlowView::default()
        };
        let (mut vol, mut buy, mut pv) = (0i128, 0i128, 0f64);
        for t in self.trades.iter().rev() {
            if t.ts <= now - FLOW_WINDOW_MS {
                break;
            }
            vol += t.sz;
            if t.buy {
                buy += t.sz;
            }
            pv += f(t.px) * f(t.sz);
            v.count_10s += 1;
        }
        v.volume_10s = f(vol);
        v.delta_10s = f(buy) - f(vol - buy);
        if vol > 0 {
            v.buy_ratio_10s = Some(f(buy) / f(vol));
            v.vwap_10s = Some(pv / f(vol));
        }
        if !self.buckets.is_empty() {
            let n = self.buckets.len() as f64;
            v.vpin = Some(self.buckets.iter().sum::<f64>() / n);
        }
        v
    }

    /// Earliest time of a held trade at exactly price `key` (18 decimals) stamped at or after
    /// `from`. Trades arrive in time order, so the scan stops at the first older one.
    pub fn first_trade_since(&self, key: i128, from: i64) -> Option<i64> {
        self.trades.iter().rev().take_while(|t| t.ts >= from).filter(|t| t.px == key).map(|t| t.ts).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Dec {
        Dec::parse(s).unwrap()
    }

    #[test]
    fn windows_profile_and_value_area() {
        let mut fl = TradeFlow::default();
        // volumes by price: 100: 1, 101: 5, 102: 3, 103: 1  (total 10, 70% = 7)
        for (p, v, b) in [("100", "1", true), ("101", "5", false), ("102", "3", true), ("103", "1", true)] {
            fl.on_trade(Trade::new(1_000, d(p), d(v), b));
        }
        let v = fl.view(5_000);
        assert_eq!(v.count_10s, 4);
        assert_eq!(v.volume_10s, 10.0);
        assert_eq!(v.delta_10s, 0.0);
        assert_eq!(v.poc, Some(101.0));
        // from 101 (5): up 102 (3) vs down 100 (1) -> 102, acc 8 >= 7
        assert_eq!((v.va_low, v.va_high), (Some(101.0), Some(102.0)));
        // trades leave the 10 s window but stay in the 300 s profile
        let v = fl.view(12_000);
        assert_eq!(v.count_10s, 0);
        assert_eq!(v.buy_ratio_10s, None);
        assert_eq!(v.poc, Some(101.0));
        let v = fl.view(301_000);
        assert_eq!(v.poc, None);
    }

    #[test]
    fn vpin_buckets_split_trades() {
        let mut fl = TradeFlow::default();
        for i in 0..50 {
            fl.on_trade(Trade::new(i, d("10"), d("2"), i % 2 == 0));
        }
        // V = 100 / 10 = 10; 50 trades of 2 alternate buy/sell: each bucket is 6/4 or 4/6.
        let v = fl.view(100);
        assert_eq!(fl.buckets.len(), 10);
        assert!((v.vpin.unwrap() - 0.2).abs() < 1e-12);
        assert_eq!(fl.first_trade_since(10 * 10i128.pow(18), 0), Some(0));
        assert_eq!(fl.first_trade_since(10 * 10i128.pow(18), 49), Some(49));
        assert_eq!(fl.first_trade_since(11 * 10i128.pow(18), 0), None);
    }
}
