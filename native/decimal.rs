//! Exact decimal numbers as they appear on exchange wires.
//!
//! A wire value such as `"16493.50"` becomes `Dec { mant: 1649350, dec: 2 }`: an integer mantissa
//! and the number of decimals it had. Nothing is ever converted through a float, so the value can
//! be written back exactly (`"16493.50"`, trailing zero kept) and compared as an integer once
//! brought to a common scale.

use std::fmt::Write;

/// Largest number of decimals (and of significant digits) accepted in one value.
pub const MAX_DECIMALS: u8 = 18;

/// Powers of ten that fit an `i64` (10^0 ..= 10^18).
pub const POW10: [i64; 19] = [
    1,
    10,
    100,
    1_000,
    10_000,
    100_000,
    1_000_000,
    10_000_000,
    100_000_000,
    1_000_000_000,
    10_000_000_000,
    100_000_000_000,
    1_000_000_000_000,
    10_000_000_000_000,
    100_000_000_000_000,
    1_000_000_000_000_000,
    10_000_000_000_000_000,
    100_000_000_000_000_000,
    1_000_000_000_000_000_000,
];

/// A non-negative exact decimal: `mant / 10^dec`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Dec {
    pub mant: i64,
    pub dec: u8,
}

/// Why a wire value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecimalError {
    #[error("empty number")]
    Empty,
    #[error("not a plain non-negative decimal: {0:?}")]
    Syntax(String),
    #[error("too many digits (at most 18 significant digits and 18 decimals): {0:?}")]
    TooLong(String),
}

impl Dec {
    /// Parse a plain decimal string (`^[0-9]+(\.[0-9]+)?$`), the form every exchange uses for
    /// prices and sizes in strings.
    #[inline]
    pub fn parse(s: &str) -> Result<Dec, DecimalError> {
        let b = s.as_bytes();
        if b.is_empty() {
            return Err(DecimalError::Empty);
        }
        let mut mant: i64 = 0;
        let mut digits: u32 = 0; // significant digits (leading zeros excluded)
        let mut dec: u32 = 0;
        let mut seen_point = false;
        let mut int_digits = 0u32;
        for &c in b {
            match c {
                b'0'..=b'9' => {
                    if seen_point {
                        dec += 1;
                    } else {
                        int_digits += 1;
                    }
                    if mant != 0 || c != b'0' {
                        digits += 1;
                        if digits > MAX_DECIMALS as u32 {
                            return Err(DecimalError::TooLong(s.to_owned()));
                        }
                    }
                    mant = mant * 10 + (c - b'0') as i64;
                }
                b'.' if !seen_point => seen_point = true,
                _ => return Err(DecimalError::Syntax(s.to_owned())),
            }
        }
        if int_digits == 0 || (seen_point && dec == 0) {
            return Err(DecimalError::Syntax(s.to_owned()));
        }
        if dec > MAX_DECIMALS as u32 {
            return Err(DecimalError::TooLong(s.to_owned()));
        }
        Ok(Dec { mant, dec: dec as u8 })
    }

    /// Parse the literal text of a JSON number (Kraken v2 sends prices as numbers), which may
    /// use exponent notation: `1e-05` -> 0.00001 (5 decimals), `4.0` -> 4.0 (1 decimal).
    pub fn parse_json_number(s: &str) -> Result<Dec, DecimalError> {
        let (base, exp) = match s.find(['e', 'E']) {
            None => return Dec::parse(s),
            Some(i) => (&s[..i], &s[i + 1..]),
        };
        let base = Dec::parse(base)?;
        let exp: i32 = exp
            .strip_prefix('+')
            .unwrap_or(exp)
            .parse()
            .map_err(|_| DecimalError::Syntax(s.to_owned()))?;
        if !(-40..=40).contains(&exp) {
            return Err(DecimalError::TooLong(s.to_owned()));
        }
        let dec = base.dec as i32 - exp;
        if dec >= 0 {
            if dec > MAX_DECIMALS as i32 {
                return Err(DecimalError::TooLong(s.to_owned()));
            }
            Ok(Dec { mant: base.mant, dec: dec as u8 })
        } else {
            let mant = base
                .mant
                .checked_mul(*POW10.get((-dec) as usize).ok_or_else(|| DecimalError::TooLong(s.to_owned()))?)
                .ok_or_else(|| DecimalError::TooLong(s.to_owned()))?;
            // The same limit as plain decimals: at most 18 digits.
            if mant >= POW10[MAX_DECIMALS as usize] {
                return Err(DecimalError::TooLong(s.to_owned()));
            }
            Ok(Dec { mant, dec: 0 })
        }
    }

    #[inline]
    pub fn is_zero(self) -> bool {
        self.mant == 0
    }

    /// The mantissa at `scale` decimals (`scale >= self.dec`), or None on overflow.
    #[inline]
    pub fn at_scale(self, scale: u8) -> Option<i64> {
        debug_assert!(scale >= self.dec);
        self.mant.checked_mul(POW10[(scale - self.dec) as usize])
    }

    /// Approximate value, for analytics only (never for anything sent to an exchange).
    #[inline]
    pub fn to_f64(self) -> f64 {
        self.mant as f64 / POW10[self.dec as usize] as f64
    }
}

/// Append `mant / 10^dec` with exactly `dec` decimals (`mant >= 0`).
#[inline]
pub fn write_fixed(out: &mut String, mant: i64, dec: u8) {
    if dec == 0 {
        let _ = write!(out, "{mant}");
        return;
    }
    let p = POW10[dec as usize];
    let int = mant / p;
    let frac = mant % p;
    let _ = write!(out, "{int}.{frac:0width$}", width = dec as usize);
}

/// `mant / 10^dec` as a string with exactly `dec` decimals.
pub fn format_fixed(mant: i64, dec: u8) -> String {
    let mut s = String::with_capacity(24);
    write_fixed(&mut s, mant, dec);
    s
}

/// Convert a value held at `scale` decimals back to its own `dec` decimals (exact by
/// construction: it was scaled up from `dec`).
#[inline]
pub fn unscale(v: i64, scale: u8, dec: u8) -> i64 {
    v / POW10[(scale - dec) as usize]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plain_decimals() {
        assert_eq!(Dec::parse("16493.50").unwrap(), Dec { mant: 1649350, dec: 2 });
        assert_eq!(Dec::parse("0").unwrap(), Dec { mant: 0, dec: 0 });
        assert_eq!(Dec::parse("007.5").unwrap(), Dec { mant: 75, dec: 1 });
        assert_eq!(Dec::parse("0.00000500").unwrap(), Dec { mant: 500, dec: 8 });
    }

    #[test]
    fn rejects_what_is_not_a_plain_decimal() {
        for bad in ["", "-1", "1.", ".5", "1e5", "1.2.3", "abc", " 1", "+1", "NaN", "1_000"] {
            assert!(Dec::parse(bad).is_err(), "{bad:?} should be refused");
        }
        assert!(matches!(Dec::parse("1234567890123456789"), Err(DecimalError::TooLong(_))));
        assert!(matches!(Dec::parse("0.0000000000000000001"), Err(DecimalError::TooLong(_))));
        // 18 significant digits after leading zeros are fine.
        assert!(Dec::parse("000123456789012345678").is_ok());
    }

    #[test]
    fn parses_json_numbers_with_exponents() {
        assert_eq!(Dec::parse_json_number("1e-05").unwrap(), Dec { mant: 1, dec: 5 });
        assert_eq!(Dec::parse_json_number("4.0").unwrap(), Dec { mant: 40, dec: 1 });
        assert_eq!(Dec::parse_json_number("1.5E3").unwrap(), Dec { mant: 1500, dec: 0 });
        assert_eq!(Dec::parse_json_number("2.5e+1").unwrap(), Dec { mant: 25, dec: 0 });
        assert!(Dec::parse_json_number("-1.0").is_err());
        assert!(Dec::parse_json_number("1e").is_err());
        assert!(Dec::parse_json_number("9e18").is_err());
        assert!(Dec::parse_json_number("9e17").is_ok());
    }

    #[test]
    fn formats_exactly() {
        assert_eq!(format_fixed(1649350, 2), "16493.50");
        assert_eq!(format_fixed(5, 5), "0.00005");
        assert_eq!(format_fixed(42, 0), "42");
        assert_eq!(format_fixed(0, 3), "0.000");
        assert_eq!(unscale(16_493_500_000, 6, 2), 1_649_350);
    }
}
