//! A strict, zero-copy JSON cursor for the hot path.
//!
//! It accepts only what it can prove valid cheaply: ASCII-only input, strings without escapes
//! where a value is read (escapes are validated when skipped), integers without fraction where an
//! integer is read. Anything else returns `None`, which means "not for the fast path": the caller
//! falls back to serde_json, which either handles the message or produces the exact error. The
//! fast path therefore never accepts a message serde would refuse, and never refuses one serde
//! would accept (the equivalence is property-tested in `bybit.rs`).

use crate::decimal::{Dec, MAX_DECIMALS};

/// serde_json's default recursion limit; deeper input goes to serde, which reports it.
const MAX_DEPTH: u32 = 128;

pub struct Cursor<'a> {
    b: &'a [u8],
    pub i: usize,
}

impl<'a> Cursor<'a> {
    /// A cursor over ASCII input only (non-ASCII bytes need UTF-8 validation: serde's job).
    #[inline]
    pub fn new(b: &'a [u8]) -> Option<Self> {
        if b.is_ascii() {
            Some(Cursor { b, i: 0 })
        } else {
            None
        }
    }

    #[inline(always)]
    pub fn ws(&mut self) {
        while let Some(&c) = self.b.get(self.i) {
            if c == b' ' || c == b'\n' || c == b'\r' || c == b'\t' {
                self.i += 1;
            } else {
                break;
            }
        }
    }

    #[inline(always)]
    pub fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.b.get(self.i).copied()
    }

    #[inline(always)]
    pub fn eat(&mut self, c: u8) -> Option<()> {
        if self.peek()? == c {
            self.i += 1;
            Some(())
        } else {
            None
        }
    }

    /// After a value inside an object or array: `,` (more follows, true) or `close` (false).
    #[inline(always)]
    pub fn more(&mut self, close: u8) -> Option<bool> {
        match self.peek()? {
            b',' => {
                self.i += 1;
                Some(true)
            }
            c if c == close => {
                self.i += 1;
                Some(false)
            }
            _ => None,
        }
    }

    /// A string without escapes or control characters, borrowed.
    #[inline(always)]
    pub fn str(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        let start = self.i;
        let rest = &self.b[start..];
        let n = rest.iter().position(|&c| c == b'"' || c == b'\\' || c < 0x20)?;
        if rest[n] != b'"' {
            return None;
        }
        self.i = start + n + 1;
        // SAFETY: `new` checked that the whole input is ASCII, and ASCII is valid UTF-8.
        Some(unsafe { std::str::from_utf8_unchecked(&rest[..n]) })
    }

    /// A decimal string (`"123.45"`) parsed while it is scanned, accepting exactly what
    /// `Dec::parse` accepts; anything else (escapes, signs, too many digits) is `None`.
    #[inline(always)]
    pub fn dec(&mut self) -> Option<Dec> {
        self.eat(b'"')?;
        let b = self.b;
        let mut i = self.i;
        let mut mant: i64 = 0;
        let mut sig: u32 = 0;
        let mut int_digits: u32 = 0;
        while let Some(&c) = b.get(i) {
            if !c.is_ascii_digit() {
                break;
            }
            if mant != 0 || c != b'0' {
                sig += 1;
            }
            mant = mant.wrapping_mul(10) + (c - b'0') as i64;
            int_digits += 1;
            i += 1;
        }
        let mut dec: u32 = 0;
        if b.get(i) == Some(&b'.') {
            i += 1;
            while let Some(&c) = b.get(i) {
                if !c.is_ascii_digit() {
                    break;
                }
                if mant != 0 || c != b'0' {
                    sig += 1;
                }
                mant = mant.wrapping_mul(10) + (c - b'0') as i64;
                dec += 1;
                i += 1;
            }
            if dec == 0 {
                return None;
            }
        }
        // Up to 18 significant digits cannot overflow an i64, so the wrapping ops above are exact.
        if int_digits == 0 || sig > MAX_DECIMALS as u32 || dec > MAX_DECIMALS as u32 || b.get(i) != Some(&b'"') {
            return None;
        }
        self.i = i + 1;
        Some(Dec { mant, dec: dec as u8 })
    }

    /// A non-negative integer without sign, fraction or exponent.
    #[inline(always)]
    pub fn u64(&mut self) -> Option<u64> {
        self.ws();
        let start = self.i;
        let mut v: u64 = 0;
        while let Some(&c) = self.b.get(self.i) {
            if !c.is_ascii_digit() {
                break;
            }
            v = v.checked_mul(10)?.checked_add((c - b'0') as u64)?;
            self.i += 1;
        }
        let n = self.i - start;
        if n == 0 || (n > 1 && self.b[start] == b'0') {
            return None;
        }
        match self.b.get(self.i) {
            Some(b'.') | Some(b'e') | Some(b'E') => None,
            _ => Some(v),
        }
    }

    /// An integer that may be negative.
    #[inline(always)]
    pub fn i64(&mut self) -> Option<i64> {
        if self.peek()? == b'-' {
            self.i += 1;
            let v = self.u64()?;
            // serde_json reads `-0` as the float -0.0, which is not an integer.
            if v == 0 || v > i64::MAX as u64 + 1 {
                return None;
            }
            Some((-(v as i128)) as i64)
        } else {
            i64::try_from(self.u64()?).ok()
        }
    }

    /// Skip any JSON value, validating it strictly.
    pub fn skip(&mut self) -> Option<()> {
        self.skip_depth(0)
    }

    fn skip_depth(&mut self, depth: u32) -> Option<()> {
        if depth >= MAX_DEPTH {
            return None;
        }
        match self.peek()? {
            b'{' => {
                self.i += 1;
                if self.peek()? == b'}' {
                    self.i += 1;
                    return Some(());
                }
                loop {
                    self.skip_string()?;
                    self.eat(b':')?;
                    self.skip_depth(depth + 1)?;
                    if !self.more(b'}')? {
                        return Some(());
                    }
                }
            }
            b'[' => {
                self.i += 1;
                if self.peek()? == b']' {
                    self.i += 1;
                    return Some(());
                }
                loop {
                    self.skip_depth(depth + 1)?;
                    if !self.more(b']')? {
                        return Some(());
                    }
                }
            }
            b'"' => self.skip_string(),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            _ => self.skip_number(),
        }
    }

    fn literal(&mut self, lit: &[u8]) -> Option<()> {
        if self.b.get(self.i..self.i + lit.len())? == lit {
            self.i += lit.len();
            Some(())
        } else {
            None
        }
    }

    fn skip_string(&mut self) -> Option<()> {
        self.eat(b'"')?;
        loop {
            let c = *self.b.get(self.i)?;
            self.i += 1;
            match c {
                b'"' => return Some(()),
                b'\\' => {
                    let e = *self.b.get(self.i)?;
                    self.i += 1;
                    match e {
                        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => {}
                        b'u' => {
                            let hex = self.b.get(self.i..self.i + 4)?;
                            if !hex.iter().all(u8::is_ascii_hexdigit) {
                                return None;
                            }
                            // Surrogate pairs need pairing checks; leave them to serde.
                            if matches!(hex[0], b'd' | b'D') {
                                return None;
                            }
                            self.i += 4;
                        }
                        _ => return None,
                    }
                }
                c if c < 0x20 => return None,
                _ => {}
            }
        }
    }

    /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`
    fn skip_number(&mut self) -> Option<()> {
        let digits = |s: &mut Self| -> usize {
            let st = s.i;
            while s.b.get(s.i).is_some_and(u8::is_ascii_digit) {
                s.i += 1;
            }
            s.i - st
        };
        if self.b.get(self.i) == Some(&b'-') {
            self.i += 1;
        }
        let st = self.i;
        let n = digits(self);
        if n == 0 || (n > 1 && self.b[st] == b'0') {
            return None;
        }
        if self.b.get(self.i) == Some(&b'.') {
            self.i += 1;
            if digits(self) == 0 {
                return None;
            }
        }
        if matches!(self.b.get(self.i), Some(b'e') | Some(b'E')) {
            self.i += 1;
            if matches!(self.b.get(self.i), Some(b'+') | Some(b'-')) {
                self.i += 1;
            }
            if digits(self) == 0 {
                return None;
            }
        }
        Some(())
    }

    /// Only whitespace remains.
    #[inline]
    pub fn at_end(&mut self) -> bool {
        self.ws();
        self.i == self.b.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skips_valid_json_and_refuses_invalid() {
        for ok in [r#"{"a":[1,-2.5e3,"x\n\u00e9",true,false,null,{}],"b":[]}"#, "0", "-0.1", r#""""#] {
            let mut c = Cursor::new(ok.as_bytes()).unwrap();
            assert!(c.skip().is_some() && c.at_end(), "{ok}");
        }
        for bad in ["01", "1.", "-", "1e", "[1,]", "{\"a\"1}", "tru", "\"\\x\"", "{,}", "[1 2]"] {
            let mut c = Cursor::new(bad.as_bytes()).unwrap();
            assert!(!(c.skip().is_some() && c.at_end()), "{bad}");
        }
    }

    #[test]
    fn dec_accepts_exactly_what_dec_parse_accepts() {
        let cases = [
            "0", "1", "007.5", "1.50", "0.00000500", "123456789012345678", "1234567890123456789",
            "0.000000000000000001", "0.0000000000000000001", "1.", ".5", "-1", "1e5", "", "1.2.3",
            "000000000000000000000001",
        ];
        for t in cases {
            let quoted = format!("\"{t}\"");
            let fast = Cursor::new(quoted.as_bytes()).unwrap().dec();
            assert_eq!(fast, Dec::parse(t).ok(), "{t:?}");
        }
    }

    #[test]
    fn reads_integers_strictly() {
        assert_eq!(Cursor::new(b" 123").unwrap().u64(), Some(123));
        assert_eq!(Cursor::new(b"-5").unwrap().i64(), Some(-5));
        assert_eq!(Cursor::new(b"1.5").unwrap().u64(), None);
        assert_eq!(Cursor::new(b"007").unwrap().u64(), None);
        assert_eq!(Cursor::new(b"99999999999999999999").unwrap().u64(), None);
        assert!(Cursor::new("é".as_bytes()).is_none());
    }
}
