//! Exact money: USD held as integer nano-dollars, and token rates as integer
//! nano-dollars per million tokens, so no sum ever drifts.

use serde::{Serialize, Serializer};
use std::fmt;

/// An amount of USD in nano-dollars (1e-9 USD). i64 holds up to ~9.2 billion USD.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Hash)]
pub struct Usd(pub i64);

/// A token rate in nano-dollars per million tokens, which is femto-dollars per token:
/// `$0.075 / 1M` is 75_000_000. Any published rate with at most 9 decimals is exact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Rate(pub i64);

const NANOS_PER_USD: i64 = 1_000_000_000;
const FEMTOS_PER_NANO: i128 = 1_000_000;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParseMoneyError {
    #[error("must be a non-negative decimal number")]
    NotADecimal,
    #[error("has more than 9 decimal places")]
    TooPrecise,
    #[error("is too large")]
    TooLarge,
}

impl Usd {
    pub const ZERO: Usd = Usd(0);

    /// Parse a decimal such as `"0.0123"` or `"1.5e-3"` (the text of a JSON number).
    pub fn parse(text: &str) -> Result<Usd, ParseMoneyError> {
        parse_scaled(text, 9).map(Usd)
    }

    /// Like `parse`, but rounds half-up past 9 decimals: providers report costs finer than
    /// a nano-dollar (xAI's 1e-10 ticks) and such an event must not be refused for it.
    pub fn parse_rounded(text: &str) -> Result<Usd, ParseMoneyError> {
        parse_scaled_with(text, 9, true).map(Usd)
    }

    /// An amount a provider's bill states, possibly negative (a credit), rounded half-up
    /// past 9 decimals: `"-0.5"`, `"1.25e-3"`.
    pub fn parse_signed_rounded(text: &str) -> Result<Usd, ParseMoneyError> {
        let text = text.trim();
        match text.strip_prefix('-') {
            Some(rest) => parse_scaled_with(rest, 9, true).map(|n| Usd(-n)),
            None => parse_scaled_with(text, 9, true).map(Usd),
        }
    }

    /// An amount in US cents as decimal text (Anthropic's cost report: `"123.45"` is
    /// $1.2345), exact: a cent is 10^7 nanos; rounded half-up past a nano.
    pub fn parse_cents_rounded(text: &str) -> Result<Usd, ParseMoneyError> {
        let text = text.trim();
        match text.strip_prefix('-') {
            Some(rest) => parse_scaled_with(rest, 7, true).map(|n| Usd(-n)),
            None => parse_scaled_with(text, 7, true).map(Usd),
        }
    }

    /// Cost of `tokens` at `rate`, exact in femto-dollars, rounded half-up to nanos once.
    pub fn from_femtos(femtos: i128) -> Usd {
        let nanos = (femtos + FEMTOS_PER_NANO / 2).div_euclid(FEMTOS_PER_NANO);
        Usd(nanos.clamp(i64::MIN as i128, i64::MAX as i128) as i64)
    }

    pub fn nanos(self) -> i64 {
        self.0
    }

    /// For display and charts only; never summed.
    pub fn as_f64(self) -> f64 {
        self.0 as f64 / NANOS_PER_USD as f64
    }
}

impl Usd {
    /// Money as people read it, from the exact nanos (integer arithmetic): `$1,234.57`
    /// from $1 up (cents, half-up); below $1 four significant digits without trailing
    /// zeros, at least two decimals (`$0.01531`, `$0.000345`, `$0.12`), at most nine.
    pub fn readable(self) -> String {
        let n = self.0;
        let sign = if n < 0 { "-" } else { "" };
        let n = n.unsigned_abs() as i128;
        if n == 0 {
            return "$0.00".into();
        }
        let whole = NANOS_PER_USD as i128;
        if n >= whole {
            let cents = (n + 5_000_000) / 10_000_000;
            return format!(
                "{sign}${}.{:02}",
                group_digits(&(cents / 100).to_string()),
                cents % 100
            );
        }
        let digits = n.to_string().len() as u32; // 1..=9
        let drop = 10i128.pow(digits.saturating_sub(4));
        let rounded = (n + drop / 2) / drop * drop;
        if rounded >= whole {
            return format!("{sign}$1.00");
        }
        let text = format!("{rounded:09}");
        let keep = text.trim_end_matches('0').len().max(2);
        format!("{sign}$0.{}", &text[..keep])
    }
}

/// Thousands separators for a non-negative integer given as decimal text.
pub fn group_digits(digits: &str) -> String {
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

impl fmt::Display for Usd {
    /// Plain decimal with up to 9 decimals and no trailing zeros: `0.000125`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_scaled(f, self.0, 9)
    }
}

impl Serialize for Usd {
    /// A JSON number written from the exact decimal text, never through f64.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let raw = serde_json::value::RawValue::from_string(self.to_string())
            .map_err(serde::ser::Error::custom)?;
        raw.serialize(s)
    }
}

/// How a group's money reads, the one way every view shows it: the cost of its priced
/// calls with its unpriced calls, `$1.23`, `$1.23 + 4 unpriced`, or `unpriced (4 calls)`
/// when no call of the group has a price (`cost` None). Unknown never reads $0.00.
pub fn with_unpriced(cost: Option<Usd>, unpriced: u64) -> String {
    match cost {
        None => unpriced_only(unpriced),
        Some(c) if unpriced > 0 => format!("{} {}", c.readable(), unpriced_suffix(unpriced)),
        Some(c) => c.readable(),
    }
}

/// The money of a group none of whose calls is priced: `unpriced (4 calls)`.
pub fn unpriced_only(unpriced: u64) -> String {
    let s = if unpriced == 1 { "" } else { "s" };
    format!("unpriced ({} call{s})", group_digits(&unpriced.to_string()))
}

/// What follows a cost when some of the group's calls are unpriced: `+ 4 unpriced`.
pub fn unpriced_suffix(unpriced: u64) -> String {
    format!("+ {} unpriced", group_digits(&unpriced.to_string()))
}

impl Rate {
    /// Parse USD per 1M tokens, e.g. `"2.5"` or `"0.075"`.
    pub fn parse_per_mtok(text: &str) -> Result<Rate, ParseMoneyError> {
        parse_scaled(text, 9).map(Rate)
    }

    /// Parse USD per token as LiteLLM writes it (`2.5e-06`), exactly.
    pub fn parse_per_token(text: &str) -> Result<Rate, ParseMoneyError> {
        parse_scaled(text, 15).map(Rate)
    }

    /// Like `parse_per_token`, but rounds float artifacts such as `3.0000000000000004e-06`
    /// to the nearest femto-dollar per token instead of refusing them.
    pub fn parse_per_token_rounded(text: &str) -> Result<Rate, ParseMoneyError> {
        match parse_scaled(text, 15) {
            Err(ParseMoneyError::TooPrecise) => {
                let value: f64 = text
                    .trim()
                    .parse()
                    .map_err(|_| ParseMoneyError::NotADecimal)?;
                Ok(Rate((value * 1e15).round() as i64))
            }
            other => other.map(Rate),
        }
    }

    /// Cost of `tokens` at this rate, in femto-dollars.
    pub fn femtos_for(self, tokens: u64) -> i128 {
        self.0 as i128 * tokens as i128
    }
}

impl fmt::Display for Rate {
    /// USD per 1M tokens as a plain decimal.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_scaled(f, self.0, 9)
    }
}

fn write_scaled(f: &mut fmt::Formatter<'_>, value: i64, decimals: u32) -> fmt::Result {
    let scale = 10i64.pow(decimals);
    let sign = if value < 0 { "-" } else { "" };
    let abs = value.unsigned_abs();
    let (int, frac) = (abs / scale as u64, abs % scale as u64);
    if frac == 0 {
        return write!(f, "{sign}{int}");
    }
    let digits = format!("{frac:0width$}", width = decimals as usize);
    write!(f, "{sign}{int}.{}", digits.trim_end_matches('0'))
}

/// Parse a non-negative decimal (optionally with an exponent) into an integer scaled by
/// 10^decimals, refusing anything that would lose precision.
fn parse_scaled(text: &str, decimals: u32) -> Result<i64, ParseMoneyError> {
    parse_scaled_with(text, decimals, false)
}

fn parse_scaled_with(text: &str, decimals: u32, round: bool) -> Result<i64, ParseMoneyError> {
    let text = text.trim();
    let (mantissa, exponent) = match text.find(['e', 'E']) {
        Some(i) => {
            let exp: i32 = text[i + 1..]
                .parse()
                .map_err(|_| ParseMoneyError::NotADecimal)?;
            (&text[..i], exp)
        }
        None => (text, 0),
    };
    let (int_part, frac_part) = match mantissa.split_once('.') {
        Some((i, f)) => (i, f),
        None => (mantissa, ""),
    };
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (int_part.is_empty() && frac_part.is_empty())
        || !all_digits(int_part)
        || !all_digits(frac_part)
    {
        return Err(ParseMoneyError::NotADecimal);
    }
    let digits: String = format!("{int_part}{frac_part}");
    let digits = digits.trim_start_matches('0');
    // value = digits * 10^(exponent - frac_len + decimals)
    let shift = exponent as i64 - frac_part.len() as i64 + decimals as i64;
    if digits.is_empty() {
        return Ok(0);
    }
    let mut value: i128 = digits.parse().map_err(|_| ParseMoneyError::TooLarge)?;
    if shift >= 0 {
        for _ in 0..shift {
            value = value.checked_mul(10).ok_or(ParseMoneyError::TooLarge)?;
            if value > i64::MAX as i128 {
                return Err(ParseMoneyError::TooLarge);
            }
        }
    } else if round {
        // Half-up: add half of the divisor, then divide; beyond 38 digits it is zero.
        let divisor = 10i128.checked_pow((-shift) as u32);
        value = divisor.map_or(0, |d| (value + d / 2) / d);
    } else {
        for _ in 0..(-shift) {
            if value % 10 != 0 {
                return Err(ParseMoneyError::TooPrecise);
            }
            value /= 10;
        }
    }
    i64::try_from(value).map_err(|_| ParseMoneyError::TooLarge)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plain_and_exponent_forms_exactly() {
        assert_eq!(Usd::parse("0.0123").unwrap(), Usd(12_300_000));
        assert_eq!(Usd::parse("1.5e-3").unwrap(), Usd(1_500_000));
        assert_eq!(Usd::parse("12").unwrap(), Usd(12_000_000_000));
        assert_eq!(Usd::parse("0.000000001").unwrap(), Usd(1));
        assert_eq!(Usd::parse("0.0000000001"), Err(ParseMoneyError::TooPrecise));
        assert_eq!(Usd::parse("-1"), Err(ParseMoneyError::NotADecimal));
        assert_eq!(Usd::parse("abc"), Err(ParseMoneyError::NotADecimal));
    }

    #[test]
    fn reported_costs_finer_than_a_nano_round_half_up() {
        assert_eq!(Usd::parse_rounded("0.0000000015").unwrap(), Usd(2));
        assert_eq!(Usd::parse_rounded("0.0000000014").unwrap(), Usd(1));
        assert_eq!(
            Usd::parse_rounded("1.23456789049e-3").unwrap(),
            Usd(1_234_568)
        );
        assert_eq!(Usd::parse_rounded("1e-60").unwrap(), Usd(0));
    }

    #[test]
    fn litellm_per_token_rates_become_exact_per_mtok_rates() {
        assert_eq!(
            Rate::parse_per_token("2.5e-06").unwrap(),
            Rate::parse_per_mtok("2.5").unwrap()
        );
        assert_eq!(Rate::parse_per_token("7.5e-08").unwrap(), Rate(75_000_000));
        assert_eq!(
            Rate::parse_per_token("3.75e-08").unwrap().to_string(),
            "0.0375"
        );
        assert_eq!(Rate::parse_per_token("0.0").unwrap(), Rate(0));
    }

    #[test]
    fn a_group_money_reads_with_its_unpriced_calls_never_zero_for_unknown() {
        assert_eq!(with_unpriced(Some(Usd(1_200_000_000)), 0), "$1.20");
        assert_eq!(
            with_unpriced(Some(Usd(1_200_000_000)), 3),
            "$1.20 + 3 unpriced"
        );
        assert_eq!(with_unpriced(None, 1), "unpriced (1 call)");
        assert_eq!(with_unpriced(None, 1_500), "unpriced (1,500 calls)");
    }

    #[test]
    fn displays_without_trailing_zeros() {
        assert_eq!(Usd(125_000).to_string(), "0.000125");
        assert_eq!(Usd(2_000_000_000).to_string(), "2");
        assert_eq!(Usd(0).to_string(), "0");
        assert_eq!(serde_json::to_string(&Usd(1)).unwrap(), "0.000000001");
    }

    #[test]
    fn rounding_happens_once_half_up() {
        // 1 token at $0.0375/M = 0.0375e-6 USD = 37.5 nano -> 38
        let r = Rate::parse_per_mtok("0.0375").unwrap();
        assert_eq!(Usd::from_femtos(r.femtos_for(1)), Usd(38));
        assert_eq!(Usd::from_femtos(r.femtos_for(2)), Usd(75));
    }
}
