//! One side of an L2 book: a sorted ring buffer (`VecDeque`) with the best level at the back.
//!
//! Why not a tree: almost every exchange update touches the first few levels, and the rest are
//! deletes of the worst level when a new one enters the depth window (Bybit sends those
//! explicitly). A `VecDeque` inserts and removes by shifting whichever side of the position is
//! shorter, so both ends cost a few element moves, the side (200-1000 levels of 24 bytes) stays
//! contiguous in at most two slices, a binary search finds any level in O(log n), and reading the
//! top N levels walks from the back with no allocation.

use std::collections::VecDeque;

/// A price level. `px` and `sz` are at the book's common scales; `px_dec`/`sz_dec` are the
/// number of decimals the exchange used for this level, so the wire text can be rebuilt exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Level {
    pub px: i64,
    pub sz: i64,
    /// Exchange timestamp (ms) of the message that created the level (lifetime analytics).
    pub born: i64,
    pub px_dec: u8,
    pub sz_dec: u8,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Bid,
    Ask,
}

#[derive(Debug, Clone)]
pub struct Ladder {
    side: Side,
    /// Sorted from worst to best: bids ascending, asks descending.
    levels: VecDeque<Level>,
}

impl Ladder {
    pub fn new(side: Side) -> Self {
        Ladder { side, levels: VecDeque::new() }
    }

    #[inline]
    pub fn side(&self) -> Side {
        self.side
    }

    #[inline]
    pub fn len(&self) -> usize {
        self.levels.len()
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.levels.is_empty()
    }

    /// Sort key: larger is better on both sides.
    #[inline(always)]
    fn key(&self, px: i64) -> i64 {
        match self.side {
            Side::Bid => px,
            Side::Ask => -px,
        }
    }

    #[inline]
    fn find(&self, px: i64) -> Result<usize, usize> {
        let k = self.key(px);
        // Updates cluster at the top of the book (the end of the vector): check the best level
        // first, then binary-search.
        if let Some(last) = self.levels.back() {
            let lk = self.key(last.px);
            if k > lk {
                return Err(self.levels.len());
            }
            if k == lk {
                return Ok(self.levels.len() - 1);
            }
        }
        self.levels.binary_search_by(|l| self.key(l.px).cmp(&k))
    }

    /// Set a level to an absolute size; a zero size deletes it (a no-op if absent). An update
    /// keeps the level's creation time. Returns `(rank, born)` of a deleted level (rank 1 = best).
    #[inline]
    pub fn set(&mut self, level: Level) -> Option<(usize, i64)> {
        match self.find(level.px) {
            Ok(i) => {
                if level.sz == 0 {
                    let rank = self.levels.len() - i;
                    let old = self.levels.remove(i).expect("index from find");
                    return Some((rank, old.born));
                }
                let born = self.levels[i].born;
                self.levels[i] = Level { born, ..level };
                None
            }
            Err(i) => {
                if level.sz != 0 {
                    self.levels.insert(i, level);
                }
                None
            }
        }
    }

    /// Keep only the best `depth` levels (`0` keeps everything).
    #[inline]
    pub fn truncate(&mut self, depth: usize) {
        if depth != 0 && self.levels.len() > depth {
            let excess = self.levels.len() - depth;
            self.levels.drain(..excess);
        }
    }

    pub fn clear(&mut self) {
        self.levels.clear();
    }

    #[inline]
    pub fn best(&self) -> Option<&Level> {
        self.levels.back()
    }

    /// Levels from best to worst.
    #[inline]
    pub fn iter_best(&self) -> impl Iterator<Item = &Level> + '_ {
        self.levels.iter().rev()
    }

    /// Largest |price| and size held, used to check that a rescale cannot overflow.
    pub fn max_px_sz(&self) -> (i64, i64) {
        let max_px = match (self.levels.front(), self.levels.back()) {
            (Some(a), Some(b)) => a.px.max(b.px),
            _ => 0,
        };
        let max_sz = self.levels.iter().map(|l| l.sz).max().unwrap_or(0);
        (max_px, max_sz)
    }

    /// Multiply every price by `px_mul` and size by `sz_mul` (after a scale increase). The caller
    /// has checked that nothing overflows.
    pub fn rescale(&mut self, px_mul: i64, sz_mul: i64) {
        for l in &mut self.levels {
            l.px *= px_mul;
            l.sz *= sz_mul;
        }
    }

    /// Replace the whole side from levels in any order (snapshot load). Zero sizes are dropped;
    /// for a price given twice the later one wins.
    pub fn load<I: IntoIterator<Item = Level>>(&mut self, levels: I) {
        let mut sorted: Vec<Level> = levels.into_iter().collect();
        // A stable sort keeps array order among equal prices, so dedup can keep the last one.
        let side = self.side;
        let key = move |px: i64| if side == Side::Bid { px } else { -px };
        sorted.sort_by_key(|l| key(l.px));
        let mut out: VecDeque<Level> = VecDeque::with_capacity(sorted.len());
        for l in sorted {
            match out.back_mut() {
                Some(prev) if prev.px == l.px => *prev = l,
                _ => out.push_back(l),
            }
        }
        out.retain(|l| l.sz != 0);
        self.levels = out;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lv(px: i64, sz: i64) -> Level {
        Level { px, sz, born: 0, px_dec: 0, sz_dec: 0 }
    }

    #[test]
    fn bids_keep_best_highest() {
        let mut l = Ladder::new(Side::Bid);
        for (p, s) in [(100, 1), (102, 2), (101, 3)] {
            l.set(lv(p, s));
        }
        let px: Vec<i64> = l.iter_best().map(|x| x.px).collect();
        assert_eq!(px, vec![102, 101, 100]);
        assert_eq!(l.set(lv(102, 0)), Some((1, 0)));
        assert_eq!(l.set(lv(999, 0)), None); // absent delete is a no-op
        assert_eq!(l.best().unwrap().px, 101);
        l.set(lv(101, 7));
        assert_eq!(l.best().unwrap().sz, 7);
    }

    #[test]
    fn asks_keep_best_lowest_and_truncate_the_worst() {
        let mut l = Ladder::new(Side::Ask);
        for p in [105, 103, 104, 110, 101] {
            l.set(lv(p, 1));
        }
        l.truncate(3);
        let px: Vec<i64> = l.iter_best().map(|x| x.px).collect();
        assert_eq!(px, vec![101, 103, 104]);
    }

    #[test]
    fn load_dedups_keeping_the_last_and_drops_zero() {
        let mut l = Ladder::new(Side::Bid);
        l.load([lv(5, 1), lv(7, 2), lv(5, 9), lv(6, 0)]);
        let v: Vec<(i64, i64)> = l.iter_best().map(|x| (x.px, x.sz)).collect();
        assert_eq!(v, vec![(7, 2), (5, 9)]);
    }
}
