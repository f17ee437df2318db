//! Exact numbers: a JSON number literal compared by integer and decimal arithmetic on its digits,
//! never through a float.
//!
//! `serde_json` is built with `arbitrary_precision` in this workspace, so a
//! [`serde_json::Number`] keeps the literal it was parsed from (`1234567890123456789`,
//! `0.10000000000000001`, `1E+400`), and [`ExactNumber::from_json`] reads that literal.
//! A number built from an `f64` in code reads as the shortest decimal that round-trips to it
//! (`0.1` for `0.1_f64`), which is what its writer meant.
//!
//! ```
//! use agentiam_token::ExactNumber;
//! let id: serde_json::Value = serde_json::from_str("1234567890123456789").unwrap();
//! let neighbour: serde_json::Value = serde_json::from_str("1234567890123456788").unwrap();
//! let a = ExactNumber::from_json(id.as_number().unwrap()).unwrap();
//! let b = ExactNumber::from_json(neighbour.as_number().unwrap()).unwrap();
//! assert!(a > b);
//! assert_eq!(ExactNumber::parse("1e3").unwrap(), ExactNumber::parse("1000.000").unwrap());
//! ```

use std::cmp::Ordering;
use std::fmt;

/// Longest number literal read exactly; a longer one is refused (never rounded).
pub const MAX_NUMBER_LITERAL: usize = 1024;
/// Largest decimal exponent accepted (`1e100000` is refused, never treated as infinity).
const MAX_EXPONENT: i64 = 100_000;

/// Why a literal is not an exact number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InexactNumber(String);

impl InexactNumber {
    /// The stable reason code: `scope.inexact_number`.
    pub fn code(&self) -> &'static str {
        crate::codes::SCOPE_INEXACT_NUMBER
    }
}

impl agentiam_codes::ReasonCode for InexactNumber {
    fn code(&self) -> &str {
        InexactNumber::code(self)
    }
}

/// A decimal number of any size, kept exactly: `0.d1d2…dn × 10^exponent`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ExactNumber {
    negative: bool,
    /// Significant digits (0-9), no leading or trailing zeros; empty for zero.
    digits: Vec<u8>,
    /// Where the decimal point sits relative to the digits.
    exponent: i64,
}

impl ExactNumber {
    /// Reads a JSON number literal (`-12.50`, `1E+3`, `0.1`); other text is refused.
    pub fn parse(text: &str) -> Result<Self, InexactNumber> {
        let refuse = |why: &str| InexactNumber(format!("number {:?}: {why}", clip(text)));
        if text.len() > MAX_NUMBER_LITERAL {
            return Err(refuse(&format!(
                "longer than {MAX_NUMBER_LITERAL} characters"
            )));
        }
        let (negative, rest) = match text.strip_prefix('-') {
            Some(r) => (true, r),
            None => (false, text),
        };
        let (mantissa, exp_text) = match rest.find(['e', 'E']) {
            Some(at) => (
                rest.get(..at).unwrap_or_default(),
                Some(rest.get(at + 1..).unwrap_or_default()),
            ),
            None => (rest, None),
        };
        let (int, frac) = match mantissa.split_once('.') {
            Some((i, f)) => (i, f),
            None => (mantissa, ""),
        };
        let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !all_digits(int) || (mantissa.contains('.') && !all_digits(frac)) {
            return Err(refuse("not a decimal number"));
        }
        let exp: i64 = match exp_text {
            None => 0,
            Some(e) => {
                let digits = e.strip_prefix(['+', '-']).unwrap_or(e);
                if !all_digits(digits) {
                    return Err(refuse("bad exponent"));
                }
                let magnitude = digits.trim_start_matches('0');
                if magnitude.len() > 7 {
                    return Err(refuse("exponent out of range"));
                }
                let m: i64 = magnitude.parse().unwrap_or(0);
                if e.starts_with('-') { -m } else { m }
            }
        };
        if exp.abs() > MAX_EXPONENT {
            return Err(refuse("exponent out of range"));
        }
        // All digits, the point after the integer part.
        let all: Vec<u8> = int.bytes().chain(frac.bytes()).map(|b| b - b'0').collect();
        let leading = all.iter().take_while(|d| **d == 0).count();
        let trailing = all.iter().rev().take_while(|d| **d == 0).count();
        if leading == all.len() {
            return Ok(Self::zero());
        }
        let digits = all
            .get(leading..all.len() - trailing)
            .unwrap_or_default()
            .to_vec();
        // Lengths are at most MAX_NUMBER_LITERAL, so these fit easily.
        let exponent = int.len() as i64 - leading as i64 + exp;
        Ok(Self {
            negative,
            digits,
            exponent,
        })
    }

    /// Reads a JSON number by its literal.
    pub fn from_json(n: &serde_json::Number) -> Result<Self, InexactNumber> {
        Self::parse(&n.to_string())
    }

    fn zero() -> Self {
        Self {
            negative: false,
            digits: Vec::new(),
            exponent: 0,
        }
    }

    /// Whether this is zero.
    pub fn is_zero(&self) -> bool {
        self.digits.is_empty()
    }

    /// Whether this is a whole number.
    pub fn is_integer(&self) -> bool {
        self.fraction_digits() == 0
    }

    /// How many digits follow the decimal point.
    pub fn fraction_digits(&self) -> u64 {
        let len = self.digits.len() as i64;
        u64::try_from(len - self.exponent).unwrap_or(0)
    }

    /// The value as an `i64` when it is a whole number in range.
    pub fn to_i64(&self) -> Option<i64> {
        if !self.is_integer() || self.exponent > 19 {
            return None;
        }
        let mut v: i128 = 0;
        for i in 0..self.exponent {
            let d = self.digits.get(i as usize).copied().unwrap_or(0);
            v = v * 10 + i128::from(d);
        }
        if self.negative {
            v = -v;
        }
        i64::try_from(v).ok()
    }

    /// The value as a fixed-point decimal with exactly `places` fraction digits, when it has no
    /// more than that (`12.5` with 4 places is `12.5000`).
    pub fn to_fixed(&self, places: u64) -> Option<String> {
        if self.fraction_digits() > places || self.exponent > MAX_NUMBER_LITERAL as i64 {
            return None;
        }
        let mut out = String::new();
        if self.negative {
            out.push('-');
        }
        if self.exponent <= 0 {
            out.push('0');
        } else {
            for i in 0..self.exponent {
                let d = self.digits.get(i as usize).copied().unwrap_or(0);
                out.push(char::from(b'0' + d));
            }
        }
        if places > 0 {
            out.push('.');
        }
        for i in 0..places as i64 {
            let at = self.exponent + i;
            let d = if at < 0 {
                0
            } else {
                self.digits.get(at as usize).copied().unwrap_or(0)
            };
            out.push(char::from(b'0' + d));
        }
        Some(out)
    }

    fn cmp_magnitude(&self, other: &Self) -> Ordering {
        match (self.is_zero(), other.is_zero()) {
            (true, true) => return Ordering::Equal,
            (true, false) => return Ordering::Less,
            (false, true) => return Ordering::Greater,
            (false, false) => {}
        }
        // Both normalised: the first significant digit's position decides, then the digits
        // (a digit string that is a prefix of another is the smaller, as trailing zeros are gone).
        self.exponent
            .cmp(&other.exponent)
            .then_with(|| self.digits.cmp(&other.digits))
    }
}

impl Ord for ExactNumber {
    fn cmp(&self, other: &Self) -> Ordering {
        let sign = |n: &Self| {
            if n.is_zero() {
                0
            } else if n.negative {
                -1
            } else {
                1
            }
        };
        match sign(self).cmp(&sign(other)) {
            Ordering::Equal if sign(self) < 0 => other.cmp_magnitude(self),
            Ordering::Equal => self.cmp_magnitude(other),
            unequal => unequal,
        }
    }
}

impl PartialOrd for ExactNumber {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for ExactNumber {
    /// Positional when short (`1234.5`, `-0.001`), scientific with every significant digit
    /// otherwise (`1.2345e300`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some((first, rest)) = self.digits.split_first() else {
            return f.write_str("0");
        };
        if (-20..=40).contains(&self.exponent)
            && let Some(plain) = self.to_fixed(self.fraction_digits())
        {
            return f.write_str(&plain);
        }
        if self.negative {
            f.write_str("-")?;
        }
        write!(f, "{first}")?;
        if !rest.is_empty() {
            f.write_str(".")?;
            for d in rest {
                write!(f, "{d}")?;
            }
        }
        write!(f, "e{}", self.exponent - 1)
    }
}

fn clip(text: &str) -> String {
    crate::error::clip(text)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "test")]
mod tests {
    use super::*;

    fn n(s: &str) -> ExactNumber {
        ExactNumber::parse(s).unwrap()
    }

    #[test]
    fn equal_values_in_any_spelling_are_equal() {
        for (a, b) in [
            ("1e3", "1000"),
            ("1000.000", "1E+3"),
            ("-0", "0.0"),
            ("0.5", "5e-1"),
            ("00012.3400", "12.34"),
        ] {
            assert_eq!(n(a), n(b), "{a} = {b}");
            assert_eq!(n(a).cmp(&n(b)), Ordering::Equal);
        }
    }

    #[test]
    fn order_is_exact_where_floats_round() {
        assert!(n("1234567890123456789") > n("1234567890123456788"));
        assert!(n("0.10000000000000001") > n("0.1"));
        assert!(n("9007199254740993") > n("9007199254740992"));
        assert!(n("-1e400") < n("-1e399"));
        assert!(n("-0.5") < n("0"));
        assert!(n("1e-400") > n("0"));
        assert!(n("12.5") < n("12.50001"));
    }

    #[test]
    fn conversions_are_exact_or_absent() {
        assert_eq!(n("1e3").to_i64(), Some(1000));
        assert_eq!(n("-9223372036854775808").to_i64(), Some(i64::MIN));
        assert_eq!(n("9223372036854775808").to_i64(), None);
        assert_eq!(n("1.5").to_i64(), None);
        assert_eq!(n("12.5").to_fixed(4).as_deref(), Some("12.5000"));
        assert_eq!(n("-0.0001").to_fixed(4).as_deref(), Some("-0.0001"));
        assert_eq!(n("0.00001").to_fixed(4), None);
        assert_eq!(n("1e2").to_fixed(0).as_deref(), Some("100"));
    }

    #[test]
    fn display_is_the_exact_value() {
        assert_eq!(n("1e3").to_string(), "1000");
        assert_eq!(n("-0.00100").to_string(), "-0.001");
        assert_eq!(n("12.50").to_string(), "12.5");
        assert_eq!(n("1.5e300").to_string(), "1.5e300");
        assert_eq!(n("-0").to_string(), "0");
    }

    #[test]
    fn what_is_not_a_number_or_too_long_is_refused() {
        for bad in [
            "",
            "-",
            "1.",
            ".5",
            "1e",
            "1e+",
            "0x10",
            "NaN",
            "inf",
            "1e99999999",
            " 1",
            "1_000",
        ] {
            assert!(ExactNumber::parse(bad).is_err(), "{bad:?}");
        }
        let long = "1".repeat(MAX_NUMBER_LITERAL + 1);
        assert_eq!(
            ExactNumber::parse(&long).unwrap_err().code(),
            "scope.inexact_number"
        );
        assert!(ExactNumber::parse(&"1".repeat(MAX_NUMBER_LITERAL)).is_ok());
    }
}
