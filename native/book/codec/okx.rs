//! OKX v5 `books`, `books5`, `bbo-tbt`, `books-l2-tbt`, `books50-l2-tbt`.
//!
//! Integrity: the CRC32 checksum over the top 25 levels when the message carries a non-zero one
//! (OKX sends 0 since its 2026 deprecation), and the `prevSeqId`/`seqId` chain when present.

use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::wire::{into_levels, Str, StrLevel};
use crate::book::engine::{Applied, BookEngine, Outcome};
use crate::book::l2::WireLevel;
use crate::checksum;
use crate::error::BookError;

const BOOK_CHANNELS: &[&str] = &["books", "books5", "bbo-tbt", "books-l2-tbt", "books50-l2-tbt"];

#[derive(Deserialize)]
struct Msg<'a> {
    event: Option<IgnoredAny>,
    #[serde(borrow)]
    arg: Option<Arg<'a>>,
    #[serde(borrow)]
    action: Option<Str<'a>>,
    #[serde(borrow)]
    data: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct Arg<'a> {
    #[serde(borrow)]
    channel: Str<'a>,
    #[serde(rename = "instId", borrow)]
    inst_id: Option<Str<'a>>,
}

#[derive(Deserialize)]
struct Entry<'a> {
    #[serde(default)]
    asks: Vec<StrLevel>,
    #[serde(default)]
    bids: Vec<StrLevel>,
    #[serde(borrow)]
    ts: Option<Str<'a>>,
    checksum: Option<i64>,
    #[serde(rename = "seqId")]
    seq_id: Option<i64>,
    #[serde(rename = "prevSeqId")]
    prev_seq_id: Option<i64>,
}

struct Parsed {
    bids: Vec<WireLevel>,
    asks: Vec<WireLevel>,
    ts: Option<i64>,
    checksum: Option<i64>,
    seq_id: Option<i64>,
    prev_seq_id: Option<i64>,
}

fn malformed(msg: &str) -> BookError {
    BookError::Malformed(msg.to_owned())
}

pub fn apply(eng: &mut BookEngine, msg: &[u8]) -> Result<Applied, BookError> {
    if msg.trim_ascii() == b"pong" {
        return Ok((Outcome::Skipped, None));
    }
    let m: Msg = serde_json::from_slice(msg)?;
    if m.event.is_some() {
        return Ok((Outcome::Skipped, None));
    }
    let arg = m.arg.ok_or_else(|| malformed("neither event nor arg"))?;
    if !BOOK_CHANNELS.contains(&&*arg.channel) {
        return Ok((Outcome::Skipped, None));
    }
    let symbol = arg.inst_id.ok_or_else(|| malformed("book message without arg.instId"))?;
    let symbol: &str = &symbol;
    let snapshot = match m.action.as_deref() {
        None | Some("snapshot") => true,
        Some("update") => false,
        Some(_) => return Err(malformed("action must be snapshot or update")),
    };
    let raw = m.data.ok_or_else(|| malformed("book message without data"))?;
    let entries: Vec<Entry> = serde_json::from_str(raw.get())?;
    if entries.is_empty() {
        // Nothing to apply: touch (and create) no book.
        return Ok((Outcome::Skipped, None));
    }
    let mut parsed = Vec::with_capacity(entries.len());
    for e in entries {
        let ts = match e.ts.as_deref() {
            Some(t) => Some(t.parse::<i64>().map_err(|_| malformed("ts is not an integer string"))?),
            None => None,
        };
        parsed.push(Parsed {
            bids: into_levels(e.bids)?,
            asks: into_levels(e.asks)?,
            ts,
            checksum: e.checksum,
            seq_id: e.seq_id,
            prev_seq_id: e.prev_seq_id,
        });
    }
    let (idx, created) = eng.book_index(symbol);
    for p in &parsed {
        if let Err(e) = eng.books[idx].prepare(&[&p.bids, &p.asks]) {
            if created {
                eng.forget_new_book(idx);
            }
            return Err(e);
        }
    }
    let depth = eng.depth;
    let BookEngine { books, scratch, .. } = eng;
    let book = &mut books[idx];
    book.stats.messages += 1;
    let mut out = Outcome::Applied;
    for p in &parsed {
        if snapshot {
            book.load_snapshot(&p.bids, &p.asks, p.ts);
            book.update_id = p.seq_id.map_or(0, |s| s.max(0) as u64);
            book.mark_snapshot();
        } else {
            if !book.is_live() {
                return Ok((Outcome::Waiting, Some(idx)));
            }
            if let Some(prev) = p.prev_seq_id {
                if prev != -1 && book.update_id != 0 && prev.max(0) as u64 != book.update_id {
                    book.stats.gaps += 1;
                    book.mark_broken();
                    return Ok((Outcome::Gap, Some(idx)));
                }
            }
            book.apply_levels(&p.bids, &p.asks, p.ts);
            if let Some(s) = p.seq_id {
                book.update_id = s.max(0) as u64;
            }
        }
        if p.ts.is_some() {
            book.last_ts = p.ts;
        }
        book.truncate(depth);
        if let Some(expected) = p.checksum.filter(|&c| c != 0) {
            book.stats.checksums_checked += 1;
            if checksum::okx(book, scratch) as i64 != expected {
                book.stats.checksum_failures += 1;
                book.mark_broken();
                return Ok((Outcome::ChecksumMismatch, Some(idx)));
            }
        }
        out = BookEngine::finish(book, depth);
        if out.breaks_book() {
            break;
        }
    }
    Ok((out, Some(idx)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_update_and_checksum() {
        let mut e = BookEngine::new("okx", 0, 10).unwrap();
        let snap = br#"{"arg":{"channel":"books","instId":"X"},"action":"snapshot","data":[{"asks":[["3366.8","9","0","1"],["3368","8","0","1"],["3372","8","0","1"]],"bids":[["3366.1","7","0","1"]],"ts":"5","checksum":831078360}]}"#;
        assert_eq!(e.apply(snap).unwrap().0, Outcome::Applied);
        let bad = br#"{"arg":{"channel":"books","instId":"X"},"action":"update","data":[{"asks":[],"bids":[["3366.1","8","0","1"]],"ts":"6","checksum":831078360}]}"#;
        assert_eq!(e.apply(bad).unwrap().0, Outcome::ChecksumMismatch);
        let b = e.book("X").unwrap();
        assert_eq!((b.stats.checksums_checked, b.stats.checksum_failures), (2, 1));
        assert_eq!(e.apply(b"pong").unwrap().0, Outcome::Skipped);
        assert_eq!(e.apply(br#"{"event":"subscribe","arg":{"channel":"books","instId":"X"}}"#).unwrap().0, Outcome::Skipped);
    }

    #[test]
    fn escaped_strings_and_empty_data() {
        let mut e = BookEngine::new("okx", 0, 10).unwrap();
        let snap = br#"{"arg":{"channel":"book\u0073","instId":"BTC\/USDT"},"action":"snap\u0073hot","data":[{"asks":[["2","1","0","1"]],"bids":[["1","1","0","1"]],"ts":"5"}]}"#;
        assert_eq!(e.apply(snap).unwrap().0, Outcome::Applied);
        assert!(e.book("BTC/USDT").is_ok());
        let empty = br#"{"arg":{"channel":"books","instId":"ETH-USDT"},"action":"update","data":[]}"#;
        assert_eq!(e.apply(empty).unwrap(), (Outcome::Skipped, None));
        assert!(e.book("ETH-USDT").is_err());
    }

    #[test]
    fn seq_chain() {
        let mut e = BookEngine::new("okx", 0, 10).unwrap();
        let snap = br#"{"arg":{"channel":"books","instId":"X"},"action":"snapshot","data":[{"asks":[["2","1","0","1"]],"bids":[["1","1","0","1"]],"ts":"5","checksum":0,"seqId":10,"prevSeqId":-1}]}"#;
        e.apply(snap).unwrap();
        let ok = br#"{"arg":{"channel":"books","instId":"X"},"action":"update","data":[{"asks":[],"bids":[],"ts":"6","checksum":0,"seqId":12,"prevSeqId":10}]}"#;
        assert_eq!(e.apply(ok).unwrap().0, Outcome::Applied);
        let gap = br#"{"arg":{"channel":"books","instId":"X"},"action":"update","data":[{"asks":[],"bids":[],"ts":"7","checksum":0,"seqId":15,"prevSeqId":13}]}"#;
        assert_eq!(e.apply(gap).unwrap().0, Outcome::Gap);
    }
}
