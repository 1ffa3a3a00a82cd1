//! Timestamps found in log lines, as Unix nanoseconds.

/// RFC 3339 with any number of fraction digits (nanoseconds kept, more digits ignored), `T`,
/// `t` or a space between date and time, `Z` or a numeric offset (`+02:00`, `+0200`). A time
/// without a zone is refused: guessing the zone would shift it by hours. Times before 1970
/// are refused too (OTLP times are unsigned).
pub(crate) fn parse_rfc3339(s: &[u8]) -> Option<u64> {
    fn num(s: &[u8], at: usize, n: usize) -> Option<i64> {
        let d = s.get(at..at + n)?;
        d.iter().try_fold(0i64, |acc, &b| {
            b.is_ascii_digit().then(|| acc * 10 + i64::from(b - b'0'))
        })
    }
    if s.len() < 20 || s[4] != b'-' || s[7] != b'-' || !matches!(s[10], b'T' | b't' | b' ') {
        return None;
    }
    if s[13] != b':' || s[16] != b':' {
        return None;
    }
    let (year, month, day) = (num(s, 0, 4)?, num(s, 5, 2)?, num(s, 8, 2)?);
    let (hour, minute, second) = (num(s, 11, 2)?, num(s, 14, 2)?, num(s, 17, 2)?);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut i = 19;
    let mut nanos = 0i64;
    if i < s.len() && (s[i] == b'.' || s[i] == b',') {
        i += 1;
        let start = i;
        let mut scale = 100_000_000i64;
        while i < s.len() && s[i].is_ascii_digit() {
            nanos += i64::from(s[i] - b'0') * scale;
            scale /= 10;
            i += 1;
        }
        if i == start {
            return None;
        }
    }
    let offset = match s.get(i)? {
        b'Z' | b'z' => {
            i += 1;
            0
        }
        sign @ (b'+' | b'-') => {
            let h = num(s, i + 1, 2)?;
            let (m, len) = if s.get(i + 3) == Some(&b':') {
                (num(s, i + 4, 2)?, 6)
            } else {
                (num(s, i + 3, 2)?, 5)
            };
            i += len;
            let off = h * 3600 + m * 60;
            if *sign == b'-' { -off } else { off }
        }
        _ => return None,
    };
    if i != s.len() {
        return None;
    }
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second.min(59) - offset;
    if secs < 0 {
        return None;
    }
    (secs as u64)
        .checked_mul(1_000_000_000)?
        .checked_add(nanos as u64)
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

/// A numeric epoch timestamp in a JSON log: seconds (possibly fractional), milliseconds,
/// microseconds or nanoseconds, told apart by magnitude (valid for dates 2001 to 2286).
pub(crate) fn from_epoch_number(v: f64) -> Option<u64> {
    if !v.is_finite() || v <= 0.0 {
        return None;
    }
    let nanos = if v < 1e11 {
        v * 1e9
    } else if v < 1e14 {
        v * 1e6
    } else if v < 1e17 {
        v * 1e3
    } else {
        v
    };
    (nanos < 1.8e19).then_some(nanos as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339() {
        let t = |s: &str| parse_rfc3339(s.as_bytes());
        assert_eq!(t("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            t("2016-10-06T00:17:09.669794202Z"),
            Some(1_475_713_029_669_794_202)
        );
        assert_eq!(
            t("2016-10-06T02:17:09.669794202+02:00"),
            Some(1_475_713_029_669_794_202)
        );
        assert_eq!(
            t("2016-10-05T23:17:09.669794202-0100"),
            Some(1_475_713_029_669_794_202)
        );
        assert_eq!(t("2024-02-29 12:00:00.5Z"), Some(1_709_208_000_500_000_000));
        assert_eq!(
            t("2024-01-01T00:00:00.1234567891234Z"),
            Some(1_704_067_200_123_456_789)
        );
        assert_eq!(t("2024-01-01T00:00:00"), None);
        assert_eq!(t("2024-13-01T00:00:00Z"), None);
        assert_eq!(t("1969-12-31T23:59:59Z"), None);
        assert_eq!(t("2024-01-01T00:00:00Zjunk"), None);
        assert_eq!(t("2024-01-01T00:00:00.Z"), None);
    }

    #[test]
    fn epochs() {
        let want = 1_704_067_200_000_000_000u64;
        for v in [
            1_704_067_200.0,
            1_704_067_200_000.0,
            1_704_067_200_000_000.0,
            want as f64,
        ] {
            let got = from_epoch_number(v).unwrap();
            assert!(got.abs_diff(want) < 1_000, "{v}: {got}");
        }
        assert_eq!(from_epoch_number(-1.0), None);
    }
}
