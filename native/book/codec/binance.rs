//! Binance USD-M diff depth (`<symbol>@depth[@100ms|@500ms]`) with the documented sync:
//! buffer updates, apply a REST snapshot (`lastUpdateId`), drop `u < lastUpdateId`, require the
//! bridging update `U <= lastUpdateId <= u`, then follow the `pu` chain. A break is a gap; the
//! book then buffers again until the next snapshot.

use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::wire::{into_levels, parse_levels, Str, StrLevel};
use crate::book::engine::{Applied, BookEngine, Outcome};
use crate::book::l2::{L2Book, WireLevel};
use crate::error::BookError;

/// A validated depth update, owned so it can wait in the buffer.
#[derive(Debug, Clone)]
pub struct Update {
    pub first: u64,
    pub last: u64,
    pub prev: Option<u64>,
    pub ts: Option<i64>,
    pub bids: Vec<WireLevel>,
    pub asks: Vec<WireLevel>,
}

#[derive(Deserialize)]
struct Msg<'a> {
    #[serde(borrow)]
    data: Option<&'a RawValue>,
    stream: Option<IgnoredAny>,
    #[serde(borrow)]
    e: Option<Str<'a>>,
    #[serde(rename = "E")]
    event_time: Option<i64>,
    #[serde(borrow)]
    s: Option<Str<'a>>,
    #[serde(rename = "U")]
    first: Option<u64>,
    u: Option<u64>,
    pu: Option<u64>,
    // Raw because bookTicker events reuse `b`/`a` for plain strings.
    #[serde(borrow)]
    b: Option<&'a RawValue>,
    #[serde(borrow)]
    a: Option<&'a RawValue>,
    #[serde(rename = "lastUpdateId")]
    last_update_id: Option<IgnoredAny>,
    result: Option<IgnoredAny>,
    id: Option<IgnoredAny>,
}

fn malformed(msg: &str) -> BookError {
    BookError::Malformed(msg.to_owned())
}

pub fn apply(eng: &mut BookEngine, msg: &[u8]) -> Result<Applied, BookError> {
    let outer: Msg = serde_json::from_slice(msg)?;
    let inner: Msg;
    let m = match (outer.stream.is_some(), outer.data) {
        (true, Some(d)) => {
            inner = serde_json::from_str(d.get())?;
            &inner
        }
        (true, None) => return Err(malformed("combined-stream message without data")),
        _ => &outer,
    };
    match m.e.as_deref() {
        Some("depthUpdate") => {}
        Some(_) => return Ok((Outcome::Skipped, None)),
        None if m.last_update_id.is_some() => {
            return Err(malformed("a REST depth snapshot carries no symbol: use apply_snapshot"))
        }
        None if m.result.is_some() || m.id.is_some() => return Ok((Outcome::Skipped, None)),
        None => return Err(malformed("not a Binance event")),
    }
    let symbol: &str = m.s.as_deref().ok_or_else(|| malformed("depthUpdate without s"))?;
    let upd = Update {
        first: m.first.ok_or_else(|| malformed("depthUpdate without U"))?,
        last: m.u.ok_or_else(|| malformed("depthUpdate without u"))?,
        prev: m.pu,
        ts: m.event_time,
        bids: m.b.map(|r| parse_levels(r.get())).transpose()?.unwrap_or_default(),
        asks: m.a.map(|r| parse_levels(r.get())).transpose()?.unwrap_or_default(),
    };
    if upd.first > upd.last {
        return Err(malformed("depthUpdate with U > u"));
    }
    let (idx, created) = eng.book_index(symbol);
    // Validate the values against the book's representation before anything is counted.
    if let Err(e) = eng.books[idx].prepare(&[&upd.bids, &upd.asks]) {
        if created {
            eng.forget_new_book(idx);
        }
        return Err(e);
    }
    eng.books[idx].stats.messages += 1;
    if !eng.books[idx].is_live() {
        let limit = eng.buffer_limit;
        let buf = &mut eng.buffers[idx];
        if buf.len() >= limit {
            buf.pop_front();
        }
        buf.push_back(upd);
        return Ok((Outcome::Buffered, Some(idx)));
    }
    let depth = eng.depth;
    let out = apply_live(&mut eng.books[idx], &upd, depth);
    if out == Outcome::Gap {
        // The update that revealed the gap may bridge the next snapshot: keep it.
        eng.buffers[idx].push_back(upd);
    }
    Ok((out, Some(idx)))
}

/// The live rules for one update on a book that has a snapshot.
fn apply_live(book: &mut L2Book, upd: &Update, depth: usize) -> Outcome {
    if upd.last < book.update_id {
        book.stats.stale += 1;
        return Outcome::Stale;
    }
    if !book.bridged {
        if !(upd.first <= book.update_id && book.update_id <= upd.last) {
            book.stats.gaps += 1;
            book.mark_broken();
            return Outcome::Gap;
        }
    } else {
        if upd.last <= book.update_id {
            book.stats.stale += 1;
            return Outcome::Stale;
        }
        // Futures chain on `pu`; a stream without `pu` (spot) chains on `U == last u + 1`.
        let chained = match upd.prev {
            Some(pu) => pu == book.update_id,
            None => upd.first == book.update_id + 1,
        };
        if !chained {
            book.stats.gaps += 1;
            book.mark_broken();
            return Outcome::Gap;
        }
    }
    if book.prepare(&[&upd.bids, &upd.asks]).is_err() {
        // Validated when buffered; only a later rescale could make it not fit. Treat the book as
        // untrustworthy rather than skipping an update silently.
        book.stats.gaps += 1;
        book.mark_broken();
        return Outcome::Gap;
    }
    book.apply_levels(&upd.bids, &upd.asks, upd.ts);
    book.update_id = upd.last;
    book.bridged = true;
    if upd.ts.is_some() {
        book.last_ts = upd.ts;
    }
    BookEngine::finish(book, depth)
}

#[derive(Deserialize)]
struct Snapshot {
    #[serde(rename = "lastUpdateId")]
    last_update_id: u64,
    #[serde(rename = "E")]
    event_time: Option<i64>,
    bids: Vec<StrLevel>,
    asks: Vec<StrLevel>,
}

/// `GET /fapi/v1/depth` body for `symbol`, then the buffered updates replayed through the live
/// rules.
pub fn apply_snapshot(eng: &mut BookEngine, symbol: &str, msg: &[u8]) -> Result<Applied, BookError> {
    let snap: Snapshot = serde_json::from_slice(msg)?;
    let bids = into_levels(snap.bids)?;
    let asks = into_levels(snap.asks)?;
    let (idx, created) = eng.book_index(symbol);
    if let Err(e) = eng.books[idx].prepare(&[&bids, &asks]) {
        if created {
            eng.forget_new_book(idx);
        }
        return Err(e);
    }
    let depth = eng.depth;
    let book = &mut eng.books[idx];
    book.stats.messages += 1;
    book.load_snapshot(&bids, &asks, snap.event_time);
    book.update_id = snap.last_update_id;
    book.bridged = false;
    book.last_ts = snap.event_time;
    book.mark_snapshot();
    let mut result = BookEngine::finish(book, depth);
    if result.breaks_book() {
        return Ok((result, Some(idx)));
    }
    while let Some(upd) = eng.buffers[idx].pop_front() {
        let out = apply_live(&mut eng.books[idx], &upd, depth);
        if out.breaks_book() {
            if out == Outcome::Gap {
                eng.buffers[idx].push_front(upd);
            }
            result = out;
            break;
        }
    }
    Ok((result, Some(idx)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upd(first: u64, last: u64, pu: u64, b: &str) -> String {
        format!(
            r#"{{"stream":"btcusdt@depth@100ms","data":{{"e":"depthUpdate","E":5,"T":4,"s":"BTCUSDT","U":{first},"u":{last},"pu":{pu},"b":[{b}],"a":[]}}}}"#
        )
    }

    const SNAP: &[u8] = br#"{"lastUpdateId":100,"E":1,"T":1,"bids":[["10.0","1"]],"asks":[["11.0","1"]]}"#;

    #[test]
    fn buffers_bridges_and_chains() {
        let mut e = BookEngine::new("binance", 0, 100).unwrap();
        assert_eq!(e.apply(upd(90, 95, 89, r#"["9.0","1"]"#).as_bytes()).unwrap().0, Outcome::Buffered);
        assert_eq!(e.apply(upd(96, 102, 95, r#"["9.5","1"]"#).as_bytes()).unwrap().0, Outcome::Buffered);
        assert_eq!(e.apply_snapshot("BTCUSDT", SNAP).unwrap().0, Outcome::Applied);
        let b = e.book("BTCUSDT").unwrap();
        assert_eq!(b.update_id, 102);
        assert_eq!(b.stats.stale, 1);
        assert_eq!(b.levels_strings(0).0.len(), 2); // 10.0 and 9.5; 9.0 was stale
        assert_eq!(e.apply(upd(103, 104, 102, "").as_bytes()).unwrap().0, Outcome::Applied);
        assert_eq!(e.apply(upd(106, 107, 105, "").as_bytes()).unwrap().0, Outcome::Gap);
        assert_eq!(e.apply(upd(108, 109, 107, "").as_bytes()).unwrap().0, Outcome::Buffered);
    }

    #[test]
    fn snapshot_newer_than_every_update_waits_for_the_bridge() {
        let mut e = BookEngine::new("binance", 0, 100).unwrap();
        assert_eq!(e.apply_snapshot("BTCUSDT", SNAP).unwrap().0, Outcome::Applied);
        assert_eq!(e.apply(upd(90, 99, 89, "").as_bytes()).unwrap().0, Outcome::Stale);
        assert_eq!(e.apply(upd(101, 105, 99, "").as_bytes()).unwrap().0, Outcome::Gap);
    }

    #[test]
    fn other_events_and_rest_in_apply() {
        let mut e = BookEngine::new("binance", 0, 100).unwrap();
        let bt = br#"{"stream":"btcusdt@bookTicker","data":{"e":"bookTicker","u":1,"s":"BTCUSDT","b":"1.0","B":"2","a":"1.1","A":"3"}}"#;
        assert_eq!(e.apply(bt).unwrap(), (Outcome::Skipped, None));
        assert!(e.apply(SNAP).is_err());
        assert_eq!(e.apply(br#"{"result":null,"id":1}"#).unwrap().0, Outcome::Skipped);
    }
}
