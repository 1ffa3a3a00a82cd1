//! From bytes to records, per file: line framing (LF, CRLF), `max_line_bytes` splitting,
//! format decoding (CRI, docker json-file, JSON, raw) with partial-line joins, multiline
//! joins, include/exclude filters, severity, and the checkpoint position of each record.
//!
//! Positions: a record's position is the end of its last byte, except when the decoder still
//! holds earlier bytes it has not returned (a CRI partial on the other stream, a pending
//! multiline record): then it is the start of the earliest such bytes, so committing it never
//! skips them after a restart. Positions of one stream never decrease.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, Instant};

use regex::RegexSet;
use regex::bytes::Regex;

use crate::severity;
use crate::types::{Checkpoint, FileInfo, Format, LogLine, Stats};

/// Index of the I/O stream a line belongs to: 0 none, 1 stdout, 2 stderr. Partial and
/// multiline joins are kept per stream, because a container writes both to one file.
const NSTREAMS: usize = 3;
const IOSTREAMS: [Option<&str>; NSTREAMS] = [None, Some("stdout"), Some("stderr")];

/// A line buffer keeps at most this capacity between lines (a 10 MiB line does not pin
/// 10 MiB per file).
const KEEP_CAPACITY: usize = 64 * 1024;

pub(crate) struct MultilineRule {
    pub regex: Regex,
    pub is_start: bool,
    pub timeout: Duration,
}

/// The compiled per-tailer rules.
pub(crate) struct Rules {
    pub format: Format,
    pub max_line: usize,
    pub multiline: Option<MultilineRule>,
    pub include: Option<RegexSet>,
    pub exclude: Option<RegexSet>,
}

/// What the decoder needs from its surroundings while it emits.
pub(crate) struct Ctx<'a> {
    pub rules: &'a Rules,
    pub out: &'a mut Vec<LogLine>,
    pub stats: &'a mut Stats,
    pub info: &'a Arc<FileInfo>,
    pub stream: u64,
    pub observed: u64,
    pub now: Instant,
    /// The highest position handed out for this stream.
    pub last_emit: &'a mut u64,
}

struct Join {
    start: u64,
    end: u64,
    time: Option<u64>,
    body: Vec<u8>,
}

struct Pending {
    start: u64,
    end: u64,
    time: Option<u64>,
    body: Vec<u8>,
    last: Instant,
}

/// One logical line after format decoding.
struct Entry<'a> {
    body: Cow<'a, [u8]>,
    time: Option<u64>,
    sidx: usize,
    start: u64,
    end: u64,
}

pub(crate) struct Decoder {
    format: Format,
    line: Vec<u8>,
    line_start: u64,
    joins: [Option<Join>; NSTREAMS],
    multi: [Option<Pending>; NSTREAMS],
}

impl Decoder {
    /// A decoder whose next byte is at `offset`.
    pub(crate) fn new(format: Format, offset: u64) -> Decoder {
        Decoder {
            format,
            line: Vec::new(),
            line_start: offset,
            joins: Default::default(),
            multi: Default::default(),
        }
    }

    /// The start of the earliest byte read but not yet returned, if any.
    pub(crate) fn floor(&self) -> Option<u64> {
        let line = (!self.line.is_empty()).then_some(self.line_start);
        let joins = self.joins.iter().flatten().map(|j| j.start);
        let multi = self.multi.iter().flatten().map(|p| p.start);
        line.into_iter().chain(joins).chain(multi).min()
    }

    /// Whether a multiline record is waiting for its timeout.
    pub(crate) fn has_pending_multiline(&self) -> bool {
        self.multi.iter().any(Option::is_some)
    }

    /// Bytes held in joins and the partial line (for memory accounting in tests).
    #[cfg(test)]
    fn held(&self) -> usize {
        self.line.len()
            + self
                .joins
                .iter()
                .flatten()
                .map(|j| j.body.len())
                .sum::<usize>()
            + self
                .multi
                .iter()
                .flatten()
                .map(|p| p.body.len())
                .sum::<usize>()
    }

    /// Decodes `chunk`, the bytes that follow everything fed so far.
    pub(crate) fn feed(&mut self, mut chunk: &[u8], ctx: &mut Ctx) {
        let max = ctx.rules.max_line;
        while !chunk.is_empty() {
            match find_newline(chunk) {
                Some(i) => {
                    let end = self.line_start + (self.line.len() + i + 1) as u64;
                    if self.line.is_empty() {
                        self.line_bytes(&chunk[..i], end, ctx);
                    } else {
                        let mut line = std::mem::take(&mut self.line);
                        line.extend_from_slice(&chunk[..i]);
                        self.line_bytes(&line, end, ctx);
                        line.clear();
                        if line.capacity() <= KEEP_CAPACITY {
                            self.line = line;
                        }
                    }
                    self.line_start = end;
                    chunk = &chunk[i + 1..];
                }
                None => {
                    self.line.extend_from_slice(chunk);
                    chunk = &[];
                    if self.line.len() > max {
                        let mut line = std::mem::take(&mut self.line);
                        let mut from = 0;
                        while line.len() - from > max {
                            let cut = cut_point(&line[from..], max);
                            ctx.stats.lines_split += 1;
                            let start = self.line_start;
                            self.line_start += cut as u64;
                            self.raw(&line[from..from + cut], start, self.line_start, false, ctx);
                            from += cut;
                        }
                        line.drain(..from);
                        self.line = line;
                    }
                }
            }
        }
    }

    /// A complete line (without its `\n`) starting at `self.line_start`, ending at `end`.
    fn line_bytes(&mut self, mut bytes: &[u8], end: u64, ctx: &mut Ctx) {
        let max = ctx.rules.max_line;
        let mut start = self.line_start;
        while bytes.len() > max {
            let cut = cut_point(bytes, max);
            ctx.stats.lines_split += 1;
            self.raw(&bytes[..cut], start, start + cut as u64, false, ctx);
            start += cut as u64;
            bytes = &bytes[cut..];
        }
        self.raw(bytes, start, end, true, ctx);
    }

    /// One line (or a piece of an over-long one) through the format decoder.
    fn raw(&mut self, bytes: &[u8], start: u64, end: u64, complete: bool, ctx: &mut Ctx) {
        let bytes = match bytes {
            [rest @ .., b'\r'] if complete => rest,
            _ => bytes,
        };
        if complete {
            ctx.stats.lines_read += 1;
        }
        if self.format == Format::Auto && !bytes.is_empty() {
            self.format = detect(bytes);
        }
        let raw_entry = |bytes| Entry {
            body: Cow::Borrowed(bytes),
            time: None,
            sidx: 0,
            start,
            end,
        };
        match self.format {
            Format::Auto | Format::Raw | Format::Json => self.entry(raw_entry(bytes), ctx),
            Format::Cri => match parse_cri(bytes) {
                Some(c) => self.piece(
                    c.sidx,
                    Cow::Borrowed(c.msg),
                    c.partial,
                    c.time,
                    start,
                    end,
                    ctx,
                ),
                None => {
                    ctx.stats.parse_errors += 1;
                    self.entry(raw_entry(bytes), ctx)
                }
            },
            Format::Docker => match parse_docker(bytes) {
                Some(d) => {
                    let mut log = d.log.into_owned().into_bytes();
                    let partial = log.last() != Some(&b'\n');
                    if !partial {
                        log.pop();
                        if log.last() == Some(&b'\r') {
                            log.pop();
                        }
                    }
                    self.piece(d.sidx, Cow::Owned(log), partial, d.time, start, end, ctx)
                }
                None => {
                    ctx.stats.parse_errors += 1;
                    self.entry(raw_entry(bytes), ctx)
                }
            },
        }
    }

    /// A decoded container line: partial pieces are joined until the final one.
    #[allow(clippy::too_many_arguments)]
    fn piece(
        &mut self,
        sidx: usize,
        msg: Cow<[u8]>,
        partial: bool,
        time: Option<u64>,
        start: u64,
        end: u64,
        ctx: &mut Ctx,
    ) {
        let max = ctx.rules.max_line;
        if let Some(j) = &self.joins[sidx]
            && j.body.len() + msg.len() > max
        {
            // the join would be too long: send what we have as one piece
            let j = self.joins[sidx].take().expect("checked");
            ctx.stats.lines_split += 1;
            self.entry(
                Entry {
                    body: Cow::Owned(j.body),
                    time: j.time,
                    sidx,
                    start: j.start,
                    end: j.end,
                },
                ctx,
            );
        }
        match (&mut self.joins[sidx], partial) {
            (Some(j), _) => {
                j.body.extend_from_slice(&msg);
                j.end = end;
                if !partial {
                    let j = self.joins[sidx].take().expect("matched");
                    self.entry(
                        Entry {
                            body: Cow::Owned(j.body),
                            time: j.time,
                            sidx,
                            start: j.start,
                            end,
                        },
                        ctx,
                    );
                }
            }
            (None, true) => {
                self.joins[sidx] = Some(Join {
                    start,
                    end,
                    time,
                    body: msg.into_owned(),
                });
            }
            (None, false) => self.entry(
                Entry {
                    body: msg,
                    time,
                    sidx,
                    start,
                    end,
                },
                ctx,
            ),
        }
    }

    /// A logical line through the multiline stage.
    fn entry(&mut self, e: Entry, ctx: &mut Ctx) {
        let rules = ctx.rules;
        let Some(ml) = &rules.multiline else {
            return self.emit(e.body, e.time, e.sidx, e.end, ctx);
        };
        let max = ctx.rules.max_line;
        let sidx = e.sidx;
        let matched = ml.regex.is_match(&e.body);
        let fits = |p: &Pending| p.body.len() + 1 + e.body.len() <= max;
        if ml.is_start {
            if matched || self.multi[sidx].as_ref().is_some_and(|p| !fits(p)) {
                if let Some(p) = self.multi[sidx].take() {
                    if !matched {
                        ctx.stats.lines_split += 1;
                    }
                    self.emit(Cow::Owned(p.body), p.time, sidx, p.end, ctx);
                }
                self.multi[sidx] = Some(pending(e, ctx.now));
            } else if let Some(p) = &mut self.multi[sidx] {
                append(p, &e, ctx.now);
            } else {
                self.multi[sidx] = Some(pending(e, ctx.now));
            }
        } else {
            let p = match self.multi[sidx].take() {
                Some(p) if !fits(&p) => {
                    ctx.stats.lines_split += 1;
                    self.emit(Cow::Owned(p.body), p.time, sidx, p.end, ctx);
                    None
                }
                other => other,
            };
            match (p, matched) {
                (Some(mut p), true) => {
                    append(&mut p, &e, ctx.now);
                    self.emit(Cow::Owned(p.body), p.time, sidx, p.end, ctx);
                }
                (Some(mut p), false) => {
                    append(&mut p, &e, ctx.now);
                    self.multi[sidx] = Some(p);
                }
                (None, true) => self.emit(e.body, e.time, sidx, e.end, ctx),
                (None, false) => self.multi[sidx] = Some(pending(e, ctx.now)),
            }
        }
    }

    /// Sends multiline records that waited longer than the timeout.
    pub(crate) fn flush_timeouts(&mut self, ctx: &mut Ctx) {
        let rules = ctx.rules;
        let Some(ml) = &rules.multiline else {
            return;
        };
        for sidx in 0..NSTREAMS {
            if self.multi[sidx]
                .as_ref()
                .is_some_and(|p| ctx.now.saturating_duration_since(p.last) >= ml.timeout)
            {
                let p = self.multi[sidx].take().expect("checked");
                ctx.stats.multiline_timeouts += 1;
                self.emit(Cow::Owned(p.body), p.time, sidx, p.end, ctx);
            }
        }
    }

    /// The file ended for good (deleted, rotated away, truncated): return everything held,
    /// a last line without `\n` included.
    pub(crate) fn finish(&mut self, ctx: &mut Ctx) {
        if !self.line.is_empty() {
            let line = std::mem::take(&mut self.line);
            let start = self.line_start;
            self.line_start += line.len() as u64;
            self.raw(&line, start, self.line_start, true, ctx);
        }
        for sidx in 0..NSTREAMS {
            if let Some(j) = self.joins[sidx].take() {
                self.entry(
                    Entry {
                        body: Cow::Owned(j.body),
                        time: j.time,
                        sidx,
                        start: j.start,
                        end: j.end,
                    },
                    ctx,
                );
            }
        }
        let mut pending: Vec<(usize, Pending)> = (0..NSTREAMS)
            .filter_map(|i| self.multi[i].take().map(|p| (i, p)))
            .collect();
        pending.sort_by_key(|(_, p)| p.start);
        for (sidx, p) in pending {
            self.emit(Cow::Owned(p.body), p.time, sidx, p.end, ctx);
        }
    }

    /// Filters, severity, and out.
    fn emit(&mut self, body: Cow<[u8]>, time: Option<u64>, sidx: usize, end: u64, ctx: &mut Ctx) {
        let position = self.floor().map_or(end, |f| f.min(end));
        let body = match body {
            // `from_utf8` checks valid text a word at a time; the lossy conversion walks it
            // character by character, so it runs only when something must be replaced.
            Cow::Borrowed(b) => match std::str::from_utf8(b) {
                Ok(s) => s.to_string(),
                Err(_) => {
                    ctx.stats.records_invalid_utf8 += 1;
                    String::from_utf8_lossy(b).into_owned()
                }
            },
            Cow::Owned(v) => String::from_utf8(v).unwrap_or_else(|e| {
                ctx.stats.records_invalid_utf8 += 1;
                String::from_utf8_lossy(e.as_bytes()).into_owned()
            }),
        };
        if ctx
            .rules
            .include
            .as_ref()
            .is_some_and(|s| !s.is_match(&body))
            || ctx
                .rules
                .exclude
                .as_ref()
                .is_some_and(|s| s.is_match(&body))
        {
            ctx.stats.records_excluded += 1;
            return;
        }
        let (severity, time, message) = match self.format {
            Format::Json => match severity::json_fields(&body) {
                Some(f) => (f.severity, time.or(f.time_unix_nano), f.message),
                None => (severity::detect(&body), time, None),
            },
            _ => (severity::detect(&body), time, None),
        };
        *ctx.last_emit = (*ctx.last_emit).max(position);
        ctx.stats.records += 1;
        ctx.out.push(LogLine {
            file: ctx.info.clone(),
            body,
            message,
            time_unix_nano: time,
            observed_unix_nano: ctx.observed,
            severity,
            iostream: IOSTREAMS[sidx],
            position: Checkpoint {
                stream: ctx.stream,
                offset: position,
            },
        });
    }
}

fn pending(e: Entry, now: Instant) -> Pending {
    Pending {
        start: e.start,
        end: e.end,
        time: e.time,
        body: e.body.into_owned(),
        last: now,
    }
}

fn append(p: &mut Pending, e: &Entry, now: Instant) {
    p.body.push(b'\n');
    p.body.extend_from_slice(&e.body);
    p.end = e.end;
    p.last = now;
}

/// Where to cut `bytes` to at most `max` bytes without splitting a UTF-8 sequence (when the
/// bytes there are valid UTF-8; invalid bytes are cut anywhere).
fn cut_point(bytes: &[u8], max: usize) -> usize {
    let mut cut = max.min(bytes.len());
    // step back over continuation bytes to the start of the sequence at `cut`
    let floor = cut.saturating_sub(3);
    while cut > floor && cut < bytes.len() && (bytes[cut] & 0xC0) == 0x80 {
        cut -= 1;
    }
    if cut == 0 || (cut < bytes.len() && (bytes[cut] & 0xC0) == 0x80) {
        max.min(bytes.len())
    } else {
        cut
    }
}

/// Position of the first `\n`, a word at a time.
#[inline]
pub(crate) fn find_newline(hay: &[u8]) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    const NL: u64 = LO * b'\n' as u64;
    let mut i = 0;
    while i + 8 <= hay.len() {
        let w = u64::from_le_bytes(hay[i..i + 8].try_into().expect("8 bytes")) ^ NL;
        let zero = w.wrapping_sub(LO) & !w & HI;
        if zero != 0 {
            return Some(i + (zero.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    hay[i..].iter().position(|&b| b == b'\n').map(|p| i + p)
}

/// What the first line of a file says about its format.
fn detect(line: &[u8]) -> Format {
    if parse_cri(line).is_some() {
        return Format::Cri;
    }
    if line.first() == Some(&b'{') {
        if parse_docker(line).is_some_and(|d| d.has_time) {
            return Format::Docker;
        }
        if serde_json::from_slice::<serde::de::IgnoredAny>(line).is_ok() {
            return Format::Json;
        }
    }
    Format::Raw
}

struct Cri<'a> {
    time: Option<u64>,
    sidx: usize,
    partial: bool,
    msg: &'a [u8],
}

/// `<RFC 3339 time> <stdout|stderr> <tags> <message>`, tags `F` (full) or `P` (partial),
/// possibly with more `:`-separated tags after the first.
fn parse_cri(line: &[u8]) -> Option<Cri<'_>> {
    let mut parts = line.splitn(4, |&b| b == b' ');
    let time = crate::time::parse_rfc3339(parts.next()?)?;
    let sidx = match parts.next()? {
        b"stdout" => 1,
        b"stderr" => 2,
        _ => return None,
    };
    let tags = parts.next()?;
    let partial = match tags.split(|&b| b == b':').next()? {
        b"P" => true,
        b"F" => false,
        _ => return None,
    };
    Some(Cri {
        time: Some(time),
        sidx,
        partial,
        msg: parts.next().unwrap_or(&[]),
    })
}

struct Docker<'a> {
    log: Cow<'a, str>,
    sidx: usize,
    time: Option<u64>,
    has_time: bool,
}

/// Docker's json-file line: `{"log":"…","stream":"stdout","time":"…"}`.
fn parse_docker(line: &[u8]) -> Option<Docker<'_>> {
    #[derive(serde::Deserialize)]
    struct Line<'a> {
        #[serde(borrow)]
        log: Cow<'a, str>,
        #[serde(borrow, default)]
        stream: Option<Cow<'a, str>>,
        #[serde(borrow, default)]
        time: Option<Cow<'a, str>>,
    }
    let l: Line = serde_json::from_slice(line).ok()?;
    let sidx = match l.stream.as_deref() {
        Some("stdout") => 1,
        Some("stderr") => 2,
        _ => 0,
    };
    Some(Docker {
        log: l.log,
        sidx,
        has_time: l.time.is_some(),
        time: l
            .time
            .and_then(|t| crate::time::parse_rfc3339(t.as_bytes())),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Harness {
        rules: Rules,
        out: Vec<LogLine>,
        stats: Stats,
        info: Arc<FileInfo>,
        last_emit: u64,
        dec: Decoder,
        now: Instant,
    }

    impl Harness {
        fn new(format: Format, max_line: usize, multiline: Option<(&str, bool)>) -> Harness {
            Harness {
                rules: Rules {
                    format,
                    max_line,
                    multiline: multiline.map(|(p, is_start)| MultilineRule {
                        regex: Regex::new(p).unwrap(),
                        is_start,
                        timeout: Duration::from_millis(500),
                    }),
                    include: None,
                    exclude: None,
                },
                out: Vec::new(),
                stats: Stats::default(),
                info: Arc::new(FileInfo {
                    path: "/x".into(),
                    name: "x".into(),
                    k8s: None,
                }),
                last_emit: 0,
                dec: Decoder::new(format, 0),
                now: Instant::now(),
            }
        }

        fn with<R>(&mut self, f: impl FnOnce(&mut Decoder, &mut Ctx) -> R) -> R {
            let mut ctx = Ctx {
                rules: &self.rules,
                out: &mut self.out,
                stats: &mut self.stats,
                info: &self.info,
                stream: 1,
                observed: 1,
                now: self.now,
                last_emit: &mut self.last_emit,
            };
            f(&mut self.dec, &mut ctx)
        }

        fn feed(&mut self, bytes: &[u8]) {
            self.with(|d, c| d.feed(bytes, c));
        }

        fn bodies(&self) -> Vec<&str> {
            self.out.iter().map(|l| l.body.as_str()).collect()
        }

        fn offsets(&self) -> Vec<u64> {
            self.out.iter().map(|l| l.position.offset).collect()
        }
    }

    #[test]
    fn newline_search() {
        for len in 0..40 {
            for at in 0..len {
                let mut v = vec![b'a'; len];
                v[at] = b'\n';
                assert_eq!(find_newline(&v), Some(at), "{len} {at}");
                v[at] = 0x8a;
                assert_eq!(find_newline(&v), None);
            }
        }
    }

    #[test]
    fn lines_crlf_and_partial() {
        let mut h = Harness::new(Format::Raw, 100, None);
        h.feed(b"one\r\ntwo\nthr");
        assert_eq!(h.bodies(), ["one", "two"]);
        assert_eq!(h.offsets(), [5, 9]);
        assert_eq!(h.dec.floor(), Some(9));
        h.feed(b"ee\n\n");
        assert_eq!(h.bodies(), ["one", "two", "three", ""]);
        assert_eq!(h.offsets(), [5, 9, 15, 16]);
        assert_eq!(h.dec.floor(), None);
        h.feed(b"tail");
        h.with(|d, c| d.finish(c));
        assert_eq!(h.bodies().last(), Some(&"tail"));
        assert_eq!(h.offsets().last(), Some(&20));
        assert_eq!(h.stats.lines_read, 5);
    }

    #[test]
    fn long_lines_are_split_at_char_boundaries() {
        let mut h = Harness::new(Format::Raw, 10, None);
        // 'é' is two bytes: a cut at 10 would fall inside the sixth one
        let line = "aéééééééé";
        h.feed(line.as_bytes());
        h.feed(b"\n");
        let bodies = h.bodies();
        assert_eq!(bodies.concat(), line);
        assert!(
            bodies
                .iter()
                .all(|b| b.len() <= 10 && !b.contains('\u{fffd}')),
            "{bodies:?}"
        );
        assert_eq!(h.stats.lines_split as usize, bodies.len() - 1);
        assert_eq!(h.stats.records_invalid_utf8, 0);
        assert_eq!(*h.offsets().last().unwrap(), line.len() as u64 + 1);
        // the same line in one chunk splits the same way
        let mut h2 = Harness::new(Format::Raw, 10, None);
        h2.feed(format!("{line}\n").as_bytes());
        assert_eq!(h2.bodies(), bodies);
        assert!(h.dec.held() == 0);
    }

    #[test]
    fn invalid_utf8_is_replaced() {
        let mut h = Harness::new(Format::Raw, 100, None);
        h.feed(b"ok \xff\xfe end\n\x00\x01bin\n");
        assert_eq!(h.bodies(), ["ok \u{fffd}\u{fffd} end", "\u{0}\u{1}bin"]);
        assert_eq!(h.stats.records_invalid_utf8, 1);
    }

    #[test]
    fn cri_partials_join_per_stream() {
        let mut h = Harness::new(Format::Auto, 1000, None);
        let lines = "2024-01-01T00:00:00.000000001Z stdout P hello \n\
                     2024-01-01T00:00:00.5Z stderr F oops\n\
                     2024-01-01T00:00:01Z stdout F world\n\
                     2024-01-01T00:00:02Z stdout F \n";
        h.feed(lines.as_bytes());
        assert_eq!(h.bodies(), ["oops", "hello world", ""]);
        assert_eq!(h.out[1].time_unix_nano, Some(1_704_067_200_000_000_001));
        assert_eq!(h.out[0].iostream, Some("stderr"));
        assert_eq!(h.out[1].iostream, Some("stdout"));
        // the stderr record comes while the stdout partial is held: its position stays at
        // the partial's start, so committing it cannot skip the partial
        assert_eq!(h.out[0].position.offset, 0);
        let second_end = lines.find("world").unwrap() as u64 + 6;
        assert_eq!(h.out[1].position.offset, second_end);
    }

    #[test]
    fn docker_lines() {
        let mut h = Harness::new(Format::Auto, 1000, None);
        h.feed(
            br#"{"log":"part one ","stream":"stdout","time":"2024-01-01T00:00:00Z"}
{"log":"and two\r\n","stream":"stdout","time":"2024-01-01T00:00:01Z"}
{"log":"ERROR \"quoted\"\n","stream":"stderr","time":"2024-01-01T00:00:02Z"}
"#,
        );
        assert_eq!(h.bodies(), ["part one and two", "ERROR \"quoted\""]);
        assert_eq!(h.out[0].time_unix_nano, Some(1_704_067_200_000_000_000));
        assert_eq!(h.out[1].severity, Some((17, "ERROR".into())));
        assert_eq!(h.out[1].iostream, Some("stderr"));
    }

    #[test]
    fn json_lines() {
        let mut h = Harness::new(Format::Auto, 1000, None);
        h.feed(b"{\"level\":\"warn\",\"msg\":\"m\",\"time\":\"2024-01-01T00:00:00Z\"}\nnot json ERROR\n");
        assert_eq!(h.out[0].severity, Some((13, "warn".into())));
        assert_eq!(h.out[0].message.as_deref(), Some("m"));
        assert_eq!(h.out[0].time_unix_nano, Some(1_704_067_200_000_000_000));
        assert_eq!(h.out[1].body, "not json ERROR");
        assert_eq!(h.out[1].severity, None);
    }

    #[test]
    fn cri_parse_errors_are_kept_raw() {
        let mut h = Harness::new(Format::Cri, 1000, None);
        h.feed(b"garbage line\n");
        assert_eq!(h.bodies(), ["garbage line"]);
        assert_eq!(h.stats.parse_errors, 1);
    }

    #[test]
    fn multiline_start() {
        let mut h = Harness::new(Format::Raw, 1000, Some((r"^\d", true)));
        h.feed(b"cont before\n1 first\n  at a\n  at b\n2 second\n");
        assert_eq!(h.bodies(), ["cont before", "1 first\n  at a\n  at b"]);
        let pos = h.offsets();
        assert_eq!(
            pos[1],
            "cont before\n1 first\n  at a\n  at b\n".len() as u64
        );
        assert!(h.dec.has_pending_multiline());
        h.now += Duration::from_millis(499);
        h.with(|d, c| d.flush_timeouts(c));
        assert_eq!(h.out.len(), 2);
        h.now += Duration::from_millis(1);
        h.with(|d, c| d.flush_timeouts(c));
        assert_eq!(h.bodies()[2], "2 second");
        assert_eq!(h.stats.multiline_timeouts, 1);
    }

    #[test]
    fn multiline_end() {
        let mut h = Harness::new(Format::Raw, 1000, Some((r";$", false)));
        h.feed(b"select *\nfrom t;\nshort;\nopen\n");
        assert_eq!(h.bodies(), ["select *\nfrom t;", "short;"]);
        h.with(|d, c| d.finish(c));
        assert_eq!(h.bodies()[2], "open");
    }

    #[test]
    fn multiline_respects_max_line() {
        let mut h = Harness::new(Format::Raw, 12, Some((r"^S", true)));
        h.feed(b"S aaaa\nbbbb\ncccc\nS x\n");
        assert_eq!(h.bodies(), ["S aaaa\nbbbb", "cccc"]);
        assert_eq!(h.stats.lines_split, 1);
    }

    #[test]
    fn cri_detection_and_bad_times() {
        assert!(parse_cri(b"2024-01-01T00:00:00Z stdout F x").is_some());
        assert!(parse_cri(b"2024-01-01T00:00:00Z stdout F").is_some());
        assert!(parse_cri(b"2024-01-01T00:00:00Z stdin F x").is_none());
        assert!(parse_cri(b"2024-01-01 stdout F x").is_none());
        assert!(parse_cri(b"2024-01-01T00:00:00Z stdout X x").is_none());
        assert_eq!(detect(b"{\"log\":\"x\"}"), Format::Json);
        assert_eq!(detect(b"{\"a\":1}"), Format::Json);
        assert_eq!(detect(b"{broken"), Format::Raw);
    }
}
