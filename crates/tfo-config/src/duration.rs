//! Human-readable durations: `500ms`, `15s`, `1m`, `1h`, `1h30m`, or bare integer seconds.
//!
//! Config fields keep plain [`std::time::Duration`] so the agent uses them directly; this
//! module is the `#[serde(with = ...)]` adapter. Values serialize back in the same compact
//! form (`15s`, `1m30s`, `500ms`), so a printed config re-parses to the same value.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Visitor};
use serde::{Deserializer, Serializer};

/// What a duration may look like; used in error messages and docs.
pub const DURATION_ALLOWED: &str =
    "a duration such as 500ms, 15s, 1m, 1h, 1h30m, or a whole number of seconds";

/// Parses `500ms`, `15s`, `1m`, `1h`, `1h30m`, `2h45m10s`, or a bare integer (seconds).
///
/// Units are `ms`, `s`, `m` and `h`; each component is a whole number and the units must
/// appear in decreasing order without repetition. Surrounding whitespace is ignored.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let s = text.trim();
    if s.is_empty() {
        return Err("empty duration".to_string());
    }
    if s.bytes().all(|b| b.is_ascii_digit()) {
        return s
            .parse::<u64>()
            .map(Duration::from_secs)
            .map_err(|_| format!("duration `{s}` is too large"));
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    // rank of the last unit seen: h=4, m=3, s=2, ms=1; units must strictly decrease
    let mut last_rank = u8::MAX;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(format!("invalid duration `{s}`"));
        }
        let n: u64 = rest[..digits]
            .parse()
            .map_err(|_| format!("duration `{s}` is too large"))?;
        rest = &rest[digits..];
        let (unit_len, rank, part) = if rest.starts_with("ms") {
            (2, 1, Duration::from_millis(n))
        } else if rest.starts_with('h') {
            (
                1,
                4,
                n.checked_mul(3600)
                    .map(Duration::from_secs)
                    .unwrap_or(Duration::MAX),
            )
        } else if rest.starts_with('m') {
            (
                1,
                3,
                n.checked_mul(60)
                    .map(Duration::from_secs)
                    .unwrap_or(Duration::MAX),
            )
        } else if rest.starts_with('s') {
            (1, 2, Duration::from_secs(n))
        } else {
            return Err(format!("invalid duration `{s}` (missing or unknown unit)"));
        };
        if rank >= last_rank {
            return Err(format!(
                "invalid duration `{s}` (units must go from h to m to s to ms)"
            ));
        }
        last_rank = rank;
        rest = &rest[unit_len..];
        total = total
            .checked_add(part)
            .ok_or_else(|| format!("duration `{s}` is too large"))?;
    }
    Ok(total)
}

/// Formats a duration compactly: `0s`, `500ms`, `15s`, `1m30s`, `1h30m`, `1h0m0s500ms` style
/// components with zero components omitted. Sub-millisecond parts are dropped.
pub fn format_duration(d: Duration) -> String {
    let total_ms = d.as_millis();
    if total_ms == 0 {
        return "0s".to_string();
    }
    let h = total_ms / 3_600_000;
    let m = (total_ms / 60_000) % 60;
    let s = (total_ms / 1000) % 60;
    let ms = total_ms % 1000;
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if s > 0 {
        out.push_str(&format!("{s}s"));
    }
    if ms > 0 {
        out.push_str(&format!("{ms}ms"));
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
            "invalid duration `{v}` (fractions are not allowed; use ms, e.g. 1500ms)"
        )))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
        parse_duration(v).map_err(E::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units() {
        let ok = [
            ("500ms", Duration::from_millis(500)),
            ("15s", Duration::from_secs(15)),
            ("1m", Duration::from_secs(60)),
            ("1h", Duration::from_secs(3600)),
            ("1h30m", Duration::from_secs(5400)),
            ("2m30s250ms", Duration::from_millis(150_250)),
            ("45", Duration::from_secs(45)),
            (" 0s ", Duration::ZERO),
        ];
        for (text, want) in ok {
            assert_eq!(parse_duration(text), Ok(want), "{text}");
        }
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            "", "s", "1.5s", "10d", "15 s", "1s1m", "1m1m", "-1s", "ms", "1x",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should fail");
        }
    }

    #[test]
    fn formats_round_trip() {
        for text in ["0s", "500ms", "15s", "1m", "1m30s", "1h", "1h30m", "2h0m5s"] {
            let d = parse_duration(text).unwrap();
            assert_eq!(parse_duration(&format_duration(d)).unwrap(), d, "{text}");
        }
        assert_eq!(format_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(format_duration(Duration::from_secs(15)), "15s");
        assert_eq!(format_duration(Duration::from_millis(500)), "500ms");
        assert_eq!(format_duration(Duration::from_secs(5400)), "1h30m");
    }
}
