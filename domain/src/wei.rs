//! [`Wei`]: an exact amount of ether in its smallest unit, and its parsing from ETH strings.
//!
//! No floating point is involved anywhere: ETH strings are checked against a strict grammar,
//! turned into a [`rust_decimal::Decimal`] only when every digit is known to fit it exactly,
//! and scaled into `u128` wei with checked integer arithmetic.

use std::fmt;

use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serialize, Serializer, de};

/// An exact, non-negative amount of ether, counted in wei (1 ETH = 10^18 wei).
///
/// Every `u128` is a valid `Wei`: a sum of amounts may exceed [`Wei::MAX_ETH`], which bounds
/// only what [`Wei::from_eth_str`] accepts from outside. There is no `Add`/`Sub` impl: all
/// arithmetic is checked or saturating by name, so an overflow never wraps or panics.
///
/// Serialized as a decimal string of wei (`"500000000000000000"`), never as a JSON number:
/// most JSON parsers lose precision above 2^53, and 1 ETH is 10^18 wei.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Wei(u128);

/// Why an amount string was rejected. Messages never echo the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WeiParseError {
    #[error("amount is empty")]
    Empty,
    #[error("amount has leading or trailing whitespace")]
    Whitespace,
    /// Anything outside the grammar: exponents, hex, signs other than a leading `-`,
    /// separators, a `.` without digits on both sides, non-ASCII digits, units.
    #[error("amount is not a plain decimal number")]
    Malformed,
    /// A leading `-` on an otherwise well-formed amount, even on zero.
    #[error("amount is negative")]
    Negative,
    /// More fractional digits than ether has, counted as written: trailing zeros count too.
    #[error("amount has {digits} fractional digits; ether has at most 18")]
    TooPrecise { digits: usize },
    #[error("amount exceeds the ceiling of {max} ETH", max = Wei::MAX_ETH)]
    AboveCeiling,
    /// A wei string (see [`Wei::from_wei_str`]) above `u128::MAX`.
    #[error("wei amount does not fit in 128 bits")]
    Overflow,
}

impl Wei {
    /// No ether at all.
    pub const ZERO: Wei = Wei(0);

    /// 10^18: the number of wei in one ETH.
    pub const WEI_PER_ETH: u128 = 10u128.pow(Self::DECIMALS);

    /// The largest amount, in whole ETH, that [`Wei::from_eth_str`] accepts: 10^9 ETH.
    ///
    /// - It is above all the ether that exists (about 1.2 × 10^8 ETH), so a larger amount is
    ///   always a mistake, most often wei sent where ETH was expected: `"1000000000000000000"`
    ///   meant as 1 ETH reads as 10^18 ETH and is rejected instead of being acted on.
    /// - 10^9 ETH with 18 fractional digits is at most 28 significant digits, which
    ///   `rust_decimal`'s 96-bit mantissa (up to about 7.9 × 10^28) holds exactly: parsing
    ///   never rounds.
    /// - It is 10^27 wei, so a `u128` (about 3.4 × 10^38) can hold the sum of about
    ///   3.4 × 10^11 amounts at the ceiling before checked addition reports overflow.
    pub const MAX_ETH: u128 = 1_000_000_000;

    /// [`Wei::MAX_ETH`] in wei: the largest value [`Wei::from_eth_str`] returns.
    pub const CEILING: Wei = Wei(Self::MAX_ETH * Self::WEI_PER_ETH);

    /// Fractional digits of ETH.
    const DECIMALS: u32 = 18;

    /// Digits in the integer part of [`Wei::MAX_ETH`]; a longer integer part is above it.
    const MAX_ETH_DIGITS: usize = decimal_digits(Self::MAX_ETH);

    /// Wraps an amount already counted in wei.
    pub const fn from_wei(wei: u128) -> Wei {
        Wei(wei)
    }

    /// The amount in wei.
    pub const fn as_u128(self) -> u128 {
        self.0
    }

    pub const fn is_zero(self) -> bool {
        self.0 == 0
    }

    /// Parses a decimal ETH amount (`"0.5"`, `"1"`, `"1.000000000000000001"`) into exact wei.
    ///
    /// The grammar is strict: one or more ASCII digits, optionally followed by `.` and one or
    /// more ASCII digits, at most 18 of them. Leading zeros are allowed (`"007"` is 7 ETH).
    /// Rejected, each with its own [`WeiParseError`]: the empty string, surrounding
    /// whitespace, anything else outside the grammar (`"1e18"`, `"0x10"`, `"1."`, `".5"`,
    /// `"+1"`, `"1_000"`), a leading `-`, more than 18 fractional digits, and amounts above
    /// [`Wei::MAX_ETH`].
    pub fn from_eth_str(s: &str) -> Result<Wei, WeiParseError> {
        check_untrimmed(s)?;
        let (negative, unsigned) = match s.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, s),
        };
        let (int, frac) = split_plain_decimal(unsigned).ok_or(WeiParseError::Malformed)?;
        if negative {
            return Err(WeiParseError::Negative);
        }
        if frac.len() > Self::DECIMALS as usize {
            return Err(WeiParseError::TooPrecise { digits: frac.len() });
        }
        let int = int.trim_start_matches('0');
        if int.len() > Self::MAX_ETH_DIGITS {
            return Err(WeiParseError::AboveCeiling);
        }
        // At most 10 + 18 = 28 significant digits from here on: the Decimal is exact.
        let int = if int.is_empty() { "0" } else { int };
        let exact = if frac.is_empty() {
            Decimal::from_str_exact(int)
        } else {
            Decimal::from_str_exact(&format!("{int}.{frac}"))
        }
        // Unreachable after the checks above; a refusal still must not pass as a value.
        .map_err(|_| WeiParseError::Malformed)?;
        let wei = wei_from_eth_decimal(exact)?;
        if wei > Self::CEILING {
            return Err(WeiParseError::AboveCeiling);
        }
        Ok(wei)
    }

    /// Parses a decimal string of wei, the serialized form: ASCII digits only, leading zeros
    /// allowed, any value up to `u128::MAX`. No ceiling applies, so that every serialized
    /// `Wei` (including sums above [`Wei::MAX_ETH`]) reads back.
    pub fn from_wei_str(s: &str) -> Result<Wei, WeiParseError> {
        check_untrimmed(s)?;
        let (negative, digits) = match s.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, s),
        };
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(WeiParseError::Malformed);
        }
        if negative {
            return Err(WeiParseError::Negative);
        }
        // Only ASCII digits remain, so the one way left to fail is overflow.
        digits.parse::<u128>().map(Wei).map_err(|_| WeiParseError::Overflow)
    }

    /// The exact ETH amount as a decimal string without trailing zeros: `"0.5"`, `"1"`,
    /// `"0.000000000000000001"`. Same as `to_string()`.
    pub fn to_eth_string(self) -> String {
        self.to_string()
    }

    pub fn checked_add(self, rhs: Wei) -> Option<Wei> {
        self.0.checked_add(rhs.0).map(Wei)
    }

    pub fn checked_sub(self, rhs: Wei) -> Option<Wei> {
        self.0.checked_sub(rhs.0).map(Wei)
    }

    /// `self - rhs`, or zero when `rhs` is larger: what is left of a limit.
    pub fn saturating_sub(self, rhs: Wei) -> Wei {
        Wei(self.0.saturating_sub(rhs.0))
    }

    /// The sum of `amounts`, or `None` if it overflows `u128`. The empty sum is zero.
    pub fn checked_sum<I: IntoIterator<Item = Wei>>(amounts: I) -> Option<Wei> {
        amounts.into_iter().try_fold(Wei::ZERO, Wei::checked_add)
    }
}

/// The exact ETH amount, as [`Wei::to_eth_string`]. Width and precision flags are ignored
/// on purpose: a format string must never truncate or round an amount of money.
impl fmt::Display for Wei {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let whole = self.0 / Self::WEI_PER_ETH;
        let frac = self.0 % Self::WEI_PER_ETH;
        if frac == 0 {
            return write!(f, "{whole}");
        }
        let frac = format!("{frac:018}");
        // frac is non-zero, so trimming stops at its last non-zero digit.
        write!(f, "{whole}.{}", frac.trim_end_matches('0'))
    }
}

impl Serialize for Wei {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Wei {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct WeiString;

        impl de::Visitor<'_> for WeiString {
            type Value = Wei;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a decimal string of wei, such as \"500000000000000000\"")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Wei, E> {
                Wei::from_wei_str(v).map_err(E::custom)
            }
        }

        deserializer.deserialize_str(WeiString)
    }
}

/// Rejects the empty string and surrounding whitespace, before any other check.
fn check_untrimmed(s: &str) -> Result<(), WeiParseError> {
    if s.is_empty() {
        Err(WeiParseError::Empty)
    } else if s.trim() != s {
        Err(WeiParseError::Whitespace)
    } else {
        Ok(())
    }
}

/// Splits `digits[.digits]` into its integer and fractional digits (the latter possibly
/// empty), or `None` if `s` is anything else.
fn split_plain_decimal(s: &str) -> Option<(&str, &str)> {
    let (int, frac) = match s.split_once('.') {
        Some((_, "")) => return None,
        Some(parts) => parts,
        None => (s, ""),
    };
    let all_digits = |part: &str| part.bytes().all(|b| b.is_ascii_digit());
    (!int.is_empty() && all_digits(int) && all_digits(frac)).then_some((int, frac))
}

/// Scales an exact ETH decimal into wei: mantissa × 10^(18 − scale).
fn wei_from_eth_decimal(eth: Decimal) -> Result<Wei, WeiParseError> {
    let scale = eth.scale();
    let shift = Wei::DECIMALS
        .checked_sub(scale)
        .ok_or(WeiParseError::TooPrecise { digits: scale as usize })?;
    let mantissa = u128::try_from(eth.mantissa()).map_err(|_| WeiParseError::Negative)?;
    10u128
        .checked_pow(shift)
        .and_then(|factor| mantissa.checked_mul(factor))
        .map(Wei)
        .ok_or(WeiParseError::AboveCeiling)
}

/// The number of decimal digits of `n` (1 for zero).
const fn decimal_digits(mut n: u128) -> usize {
    let mut digits = 1;
    while n >= 10 {
        n /= 10;
        digits += 1;
    }
    digits
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eth(s: &str) -> Result<Wei, WeiParseError> {
        Wei::from_eth_str(s)
    }

    #[test]
    fn half_eth_is_exactly_5e17_wei() {
        assert_eq!(eth("0.5"), Ok(Wei::from_wei(500_000_000_000_000_000)));
    }

    #[test]
    fn one_eth_is_exactly_1e18_wei() {
        assert_eq!(eth("1"), Ok(Wei::from_wei(1_000_000_000_000_000_000)));
        assert_eq!(eth("1.0"), Ok(Wei::from_wei(1_000_000_000_000_000_000)));
    }

    #[test]
    fn zero_is_zero_wei() {
        assert_eq!(eth("0"), Ok(Wei::ZERO));
        assert_eq!(eth("0.000000000000000000"), Ok(Wei::ZERO));
    }

    #[test]
    fn smallest_fraction_is_one_wei() {
        assert_eq!(eth("0.000000000000000001"), Ok(Wei::from_wei(1)));
    }

    #[test]
    fn one_eth_and_one_wei_keeps_every_digit() {
        assert_eq!(
            eth("1.000000000000000001"),
            Ok(Wei::from_wei(1_000_000_000_000_000_001))
        );
    }

    #[test]
    fn leading_zeros_are_allowed() {
        assert_eq!(eth("007.5"), Ok(Wei::from_wei(7_500_000_000_000_000_000)));
        let many = format!("{}1", "0".repeat(500));
        assert_eq!(eth(&many), Ok(Wei::from_wei(Wei::WEI_PER_ETH)));
    }

    #[test]
    fn ceiling_parses_exactly_with_all_eighteen_decimals() {
        assert_eq!(eth("1000000000"), Ok(Wei::CEILING));
        assert_eq!(eth("1000000000.000000000000000000"), Ok(Wei::CEILING));
        assert_eq!(
            eth("999999999.999999999999999999"),
            Ok(Wei::from_wei(999_999_999_999_999_999_999_999_999))
        );
        assert_eq!(Wei::CEILING.as_u128(), 1_000_000_000_000_000_000_000_000_000);
    }

    #[test]
    fn one_wei_above_ceiling_is_rejected() {
        assert_eq!(eth("1000000000.000000000000000001"), Err(WeiParseError::AboveCeiling));
    }

    #[test]
    fn wei_amount_sent_as_eth_is_rejected_as_above_ceiling() {
        assert_eq!(eth("1000000000000000000"), Err(WeiParseError::AboveCeiling));
        assert_eq!(eth("9999999999"), Err(WeiParseError::AboveCeiling));
        assert_eq!(eth("9999999999.999999999999999999"), Err(WeiParseError::AboveCeiling));
    }

    #[test]
    fn amount_beyond_u128_is_rejected_without_overflow() {
        assert_eq!(eth(&"9".repeat(100)), Err(WeiParseError::AboveCeiling));
        assert_eq!(eth(&format!("{}.5", "9".repeat(100))), Err(WeiParseError::AboveCeiling));
    }

    #[test]
    fn empty_amount_is_rejected() {
        assert_eq!(eth(""), Err(WeiParseError::Empty));
    }

    #[test]
    fn whitespace_padded_amount_is_rejected() {
        for s in [" 1", "1 ", "\t0.5", "0.5\n", " ", "\u{a0}1"] {
            assert_eq!(eth(s), Err(WeiParseError::Whitespace), "{s:?}");
        }
    }

    #[test]
    fn malformed_amounts_are_rejected() {
        for s in [
            "abc",
            "1e18",
            "1E3",
            "0x10",
            "1.",
            ".5",
            ".",
            "+1",
            "1_000",
            "1,5",
            "1.2.3",
            "--1",
            "-",
            "-.5",
            "1 000",
            "1.5 ETH",
            "NaN",
            "inf",
            "\u{0661}",
            "\u{ff11}",
            "1\u{200b}",
        ] {
            assert_eq!(eth(s), Err(WeiParseError::Malformed), "{s:?}");
        }
    }

    #[test]
    fn negative_amount_is_rejected() {
        assert_eq!(eth("-1"), Err(WeiParseError::Negative));
        assert_eq!(eth("-0.5"), Err(WeiParseError::Negative));
        assert_eq!(eth("-0"), Err(WeiParseError::Negative));
        assert_eq!(eth("-0.0000000000000000001"), Err(WeiParseError::Negative));
    }

    #[test]
    fn nineteen_fractional_digits_are_rejected_as_too_precise() {
        assert_eq!(
            eth("0.0000000000000000001"),
            Err(WeiParseError::TooPrecise { digits: 19 })
        );
    }

    #[test]
    fn trailing_zeros_beyond_eighteen_digits_count_as_too_precise() {
        assert_eq!(
            eth("0.5000000000000000000"),
            Err(WeiParseError::TooPrecise { digits: 19 })
        );
    }

    #[test]
    fn display_is_exact_eth_without_trailing_zeros() {
        let cases = [
            (0, "0"),
            (1, "0.000000000000000001"),
            (500_000_000_000_000_000, "0.5"),
            (1_000_000_000_000_000_000, "1"),
            (1_000_000_000_000_000_001, "1.000000000000000001"),
            (1_230_000_000_000_000_000, "1.23"),
            (u128::MAX, "340282366920938463463.374607431768211455"),
        ];
        for (wei, text) in cases {
            assert_eq!(Wei::from_wei(wei).to_string(), text);
            assert_eq!(Wei::from_wei(wei).to_eth_string(), text);
        }
    }

    #[test]
    fn format_precision_never_truncates_an_amount() {
        let w = Wei::from_wei(1_234_500_000_000_000_000);
        assert_eq!(format!("{w:.1}"), "1.2345");
        assert_eq!(format!("{w:>3}"), "1.2345");
    }

    #[test]
    fn checked_add_reports_overflow() {
        let one = Wei::from_wei(1);
        assert_eq!(one.checked_add(one), Some(Wei::from_wei(2)));
        assert_eq!(Wei::from_wei(u128::MAX).checked_add(one), None);
    }

    #[test]
    fn checked_sub_reports_underflow() {
        let (one, two) = (Wei::from_wei(1), Wei::from_wei(2));
        assert_eq!(two.checked_sub(one), Some(one));
        assert_eq!(one.checked_sub(two), None);
    }

    #[test]
    fn saturating_sub_stops_at_zero() {
        let (one, two) = (Wei::from_wei(1), Wei::from_wei(2));
        assert_eq!(two.saturating_sub(one), one);
        assert_eq!(one.saturating_sub(two), Wei::ZERO);
    }

    #[test]
    fn checked_sum_of_nothing_is_zero() {
        assert_eq!(Wei::checked_sum([]), Some(Wei::ZERO));
    }

    #[test]
    fn checked_sum_adds_exactly_and_reports_overflow() -> Result<(), WeiParseError> {
        let spent = [eth("0.1")?, eth("0.2")?, eth("0.000000000000000001")?];
        assert_eq!(Wei::checked_sum(spent), Some(Wei::from_wei(300_000_000_000_000_001)));
        assert_eq!(Wei::checked_sum([Wei::from_wei(u128::MAX), Wei::from_wei(1)]), None);
        Ok(())
    }

    #[test]
    fn serializes_as_a_decimal_wei_string() {
        let half = Wei::from_wei(500_000_000_000_000_000);
        assert_eq!(
            serde_json::to_string(&half).ok().as_deref(),
            Some("\"500000000000000000\"")
        );
        let max = Wei::from_wei(u128::MAX);
        assert_eq!(
            serde_json::to_string(&max).ok().as_deref(),
            Some("\"340282366920938463463374607431768211455\"")
        );
    }

    #[test]
    fn deserializes_from_a_decimal_wei_string_without_ceiling() {
        let parsed: Result<Wei, _> = serde_json::from_str("\"340282366920938463463374607431768211455\"");
        assert_eq!(parsed.ok(), Some(Wei::from_wei(u128::MAX)));
        let parsed: Result<Wei, _> = serde_json::from_str("\"007\"");
        assert_eq!(parsed.ok(), Some(Wei::from_wei(7)));
    }

    #[test]
    fn deserialization_rejects_numbers_and_non_wei_strings() {
        for json in [
            "5",
            "5.0",
            "\"\"",
            "\" 5\"",
            "\"+5\"",
            "\"-5\"",
            "\"0.5\"",
            "\"1e18\"",
            "\"340282366920938463463374607431768211456\"",
            "null",
        ] {
            let parsed: Result<Wei, _> = serde_json::from_str(json);
            assert!(parsed.is_err(), "{json} should be rejected");
        }
    }

    #[test]
    fn wei_string_errors_name_the_problem() {
        assert_eq!(Wei::from_wei_str(""), Err(WeiParseError::Empty));
        assert_eq!(Wei::from_wei_str(" 1"), Err(WeiParseError::Whitespace));
        assert_eq!(Wei::from_wei_str("+1"), Err(WeiParseError::Malformed));
        assert_eq!(Wei::from_wei_str("1.0"), Err(WeiParseError::Malformed));
        assert_eq!(Wei::from_wei_str("-1"), Err(WeiParseError::Negative));
        assert_eq!(
            Wei::from_wei_str("340282366920938463463374607431768211456"),
            Err(WeiParseError::Overflow)
        );
    }

    #[test]
    fn error_messages_state_the_rule() {
        assert_eq!(
            WeiParseError::AboveCeiling.to_string(),
            "amount exceeds the ceiling of 1000000000 ETH"
        );
        assert_eq!(
            WeiParseError::TooPrecise { digits: 19 }.to_string(),
            "amount has 19 fractional digits; ether has at most 18"
        );
    }

    #[test]
    fn max_eth_has_ten_integer_digits() {
        assert_eq!(Wei::MAX_ETH_DIGITS, 10);
    }
}
