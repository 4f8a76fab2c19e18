//! All books of one exchange feed. One call applies one raw message; the codec for the exchange
//! parses it, routes it to its symbol's book and enforces that exchange's integrity rules.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use super::codec::{binance, bybit, kraken, okx};
use crate::analytics::{SymbolFeatures, TemporalSpec, Trade};
use super::l2::{BookState, L2Book};
use crate::error::BookError;

/// Largest raw message accepted (a 1000-level snapshot is ~50 KB; this leaves a wide margin).
pub const MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;
/// Most levels accepted per side in one message.
pub const MAX_LEVELS_PER_SIDE: usize = 100_000;

/// FNV-1a: symbols are short trusted keys looked up on every message, where SipHash's DoS
/// resistance buys nothing and costs several times more.
#[derive(Default)]
pub struct Fnv(u64);

impl Hasher for Fnv {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 { 0xcbf2_9ce4_8422_2325 } else { self.0 };
        for &b in bytes {
            h ^= b as u64;
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = h;
    }
    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

type SymbolIndex = HashMap<String, usize, BuildHasherDefault<Fnv>>;

/// Counts of one `apply_lines` call.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinesReport {
    pub lines: u64,
    pub applied: u64,
    pub skipped: u64,
    pub other: u64,
    pub errors: u64,
    /// (1-based line number within the chunk, error text), at most `max_errors` of them.
    pub first_errors: Vec<(u64, String)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exchange {
    Bybit,
    Binance,
    Okx,
    Kraken,
}

impl Exchange {
    pub fn parse(name: &str) -> Result<Exchange, BookError> {
        match name.to_ascii_lowercase().as_str() {
            "bybit" => Ok(Exchange::Bybit),
            "binance" => Ok(Exchange::Binance),
            "okx" => Ok(Exchange::Okx),
            "kraken" => Ok(Exchange::Kraken),
            _ => Err(BookError::UnknownExchange(name.to_owned())),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Exchange::Bybit => "bybit",
            Exchange::Binance => "binance",
            Exchange::Okx => "okx",
            Exchange::Kraken => "kraken",
        }
    }
}

/// What happened to one message. The numeric values are part of the Python contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Outcome {
    Applied = 0,
    Skipped = 1,
    Stale = 2,
    Buffered = 3,
    Waiting = 4,
    Gap = 5,
    Crossed = 6,
    ChecksumMismatch = 7,
    /// Public trades consumed by the analytics; the index is a feature-state index.
    Trades = 8,
}

impl Outcome {
    /// The book needs a fresh snapshot after this outcome.
    pub fn breaks_book(self) -> bool {
        matches!(self, Outcome::Gap | Outcome::Crossed | Outcome::ChecksumMismatch)
    }
}

/// `(outcome, index of the book touched)`.
pub type Applied = (Outcome, Option<usize>);

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    pub messages: u64,
    pub applied: u64,
    pub skipped: u64,
    pub stale: u64,
    pub buffered: u64,
    pub waiting: u64,
    pub gaps: u64,
    pub crossed: u64,
    pub checksum_failures: u64,
    pub checksums_checked: u64,
    pub errors: u64,
    pub trades: u64,
}

pub struct BookEngine {
    pub(crate) exchange: Exchange,
    pub(crate) depth: usize,
    pub(crate) buffer_limit: usize,
    pub(crate) books: Vec<L2Book>,
    index: SymbolIndex,
    /// Binance updates waiting for a REST snapshot, per book.
    pub(crate) buffers: Vec<VecDeque<binance::Update>>,
    counts: Totals,
    /// Reused for checksum strings so verification does not allocate per message.
    pub(crate) scratch: String,
    /// Feature state per symbol, when the engine computes features.
    pub(crate) analytics: Option<Analytics>,
}

/// The engine's analytics part: one feature state per symbol (books and trade-only symbols).
#[derive(Default)]
pub struct Analytics {
    feats: Vec<SymbolFeatures>,
    names: Vec<String>,
    index: SymbolIndex,
    reference: Option<String>,
    /// Configured temporal features, appended to every symbol's vector.
    temporal: Arc<[TemporalSpec]>,
}

impl Analytics {
    pub(crate) fn slot(&mut self, symbol: &str) -> usize {
        if let Some(&i) = self.index.get(symbol) {
            return i;
        }
        let i = self.feats.len();
        self.feats.push(SymbolFeatures::new(self.temporal.clone()));
        self.names.push(symbol.to_owned());
        self.index.insert(symbol.to_owned(), i);
        i
    }

    pub(crate) fn on_trades(&mut self, symbol: &str, trades: &[Trade]) -> usize {
        let i = self.slot(symbol);
        for t in trades {
            self.feats[i].on_trade(*t);
        }
        i
    }
}

/// A Binance REST depth body: carries `lastUpdateId` and no WebSocket event type.
pub fn is_rest_snapshot(line: &[u8]) -> bool {
    fn has(h: &[u8], n: &[u8]) -> bool {
        h.windows(n.len()).any(|w| w == n)
    }
    has(line, b"\"lastUpdateId\"") && !has(line, b"\"e\":")
}

impl BookEngine {
    pub fn new(exchange: &str, depth: usize, buffer_limit: usize) -> Result<Self, BookError> {
        if buffer_limit == 0 {
            return Err(BookError::Config("buffer_limit must be at least 1".into()));
        }
        Ok(BookEngine {
            exchange: Exchange::parse(exchange)?,
            depth,
            buffer_limit,
            books: Vec::new(),
            index: SymbolIndex::default(),
            buffers: Vec::new(),
            counts: Totals::default(),
            scratch: String::with_capacity(1024),
            analytics: None,
        })
    }

    /// Keep the feature vector of every symbol current (Bybit public trades feed the trade
    /// features). Must be called before the first message.
    pub fn enable_features(&mut self) {
        self.enable_features_with(Vec::new());
    }

    /// As `enable_features`, with configured temporal features appended to the base vector.
    pub fn enable_features_with(&mut self, temporal: Vec<TemporalSpec>) {
        if self.analytics.is_none() {
            self.analytics = Some(Analytics { temporal: Arc::from(temporal), ..Analytics::default() });
            for b in &mut self.books {
                b.track_deletions = true;
            }
        }
    }

    pub fn features_enabled(&self) -> bool {
        self.analytics.is_some()
    }

    /// The configured temporal features (empty without features or without specs).
    pub fn temporal_specs(&self) -> &[TemporalSpec] {
        self.analytics.as_ref().map_or(&[], |a| &a.temporal)
    }

    /// Length of every symbol's feature vector: the base schema plus the temporal specs.
    pub fn feature_count(&self) -> usize {
        crate::analytics::N_FEATURES + self.temporal_specs().len()
    }

    fn update_features(&mut self, idx: usize) {
        let Some(an) = self.analytics.as_mut() else {
            return;
        };
        let book = &self.books[idx];
        // The reference's mid as of its last applied update (a crossed or gapped reference
        // book is not used).
        let reference = match &an.reference {
            None => None,
            Some(r) if *r == book.symbol => None,
            Some(r) => Some(an.index.get(r.as_str()).and_then(|&ri| an.feats[ri].mid())),
        };
        let fi = an.slot(&book.symbol);
        an.feats[fi].on_book(book, book.last_ts.unwrap_or(0), reference);
    }

    pub fn features(&self, symbol: &str) -> Result<&SymbolFeatures, BookError> {
        let an = self.analytics.as_ref().ok_or_else(|| BookError::Config("features are not enabled".into()))?;
        an.index.get(symbol).map(|&i| &an.feats[i]).ok_or_else(|| BookError::UnknownSymbol(symbol.to_owned()))
    }

    pub fn set_reference_symbol(&mut self, symbol: Option<&str>) -> Result<(), BookError> {
        let an = self.analytics.as_mut().ok_or_else(|| BookError::Config("features are not enabled".into()))?;
        an.reference = symbol.map(str::to_owned);
        Ok(())
    }

    pub fn set_external_mid(&mut self, symbol: &str, mid: Option<f64>) -> Result<(), BookError> {
        let an = self.analytics.as_mut().ok_or_else(|| BookError::Config("features are not enabled".into()))?;
        if mid.is_some_and(|m| !m.is_finite() || m <= 0.0) {
            return Err(BookError::Config("external mid must be a positive finite number".into()));
        }
        let i = an.slot(symbol);
        an.feats[i].ext_mid = mid;
        Ok(())
    }

    /// Name of the symbol an outcome's index refers to.
    pub fn symbol_at(&self, outcome: Outcome, idx: usize) -> &str {
        match (outcome, &self.analytics) {
            (Outcome::Trades, Some(an)) => &an.names[idx],
            _ => &self.books[idx].symbol,
        }
    }

    pub fn exchange(&self) -> Exchange {
        self.exchange
    }

    pub fn depth(&self) -> usize {
        self.depth
    }

    /// Apply one raw WebSocket message.
    pub fn apply(&mut self, msg: &[u8]) -> Result<Applied, BookError> {
        let r = if msg.len() > MAX_MESSAGE_BYTES {
            Err(BookError::Malformed(format!("message of {} bytes exceeds the limit", msg.len())))
        } else {
            match self.exchange {
                Exchange::Bybit => bybit::apply(self, msg),
                Exchange::Binance => binance::apply(self, msg),
                Exchange::Okx => okx::apply(self, msg),
                Exchange::Kraken => kraken::apply(self, msg),
            }
        };
        if let Ok((Outcome::Applied, Some(idx))) = r {
            self.update_features(idx);
        }
        self.count(&r);
        r
    }

    /// Apply a REST depth snapshot for `symbol`.
    pub fn apply_snapshot(&mut self, symbol: &str, msg: &[u8]) -> Result<Applied, BookError> {
        let r = if symbol.is_empty() {
            Err(BookError::Malformed("a REST snapshot needs a non-empty symbol".into()))
        } else if msg.len() > MAX_MESSAGE_BYTES {
            Err(BookError::Malformed(format!("message of {} bytes exceeds the limit", msg.len())))
        } else {
            match self.exchange {
                Exchange::Bybit => bybit::apply_rest_snapshot(self, symbol, msg),
                Exchange::Binance => binance::apply_snapshot(self, symbol, msg),
                other => Err(BookError::Malformed(format!(
                    "{} books are built from WebSocket snapshots; there is no REST snapshot to apply",
                    other.as_str()
                ))),
            }
        };
        if let Ok((Outcome::Applied, Some(idx))) = r {
            self.update_features(idx);
        }
        self.count(&r);
        r
    }

    /// Apply a chunk of newline-separated messages, one `apply` each, without a round trip to
    /// the caller per line (for replays of recorded files). Blank lines count as skipped; a line
    /// that is a REST depth snapshot (`lastUpdateId` without an event type) goes to
    /// `apply_snapshot(rest_symbol)` when a symbol is given.
    pub fn apply_lines(&mut self, data: &[u8], rest_symbol: Option<&str>, max_errors: usize) -> LinesReport {
        let mut rep = LinesReport::default();
        let mut start = 0;
        let mut lines = std::iter::from_fn(|| {
            if start > data.len() {
                return None;
            }
            let end = memchr::memchr(b'\n', &data[start..]).map_or(data.len(), |i| start + i);
            let line = &data[start..end];
            start = end + 1;
            Some(line)
        });
        for line in lines.by_ref() {
            rep.lines += 1;
            if line.iter().all(|c| c.is_ascii_whitespace()) {
                rep.skipped += 1;
                continue;
            }
            let r = match rest_symbol {
                Some(sym) if is_rest_snapshot(line) => self.apply_snapshot(sym, line),
                _ => self.apply(line),
            };
            match r {
                Ok((Outcome::Applied, _)) => rep.applied += 1,
                Ok((Outcome::Skipped, _)) | Ok((Outcome::Trades, _)) => rep.skipped += 1,
                Ok(_) => rep.other += 1,
                Err(e) => {
                    rep.errors += 1;
                    if rep.first_errors.len() < max_errors {
                        rep.first_errors.push((rep.lines, e.to_string()));
                    }
                }
            }
        }
        rep
    }

    fn count(&mut self, r: &Result<Applied, BookError>) {
        match r {
            Err(_) => self.counts.errors += 1,
            Ok((o, _)) => {
                self.counts.messages += 1;
                match o {
                    Outcome::Applied => self.counts.applied += 1,
                    Outcome::Skipped => self.counts.skipped += 1,
                    Outcome::Buffered => self.counts.buffered += 1,
                    Outcome::Waiting => self.counts.waiting += 1,
                    Outcome::Trades => self.counts.trades += 1,
                    // Stale, gaps, crossed and checksum results are counted on the books, where
                    // one call can produce several (a Binance snapshot replays its buffer).
                    _ => {}
                }
            }
        }
    }

    pub fn totals(&self) -> Totals {
        let mut t = self.counts;
        for b in &self.books {
            t.stale += b.stats.stale;
            t.gaps += b.stats.gaps;
            t.crossed += b.stats.crossed;
            t.checksum_failures += b.stats.checksum_failures;
            t.checksums_checked += b.stats.checksums_checked;
        }
        t
    }

    /// Index of `symbol`'s book, creating it if needed; the flag says whether it was created so
    /// a codec can roll the creation back when validation fails afterwards.
    pub(crate) fn book_index(&mut self, symbol: &str) -> (usize, bool) {
        if let Some(&i) = self.index.get(symbol) {
            return (i, false);
        }
        let i = self.books.len();
        let mut book = L2Book::new(symbol);
        book.track_deletions = self.analytics.is_some();
        self.books.push(book);
        self.buffers.push(VecDeque::new());
        self.index.insert(symbol.to_owned(), i);
        (i, true)
    }

    /// Undo `book_index` for a book created by a message that then failed validation.
    pub(crate) fn forget_new_book(&mut self, idx: usize) {
        if idx + 1 == self.books.len() {
            let b = self.books.pop().expect("book exists");
            self.buffers.pop();
            self.index.remove(&b.symbol);
        }
    }

    pub fn find(&self, symbol: &str) -> Option<usize> {
        self.index.get(symbol).copied()
    }

    pub fn book(&self, symbol: &str) -> Result<&L2Book, BookError> {
        self.find(symbol)
            .map(|i| &self.books[i])
            .ok_or_else(|| BookError::UnknownSymbol(symbol.to_owned()))
    }

    pub fn book_at(&self, idx: usize) -> &L2Book {
        &self.books[idx]
    }

    pub fn books(&self) -> &[L2Book] {
        &self.books
    }

    pub fn needs_resync(&self) -> Vec<&str> {
        self.books
            .iter()
            .filter(|b| b.state == BookState::NeedsResync)
            .map(|b| b.symbol.as_str())
            .collect()
    }

    /// Forget a book's levels and wait for a fresh snapshot (after a resubscribe).
    pub fn reset(&mut self, symbol: &str) -> Result<(), BookError> {
        let i = self.find(symbol).ok_or_else(|| BookError::UnknownSymbol(symbol.to_owned()))?;
        self.books[i].reset();
        Ok(())
    }

    /// Truncate to the depth, then the crossed-book guard: the common end of every apply.
    #[inline]
    pub(crate) fn finish(book: &mut L2Book, depth: usize) -> Outcome {
        book.truncate(depth);
        if book.is_crossed() {
            book.stats.crossed += 1;
            book.mark_broken();
            Outcome::Crossed
        } else {
            Outcome::Applied
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apply_lines_counts_like_apply_and_reports_line_numbers() {
        let mut e = BookEngine::new("bybit", 0, 10).unwrap();
        let data = b"{\"topic\":\"orderbook.1.X\",\"type\":\"snapshot\",\"ts\":1,\"data\":{\"s\":\"X\",\"b\":[[\"1\",\"1\"]],\"a\":[[\"2\",\"1\"]],\"u\":1}}\n\n{broken\n{\"op\":\"pong\",\"success\":true}\n{\"topic\":\"orderbook.1.X\",\"type\":\"delta\",\"ts\":2,\"data\":{\"s\":\"X\",\"b\":[],\"a\":[],\"u\":1}}";
        let rep = e.apply_lines(data, None, 5);
        assert_eq!((rep.lines, rep.applied, rep.skipped, rep.other, rep.errors), (5, 1, 2, 1, 1));
        assert_eq!(rep.first_errors[0].0, 3);
        assert_eq!(e.totals().errors, 1);
        assert_eq!(e.totals().stale, 1);
    }

    #[test]
    fn rest_snapshot_detection() {
        assert!(is_rest_snapshot(br#"{"lastUpdateId":1,"bids":[],"asks":[]}"#));
        assert!(!is_rest_snapshot(br#"{"e":"depthUpdate","lastUpdateId":1}"#));
    }
}
