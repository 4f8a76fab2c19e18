//! Kraken spot WebSocket books, v1 (`[channelID, {...}, "book-N", pair]`) and v2
//! (`{"channel":"book", ...}`), with their CRC32 checksum over the top 10 levels.
//!
//! Kraken sends no delete for levels pushed out of the subscribed depth, so the book is truncated
//! after every message before the checksum is computed.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, SeqAccess, Visitor};
use serde::Deserialize as DeriveDeserialize;
use serde_json::value::RawValue;

use super::wire::{check_len, iso8601_ms, Str};
use crate::book::engine::{Applied, BookEngine, Outcome};
use crate::book::l2::WireLevel;
use crate::checksum;
use crate::decimal::{Dec, POW10};
use crate::error::BookError;

/// Kraken v2's documented default depth.
const V2_DEFAULT_DEPTH: usize = 10;

fn malformed(msg: &str) -> BookError {
    BookError::Malformed(msg.to_owned())
}

/// v1 level: `[price, volume, timestamp]` or `[price, volume, timestamp, "r"]`.
struct V1Level {
    level: WireLevel,
    ts: Dec,
}

impl<'de> Deserialize<'de> for V1Level {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = V1Level;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a [price, volume, timestamp] array of strings")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<V1Level, A::Error> {
                let px: Str = seq.next_element()?.ok_or_else(|| de::Error::invalid_length(0, &self))?;
                let sz: Str = seq.next_element()?.ok_or_else(|| de::Error::invalid_length(1, &self))?;
                let ts: Str = seq.next_element()?.ok_or_else(|| de::Error::invalid_length(2, &self))?;
                // Optional 4th element: "r" marks a republished level; it is applied like any other.
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                let px = Dec::parse(&px).map_err(de::Error::custom)?;
                if px.is_zero() {
                    return Err(de::Error::custom("price must be positive"));
                }
                Ok(V1Level {
                    level: WireLevel { px, sz: Dec::parse(&sz).map_err(de::Error::custom)? },
                    ts: Dec::parse(&ts).map_err(de::Error::custom)?,
                })
            }
        }
        d.deserialize_seq(V)
    }
}

#[derive(DeriveDeserialize)]
struct V1Dict<'a> {
    #[serde(rename = "as")]
    snap_asks: Option<Vec<V1Level>>,
    bs: Option<Vec<V1Level>>,
    a: Option<Vec<V1Level>>,
    b: Option<Vec<V1Level>>,
    #[serde(borrow)]
    c: Option<Str<'a>>,
}

#[derive(DeriveDeserialize)]
struct V2Msg<'a> {
    #[serde(borrow)]
    channel: Option<Str<'a>>,
    #[serde(rename = "type", borrow)]
    kind: Option<Str<'a>>,
    #[serde(borrow)]
    data: Option<&'a RawValue>,
    method: Option<IgnoredAny>,
    event: Option<IgnoredAny>,
}

#[derive(DeriveDeserialize)]
struct V2Entry<'a> {
    #[serde(borrow)]
    symbol: Str<'a>,
    #[serde(default, borrow)]
    bids: Vec<V2Level<'a>>,
    #[serde(default, borrow)]
    asks: Vec<V2Level<'a>>,
    checksum: Option<u64>,
    #[serde(borrow)]
    timestamp: Option<Str<'a>>,
}

/// Prices are JSON numbers: keep their literal text so no digit is lost to a float.
#[derive(DeriveDeserialize)]
struct V2Level<'a> {
    #[serde(borrow)]
    price: &'a RawValue,
    #[serde(borrow)]
    qty: &'a RawValue,
}

impl V2Level<'_> {
    fn wire(&self) -> Result<WireLevel, BookError> {
        let px = Dec::parse_json_number(self.price.get())?;
        if px.is_zero() {
            return Err(malformed("price must be positive"));
        }
        Ok(WireLevel { px, sz: Dec::parse_json_number(self.qty.get())? })
    }
}

struct Parsed<'a> {
    symbol: Str<'a>,
    snapshot: bool,
    bids: Vec<WireLevel>,
    asks: Vec<WireLevel>,
    checksum: Option<u32>,
    ts: Option<i64>,
    depth: usize,
}

pub fn apply(eng: &mut BookEngine, msg: &[u8]) -> Result<Applied, BookError> {
    let first = msg.iter().find(|c| !c.is_ascii_whitespace()).copied();
    let parsed = match first {
        Some(b'[') => match parse_v1(msg)? {
            Some(p) => p,
            None => return Ok((Outcome::Skipped, None)),
        },
        Some(b'{') => {
            let m: V2Msg = serde_json::from_slice(msg)?;
            match m.channel.as_deref() {
                Some("book") => parse_v2(&m)?,
                Some(_) => return Ok((Outcome::Skipped, None)),
                None if m.event.is_some() || m.method.is_some() => return Ok((Outcome::Skipped, None)),
                None => return Err(malformed("neither channel, event nor method")),
            }
        }
        _ => return Err(malformed("not a JSON array or object")),
    };
    let mut last = (Outcome::Skipped, None);
    // A message counts once per book, even when it carries several entries for one symbol.
    let mut counted: Vec<usize> = Vec::with_capacity(1);
    for p in parsed {
        last = apply_parsed(eng, p, &mut counted)?;
        if last.0.breaks_book() {
            break;
        }
    }
    Ok(last)
}

fn parse_v1(msg: &[u8]) -> Result<Option<Vec<Parsed<'_>>>, BookError> {
    let parts: Vec<&RawValue> = serde_json::from_slice(msg)?;
    if parts.len() < 4 {
        return Err(malformed("v1 array shorter than [channelID, data, channelName, pair]"));
    }
    let n = parts.len();
    let channel: Str = serde_json::from_str(parts[n - 2].get())?;
    if !channel.starts_with("book") {
        return Ok(None);
    }
    let pair: Str = serde_json::from_str(parts[n - 1].get())?;
    let depth = channel
        .strip_prefix("book-")
        .and_then(|d| d.parse::<usize>().ok())
        .ok_or_else(|| malformed("book channel name is not book-N"))?;
    let (mut bids, mut asks) = (Vec::new(), Vec::new());
    let mut snapshot = false;
    let mut checksum = None;
    let mut ts_max: Option<Dec> = None;
    let mut take = |v: Vec<V1Level>, out: &mut Vec<WireLevel>| -> Result<(), BookError> {
        check_len(v.len())?;
        for l in v {
            if ts_max.is_none_or(|t| t.to_f64() < l.ts.to_f64()) {
                ts_max = Some(l.ts);
            }
            out.push(l.level);
        }
        Ok(())
    };
    for raw in &parts[1..n - 2] {
        let d: V1Dict = serde_json::from_str(raw.get())?;
        if let Some(v) = d.snap_asks {
            snapshot = true;
            take(v, &mut asks)?;
        }
        if let Some(v) = d.bs {
            snapshot = true;
            take(v, &mut bids)?;
        }
        if let Some(v) = d.a {
            take(v, &mut asks)?;
        }
        if let Some(v) = d.b {
            take(v, &mut bids)?;
        }
        if let Some(c) = d.c {
            // u32::from_str accepts a leading '+'; Kraken sends plain digits only.
            if c.is_empty() || !c.bytes().all(|b| b.is_ascii_digit()) {
                return Err(malformed("checksum c is not a decimal u32"));
            }
            checksum = Some(c.parse::<u32>().map_err(|_| malformed("checksum c is not a u32"))?);
        }
    }
    let ts = ts_max.map(|t| {
        // seconds with microseconds -> ms, exactly
        let scaled = t.mant as i128 * 1000 / POW10[t.dec as usize] as i128;
        scaled as i64
    });
    Ok(Some(vec![Parsed { symbol: pair, snapshot, bids, asks, checksum, ts, depth }]))
}

fn parse_v2<'a>(m: &V2Msg<'a>) -> Result<Vec<Parsed<'a>>, BookError> {
    let snapshot = match m.kind.as_deref() {
        Some("snapshot") => true,
        Some("update") => false,
        _ => return Err(malformed("type must be snapshot or update")),
    };
    let raw = m.data.ok_or_else(|| malformed("book message without data"))?;
    let entries: Vec<V2Entry<'a>> = serde_json::from_str(raw.get())?;
    let mut out = Vec::with_capacity(entries.len());
    for e in entries {
        check_len(e.bids.len())?;
        check_len(e.asks.len())?;
        let checksum = match e.checksum {
            Some(c) => Some(u32::try_from(c).map_err(|_| malformed("checksum out of u32 range"))?),
            None => None,
        };
        out.push(Parsed {
            symbol: e.symbol,
            snapshot,
            bids: e.bids.iter().map(V2Level::wire).collect::<Result<_, _>>()?,
            asks: e.asks.iter().map(V2Level::wire).collect::<Result<_, _>>()?,
            checksum,
            ts: e.timestamp.as_deref().map(iso8601_ms).transpose()?,
            depth: V2_DEFAULT_DEPTH,
        });
    }
    Ok(out)
}

fn apply_parsed(eng: &mut BookEngine, p: Parsed<'_>, counted: &mut Vec<usize>) -> Result<Applied, BookError> {
    let (idx, created) = eng.book_index(&p.symbol);
    if let Err(e) = eng.books[idx].prepare(&[&p.bids, &p.asks]) {
        if created {
            eng.forget_new_book(idx);
        }
        return Err(e);
    }
    let depth = if eng.depth != 0 { eng.depth } else { p.depth };
    let BookEngine { books, scratch, .. } = eng;
    let book = &mut books[idx];
    if !counted.contains(&idx) {
        counted.push(idx);
        book.stats.messages += 1;
    }
    if p.snapshot {
        book.load_snapshot(&p.bids, &p.asks, p.ts);
        book.mark_snapshot();
    } else {
        if !book.is_live() {
            return Ok((Outcome::Waiting, Some(idx)));
        }
        book.apply_levels(&p.bids, &p.asks, p.ts);
    }
    if p.ts.is_some() {
        book.last_ts = p.ts;
    }
    book.truncate(depth);
    if let Some(expected) = p.checksum {
        book.stats.checksums_checked += 1;
        if checksum::kraken(book, scratch) != expected {
            book.stats.checksum_failures += 1;
            book.mark_broken();
            return Ok((Outcome::ChecksumMismatch, Some(idx)));
        }
    }
    Ok((BookEngine::finish(book, depth), Some(idx)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v2_documented_vector() {
        let asks = "45285.2:0.00100000,45286.4:1.54571953,45286.6:1.54571109,45289.6:1.54560911,45290.2:0.15890660,45291.8:1.54553491,45294.7:0.04454749,45296.1:0.35380000,45297.5:0.09945542,45299.5:0.18772827";
        let bids = "45283.5:0.10000000,45283.4:1.54582015,45282.1:0.10000000,45281.0:0.10000000,45280.3:1.54592586,45279.0:0.07990000,45277.6:0.03310103,45277.5:0.30000000,45277.3:1.54602737,45276.6:0.15445238";
        let side = |s: &str| {
            s.split(',')
                .map(|l| {
                    let (p, q) = l.split_once(':').unwrap();
                    format!(r#"{{"price":{p},"qty":{q}}}"#)
                })
                .collect::<Vec<_>>()
                .join(",")
        };
        let msg = format!(
            r#"{{"channel":"book","type":"snapshot","data":[{{"symbol":"BTC/USD","bids":[{}],"asks":[{}],"checksum":3310070434,"timestamp":"2023-07-30T15:29:58.343415Z"}}]}}"#,
            side(bids),
            side(asks)
        );
        let mut e = BookEngine::new("kraken", 0, 10).unwrap();
        assert_eq!(e.apply(msg.as_bytes()).unwrap().0, Outcome::Applied);
        assert_eq!(e.book("BTC/USD").unwrap().stats.checksums_checked, 1);
    }

    #[test]
    fn v1_escaped_pair_and_strict_checksum_text() {
        let mut e = BookEngine::new("kraken", 0, 10).unwrap();
        let snap = br#"[1,{"as":[["5.0","1.0","1.0"]],"bs":[["4.0","1.0","1.0"]]},"book-10","XBT\/USD"]"#;
        assert_eq!(e.apply(snap).unwrap().0, Outcome::Applied);
        assert!(e.book("XBT/USD").is_ok());
        let plus = br#"[1,{"a":[["5.0","2.0","2.0"]],"c":"+5"},"book-10","XBT/USD"]"#;
        assert!(e.apply(plus).is_err());
    }

    #[test]
    fn v1_control_and_other_channels_are_skipped() {
        let mut e = BookEngine::new("kraken", 0, 10).unwrap();
        assert_eq!(e.apply(br#"{"event":"heartbeat"}"#).unwrap().0, Outcome::Skipped);
        assert_eq!(e.apply(br#"[1,[["1.0","2.0","3.0","b","m",""]],"trade","XBT/USD"]"#).unwrap().0, Outcome::Skipped);
        assert!(e.apply(br#"[1,{"a":[["1.0","2.0","3.0"]]},"book-10"]"#).is_err());
    }
}
