//! One symbol's L2 book: two ladders at common fixed-point scales, its integrity state and its
//! counters. Exchange codecs parse and validate a whole message into [`WireLevel`]s first, then
//! call [`L2Book::prepare`] (the only step that can fail) and the infallible apply methods, so a
//! malformed message never leaves a half-applied book.

use super::ladder::{Ladder, Level, Side};
use crate::decimal::{unscale, write_fixed, Dec, MAX_DECIMALS, POW10};
use crate::error::BookError;

/// A level as parsed from the wire, before it is brought to the book's scale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WireLevel {
    pub px: Dec,
    pub sz: Dec,
}

/// `(price, size)` pairs as exact decimal strings, best first.
pub type StringLevels = Vec<(String, String)>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BookState {
    AwaitingSnapshot,
    Live,
    NeedsResync,
}

impl BookState {
    pub fn as_str(self) -> &'static str {
        match self {
            BookState::AwaitingSnapshot => "awaiting_snapshot",
            BookState::Live => "live",
            BookState::NeedsResync => "needs_resync",
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BookStats {
    pub messages: u64,
    pub gaps: u64,
    pub resyncs: u64,
    pub stale: u64,
    pub crossed: u64,
    pub checksums_checked: u64,
    pub checksum_failures: u64,
}

#[derive(Debug, Clone)]
pub struct L2Book {
    pub symbol: String,
    pub bids: Ladder,
    pub asks: Ladder,
    /// Decimals of the common price scale (the most seen on this book).
    pub px_scale: u8,
    /// Decimals of the common size scale.
    pub sz_scale: u8,
    /// Depth used for the last truncation (0 = none).
    pub depth: usize,
    pub state: BookState,
    pub update_id: u64,
    /// Binance: the first update after a snapshot has bridged it.
    pub bridged: bool,
    /// The book broke since its last snapshot; the next snapshot counts as a resync even if the
    /// caller reset the book in between.
    pub resync_pending: bool,
    pub last_ts: Option<i64>,
    pub stats: BookStats,
    /// Record deletions (for the analytics); off unless the engine computes features.
    pub track_deletions: bool,
    /// `(rank before deletion, creation ts)` of levels deleted by the last applied message.
    pub deletions: Vec<(usize, i64)>,
}

impl L2Book {
    pub fn new(symbol: &str) -> Self {
        L2Book {
            symbol: symbol.to_owned(),
            bids: Ladder::new(Side::Bid),
            asks: Ladder::new(Side::Ask),
            px_scale: 0,
            sz_scale: 0,
            depth: 0,
            state: BookState::AwaitingSnapshot,
            update_id: 0,
            bridged: false,
            resync_pending: false,
            last_ts: None,
            stats: BookStats::default(),
            track_deletions: false,
            deletions: Vec::new(),
        }
    }

    #[inline]
    pub fn is_live(&self) -> bool {
        self.state == BookState::Live
    }

    /// Bring the book's scales up to what `levels` need and check that every value fits. This is
    /// the only fallible step of applying a message; it changes only the representation.
    pub fn prepare(&mut self, sides: &[&[WireLevel]]) -> Result<(), BookError> {
        let mut px_scale = self.px_scale;
        let mut sz_scale = self.sz_scale;
        for side in sides {
            for l in side.iter() {
                px_scale = px_scale.max(l.px.dec);
                sz_scale = sz_scale.max(l.sz.dec);
            }
        }
        debug_assert!(px_scale <= MAX_DECIMALS && sz_scale <= MAX_DECIMALS);
        for side in sides {
            for l in side.iter() {
                if l.px.at_scale(px_scale).is_none() || l.sz.at_scale(sz_scale).is_none() {
                    return Err(BookError::Range(
                        "price or size out of range at the book's scale".into(),
                    ));
                }
            }
        }
        if px_scale > self.px_scale || sz_scale > self.sz_scale {
            let px_mul = POW10[(px_scale - self.px_scale) as usize];
            let sz_mul = POW10[(sz_scale - self.sz_scale) as usize];
            let (bpx, bsz) = self.bids.max_px_sz();
            let (apx, asz) = self.asks.max_px_sz();
            if bpx.max(apx).checked_mul(px_mul).is_none() || bsz.max(asz).checked_mul(sz_mul).is_none() {
                return Err(BookError::Range("book values out of range after rescale".into()));
            }
            self.bids.rescale(px_mul, sz_mul);
            self.asks.rescale(px_mul, sz_mul);
            self.px_scale = px_scale;
            self.sz_scale = sz_scale;
        }
        Ok(())
    }

    #[inline]
    fn to_level(&self, l: &WireLevel, born: i64) -> Level {
        // prepare() guarantees these fit.
        Level {
            px: l.px.mant * POW10[(self.px_scale - l.px.dec) as usize],
            sz: l.sz.mant * POW10[(self.sz_scale - l.sz.dec) as usize],
            born,
            px_dec: l.px.dec,
            sz_dec: l.sz.dec,
        }
    }

    /// Replace both sides (after `prepare`); `ts` is the message's exchange time, the creation
    /// time of every level it loads.
    pub fn load_snapshot(&mut self, bids: &[WireLevel], asks: &[WireLevel], ts: Option<i64>) {
        let born = ts.unwrap_or(0);
        self.deletions.clear();
        let b: Vec<Level> = bids.iter().map(|l| self.to_level(l, born)).collect();
        let a: Vec<Level> = asks.iter().map(|l| self.to_level(l, born)).collect();
        self.bids.load(b);
        self.asks.load(a);
    }

    /// Apply absolute-size updates in order (after `prepare`).
    #[inline]
    pub fn apply_levels(&mut self, bids: &[WireLevel], asks: &[WireLevel], ts: Option<i64>) {
        let born = ts.unwrap_or(0);
        self.deletions.clear();
        for l in bids {
            let lv = self.to_level(l, born);
            if let Some(d) = self.bids.set(lv) {
                if self.track_deletions {
                    self.deletions.push(d);
                }
            }
        }
        for l in asks {
            let lv = self.to_level(l, born);
            if let Some(d) = self.asks.set(lv) {
                if self.track_deletions {
                    self.deletions.push(d);
                }
            }
        }
    }

    #[inline]
    pub fn truncate(&mut self, depth: usize) {
        self.depth = depth;
        self.bids.truncate(depth);
        self.asks.truncate(depth);
    }

    #[inline]
    pub fn is_crossed(&self) -> bool {
        match (self.bids.best(), self.asks.best()) {
            (Some(b), Some(a)) => b.px >= a.px,
            _ => false,
        }
    }

    /// Mark a snapshot as applied: counts a resync when the book had broken.
    pub fn mark_snapshot(&mut self) {
        if std::mem::take(&mut self.resync_pending) {
            self.stats.resyncs += 1;
        }
        self.state = BookState::Live;
    }

    pub fn mark_broken(&mut self) {
        self.state = BookState::NeedsResync;
        self.resync_pending = true;
    }

    /// Forget all levels and wait for a fresh snapshot (the Binance buffer is kept by the
    /// engine: its updates carry exchange ids, so the sync rules sort them out).
    pub fn reset(&mut self) {
        self.bids.clear();
        self.asks.clear();
        self.update_id = 0;
        self.bridged = false;
        self.state = BookState::AwaitingSnapshot;
    }

    /// Append a level's price as the exchange wrote it.
    #[inline]
    pub fn write_px(&self, out: &mut String, l: &Level) {
        write_fixed(out, unscale(l.px, self.px_scale, l.px_dec), l.px_dec);
    }

    #[inline]
    pub fn write_sz(&self, out: &mut String, l: &Level) {
        write_fixed(out, unscale(l.sz, self.sz_scale, l.sz_dec), l.sz_dec);
    }

    pub fn px_string(&self, l: &Level) -> String {
        let mut s = String::with_capacity(20);
        self.write_px(&mut s, l);
        s
    }

    pub fn sz_string(&self, l: &Level) -> String {
        let mut s = String::with_capacity(20);
        self.write_sz(&mut s, l);
        s
    }

    #[inline]
    pub fn px_f64(&self, l: &Level) -> f64 {
        l.px as f64 / POW10[self.px_scale as usize] as f64
    }

    #[inline]
    pub fn sz_f64(&self, l: &Level) -> f64 {
        l.sz as f64 / POW10[self.sz_scale as usize] as f64
    }

    /// Top `n` levels per side (0 = all) as exact strings, best first.
    pub fn levels_strings(&self, n: usize) -> (StringLevels, StringLevels) {
        let take = |lad: &Ladder| -> StringLevels {
            let n = if n == 0 { lad.len() } else { n.min(lad.len()) };
            lad.iter_best().take(n).map(|l| (self.px_string(l), self.sz_string(l))).collect()
        };
        (take(&self.bids), take(&self.asks))
    }
}
