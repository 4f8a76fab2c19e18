//! Clusters of resting liquidity ("walls"), their persistence (support and resistance), and the
//! spoofing and layering detectors built on how walls appear and vanish.

use super::trades::TradeFlow;

pub const WALL_LEVELS: usize = 50;
pub const WALL_MULTIPLE: f64 = 5.0;
pub const HOTSPOT_RUN: usize = 5;
pub const PERSIST_MS: i64 = 30_000;
pub const SPOOF_NEAR_BPS: f64 = 20.0;
pub const SPOOF_MAX_LIFE_MS: i64 = 10_000;
pub const LAYER_NEAR_BPS: f64 = 50.0;
pub const LAYER_SPAN_MS: i64 = 2_000;
pub const LAYER_MIN_WALLS: usize = 3;
pub const DETECTION_WINDOW_MS: i64 = 60_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Bid,
    Ask,
}

impl Side {
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Bid => "bid",
            Side::Ask => "ask",
        }
    }

    /// Distance of `px` from `mid` in bps, positive on the side's own half of the book.
    #[inline]
    pub fn dist_bps(self, px: f64, mid: f64) -> f64 {
        match self {
            Side::Bid => (mid - px) / mid * 1e4,
            Side::Ask => (px - mid) / mid * 1e4,
        }
    }
}

/// The walls of one side at one update (sizes are the book's fixed-point integers, so the wall
/// test `size >= 5 x median` is exact).
#[derive(Debug, Clone, Default)]
pub struct SideWalls {
    /// Median size in the book's size units (mean of the two middle sizes for an even count).
    pub median: Option<f64>,
    pub count: usize,
    /// Index (0 = best) of the largest wall.
    pub largest: Option<usize>,
    /// Index of the middle level of the densest run of `HOTSPOT_RUN` levels.
    pub hotspot: Option<usize>,
    /// Indices of all walls.
    pub walls: Vec<usize>,
}

/// Walls among `sizes` (the side's top levels, best first, as fixed-point integers).
pub fn find_walls(sizes: &[i64], scratch: &mut Vec<i64>, out: &mut SideWalls) {
    let top = &sizes[..sizes.len().min(WALL_LEVELS)];
    out.median = None;
    out.count = 0;
    out.largest = None;
    out.hotspot = None;
    out.walls.clear();
    if top.is_empty() {
        return;
    }
    scratch.clear();
    scratch.extend_from_slice(top);
    let n = scratch.len();
    let mid = n / 2;
    let (_, &mut hi, _) = scratch.select_nth_unstable(mid);
    // Twice the median, exactly: 2 * middle, or the sum of the two middle values.
    let twice_median: i128 = if n % 2 == 1 {
        2 * hi as i128
    } else {
        let lo = *scratch[..mid].iter().max().expect("n >= 2");
        lo as i128 + hi as i128
    };
    out.median = Some(twice_median as f64 / 2.0);
    if twice_median > 0 {
        for (i, &s) in top.iter().enumerate() {
            // s >= 5 * median  <=>  2 s >= 5 * (2 median)
            if 2 * s as i128 >= 5 * twice_median {
                out.walls.push(i);
                // Biggest size; ties go to the one nearer mid (the earlier index).
                if out.largest.is_none_or(|j| s > top[j]) {
                    out.largest = Some(i);
                }
            }
        }
        out.count = out.walls.len();
    }
    if top.len() >= HOTSPOT_RUN {
        let mut sum: i128 = top[..HOTSPOT_RUN].iter().map(|&x| x as i128).sum();
        let (mut best, mut best_start) = (sum, 0);
        for start in 1..=top.len() - HOTSPOT_RUN {
            sum += top[start + HOTSPOT_RUN - 1] as i128 - top[start - 1] as i128;
            if sum > best {
                best = sum;
                best_start = start;
            }
        }
        out.hotspot = Some(best_start + HOTSPOT_RUN / 2);
    }
}

/// A wall as the tracker sees it: exact price key (18 decimals), price, size ratio, and its
/// exact distance from mid as the integer pair `(|2 p - (bb + ba)|, bb + ba)` at the book's
/// scale (distance in bps = d / m * 1e4; the ratio does not depend on the scale).
#[derive(Debug, Clone, Copy)]
pub struct WallAt {
    pub key: i128,
    pub px: f64,
    pub ratio: f64,
    pub dist: Option<(i128, i128)>,
}

/// `d / m * 1e4 <= bps`, exactly.
#[inline]
fn within(dist: (i128, i128), bps: i128) -> bool {
    dist.0 * 10_000 <= bps * dist.1
}

/// `a` strictly nearer than `b`, exactly.
#[inline]
fn nearer(a: (i128, i128), b: (i128, i128)) -> bool {
    a.0 * b.1 < b.0 * a.1
}

#[inline]
fn bps(dist: (i128, i128)) -> f64 {
    dist.0 as f64 / dist.1 as f64 * 1e4
}

#[derive(Debug, Clone, Copy)]
struct Tracked {
    key: i128,
    px: f64,
    first_seen: i64,
    ratio_first: f64,
    dist_first: Option<(i128, i128)>,
    /// Earliest trade time at this price at or after `first_seen` (recorded as trades arrive, so
    /// the check does not depend on how long the trade flow keeps trades).
    first_trade: i64,
}

#[derive(Debug, Clone, Copy)]
struct Vanished {
    key: i128,
    px: f64,
    first_seen: i64,
    vanished: i64,
    ratio_first: f64,
    near_for_layering: bool,
    used: bool,
}

/// One spoofing or layering detection with its evidence.
#[derive(Debug, Clone, PartialEq)]
pub struct Detection {
    pub kind: &'static str,
    pub side: Side,
    pub score: f64,
    pub ts: i64,
    /// `(price, size ratio at first sight, first seen ts, vanished ts)`.
    pub levels: Vec<(f64, f64, i64, i64)>,
}

/// Tracks one side's walls across updates.
#[derive(Debug, Clone)]
pub struct WallTracker {
    side: Side,
    /// Walls in their current run. A side has a handful of walls, so a vector beats a hash map.
    live: Vec<Tracked>,
    recent: Vec<Vanished>,
}

impl WallTracker {
    pub fn new(side: Side) -> Self {
        WallTracker { side, live: Vec::new(), recent: Vec::new() }
    }

    /// A trade at price `key`: remember it on the live wall at that price.
    pub fn on_trade(&mut self, key: i128, ts: i64) {
        for t in self.live.iter_mut() {
            if t.key == key && ts >= t.first_seen && ts < t.first_trade {
                t.first_trade = ts;
            }
        }
    }

    /// First-seen ts of the wall at price `key` if it is a wall now.
    pub fn first_seen(&self, key: i128) -> Option<i64> {
        self.live.iter().find(|t| t.key == key).map(|t| t.first_seen)
    }

    /// The persistent wall nearest to mid (highest bid / lowest ask) alive for `PERSIST_MS`.
    pub fn persistent(&self, now: i64) -> Option<f64> {
        let old = self.live.iter().filter(|t| now - t.first_seen >= PERSIST_MS).map(|t| t.px);
        match self.side {
            Side::Bid => old.fold(None, |a: Option<f64>, p| Some(a.map_or(p, |a| a.max(p)))),
            Side::Ask => old.fold(None, |a: Option<f64>, p| Some(a.map_or(p, |a| a.min(p)))),
        }
    }

    /// Advance to this update with the side's walls now. `mid2` is `bb + ba` at the book's scale
    /// and `px_of` gives a wall's price at that scale from its key (for distances at vanishing).
    pub fn update(
        &mut self,
        now: i64,
        mid2: Option<i128>,
        px_of: impl Fn(i128) -> i128,
        walls: &[WallAt],
        flow: &TradeFlow,
        out: &mut Vec<Detection>,
    ) {
        let side = self.side;
        // Vanished: tracked walls that are not walls now.
        let mut vanished_now = false;
        let mut i = 0;
        while i < self.live.len() {
            if walls.iter().any(|w| w.key == self.live[i].key) {
                i += 1;
                continue;
            }
            let t = self.live.swap_remove(i);
            let traded = t.first_trade <= now;
            vanished_now = true;
            if let (Some(m2), Some(d0)) = (mid2, t.dist_first) {
                // A distance, not a side: the price may have moved through the vanished wall.
                let d1 = ((2 * px_of(t.key) - m2).abs(), m2);
                let score = t.ratio_first * (1.0 - bps(d1) / SPOOF_NEAR_BPS);
                if !traded
                    && within(d0, SPOOF_NEAR_BPS as i128)
                    && now - t.first_seen <= SPOOF_MAX_LIFE_MS
                    && nearer(d1, d0)
                    && score > 0.0
                {
                    out.push(Detection {
                        kind: "spoofing",
                        side,
                        score,
                        ts: now,
                        levels: vec![(t.px, t.ratio_first, t.first_seen, now)],
                    });
                }
            }
            if !traded {
                self.recent.push(Vanished {
                    key: t.key,
                    px: t.px,
                    first_seen: t.first_seen,
                    vanished: now,
                    ratio_first: t.ratio_first,
                    near_for_layering: t.dist_first.is_some_and(|d| within(d, LAYER_NEAR_BPS as i128)),
                    used: false,
                });
            }
        }
        self.recent.retain(|v| v.vanished >= now - LAYER_SPAN_MS);
        if vanished_now {
            self.detect_layering(now, out);
        }
        // New walls start their run now.
        for w in walls {
            if !self.live.iter().any(|t| t.key == w.key) {
                self.live.push(Tracked {
                    key: w.key,
                    px: w.px,
                    first_seen: now,
                    ratio_first: w.ratio,
                    dist_first: w.dist,
                    // Trades already received but stamped at or after this update count too.
                    first_trade: flow.first_trade_since(w.key, now).unwrap_or(i64::MAX),
                });
            }
        }
    }

    /// Walls are price levels: among unused candidates (vanished in the last 2 s, untraded, near
    /// when first seen) only each price's latest episode counts. Sorted by (first seen, price),
    /// the 2 s window of first-seen times holding the most of them (ties: the earliest) is a
    /// detection when it holds 3 or more; its prices are used up and the search repeats.
    fn detect_layering(&mut self, now: i64, out: &mut Vec<Detection>) {
        let _ = now;
        loop {
            let mut latest: Vec<usize> = Vec::new();
            for (i, v) in self.recent.iter().enumerate() {
                if v.used || !v.near_for_layering {
                    continue;
                }
                match latest.iter_mut().find(|j| self.recent[**j].key == v.key) {
                    Some(j) => {
                        if v.vanished > self.recent[*j].vanished {
                            *j = i;
                        }
                    }
                    None => latest.push(i),
                }
            }
            latest.sort_by(|&a, &b| {
                let (x, y) = (&self.recent[a], &self.recent[b]);
                x.first_seen.cmp(&y.first_seen).then(x.key.cmp(&y.key))
            });
            let (mut best_start, mut best_len) = (0, 0);
            let mut end = 0;
            for start in 0..latest.len() {
                end = end.max(start);
                while end + 1 < latest.len()
                    && self.recent[latest[end + 1]].first_seen <= self.recent[latest[start]].first_seen + LAYER_SPAN_MS
                {
                    end += 1;
                }
                if end + 1 - start > best_len {
                    best_len = end + 1 - start;
                    best_start = start;
                }
            }
            if best_len < LAYER_MIN_WALLS {
                return;
            }
            let group: Vec<usize> = latest[best_start..best_start + best_len].to_vec();
            let mut levels = Vec::with_capacity(group.len());
            let mut ratio_sum = 0.0;
            for &i in &group {
                let v = self.recent[i];
                ratio_sum += v.ratio_first;
                levels.push((v.px, v.ratio_first, v.first_seen, v.vanished));
            }
            // Every candidate episode at the group's prices is used up.
            let keys: Vec<i128> = group.iter().map(|&i| self.recent[i].key).collect();
            for v in self.recent.iter_mut() {
                if keys.contains(&v.key) {
                    v.used = true;
                }
            }
            levels.sort_by(|a, b| a.0.total_cmp(&b.0));
            let n = group.len() as f64;
            out.push(Detection { kind: "layering", side: self.side, score: n * (ratio_sum / n), ts: now, levels });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Prices at 2 decimals; `mid2` = bb + ba at that scale.
    fn wall(px: f64, ratio: f64, mid2: i128) -> WallAt {
        let p = (px * 100.0).round() as i128;
        WallAt { key: p, px, ratio, dist: Some(((2 * p - mid2).abs(), mid2)) }
    }

    fn px_of(key: i128) -> i128 {
        key
    }

    #[test]
    fn walls_median_largest_and_hotspot() {
        let mut scratch = Vec::new();
        let sizes = [1, 1, 10, 1, 2, 1, 12, 1];
        let mut w = SideWalls::default();
        find_walls(&sizes, &mut scratch, &mut w);
        assert_eq!(w.median, Some(1.0));
        assert_eq!(w.walls, vec![2, 6]);
        assert_eq!(w.largest, Some(6));
        // runs of 5: [0..5]=15, [1..6]=15, [2..7]=26, [3..8]=17 -> start 2, middle 4
        assert_eq!(w.hotspot, Some(4));
    }

    #[test]
    fn spoof_detected_when_a_near_wall_vanishes_untraded_as_price_approaches() {
        let flow = TradeFlow::default();
        let mut tr = WallTracker::new(Side::Bid);
        let mut out = Vec::new();
        tr.update(0, Some(20_000), px_of, &[wall(99.9, 8.0, 20_000)], &flow, &mut out); // 10 bps away
        tr.update(1_000, Some(19_990), px_of, &[wall(99.9, 8.0, 19_990)], &flow, &mut out);
        tr.update(2_000, Some(19_990), px_of, &[], &flow, &mut out); // vanished 5 bps away
        assert_eq!(out.len(), 1);
        let d = &out[0];
        assert_eq!(d.kind, "spoofing");
        let d1 = (99.95 - 99.9) / 99.95 * 1e4;
        assert!((d.score - 8.0 * (1.0 - d1 / 20.0)).abs() < 1e-9);
    }

    #[test]
    fn layering_needs_three_walls_appearing_and_vanishing_together() {
        let flow = TradeFlow::default();
        let mut tr = WallTracker::new(Side::Ask);
        let mut out = Vec::new();
        let walls = [wall(100.1, 6.0, 20_000), wall(100.2, 7.0, 20_000), wall(100.3, 8.0, 20_000)];
        tr.update(0, Some(20_000), px_of, &walls, &flow, &mut out);
        tr.update(500, Some(20_000), px_of, &[], &flow, &mut out);
        let layer: Vec<_> = out.iter().filter(|d| d.kind == "layering").collect();
        assert_eq!(layer.len(), 1);
        assert!((layer[0].score - 21.0).abs() < 1e-9);
        assert_eq!(layer[0].levels.len(), 3);
    }
}
