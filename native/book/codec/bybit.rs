//! Bybit v5 `orderbook.{depth}.{symbol}` (spot, linear, inverse).
//!
//! Integrity rules (see docs/book-semantics.md): every snapshot replaces the book (including
//! `u == 1` service restarts and the level-1 re-push with an unchanged `u`); a delta with
//! `u <= last u` is stale; any other jump in `u` is a gap (real recordings advance `u` by exactly
//! one per delta), after which the book needs a resync; the book is truncated to the topic depth.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::de::value::MapAccessDeserializer;
use serde::Deserialize as DeriveDeserialize;
use serde_json::value::RawValue;

use super::wire::{into_levels, StrLevel};
use crate::book::engine::{Applied, BookEngine, Outcome};
use crate::book::l2::WireLevel;
use crate::error::BookError;

/// First dotted part of topics Bybit publishes that are not order books.
const OTHER_TOPICS: &[&str] = &[
    "publicTrade",
    "tickers",
    "kline",
    "allLiquidation",
    "liquidation",
    "order",
    "execution",
    "position",
    "wallet",
    "greeks",
    "dcp",
];

#[derive(DeriveDeserialize)]
struct Envelope<'a> {
    #[serde(borrow)]
    topic: Option<&'a str>,
    #[serde(rename = "type", borrow)]
    kind: Option<&'a str>,
    ts: Option<i64>,
    op: Option<IgnoredAny>,
    success: Option<IgnoredAny>,
    #[serde(borrow)]
    data: Option<Data<'a>>,
}

#[derive(DeriveDeserialize)]
struct BookData<'a> {
    #[serde(borrow)]
    s: Option<&'a str>,
    #[serde(default)]
    b: Vec<StrLevel>,
    #[serde(default)]
    a: Vec<StrLevel>,
    u: Option<u64>,
}

/// `data` is an object for books and tickers but an array for trades, klines and private
/// topics; decide by shape in the same parse pass instead of parsing twice.
enum Data<'a> {
    Book(BookData<'a>),
    Other,
}

impl<'de: 'a, 'a> Deserialize<'de> for Data<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Data<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a data object or array")
            }
            fn visit_map<M: MapAccess<'de>>(self, m: M) -> Result<Data<'a>, M::Error> {
                BookData::deserialize(MapAccessDeserializer::new(m)).map(Data::Book)
            }
            fn visit_seq<S: SeqAccess<'de>>(self, mut s: S) -> Result<Data<'a>, S::Error> {
                while s.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Data::Other)
            }
            fn visit_unit<E>(self) -> Result<Data<'a>, E> {
                Ok(Data::Other)
            }
            fn visit_bool<E>(self, _: bool) -> Result<Data<'a>, E> {
                Ok(Data::Other)
            }
            fn visit_i64<E>(self, _: i64) -> Result<Data<'a>, E> {
                Ok(Data::Other)
            }
            fn visit_u64<E>(self, _: u64) -> Result<Data<'a>, E> {
                Ok(Data::Other)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Data<'a>, E> {
                Ok(Data::Other)
            }
            fn visit_str<E>(self, _: &str) -> Result<Data<'a>, E> {
                Ok(Data::Other)
            }
        }
        d.deserialize_any(V(PhantomData))
    }
}

fn malformed(msg: &str) -> BookError {
    BookError::Malformed(msg.to_owned())
}

pub fn apply(eng: &mut BookEngine, msg: &[u8]) -> Result<Applied, BookError> {
    let env: Envelope = serde_json::from_slice(msg)?;
    let topic = match env.topic {
        Some(t) => t,
        None if env.op.is_some() || env.success.is_some() => return Ok((Outcome::Skipped, None)),
        None => return Err(malformed("neither topic nor op")),
    };
    let (head, rest) = topic.split_once('.').unwrap_or((topic, ""));
    if head != "orderbook" {
        return if OTHER_TOPICS.contains(&head) {
            Ok((Outcome::Skipped, None))
        } else {
            Err(BookError::UnknownTopic(topic.to_owned()))
        };
    }
    let Some((depth_s, symbol)) = rest.split_once('.') else {
        return Err(BookError::UnknownTopic(topic.to_owned()));
    };
    let Ok(topic_depth) = depth_s.parse::<usize>() else {
        // orderbook.rpi.X / orderbook.full.X: real topics this engine does not keep.
        return Ok((Outcome::Skipped, None));
    };
    if symbol.is_empty() {
        return Err(BookError::UnknownTopic(topic.to_owned()));
    }
    let data = match env.data {
        Some(Data::Book(d)) => d,
        _ => return Err(malformed("orderbook message without a data object")),
    };
    let snapshot = match env.kind {
        Some("snapshot") => true,
        Some("delta") => false,
        Some(_) => return Err(malformed("type must be snapshot or delta")),
        None => return Err(malformed("missing type")),
    };
    if data.s.is_some_and(|s| s != symbol) {
        return Err(malformed("data.s differs from the topic symbol"));
    }
    let u = data.u.ok_or_else(|| malformed("missing data.u"))?;
    let bids = into_levels(data.b)?;
    let asks = into_levels(data.a)?;
    let depth = if eng.depth != 0 { eng.depth } else { topic_depth };
    apply_parsed(eng, symbol, snapshot, u, env.ts, &bids, &asks, depth)
}

#[allow(clippy::too_many_arguments)]
fn apply_parsed(
    eng: &mut BookEngine,
    symbol: &str,
    snapshot: bool,
    u: u64,
    ts: Option<i64>,
    bids: &[WireLevel],
    asks: &[WireLevel],
    depth: usize,
) -> Result<Applied, BookError> {
    let (idx, created) = eng.book_index(symbol);
    let book = &mut eng.books[idx];
    if let Err(e) = book.prepare(&[bids, asks]) {
        if created {
            eng.forget_new_book(idx);
        }
        return Err(e);
    }
    book.stats.messages += 1;
    if snapshot {
        book.load_snapshot(bids, asks);
        book.update_id = u;
        book.last_ts = ts;
        book.mark_snapshot();
        return Ok((BookEngine::finish(book, depth), Some(idx)));
    }
    if !book.is_live() {
        return Ok((Outcome::Waiting, Some(idx)));
    }
    if u <= book.update_id {
        book.stats.stale += 1;
        return Ok((Outcome::Stale, Some(idx)));
    }
    if u != book.update_id + 1 {
        book.stats.gaps += 1;
        book.mark_broken();
        return Ok((Outcome::Gap, Some(idx)));
    }
    book.apply_levels(bids, asks);
    book.update_id = u;
    book.last_ts = ts;
    Ok((BookEngine::finish(book, depth), Some(idx)))
}

#[derive(DeriveDeserialize)]
struct RestEnvelope<'a> {
    #[serde(borrow)]
    result: Option<&'a RawValue>,
    #[serde(rename = "retCode")]
    ret_code: Option<i64>,
}

#[derive(DeriveDeserialize)]
struct RestBook<'a> {
    #[serde(borrow)]
    s: Option<&'a str>,
    b: Vec<StrLevel>,
    a: Vec<StrLevel>,
    u: u64,
    ts: Option<i64>,
}

/// `GET /v5/market/orderbook` body (whole envelope or its `result`) as a snapshot for `symbol`.
pub fn apply_rest_snapshot(eng: &mut BookEngine, symbol: &str, msg: &[u8]) -> Result<Applied, BookError> {
    let env: RestEnvelope = serde_json::from_slice(msg)?;
    if env.ret_code.is_some_and(|c| c != 0) {
        return Err(malformed("REST response with a non-zero retCode"));
    }
    let book: RestBook = match env.result {
        Some(r) => serde_json::from_str(r.get())?,
        None => serde_json::from_slice(msg)?,
    };
    if book.s.is_some_and(|s| s != symbol) {
        return Err(malformed("result.s differs from the requested symbol"));
    }
    let bids = into_levels(book.b)?;
    let asks = into_levels(book.a)?;
    let depth = eng.depth;
    apply_parsed(eng, symbol, true, book.u, book.ts, &bids, &asks, depth)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eng() -> BookEngine {
        BookEngine::new("bybit", 0, 100).unwrap()
    }

    const SNAP: &str = r#"{"topic":"orderbook.50.BTCUSDT","type":"snapshot","ts":1,"data":{"s":"BTCUSDT","b":[["100.0","1"],["99.5","2"]],"a":[["101.0","3"]],"u":10,"seq":5},"cts":1}"#;

    fn delta(u: u64, b: &str, a: &str) -> String {
        format!(r#"{{"topic":"orderbook.50.BTCUSDT","type":"delta","ts":2,"data":{{"s":"BTCUSDT","b":[{b}],"a":[{a}],"u":{u},"seq":6}},"cts":2}}"#)
    }

    #[test]
    fn snapshot_then_deltas() {
        let mut e = eng();
        assert_eq!(e.apply(SNAP.as_bytes()).unwrap(), (Outcome::Applied, Some(0)));
        assert_eq!(e.apply(delta(11, r#"["100.0","0"]"#, r#"["100.5","1"]"#).as_bytes()).unwrap().0, Outcome::Applied);
        let b = e.book("BTCUSDT").unwrap();
        assert_eq!(b.levels_strings(0).0, vec![("99.5".to_string(), "2".to_string())]);
        assert_eq!(b.levels_strings(1).1, vec![("100.5".to_string(), "1".to_string())]);
        assert_eq!(e.apply(delta(11, "", "").as_bytes()).unwrap().0, Outcome::Stale);
        assert_eq!(e.apply(delta(13, "", "").as_bytes()).unwrap().0, Outcome::Gap);
        assert_eq!(e.book("BTCUSDT").unwrap().state.as_str(), "needs_resync");
        assert_eq!(e.apply(delta(14, "", "").as_bytes()).unwrap().0, Outcome::Waiting);
        assert_eq!(e.apply(SNAP.as_bytes()).unwrap().0, Outcome::Applied);
        assert_eq!(e.book("BTCUSDT").unwrap().stats.resyncs, 1);
    }

    #[test]
    fn crossed_delta_breaks_the_book() {
        let mut e = eng();
        e.apply(SNAP.as_bytes()).unwrap();
        assert_eq!(e.apply(delta(11, r#"["101.0","1"]"#, "").as_bytes()).unwrap().0, Outcome::Crossed);
        assert_eq!(e.needs_resync(), vec!["BTCUSDT"]);
    }

    #[test]
    fn malformed_changes_nothing_and_creates_no_book() {
        let mut e = eng();
        for bad in [
            "{",
            "[]",
            r#"{"topic":"orderbook.50.X","type":"snapshot","data":{"b":[["abc","1"]],"a":[],"u":1}}"#,
            r#"{"topic":"nonsense.X","data":{}}"#,
            r#"{"topic":"orderbook.50.X","type":"snapshot","data":{"s":"Y","b":[],"a":[],"u":1}}"#,
            r#"{"topic":"orderbook.50.X","type":"weird","data":{"b":[],"a":[],"u":1}}"#,
            r#"{"topic":"orderbook.50.X","type":"snapshot","data":{"b":[],"a":[]}}"#,
        ] {
            assert!(e.apply(bad.as_bytes()).is_err(), "{bad}");
        }
        assert!(e.books().is_empty());
        assert_eq!(e.totals().errors, 7);
        assert_eq!(e.apply(br#"{"success":true,"ret_msg":"pong","op":"ping"}"#).unwrap(), (Outcome::Skipped, None));
        assert_eq!(
            e.apply(br#"{"topic":"publicTrade.BTCUSDT","type":"snapshot","ts":1,"data":[{"p":"1"}]}"#).unwrap(),
            (Outcome::Skipped, None)
        );
    }

    #[test]
    fn truncates_to_topic_depth() {
        let mut e = eng();
        let snap = r#"{"topic":"orderbook.1.X","type":"snapshot","ts":1,"data":{"s":"X","b":[["1","1"],["0.5","1"]],"a":[["2","1"],["3","1"]],"u":5}}"#;
        e.apply(snap.as_bytes()).unwrap();
        let (b, a) = e.book("X").unwrap().levels_strings(0);
        assert_eq!((b.len(), a.len()), (1, 1));
        // level-1 re-push with the same u is a snapshot, not stale
        assert_eq!(e.apply(snap.as_bytes()).unwrap().0, Outcome::Applied);
    }

    #[test]
    fn rest_snapshot() {
        let mut e = eng();
        let body = br#"{"retCode":0,"retMsg":"OK","result":{"s":"BTCUSDT","b":[["1","2"]],"a":[["3","4"]],"ts":9,"u":77,"seq":1}}"#;
        assert_eq!(e.apply_snapshot("BTCUSDT", body).unwrap().0, Outcome::Applied);
        assert_eq!(e.book("BTCUSDT").unwrap().update_id, 77);
        assert!(e.apply_snapshot("ETHUSDT", body).is_err());
    }
}
