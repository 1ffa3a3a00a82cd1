//! Human-readable durations: `500ms`, `15s`, `1.5m`, `1h30m`, `250us`, or bare integer seconds.
//!
//! The syntax is Go's `time.ParseDuration` (also what humantime accepts for these units):
//! a sequence of numbers, each with an optional decimal fraction and a unit (`h`, `m`, `s`,
//! `ms`, `us`/`µs`, `ns`). Unlike Go, units must go from largest to smallest without
//! repetition (`1h30m`, not `30m1h`), there are no signs, and a bare whole number means
//! seconds (as the seed configs use it).
//!
//! Config fields keep plain [`std::time::Duration`] so the agent uses them directly; this
//! module is the `#[serde(with = ...)]` adapter. Values serialize back in a compact form
//! with whole components only (`1.5s` prints as `1s500ms`), so a printed config re-parses
//! to exactly the same value. Which values each key accepts is in [`crate::schema::DURATION_RANGES`].

use std::fmt;
use std::time::Duration;

use serde::de::{self, Visitor};
use serde::{Deserializer, Serializer};

/// What a duration may look like; used in error messages and docs.
pub const DURATION_ALLOWED: &str =
    "a duration such as 500ms, 15s, 1.5m, 1h30m, or a whole number of seconds";

/// Units from largest to smallest, with their length in nanoseconds. Entries with the same
/// length are spellings of one unit.
const UNITS: &[(&str, u128)] = &[
    ("h", 3_600_000_000_000),
    ("m", 60_000_000_000),
    ("s", 1_000_000_000),
    ("ms", 1_000_000),
    ("us", 1_000),
    ("µs", 1_000), // U+00B5 MICRO SIGN
    ("μs", 1_000), // U+03BC GREEK SMALL LETTER MU
    ("ns", 1),
];

const UNIT_LIST: &str = "h, m, s, ms, us (or µs), ns";

/// The largest value a [`Duration`] can hold, in nanoseconds.
const MAX_NANOS: u128 = u64::MAX as u128 * 1_000_000_000 + 999_999_999;

/// Parses a duration; see the module docs for the syntax.
///
/// Errors say what is wrong, e.g. ``invalid duration `10d` (unknown unit `d`; …)``.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let s = text.trim();
    if s.is_empty() {
        return Err("empty duration".to_string());
    }
    let bad = |why: String| format!("invalid duration `{s}` ({why})");
    let too_large = || format!("duration `{s}` is too large");
    if s.bytes().all(|b| b.is_ascii_digit()) {
        return s
            .parse::<u64>()
            .map(Duration::from_secs)
            .map_err(|_| too_large());
    }
    if s.starts_with('-') {
        return Err(bad("a duration must not be negative".to_string()));
    }
    let mut total: u128 = 0;
    let mut rest = s;
    // Length of the last unit seen; each unit must be strictly smaller than the previous.
    let mut last_unit: Option<(&str, u128)> = None;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number = &rest[..number_len];
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];

        if number.is_empty() {
            return Err(bad(
                if unit.starts_with(char::is_whitespace) || unit.contains(' ') {
                    "spaces are not allowed inside a duration".to_string()
                } else {
                    format!("expected a number before `{unit}`")
                },
            ));
        }
        let (whole, fraction) = match number.split_once('.') {
            Some((w, f)) => (w, Some(f)),
            None => (number, None),
        };
        if fraction.is_some_and(|f| f.contains('.')) {
            return Err(bad(format!("`{number}` has more than one decimal point")));
        }
        if whole.is_empty() && fraction.is_none_or(str::is_empty) {
            return Err(bad(format!("`{number}` is not a number")));
        }
        if unit.is_empty() {
            return Err(bad(if fraction.is_some() && last_unit.is_none() {
                format!("a number with a fraction needs a unit, e.g. {number}s")
            } else {
                format!("missing unit after `{number}`; units are {UNIT_LIST}")
            }));
        }
        let Some(&(_, unit_ns)) = UNITS.iter().find(|(name, _)| *name == unit) else {
            return Err(bad(unknown_unit(unit, number)));
        };
        if let Some((prev, prev_ns)) = last_unit
            && unit_ns >= prev_ns
        {
            return Err(bad(format!(
                "`{unit}` after `{prev}`: units must go from largest to smallest (h, m, s, ms, us, ns), each at most once"
            )));
        }
        last_unit = Some((unit, unit_ns));

        let whole_value = if whole.is_empty() {
            0
        } else {
            whole.parse::<u128>().map_err(|_| too_large())?
        };
        let mut part = whole_value.checked_mul(unit_ns).ok_or_else(too_large)?;
        if let Some(fraction) = fraction {
            // Nanoseconds are the resolution: digits beyond what a unit can resolve are
            // truncated, as Go does. 20 digits are more than the hour needs (13).
            let digits = &fraction[..fraction.len().min(20)];
            if !digits.is_empty() {
                let scale = 10u128.pow(digits.len() as u32);
                let value: u128 = digits.parse().map_err(|_| too_large())?;
                part = part
                    .checked_add(value * unit_ns / scale)
                    .ok_or_else(too_large)?;
            }
        }
        total = total.checked_add(part).ok_or_else(too_large)?;
    }
    if total > MAX_NANOS {
        return Err(too_large());
    }
    // Fits: total <= MAX_NANOS, so the seconds fit in a u64.
    Ok(Duration::new(
        (total / 1_000_000_000) as u64,
        (total % 1_000_000_000) as u32,
    ))
}

/// The reason for an unknown unit, with a hint for the usual mistakes.
fn unknown_unit(unit: &str, number: &str) -> String {
    let hint = match unit {
        "," => format!("; write fractions with a decimal point, e.g. {number}.5s"),
        "d" | "day" | "days" => "; days are not a unit, use hours (24h, 168h)".to_string(),
        "w" | "y" => "; use hours (168h is a week)".to_string(),
        "sec" | "secs" | "second" | "seconds" => "; write s, e.g. 15s".to_string(),
        "min" | "mins" | "minute" | "minutes" => "; write m, e.g. 5m".to_string(),
        "hr" | "hrs" | "hour" | "hours" => "; write h, e.g. 2h".to_string(),
        "H" | "M" | "S" | "MS" => "; units are lowercase".to_string(),
        u if u.contains(char::is_whitespace) => {
            return "spaces are not allowed inside a duration".to_string();
        }
        _ => String::new(),
    };
    format!("unknown unit `{unit}`; units are {UNIT_LIST}{hint}")
}

/// Formats a duration compactly: `0s`, `500ms`, `15s`, `1m30s`, `1h30m`, `1s500ms`,
/// `2us500ns`: whole components from hours down to nanoseconds, zero components omitted.
/// [`parse_duration`] reads the result back to the same value.
pub fn format_duration(d: Duration) -> String {
    let mut rest = d.as_nanos();
    if rest == 0 {
        return "0s".to_string();
    }
    let mut out = String::new();
    for (name, unit_ns) in UNITS {
        if name.starts_with(['µ', 'μ']) {
            continue;
        }
        let n = rest / unit_ns;
        if n > 0 {
            out.push_str(&format!("{n}{name}"));
            rest %= unit_ns;
        }
    }
    out
}

/// `#[serde(serialize_with)]` half of the adapter.
pub fn serialize<S: Serializer>(d: &Duration, ser: S) -> Result<S::Ok, S::Error> {
    ser.serialize_str(&format_duration(*d))
}

/// `#[serde(deserialize_with)]` half of the adapter.
pub fn deserialize<'de, D: Deserializer<'de>>(de: D) -> Result<Duration, D::Error> {
    de.deserialize_any(DurationVisitor)
}

struct DurationVisitor;

impl<'de> Visitor<'de> for DurationVisitor {
    type Value = Duration;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(DURATION_ALLOWED)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Duration, E> {
        Ok(Duration::from_secs(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Duration, E> {
        u64::try_from(v)
            .map(Duration::from_secs)
            .map_err(|_| E::custom(format!("invalid duration `{v}` (must not be negative)")))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Duration, E> {
        Err(E::custom(format!(
            "invalid duration `{v}` (a number with a fraction needs a unit, e.g. {v}s)"
        )))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
        parse_duration(v).map_err(E::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn parses_units() {
        let ok = [
            ("500ms", ms(500)),
            ("15s", Duration::from_secs(15)),
            ("1m", Duration::from_secs(60)),
            ("1h", Duration::from_secs(3600)),
            ("1h30m", Duration::from_secs(5400)),
            ("2m30s250ms", ms(150_250)),
            ("45", Duration::from_secs(45)),
            (" 0s ", Duration::ZERO),
            ("250us", Duration::from_micros(250)),
            ("250µs", Duration::from_micros(250)),
            ("250μs", Duration::from_micros(250)),
            ("7ns", Duration::from_nanos(7)),
            ("1s1ns", Duration::new(1, 1)),
        ];
        for (text, want) in ok {
            assert_eq!(parse_duration(text), Ok(want), "{text}");
        }
    }

    #[test]
    fn parses_fractions_like_go() {
        let ok = [
            ("1.5s", ms(1500)),
            ("0.5m", Duration::from_secs(30)),
            ("1.25h", Duration::from_secs(4500)),
            ("1h0.5m", Duration::from_secs(3630)),
            ("1.5h30m", Duration::from_secs(7200)),
            (".5s", ms(500)),
            ("1.s", Duration::from_secs(1)),
            ("0.1s", ms(100)),
            ("1.0000000005s", Duration::new(1, 0)),
            ("2.5ms", Duration::from_micros(2500)),
            (
                "0.333333333333333333333333s",
                Duration::from_nanos(333_333_333),
            ),
        ];
        for (text, want) in ok {
            assert_eq!(parse_duration(text), Ok(want), "{text}");
        }
    }

    /// Each malformed input fails with a message that names the actual problem.
    #[test]
    fn malformed_input_says_what_is_wrong() {
        for (bad, why) in [
            ("", "empty duration"),
            ("s", "expected a number before `s`"),
            ("ms", "expected a number before `ms`"),
            ("1.5", "a number with a fraction needs a unit, e.g. 1.5s"),
            ("1.5.3s", "`1.5.3` has more than one decimal point"),
            (".s", "`.` is not a number"),
            ("1,5s", "write fractions with a decimal point"),
            ("10d", "unknown unit `d`"),
            ("10d", "days are not a unit"),
            ("1x", "unknown unit `x`"),
            ("15 s", "spaces are not allowed"),
            ("15 seconds", "spaces are not allowed"),
            ("15seconds", "write s, e.g. 15s"),
            (
                "1s1m",
                "`m` after `s`: units must go from largest to smallest",
            ),
            ("1m1m", "`m` after `m`"),
            ("1us1µs", "`µs` after `us`"),
            ("-1s", "must not be negative"),
            ("1h30", "missing unit after `30`"),
            ("5S", "units are lowercase"),
        ] {
            let e = parse_duration(bad).expect_err(bad);
            assert!(e.contains(why), "{bad:?}: {e}");
            // a problem with a fraction is never reported as a unit problem
            if bad.contains('.') {
                assert!(!e.contains("unknown unit"), "{bad:?}: {e}");
            }
        }
    }

    #[test]
    fn too_large_is_an_error_not_a_saturated_value() {
        for big in [
            "99999999999999999h",
            "99999999999999999999999999999999999999999h",
            "18446744073709551616",
            "5124095576030432h",
            "18446744073709551615s1000ms",
        ] {
            let e = parse_duration(big).expect_err(big);
            assert!(e.contains("too large"), "{big}: {e}");
        }
        // the largest value there is still parses, exactly
        assert_eq!(
            parse_duration("18446744073709551615s999ms999us999ns"),
            Ok(Duration::MAX)
        );
    }

    #[test]
    fn formats_round_trip() {
        for text in [
            "0s",
            "500ms",
            "15s",
            "1m",
            "1m30s",
            "1h",
            "1h30m",
            "2h0m5s",
            "1.5s",
            "1.25h",
            "1h0.5m",
            "250us",
            "1s1ns",
            "0.000000001s",
            "99999h",
        ] {
            let d = parse_duration(text).unwrap();
            assert_eq!(parse_duration(&format_duration(d)).unwrap(), d, "{text}");
        }
        assert_eq!(format_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(format_duration(Duration::from_secs(15)), "15s");
        assert_eq!(format_duration(ms(500)), "500ms");
        assert_eq!(format_duration(Duration::from_secs(5400)), "1h30m");
        assert_eq!(format_duration(ms(1500)), "1s500ms");
        assert_eq!(format_duration(Duration::from_nanos(2500)), "2us500ns");
        assert_eq!(
            parse_duration(&format_duration(Duration::MAX)),
            Ok(Duration::MAX)
        );
    }
}
