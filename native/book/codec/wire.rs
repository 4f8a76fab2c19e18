//! Deserializers shared by the codecs: a price level straight from `["px", "sz", ...]` into exact
//! decimals, in the same pass as the JSON parse.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;
use std::ops::Deref;

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, SeqAccess, Visitor};

use crate::book::engine::MAX_LEVELS_PER_SIDE;
use crate::book::l2::WireLevel;
use crate::decimal::Dec;
use crate::error::BookError;

/// A JSON string: borrowed from the message when it has no escapes, owned when it does
/// (`"XBT\/USD"` is valid JSON for `XBT/USD`, and some encoders write it that way).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Str<'a>(pub Cow<'a, str>);

impl<'a> Str<'a> {
    #[inline(always)]
    pub fn borrowed(s: &'a str) -> Self {
        Str(Cow::Borrowed(s))
    }
}

impl Deref for Str<'_> {
    type Target = str;
    #[inline]
    fn deref(&self) -> &str {
        &self.0
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Str<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Str<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Str<'a>, E> {
                Ok(Str(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Str<'a>, E> {
                Ok(Str(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Str<'a>, E> {
                Ok(Str(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V(PhantomData))
    }
}

/// `[price, size, ...]` with string values; extra elements (OKX order counts, Kraken timestamps)
/// are ignored.
pub struct StrLevel(pub WireLevel);

impl<'de> Deserialize<'de> for StrLevel {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = StrLevel;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a [price, size] array of decimal strings")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<StrLevel, A::Error> {
                let px: Str = seq.next_element()?.ok_or_else(|| de::Error::invalid_length(0, &self))?;
                let sz: Str = seq.next_element()?.ok_or_else(|| de::Error::invalid_length(1, &self))?;
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                let px = Dec::parse(&px).map_err(de::Error::custom)?;
                if px.is_zero() {
                    return Err(de::Error::custom("price must be positive"));
                }
                let sz = Dec::parse(&sz).map_err(de::Error::custom)?;
                Ok(StrLevel(WireLevel { px, sz }))
            }
        }
        d.deserialize_seq(V)
    }
}

/// A side of levels, bounded in length.
pub fn into_levels(v: Vec<StrLevel>) -> Result<Vec<WireLevel>, BookError> {
    check_len(v.len())?;
    // StrLevel is a transparent newtype; this map compiles to a no-op copy.
    Ok(v.into_iter().map(|l| l.0).collect())
}

pub fn check_len(n: usize) -> Result<(), BookError> {
    if n > MAX_LEVELS_PER_SIDE {
        Err(BookError::Malformed(format!("{n} levels on one side exceeds {MAX_LEVELS_PER_SIDE}")))
    } else {
        Ok(())
    }
}

/// Parse a JSON array of `[px, sz, ...]` levels from its raw text.
pub fn parse_levels(raw: &str) -> Result<Vec<WireLevel>, BookError> {
    let v: Vec<StrLevel> = serde_json::from_str(raw)?;
    into_levels(v)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `2023-07-30T15:29:58.343415Z` (UTC, `Z` or `+00:00`) to epoch milliseconds.
pub fn iso8601_ms(s: &str) -> Result<i64, BookError> {
    let bad = || BookError::Malformed(format!("bad ISO 8601 UTC timestamp {s:?}"));
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' {
        return Err(bad());
    }
    let num = |r: std::ops::Range<usize>| -> Result<i64, BookError> {
        let t = &s[r];
        if !t.bytes().all(|c| c.is_ascii_digit()) {
            return Err(bad());
        }
        t.parse::<i64>().map_err(|_| bad())
    };
    let (y, mo, d, h, mi, se) = (num(0..4)?, num(5..7)?, num(8..10)?, num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return Err(bad());
    }
    let mut rest = &s[19..];
    let mut ms = 0i64;
    if let Some(frac) = rest.strip_prefix('.') {
        let n = frac.bytes().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 {
            return Err(bad());
        }
        let digits = &frac[..n];
        let first3: String = digits.chars().chain("000".chars()).take(3).collect();
        ms = first3.parse().map_err(|_| bad())?;
        rest = &frac[n..];
    }
    if rest != "Z" && rest != "+00:00" {
        return Err(bad());
    }
    Ok(((days_from_civil(y, mo, d) * 24 + h) * 60 + mi) * 60_000 + se * 1000 + ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_parse_and_reject() {
        let v = parse_levels(r#"[["1.5","2"],["3.25","0","x","y"]]"#).unwrap();
        assert_eq!(v[1].px, Dec { mant: 325, dec: 2 });
        assert!(parse_levels(r#"[["1.5"]]"#).is_err());
        assert!(parse_levels(r#"[[1.5,"2"]]"#).is_err());
        assert!(parse_levels(r#"[["0","2"]]"#).is_err());
        assert!(parse_levels(r#"[["-1","2"]]"#).is_err());
    }

    #[test]
    fn iso_timestamps() {
        assert_eq!(iso8601_ms("1970-01-01T00:00:00Z").unwrap(), 0);
        assert_eq!(iso8601_ms("2023-07-30T15:29:58.343415Z").unwrap(), 1_690_730_998_343);
        assert!(iso8601_ms("2023-07-30 15:29:58Z").is_err());
        assert!(iso8601_ms("2023-07-30T15:29:58.343415").is_err());
    }
}
