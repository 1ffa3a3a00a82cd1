//! Byte-level helpers shared by the /proc and /sys parsers of every collector.
//!
//! The parsers work on `&[u8]`, not `&str`: /proc content is ASCII in practice, but mount
//! points and interface names are arbitrary bytes, and slicing bytes can never panic on a
//! character boundary. Nothing here allocates except [`read_file`] growing the caller's
//! reused buffer.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use crate::{CollectError, CollectReport};

/// Largest /proc or /sys file read; anything bigger is reported rather than buffered.
pub(crate) const MAX_FILE_BYTES: u64 = 16 << 20;

/// Reads a whole file into `buf` (cleared first), refusing files over [`MAX_FILE_BYTES`].
pub(crate) fn read_file(path: &Path, buf: &mut Vec<u8>) -> Result<(), CollectError> {
    buf.clear();
    let io_err = |source: io::Error| CollectError::Io {
        path: path.display().to_string(),
        source,
    };
    let file = File::open(path).map_err(io_err)?;
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(buf)
        .map_err(io_err)?;
    if buf.len() as u64 > MAX_FILE_BYTES {
        buf.clear();
        return Err(parse_error(
            path,
            format!("larger than {MAX_FILE_BYTES} bytes; not parsed"),
        ));
    }
    Ok(())
}

/// True when the error is "no such file": a kernel feature this host does not have.
pub(crate) fn is_not_found(e: &CollectError) -> bool {
    matches!(e, CollectError::Io { source, .. } if source.kind() == io::ErrorKind::NotFound)
}

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

/// A decimal `i64` with an optional leading `-` (sysfs prints negative temperatures and
/// `-1` for an unknown link speed).
pub(crate) fn parse_i64(s: &[u8]) -> Option<i64> {
    match s.strip_prefix(b"-") {
        Some(rest) => i64::try_from(parse_u64(rest)?).ok().map(|v| -v),
        None => i64::try_from(parse_u64(s)?).ok(),
    }
}

/// A hexadecimal `u64` without prefix (/proc/net/stat/* columns).
pub(crate) fn parse_hex_u64(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 16 {
        return None;
    }
    let mut v: u64 = 0;
    for &b in s {
        let d = match b {
            b'0'..=b'9' => b - b'0',
            b'a'..=b'f' => b - b'a' + 10,
            b'A'..=b'F' => b - b'A' + 10,
            _ => return None,
        };
        v = (v << 4) | u64::from(d);
    }
    Some(v)
}

/// The whole content of a one-value file (sysfs), without surrounding whitespace.
pub(crate) fn trim(s: &[u8]) -> &[u8] {
    let start = s
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(s.len());
    let end = s
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    s.get(start..end).unwrap_or_default()
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

/// A constant-time map from the (section, key) byte strings of a parse table to their
/// row, so a parser looks each line's key up once instead of comparing it with every row
/// (/proc/net/netstat alone has ~250 names a cycle, /proc/vmstat ~180 keys). Built once
/// per table (a `LazyLock` static); open addressing over a power-of-two slot array at
/// most half full.
pub(crate) struct KeyIndex {
    keys: Vec<(&'static [u8], &'static [u8])>,
    /// Bit `n` set when some key's last part is `n` bytes long (`n` < 63; bit 63 for all
    /// longer ones): most lookups of names not in the table stop here.
    lens: u64,
    /// Row + 1 per slot; 0 is empty.
    slots: Vec<u16>,
    mask: usize,
}

/// Mixes `s` into `h` eight bytes at a time (FxHash's step), its length last, so
/// (`ab`, `c`) and (`a`, `bc`) differ. The last partial word is read as two overlapping
/// halves (or three single bytes): a function of the bytes, without a memcpy call.
#[inline]
fn mix(mut h: u64, s: &[u8]) -> u64 {
    const K: u64 = 0x517c_c1b7_2722_0a95;
    let step = |h: u64, w: u64| (h.rotate_left(5) ^ w).wrapping_mul(K);
    let mut chunks = s.chunks_exact(8);
    for c in &mut chunks {
        h = step(
            h,
            u64::from_le_bytes(<[u8; 8]>::try_from(c).unwrap_or_default()),
        );
    }
    let rem = chunks.remainder();
    let n = rem.len();
    let tail = if n >= 4 {
        let lo = u32::from_le_bytes(<[u8; 4]>::try_from(&rem[..4]).unwrap_or_default());
        let hi = u32::from_le_bytes(<[u8; 4]>::try_from(&rem[n - 4..]).unwrap_or_default());
        u64::from(lo) | (u64::from(hi) << 32)
    } else if n > 0 {
        u64::from(rem[0]) | (u64::from(rem[n / 2]) << 8) | (u64::from(rem[n - 1]) << 16)
    } else {
        0
    };
    step(step(h, tail), s.len() as u64)
}

/// `a == b` for short keys, by words: a slice comparison calls memcmp, whose AVX-512
/// variant measured several times slower per call than the whole lookup on this host.
#[inline]
fn same(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    let word = |s: &[u8], i: usize| {
        u64::from_le_bytes(<[u8; 8]>::try_from(&s[i..i + 8]).unwrap_or_default())
    };
    let half = |s: &[u8], i: usize| {
        u32::from_le_bytes(<[u8; 4]>::try_from(&s[i..i + 4]).unwrap_or_default())
    };
    if n >= 8 {
        let mut i = 0;
        while i + 8 <= n {
            if word(a, i) != word(b, i) {
                return false;
            }
            i += 8;
        }
        // The last (partial) word, read overlapping the one before.
        return word(a, n - 8) == word(b, n - 8);
    }
    if n >= 4 {
        return half(a, 0) == half(b, 0) && half(a, n - 4) == half(b, n - 4);
    }
    // 0 to 3 bytes: positions 0, n/2 and n-1 cover them all.
    n == 0 || (a[0] == b[0] && a[n / 2] == b[n / 2] && a[n - 1] == b[n - 1])
}

fn len_bit(s: &[u8]) -> u64 {
    1 << s.len().min(63)
}

fn key_hash(a: &[u8], b: &[u8]) -> usize {
    let h = mix(mix(0, a), b);
    (h ^ (h >> 32)) as usize
}

impl KeyIndex {
    /// Indexes `keys` (row `i` is the `i`-th); a duplicate key keeps its first row.
    pub(crate) fn new(keys: impl IntoIterator<Item = (&'static [u8], &'static [u8])>) -> Self {
        let keys: Vec<_> = keys.into_iter().collect();
        assert!(keys.len() < usize::from(u16::MAX), "parse tables are small");
        let size = (keys.len() * 2).next_power_of_two().max(4);
        let lens = keys.iter().fold(0, |m, (_, b)| m | len_bit(b));
        let mut ix = KeyIndex {
            keys,
            lens,
            slots: vec![0; size],
            mask: size - 1,
        };
        for row in 0..ix.keys.len() {
            let (a, b) = ix.keys[row];
            if ix.get2(a, b).is_some() {
                continue;
            }
            let mut i = key_hash(a, b) & ix.mask;
            while ix.slots[i] != 0 {
                i = (i + 1) & ix.mask;
            }
            ix.slots[i] = (row + 1) as u16; // row < u16::MAX, asserted above
        }
        ix
    }

    /// The row of a one-part key, indexed as (`""`, key).
    pub(crate) fn get(&self, key: &[u8]) -> Option<usize> {
        self.get2(b"", key)
    }

    /// The row of (`a`, `b`).
    pub(crate) fn get2(&self, a: &[u8], b: &[u8]) -> Option<usize> {
        if self.lens & len_bit(b) == 0 {
            return None;
        }
        let mut i = key_hash(a, b) & self.mask;
        loop {
            let row = usize::from(*self.slots.get(i)?).checked_sub(1)?;
            if let Some(&(ka, kb)) = self.keys.get(row)
                && same(ka, a)
                && same(kb, b)
            {
                return Some(row);
            }
            i = (i + 1) & self.mask;
        }
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
        assert_eq!(parse_i64(b"-1"), Some(-1));
        assert_eq!(parse_i64(b"42000"), Some(42000));
        assert_eq!(parse_i64(b"-"), None);
        assert_eq!(parse_i64(b"--1"), None);
        assert_eq!(parse_i64(b"9223372036854775808"), None);
        assert_eq!(parse_hex_u64(b"0000001f"), Some(31));
        assert_eq!(parse_hex_u64(b"ffffffffffffffff"), Some(u64::MAX));
        assert_eq!(parse_hex_u64(b"1ffffffffffffffff"), None);
        assert_eq!(parse_hex_u64(b"0x1"), None);
        assert_eq!(trim(b"  up\n"), b"up");
        assert_eq!(trim(b" \n"), b"");
    }

    #[test]
    fn key_index_finds_every_row_and_nothing_else() {
        let keys: Vec<&'static [u8]> = vec![b"MemTotal", b"MemFree", b"", b"Active(anon)", b"x"];
        let ix = KeyIndex::new(keys.iter().map(|k| (&b""[..], *k)));
        for (row, k) in keys.iter().enumerate() {
            assert_eq!(ix.get(k), Some(row));
        }
        let long = [b'a'; 100];
        for k in [
            &b"MemTotalX"[..],
            b"Mem",
            b"memtotal",
            b"y",
            b"Active",
            &long,
        ] {
            assert_eq!(ix.get(k), None);
        }
        let pairs: [(&'static [u8], &'static [u8]); 4] = [
            (b"Tcp", b"InSegs"),
            (b"TcpExt", b"InSegs"),
            (b"a", b"bc"),
            (b"Tcp", b"InSegs"),
        ];
        let ix = KeyIndex::new(pairs);
        assert_eq!(
            ix.get2(b"Tcp", b"InSegs"),
            Some(0),
            "a duplicate keeps its first row"
        );
        assert_eq!(ix.get2(b"TcpExt", b"InSegs"), Some(1));
        assert_eq!(ix.get2(b"a", b"bc"), Some(2));
        assert_eq!(ix.get2(b"ab", b"c"), None);
        assert_eq!(KeyIndex::new([]).get(b""), None);
    }

    #[test]
    fn same_is_slice_equality() {
        let words: Vec<Vec<u8>> = (0..=20)
            .flat_map(|n| {
                let base: Vec<u8> = (0..n).map(|i| b'a' + i as u8).collect();
                let mut variants = vec![base.clone()];
                for i in 0..n {
                    let mut v = base.clone();
                    v[i] = b'Z';
                    variants.push(v);
                }
                variants
            })
            .collect();
        for a in &words {
            for b in &words {
                assert_eq!(same(a, b), a == b, "{a:?} {b:?}");
            }
        }
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
