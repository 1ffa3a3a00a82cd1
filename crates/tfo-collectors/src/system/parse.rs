//! Byte-level helpers shared by the /proc parsers.
//!
//! The parsers work on `&[u8]`, not `&str`: /proc content is ASCII in practice, but mount
//! points and interface names are arbitrary bytes, and slicing bytes can never panic on a
//! character boundary. Nothing here allocates.

use std::path::Path;

use crate::{CollectError, CollectReport};

/// Lines of `input` without their `\n` (a trailing `\r` is kept; /proc never writes one).
pub(crate) fn lines(input: &[u8]) -> impl Iterator<Item = &[u8]> {
    input.split(|&b| b == b'\n')
}

/// Whitespace-separated fields of a line.
pub(crate) fn fields(line: &[u8]) -> impl Iterator<Item = &[u8]> {
    line.split(|b| b.is_ascii_whitespace())
        .filter(|f| !f.is_empty())
}

/// A decimal `u64` with no sign, no spaces and no overflow.
pub(crate) fn parse_u64(s: &[u8]) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    let mut v: u64 = 0;
    for &b in s {
        if !b.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    Some(v)
}

/// A finite, non-negative decimal float (`12.34`). Rejects `inf`, `nan` and signs.
pub(crate) fn parse_f64(s: &[u8]) -> Option<f64> {
    if s.is_empty() || !s.iter().all(|b| b.is_ascii_digit() || *b == b'.') {
        return None;
    }
    let v: f64 = std::str::from_utf8(s).ok()?.parse().ok()?;
    (v.is_finite() && v >= 0.0).then_some(v)
}

/// Clamps a counter into the OTLP `int64`.
pub(crate) fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Renders a field for an error message or attribute, replacing invalid UTF-8.
pub(crate) fn lossy(s: &[u8]) -> String {
    String::from_utf8_lossy(s).into_owned()
}

/// Decodes the kernel's octal escapes in /proc/*/mounts fields (`\040` is a space, `\011`
/// a tab, `\012` a newline, `\134` a backslash). A backslash not followed by three octal
/// digits is kept as is.
pub(crate) fn unescape_octal(s: &[u8], out: &mut Vec<u8>) {
    out.clear();
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'\\'
            && let Some(d) = s.get(i + 1..i + 4)
            && d.iter().all(|b| (b'0'..=b'7').contains(b))
        {
            let v =
                u32::from(d[0] - b'0') * 64 + u32::from(d[1] - b'0') * 8 + u32::from(d[2] - b'0');
            if let Ok(byte) = u8::try_from(v) {
                out.push(byte);
                i += 4;
                continue;
            }
        }
        out.push(s[i]);
        i += 1;
    }
}

/// Collects the malformed lines of one file into a single [`CollectError`], so a garbage
/// file yields one error per cycle rather than one per line.
pub(crate) struct LineErrors<'a> {
    path: &'a Path,
    count: usize,
    first: Option<String>,
}

impl<'a> LineErrors<'a> {
    pub(crate) fn new(path: &'a Path) -> Self {
        LineErrors {
            path,
            count: 0,
            first: None,
        }
    }

    /// Records a malformed line; only the first reason is kept.
    pub(crate) fn add(&mut self, line_no: usize, reason: impl FnOnce() -> String) {
        self.count += 1;
        if self.first.is_none() {
            self.first = Some(format!("line {}: {}", line_no + 1, reason()));
        }
    }

    /// Adds the combined error, if any, to the report.
    pub(crate) fn finish(self, report: &mut CollectReport) {
        if let Some(first) = self.first {
            let reason = if self.count == 1 {
                first
            } else {
                format!("{} malformed lines skipped; first at {first}", self.count)
            };
            report.errors.push(parse_error(self.path, reason));
        }
    }
}

pub(crate) fn parse_error(path: &Path, reason: impl Into<String>) -> CollectError {
    CollectError::Parse {
        path: path.display().to_string(),
        reason: reason.into(),
    }
}

/// Shortens a line for an error message.
pub(crate) fn excerpt(line: &[u8]) -> String {
    const MAX: usize = 80;
    let cut = &line[..line.len().min(MAX)];
    let mut s = lossy(cut);
    if line.len() > MAX {
        s.push('…');
    }
    format!("{s:?}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers() {
        assert_eq!(parse_u64(b"0"), Some(0));
        assert_eq!(parse_u64(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_u64(b"18446744073709551616"), None);
        assert_eq!(parse_u64(b"+1"), None);
        assert_eq!(parse_u64(b""), None);
        assert_eq!(parse_u64(b"1a"), None);
        assert_eq!(parse_f64(b"0.30"), Some(0.3));
        assert_eq!(parse_f64(b"252.41"), Some(252.41));
        assert_eq!(parse_f64(b"inf"), None);
        assert_eq!(parse_f64(b"nan"), None);
        assert_eq!(parse_f64(b"-1"), None);
        assert_eq!(parse_f64(b"."), None);
        assert_eq!(to_i64(u64::MAX), i64::MAX);
    }

    #[test]
    fn octal_unescape() {
        let mut out = Vec::new();
        unescape_octal(br"/mnt/my\040disk\011tab\012nl\134bs", &mut out);
        assert_eq!(out, b"/mnt/my disk\ttab\nnl\\bs");
        unescape_octal(br"trailing\04", &mut out);
        assert_eq!(out, br"trailing\04");
        unescape_octal(br"\777\08x\", &mut out);
        assert_eq!(out, br"\777\08x\");
    }
}
