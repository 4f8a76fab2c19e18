//! Book checksums exactly as the exchanges define them (CRC32/IEEE over a text rendering of the
//! top of the book). The rendering reuses one scratch string, so verifying costs no allocation.

use std::fmt::Write;

use crate::book::l2::L2Book;

/// OKX: `bid1Px:bid1Sz:ask1Px:ask1Sz:...` over the top 25 levels per side (a side that runs out
/// leaves the other to continue alone), using the strings as received; signed 32-bit result.
pub fn okx(book: &L2Book, scratch: &mut String) -> i32 {
    scratch.clear();
    let mut bids = book.bids.iter_best().take(25);
    let mut asks = book.asks.iter_best().take(25);
    loop {
        let b = bids.next();
        let a = asks.next();
        if b.is_none() && a.is_none() {
            break;
        }
        for l in b.into_iter() {
            if !scratch.is_empty() {
                scratch.push(':');
            }
            book.write_px(scratch, l);
            scratch.push(':');
            book.write_sz(scratch, l);
        }
        for l in a.into_iter() {
            if !scratch.is_empty() {
                scratch.push(':');
            }
            book.write_px(scratch, l);
            scratch.push(':');
            book.write_sz(scratch, l);
        }
    }
    crc32fast::hash(scratch.as_bytes()) as i32
}

/// Kraken (v1 and v2): top 10 asks (ascending) then top 10 bids (descending); each price and size
/// written at the pair's precision with `.` removed and leading zeros stripped; unsigned result.
///
/// At the book's common scale a value is exactly that digit string read as an integer, so the
/// rendering is just the integers.
pub fn kraken(book: &L2Book, scratch: &mut String) -> u32 {
    scratch.clear();
    for l in book.asks.iter_best().take(10).chain(book.bids.iter_best().take(10)) {
        let _ = write!(scratch, "{}{}", l.px, l.sz);
    }
    crc32fast::hash(scratch.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::book::l2::WireLevel;
    use crate::decimal::Dec;

    fn lv(p: &str, s: &str) -> WireLevel {
        WireLevel { px: Dec::parse(p).unwrap(), sz: Dec::parse(s).unwrap() }
    }

    #[test]
    fn okx_documented_vector() {
        let mut b = L2Book::new("X");
        let bids = [lv("3366.1", "7")];
        let asks = [lv("3366.8", "9"), lv("3368", "8"), lv("3372", "8")];
        b.prepare(&[&bids, &asks]).unwrap();
        b.load_snapshot(&bids, &asks, None);
        let mut s = String::new();
        assert_eq!(okx(&b, &mut s), 831078360);
        assert_eq!(s, "3366.1:7:3366.8:9:3368:8:3372:8");
    }

    #[test]
    fn kraken_v1_documented_vector() {
        let mut b = L2Book::new("X");
        let asks: Vec<WireLevel> =
            (0..10).map(|i| lv(&format!("0.0{}", 5005 + 5 * i), "0.00000500")).collect();
        let bids: Vec<WireLevel> = ["0.05000", "0.04995", "0.04990", "0.04980", "0.04975", "0.04970", "0.04965", "0.04960", "0.04955", "0.04950"]
            .iter()
            .map(|p| lv(p, "0.00000500"))
            .collect();
        b.prepare(&[&bids, &asks]).unwrap();
        b.load_snapshot(&bids, &asks, None);
        let mut s = String::new();
        assert_eq!(kraken(&b, &mut s), 974947235);
        assert!(s.starts_with("500550050105005015500"));
    }
}
