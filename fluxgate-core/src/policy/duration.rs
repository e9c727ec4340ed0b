//! [`Duration`]: a span of time as written in a policy (`200ms`, `1s`, `1m30s`, `1.5s`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer, de};

/// A non-negative span of time written the way policies write it.
///
/// A duration is one or more `NUMBER UNIT` parts with no spaces: `200ms`, `1s`, `1m30s`, `1h`,
/// `1.5s`, `0s`. Units are `h`, `m`, `s`, `ms`, `us` (or `µs`) and `ns`; a number may have a
/// fractional part. Negative, empty and overflowing values are refused. It serializes to a
/// canonical string (`1m30s`, `1s500ms`) that parses back to the same value.
///
/// # Example
///
/// ```
/// use fluxgate_core::policy::Duration;
///
/// let d: Duration = "1.5s".parse().unwrap();
/// assert_eq!(d.as_std(), std::time::Duration::from_millis(1500));
/// assert_eq!(d.to_string(), "1s500ms");
/// assert!("-1s".parse::<Duration>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Duration(std::time::Duration);

/// Why a string is not a [`Duration`].
///
/// ```
/// use fluxgate_core::policy::{Duration, DurationError};
///
/// assert_eq!("".parse::<Duration>(), Err(DurationError::Empty));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DurationError {
    /// The string is empty.
    #[error("empty duration")]
    Empty,
    /// The string is not a sequence of `NUMBER UNIT` parts (this includes negative values).
    #[error("`{0}` is not a duration such as 200ms, 1s or 1m30s")]
    Invalid(String),
    /// A part has no unit or an unknown one.
    #[error("`{0}` has a missing or unknown unit, expected one of h, m, s, ms, us, ns")]
    Unit(String),
    /// The value does not fit in 2^64 nanoseconds.
    #[error("`{0}` is too long a duration")]
    Overflow(String),
}

const UNITS: [(&str, u128); 8] = [
    ("ns", 1),
    ("us", 1_000),
    ("µs", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60_000_000_000),
    ("h", 3_600_000_000_000),
    ("", 0),
];

impl Duration {
    /// Zero: `0s`.
    pub const ZERO: Self = Self(std::time::Duration::ZERO);

    /// A duration of `ms` milliseconds.
    ///
    /// ```
    /// # use fluxgate_core::policy::Duration;
    /// assert_eq!(Duration::from_millis(200).to_string(), "200ms");
    /// ```
    #[must_use]
    pub const fn from_millis(ms: u64) -> Self {
        Self(std::time::Duration::from_millis(ms))
    }

    /// A duration of `s` seconds.
    ///
    /// ```
    /// # use fluxgate_core::policy::Duration;
    /// assert_eq!(Duration::from_secs(90).to_string(), "1m30s");
    /// ```
    #[must_use]
    pub const fn from_secs(s: u64) -> Self {
        Self(std::time::Duration::from_secs(s))
    }

    /// The same span as a [`std::time::Duration`].
    ///
    /// ```
    /// # use fluxgate_core::policy::Duration;
    /// assert_eq!(Duration::from_secs(1).as_std().as_millis(), 1000);
    /// ```
    #[must_use]
    pub const fn as_std(self) -> std::time::Duration {
        self.0
    }
}

impl From<std::time::Duration> for Duration {
    fn from(d: std::time::Duration) -> Self {
        Self(d)
    }
}

impl FromStr for Duration {
    type Err = DurationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Err(DurationError::Empty);
        }
        let invalid = || DurationError::Invalid(s.to_owned());
        let mut total: u128 = 0;
        let mut rest = s;
        while !rest.is_empty() {
            let digits = rest
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .unwrap_or(rest.len());
            let (number, after) = rest.split_at(digits);
            let unit_len = after
                .find(|c: char| c.is_ascii_digit() || c == '.')
                .unwrap_or(after.len());
            let (unit, next) = after.split_at(unit_len);
            let scale = UNITS
                .iter()
                .find(|(name, _)| *name == unit)
                .map(|(_, scale)| *scale)
                .filter(|scale| *scale > 0)
                .ok_or_else(|| {
                    if number.is_empty() {
                        invalid()
                    } else {
                        DurationError::Unit(s.to_owned())
                    }
                })?;
            total = total
                .checked_add(scaled(number, scale).ok_or_else(invalid)?)
                .ok_or_else(|| DurationError::Overflow(s.to_owned()))?;
            rest = next;
        }
        let nanos = u64::try_from(total).map_err(|_| DurationError::Overflow(s.to_owned()))?;
        Ok(Self(std::time::Duration::from_nanos(nanos)))
    }
}

/// `number × scale` in nanoseconds, for a decimal `number` such as `1.5`; `None` when malformed.
/// Saturates instead of overflowing, so that the caller's range check refuses it.
fn scaled(number: &str, scale: u128) -> Option<u128> {
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && fraction.is_empty() || fraction.contains('.') {
        return None;
    }
    let mut value = if whole.is_empty() {
        0
    } else {
        whole
            .parse::<u128>()
            .unwrap_or(u128::MAX)
            .saturating_mul(scale)
    };
    let mut unit = scale;
    for digit in fraction.bytes().take(24) {
        unit /= 10;
        value = value.saturating_add(u128::from(digit - b'0') * unit);
    }
    Some(value)
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut nanos = self.0.as_nanos();
        if nanos == 0 {
            return f.write_str("0s");
        }
        for (unit, scale) in [
            ("h", 3_600_000_000_000),
            ("m", 60_000_000_000),
            ("s", 1_000_000_000),
            ("ms", 1_000_000),
            ("us", 1_000),
            ("ns", 1),
        ] {
            let count = nanos / scale;
            if count > 0 {
                write!(f, "{count}{unit}")?;
                nanos %= scale;
            }
        }
        Ok(())
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl de::Visitor<'_> for Visitor {
            type Value = Duration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration such as 200ms, 1s or 1m30s")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
                v.parse()
                    .map_err(|_| E::invalid_value(de::Unexpected::Str(v), &self))
            }
        }
        deserializer.deserialize_str(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(s: &str) -> u128 {
        s.parse::<Duration>().unwrap().as_std().as_millis()
    }

    #[test]
    fn parses_the_policy_forms() {
        assert_eq!(ms("200ms"), 200);
        assert_eq!(ms("1s"), 1000);
        assert_eq!(ms("1m30s"), 90_000);
        assert_eq!(ms("1h"), 3_600_000);
        assert_eq!(ms("1.5s"), 1500);
        assert_eq!(ms("0s"), 0);
        assert_eq!(ms(".5s"), 500);
        assert_eq!(
            "250us".parse::<Duration>().unwrap().as_std().as_micros(),
            250
        );
        assert_eq!(
            "250µs".parse::<Duration>().unwrap().as_std().as_micros(),
            250
        );
    }

    #[test]
    fn refuses_bad_durations() {
        for bad in [
            "",
            "-1s",
            "1",
            "s",
            "1x",
            "1.2.3s",
            "1 s",
            "abc",
            ".s",
            "1s-",
            "1e3s",
            "+1s",
            "99999999999999999999999999999999999999999h",
            "6000000h",
        ] {
            assert!(bad.parse::<Duration>().is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn display_round_trips() {
        for s in ["0s", "1ns", "1h2m3s4ms5us6ns", "1m30s", "200ms"] {
            let d: Duration = s.parse().unwrap();
            assert_eq!(d.to_string(), s);
            assert_eq!(d.to_string().parse::<Duration>().unwrap(), d);
        }
    }
}
