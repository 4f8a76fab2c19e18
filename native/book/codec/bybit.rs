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

use super::scan::Cursor;
use crate::analytics::Trade;
use crate::decimal::Dec;
use super::wire::{into_levels, Str, StrLevel};
use crate::book::engine::{Applied, BookEngine, Outcome, MAX_LEVELS_PER_SIDE};
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
    topic: Option<Str<'a>>,
    #[serde(rename = "type", borrow)]
    kind: Option<Str<'a>>,
    ts: Option<i64>,
    op: Option<IgnoredAny>,
    success: Option<IgnoredAny>,
    #[serde(borrow)]
    data: Option<Data<'a>>,
}

#[derive(DeriveDeserialize)]
struct BookData<'a> {
    #[serde(borrow)]
    s: Option<Str<'a>>,
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

/// What both parsers produce: the envelope fields the rules need.
#[derive(Debug, PartialEq)]
struct Parsed<'a> {
    topic: Option<Str<'a>>,
    kind: Option<Str<'a>>,
    ts: Option<i64>,
    control: bool,
    data: ParsedData<'a>,
}

#[derive(Debug, PartialEq)]
enum ParsedData<'a> {
    /// Absent or `null`.
    Absent,
    Book { s: Option<Str<'a>>, b: Vec<WireLevel>, a: Vec<WireLevel>, u: Option<u64> },
    Other,
}

/// The general parser: serde_json with borrowed strings.
fn parse_serde(msg: &[u8]) -> Result<Parsed<'_>, BookError> {
    let env: Envelope = serde_json::from_slice(msg)?;
    let data = match env.data {
        None => ParsedData::Absent,
        Some(Data::Other) => ParsedData::Other,
        Some(Data::Book(d)) => ParsedData::Book { s: d.s, b: into_levels(d.b)?, a: into_levels(d.a)?, u: d.u },
    };
    Ok(Parsed { topic: env.topic, kind: env.kind, ts: env.ts, control: env.op.is_some() || env.success.is_some(), data })
}

/// The hot path: one strict pass with no intermediate strings. `None` = use `parse_serde`.
fn parse_fast(msg: &[u8]) -> Option<Parsed<'_>> {
    let mut c = Cursor::new(msg)?;
    let mut p = Parsed { topic: None, kind: None, ts: None, control: false, data: ParsedData::Absent };
    let mut seen = [false; 4];
    let mut once = |i: usize| -> Option<()> {
        // serde refuses duplicate fields; leave those messages to it.
        if std::mem::replace(&mut seen[i], true) {
            None
        } else {
            Some(())
        }
    };
    c.eat(b'{')?;
    if c.peek()? == b'}' {
        c.i += 1;
    } else {
        loop {
            match c.str()? {
                "topic" => {
                    once(0)?;
                    c.eat(b':')?;
                    p.topic = nullable(&mut c, |c| c.str().map(Str::borrowed))?;
                }
                "type" => {
                    once(1)?;
                    c.eat(b':')?;
                    p.kind = nullable(&mut c, |c| c.str().map(Str::borrowed))?;
                }
                "ts" => {
                    once(2)?;
                    c.eat(b':')?;
                    p.ts = nullable(&mut c, |c| c.i64())?;
                }
                "data" => {
                    once(3)?;
                    c.eat(b':')?;
                    p.data = match c.peek()? {
                        b'{' => fast_book_data(&mut c)?,
                        b'n' => {
                            c.skip()?;
                            ParsedData::Absent
                        }
                        _ => {
                            c.skip()?;
                            ParsedData::Other
                        }
                    };
                }
                "op" | "success" => {
                    c.eat(b':')?;
                    // serde's Option<IgnoredAny> treats null as absent.
                    if c.peek()? != b'n' {
                        p.control = true;
                    }
                    c.skip()?;
                }
                _ => {
                    c.eat(b':')?;
                    c.skip()?;
                }
            }
            if !c.more(b'}')? {
                break;
            }
        }
    }
    if c.at_end() {
        Some(p)
    } else {
        None
    }
}

/// `null` or a value read by `f` (a JSON null deserializes to None for Option fields).
#[inline(always)]
fn nullable<'a, T>(c: &mut Cursor<'a>, f: impl FnOnce(&mut Cursor<'a>) -> Option<T>) -> Option<Option<T>> {
    if c.peek()? == b'n' {
        c.skip()?;
        Some(None)
    } else {
        f(c).map(Some)
    }
}

fn fast_book_data<'a>(c: &mut Cursor<'a>) -> Option<ParsedData<'a>> {
    let (mut s, mut u) = (None, None);
    let (mut b, mut a) = (Vec::new(), Vec::new());
    let mut seen = [false; 4];
    c.eat(b'{')?;
    if c.peek()? == b'}' {
        c.i += 1;
        return Some(ParsedData::Book { s, b, a, u });
    }
    loop {
        let key = c.str()?;
        c.eat(b':')?;
        let slot = match key {
            "s" => 0,
            "b" => 1,
            "a" => 2,
            "u" => 3,
            _ => 4,
        };
        if slot < 4 && std::mem::replace(&mut seen[slot], true) {
            return None;
        }
        match slot {
            0 => s = nullable(c, |c| c.str().map(Str::borrowed))?,
            1 => b = fast_levels(c)?,
            2 => a = fast_levels(c)?,
            3 => u = nullable(c, |c| c.u64())?,
            _ => c.skip()?,
        }
        if !c.more(b'}')? {
            return Some(ParsedData::Book { s, b, a, u });
        }
    }
}

/// `[["px","sz",...], ...]` straight into exact decimals.
#[inline(always)]
fn fast_levels(c: &mut Cursor<'_>) -> Option<Vec<WireLevel>> {
    c.eat(b'[')?;
    let mut out = Vec::with_capacity(16);
    if c.peek()? == b']' {
        c.i += 1;
        return Some(out);
    }
    loop {
        c.eat(b'[')?;
        let px = c.dec()?;
        c.eat(b',')?;
        let sz = c.dec()?;
        if px.is_zero() {
            return None;
        }
        while c.more(b']')? {
            c.skip()?;
        }
        out.push(WireLevel { px, sz });
        if !c.more(b']')? {
            break;
        }
    }
    if out.len() > MAX_LEVELS_PER_SIDE {
        return None;
    }
    Some(out)
}

pub fn apply(eng: &mut BookEngine, msg: &[u8]) -> Result<Applied, BookError> {
    let p = match parse_fast(msg) {
        Some(p) => p,
        None => parse_serde(msg)?,
    };
    let topic: &str = match p.topic.as_deref() {
        Some(t) => t,
        None if p.control => return Ok((Outcome::Skipped, None)),
        None => return Err(malformed("neither topic nor op")),
    };
    let (head, rest) = topic.split_once('.').unwrap_or((topic, ""));
    if head == "publicTrade" && eng.analytics.is_some() {
        return apply_trades(eng, rest, msg);
    }
    if head != "orderbook" {
        return if OTHER_TOPICS.contains(&head) {
            Ok((Outcome::Skipped, None))
        } else {
            Err(BookError::UnknownTopic(topic.to_owned()))
        };
    }
    // Anything but orderbook.<int>.<symbol> (orderbook.rpi.X, orderbook.full.X, ...) is a book
    // topic this engine does not keep.
    let Some((depth_s, symbol)) = rest.split_once('.') else {
        return Ok((Outcome::Skipped, None));
    };
    let Ok(topic_depth) = depth_s.parse::<usize>() else {
        return Ok((Outcome::Skipped, None));
    };
    if symbol.is_empty() {
        return Ok((Outcome::Skipped, None));
    }
    let ParsedData::Book { s, b: bids, a: asks, u } = p.data else {
        return Err(malformed("orderbook message without a data object"));
    };
    let snapshot = match p.kind.as_deref() {
        Some("snapshot") => true,
        Some("delta") => false,
        Some(_) => return Err(malformed("type must be snapshot or delta")),
        None => return Err(malformed("missing type")),
    };
    if s.as_deref().is_some_and(|s| s != symbol) {
        return Err(malformed("data.s differs from the topic symbol"));
    }
    let u = u.ok_or_else(|| malformed("missing data.u"))?;
    let depth = if eng.depth != 0 { eng.depth } else { topic_depth };
    apply_parsed(eng, symbol, snapshot, u, p.ts, &bids, &asks, depth)
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
        book.load_snapshot(bids, asks, ts);
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
    book.apply_levels(bids, asks, ts);
    book.update_id = u;
    book.last_ts = ts;
    Ok((BookEngine::finish(book, depth), Some(idx)))
}

#[derive(DeriveDeserialize)]
struct TradeEnvelope<'a> {
    #[serde(borrow)]
    data: Vec<TradeItem<'a>>,
}

#[derive(DeriveDeserialize)]
struct TradeItem<'a> {
    #[serde(rename = "T")]
    t: i64,
    #[serde(borrow)]
    s: Option<Str<'a>>,
    #[serde(rename = "S", borrow)]
    side: Str<'a>,
    #[serde(borrow)]
    v: Str<'a>,
    #[serde(borrow)]
    p: Str<'a>,
}

/// `publicTrade.{symbol}` into the symbol's trade flow (engines with features only).
fn apply_trades(eng: &mut BookEngine, symbol: &str, msg: &[u8]) -> Result<Applied, BookError> {
    if symbol.is_empty() {
        return Err(malformed("publicTrade topic without a symbol"));
    }
    let env: TradeEnvelope = serde_json::from_slice(msg)?;
    super::wire::check_len(env.data.len())?;
    let mut trades = Vec::with_capacity(env.data.len());
    for t in &env.data {
        if t.s.as_deref().is_some_and(|s| s != symbol) {
            return Err(malformed("trade s differs from the topic symbol"));
        }
        let buy = match &*t.side {
            "Buy" => true,
            "Sell" => false,
            _ => return Err(malformed("trade side S must be Buy or Sell")),
        };
        let p = Dec::parse(&t.p)?;
        if p.is_zero() {
            return Err(malformed("trade price must be positive"));
        }
        trades.push(Trade::new(t.t, p, Dec::parse(&t.v)?, buy));
    }
    let an = eng.analytics.as_mut().expect("checked by the caller");
    let i = an.on_trades(symbol, &trades);
    Ok((Outcome::Trades, Some(i)))
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
    s: Option<Str<'a>>,
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
    if book.s.as_deref().is_some_and(|s| s != symbol) {
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

    /// Both parsers must agree on every input the fast path accepts; on real-looking messages
    /// and on mutations of them.
    #[test]
    fn fast_parser_agrees_with_serde() {
        let base = [
            SNAP.to_string(),
            delta(11, r#"["100.0","0"],["99.0","1.50","x"]"#, r#"["101.5","2"]"#),
            r#"{"success":true,"ret_msg":"pong","conn_id":"a","req_id":"","op":"ping"}"#.to_string(),
            r#"{"topic":"publicTrade.X","type":"snapshot","ts":1,"data":[{"T":1,"p":"1.0","v":"2"}]}"#.to_string(),
            r#" { "topic" : "orderbook.1.X" , "ts" : -3 , "type":"snapshot","data":{"u":1,"b":[],"a":[]}} "#.to_string(),
            r#"{"topic":null,"op":null,"data":null}"#.to_string(),
        ];
        let mut rng = 0xAFC7FB0976F64FADu64;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let alphabet = b"{}[]\",:.0123456789-eE nultrsfabu\\";
        let mut checked = 0;
        for m in &base {
            for _ in 0..4000 {
                let mut v = m.as_bytes().to_vec();
                for _ in 0..(next() % 3) {
                    let i = (next() as usize) % v.len();
                    match next() % 3 {
                        0 => v[i] = alphabet[(next() as usize) % alphabet.len()],
                        1 => {
                            v.remove(i);
                        }
                        _ => v.insert(i, alphabet[(next() as usize) % alphabet.len()]),
                    }
                    if v.is_empty() {
                        break;
                    }
                }
                if let Some(fast) = parse_fast(&v) {
                    let slow = parse_serde(&v);
                    assert_eq!(Ok(&fast), slow.as_ref(), "parsers disagree on {:?}", String::from_utf8_lossy(&v));
                    checked += 1;
                }
            }
        }
        assert!(checked > 2000, "fast path accepted too few inputs to compare ({checked})");
    }

    #[test]
    fn escaped_strings_take_the_serde_path() {
        let mut e = eng();
        e.apply(SNAP.as_bytes()).unwrap();
        let d = r#"{"topic":"orderbook.50.BTCUSDT","type":"delt\u0061","ts":2,"data":{"s":"BTC\u0055SDT","b":[["100.0","\u0035"]],"a":[],"u":11}}"#;
        assert_eq!(e.apply(d.as_bytes()).unwrap(), (Outcome::Applied, Some(0)));
        assert_eq!(e.book("BTCUSDT").unwrap().levels_strings(1).0[0].1, "5");
        for t in ["orderbook", "orderbook.50", "orderbook.50.", "orderbook.rpi.X"] {
            let m = format!(r#"{{"topic":"{t}","type":"snapshot","data":{{"b":[],"a":[],"u":1}}}}"#);
            assert_eq!(e.apply(m.as_bytes()).unwrap(), (Outcome::Skipped, None), "{t}");
        }
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
