//! Recovery: rebuilding the log's state from the directory on open (and, without modifying
//! anything, for `inspect`).
//!
//! Only the last segment is read completely, because only it can end in a torn write. Older
//! segments were complete when the next one was started, so recovery reads just their first
//! record; damage inside them is found, skipped and counted when the reader gets there. That
//! keeps opening a full 1 GiB buffer to one segment's worth of reading.

use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use crate::error::{IoContext, Result};
use crate::format;
use crate::segment::{self, FrameReader, Gaps, Scan, Segment};

pub(crate) const LEDGER_FILE: &str = "ledger";
pub(crate) const LEDGER_TMP: &str = "ledger.tmp";

/// What the ledger file looked like on open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LedgerStatus {
    /// Present and valid; the acknowledged sequence number.
    Found(u64),
    /// No ledger: delivery starts at the first record present.
    Missing,
    /// Unreadable or failing its checksum: treated as missing.
    Corrupt,
    /// It acknowledged records beyond the newest one present (possible after a power failure
    /// in `interval`/`never` mode, when the tail was not yet synced but the ledger was): every
    /// record present counts as acknowledged and the position is clamped to the newest one.
    PastEnd {
        /// The sequence number in the ledger.
        found: u64,
        /// Where it was clamped to.
        clamped_to: u64,
    },
}

/// What recovery found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Segment files in use.
    pub segments: usize,
    /// Unacknowledged records.
    pub records: u64,
    /// Bytes of the segment files in use.
    pub bytes: u64,
    /// Unacknowledged sequence numbers found damaged or missing.
    pub corrupt_records: u64,
    /// Bytes cut from the end of the last segment (a torn or corrupt tail).
    pub truncated_bytes: u64,
    /// Segment files that were unreadable or contained no valid record (removed on open,
    /// left alone by `inspect`), and files named `*.seg` that are not ours (left alone).
    pub skipped_segments: usize,
    /// Paths of the skipped files.
    pub skipped_paths: Vec<PathBuf>,
    /// State of the ledger.
    pub ledger: LedgerStatus,
    /// First sequence number to deliver.
    pub first_unacked_seq: u64,
    /// Sequence number of the next append.
    pub next_seq: u64,
}

pub(crate) struct Recovered {
    pub segments: BTreeMap<u64, Segment>,
    pub head: u64,
    pub next_seq: u64,
    pub report: RecoveryReport,
    /// Whether the ledger on disk differs from `head` (open rewrites it).
    pub ledger_stale: bool,
    /// Timestamp of the newest record found (the last one of the tail segment, or the first
    /// one of the newest older segment when the tail is empty).
    pub newest_ts: Option<u64>,
}

/// Unacknowledged records of `seg`, whose sequence range ends before `end`.
pub(crate) fn unacked_in(seg: &Segment, end: u64, head: u64) -> u64 {
    let lo = seg.first_seq.max(head.saturating_add(1));
    if lo >= end {
        return 0;
    }
    (end - lo) - seg.gaps.count_in(lo, end - 1)
}

fn read_ledger(dir: &Path) -> LedgerStatus {
    let path = dir.join(LEDGER_FILE);
    match fs::read(&path) {
        Ok(b) => match format::decode_ledger(&b) {
            Some(v) => LedgerStatus::Found(v),
            None => {
                tracing::warn!(path = %path.display(), "buffer ledger is damaged; delivering every record present");
                LedgerStatus::Corrupt
            }
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => LedgerStatus::Missing,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "buffer ledger is unreadable; delivering every record present");
            LedgerStatus::Corrupt
        }
    }
}

fn skip(report: &mut RecoveryReport, path: &Path, why: &str, remove: bool) {
    tracing::warn!(path = %path.display(), reason = why, "skipping buffer segment");
    report.skipped_segments += 1;
    report.skipped_paths.push(path.to_path_buf());
    if remove && let Err(e) = fs::remove_file(path) {
        tracing::warn!(path = %path.display(), error = %e, "cannot remove skipped buffer segment");
    }
}

/// Reads the newest segment completely and cuts off whatever follows its last valid record.
/// Returns `None` (after counting the file as skipped) when the file is unreadable or holds
/// no valid record and does not look like a torn first write either.
fn scan_tail(
    first: u64,
    path: &Path,
    len: u64,
    read_only: bool,
    report: &mut RecoveryReport,
) -> Result<Option<(Segment, u64, Option<u64>)>> {
    let mut reader = match FrameReader::open(first, path) {
        Ok(r) => r,
        Err(e) => {
            skip(report, path, &e.to_string(), !read_only);
            return Ok(None);
        }
    };
    let mut gaps = Gaps::default();
    let (mut off, mut expected, mut newest_ts) = (0u64, first, None);
    let scan_err = loop {
        match reader.next_frame(off, len, expected, u64::MAX) {
            Ok(Scan::Frame(f)) => {
                if f.seq > expected {
                    gaps.insert(expected, f.seq - 1);
                }
                expected = f.seq + 1;
                off = f.end;
                newest_ts = Some(f.ts);
            }
            Ok(Scan::End) => break None,
            Err(e) => break Some(e),
        }
    };
    if let Some(e) = scan_err {
        // Unreadable tail: keep what was read; the rest is treated like a torn tail.
        tracing::warn!(path = %path.display(), error = %e, "read error in the last buffer segment");
    }
    if off == 0 && len > 0 && !reader.starts_like_torn_frame(first, len) {
        skip(report, path, "no valid record", !read_only);
        return Ok(None);
    }
    if off < len {
        tracing::warn!(
            path = %path.display(),
            bytes = len - off,
            "truncating a torn or corrupt tail of the buffer"
        );
        report.truncated_bytes += len - off;
        if !read_only {
            let f = OpenOptions::new()
                .write(true)
                .open(path)
                .ctx("open segment", path)?;
            f.set_len(off).ctx("truncate segment", path)?;
            f.sync_all().ctx("fsync segment", path)?;
        }
    }
    let seg = Segment {
        first_seq: first,
        path: path.to_path_buf(),
        bytes: off,
        gaps,
    };
    Ok(Some((seg, expected, newest_ts)))
}

/// Rebuilds the state of the log in `dir`. With `read_only`, nothing on disk is changed.
pub(crate) fn recover(dir: &Path, read_only: bool) -> Result<Recovered> {
    let mut report = RecoveryReport {
        segments: 0,
        records: 0,
        bytes: 0,
        corrupt_records: 0,
        truncated_bytes: 0,
        skipped_segments: 0,
        skipped_paths: Vec::new(),
        ledger: LedgerStatus::Missing,
        first_unacked_seq: 1,
        next_seq: 1,
    };

    let mut files: BTreeMap<u64, (PathBuf, u64)> = BTreeMap::new();
    for entry in fs::read_dir(dir).ctx("read directory", dir)? {
        let entry = entry.ctx("read directory", dir)?;
        let name = entry.file_name();
        let path = entry.path();
        let Some(name) = name.to_str() else { continue };
        if name == LEDGER_TMP {
            // A ledger write that did not reach its rename; the old ledger is still valid.
            if !read_only {
                let _ = fs::remove_file(&path);
            }
            continue;
        }
        if let Some(first) = segment::parse_segment_name(name) {
            match entry.metadata() {
                Ok(m) if m.is_file() => {
                    files.insert(first, (path, m.len()));
                }
                Ok(_) => skip(&mut report, &path, "not a regular file", false),
                Err(e) => skip(&mut report, &path, &e.to_string(), !read_only),
            }
        } else if name.ends_with(segment::SEGMENT_SUFFIX) {
            skip(
                &mut report,
                &path,
                "not a segment file name of this buffer",
                false,
            );
        }
    }

    // First sequence numbers (file names) of segment files skipped as unreadable or garbage:
    // their records are lost, unlike those of segments the log deleted after acknowledging.
    let mut skipped_keys: Vec<u64> = Vec::new();
    let mut first_ts: BTreeMap<u64, u64> = BTreeMap::new();
    let last_file = files.keys().next_back().copied();
    let mut segments = BTreeMap::new();
    for (&first, (path, len)) in &files {
        if Some(first) == last_file {
            continue;
        }
        let mut reader = match FrameReader::open(first, path) {
            Ok(r) => r,
            Err(e) => {
                skip(&mut report, path, &e.to_string(), !read_only);
                skipped_keys.push(first);
                continue;
            }
        };
        // No upper bound yet: a skipped file must not cut off the range of the one before
        // it. The numbers of a skipped file are found missing when the reader gets there.
        match reader.next_frame(0, *len, first, u64::MAX) {
            Ok(Scan::Frame(f)) => {
                let mut gaps = Gaps::default();
                if f.seq > first {
                    gaps.insert(first, f.seq - 1);
                }
                first_ts.insert(first, f.ts);
                segments.insert(
                    first,
                    Segment {
                        first_seq: first,
                        path: path.clone(),
                        bytes: *len,
                        gaps,
                    },
                );
            }
            Ok(Scan::End) if *len == 0 => {
                if !read_only {
                    let _ = fs::remove_file(path);
                }
            }
            Ok(Scan::End) => {
                skip(&mut report, path, "no valid record", !read_only);
                skipped_keys.push(first);
            }
            Err(e) => {
                skip(&mut report, path, &e.to_string(), !read_only);
                skipped_keys.push(first);
            }
        }
    }

    // The tail: the newest file, or when that is garbage, the newest valid one before it.
    let mut next_seq = 1u64;
    let mut newest_ts = None;
    let mut candidate = last_file.and_then(|k| files.remove(&k).map(|(p, l)| (k, p, l)));
    while let Some((first, path, len)) = candidate.take() {
        if let Some((seg, next, ts)) = scan_tail(first, &path, len, read_only, &mut report)? {
            next_seq = next;
            newest_ts = ts.or_else(|| first_ts.range(..first).next_back().map(|(_, &t)| t));
            segments.insert(first, seg);
            break;
        }
        skipped_keys.push(first);
        candidate = segments.pop_last().map(|(k, s)| (k, s.path, s.bytes));
    }

    let first_present = segments.keys().next().copied().unwrap_or(next_seq);
    let ledger = read_ledger(dir);
    let mut ledger_stale = true;
    let mut head = match ledger {
        LedgerStatus::Found(h) if h >= next_seq => {
            let clamped_to = next_seq.saturating_sub(1);
            tracing::warn!(
                ledger = h,
                clamped_to,
                dir = %dir.display(),
                "buffer ledger points past the newest record; clamping"
            );
            report.ledger = LedgerStatus::PastEnd {
                found: h,
                clamped_to,
            };
            clamped_to
        }
        LedgerStatus::Found(h) => {
            report.ledger = ledger;
            ledger_stale = false;
            h
        }
        other => {
            report.ledger = other;
            first_present.saturating_sub(1)
        }
    };
    if head.saturating_add(1) < first_present {
        // The log deletes a segment as soon as all its records are acknowledged (or dropped
        // and counted), before the ledger says so: unlinking needs no space, a ledger write
        // does, and a full disk must be able to free itself. So numbers below the first
        // segment are acknowledged, except those of files skipped above as garbage.
        if let Some(&lost_from) = skipped_keys.iter().filter(|&&k| k < first_present).min() {
            report.corrupt_records += first_present - lost_from.max(head.saturating_add(1));
        }
        head = first_present - 1;
        ledger_stale = true;
    }

    // Sealed segments left behind by a crash between the ledger write and their deletion.
    let keys: Vec<u64> = segments.keys().copied().collect();
    for (i, &k) in keys.iter().enumerate() {
        let Some(&end) = keys.get(i + 1) else { break };
        if end.saturating_sub(1) <= head
            && let Some(seg) = segments.remove(&k)
            && !read_only
            && let Err(e) = fs::remove_file(&seg.path)
            && e.kind() != io::ErrorKind::NotFound
        {
            return Err(crate::Error::io(
                "remove acknowledged segment",
                &seg.path,
                e,
            ));
        }
    }

    let keys: Vec<u64> = segments.keys().copied().collect();
    for (i, seg) in segments.values_mut().enumerate() {
        seg.gaps.forget_upto(head);
        let end = keys.get(i + 1).copied().unwrap_or(next_seq);
        report.corrupt_records += seg
            .gaps
            .count_in(head.saturating_add(1), end.saturating_sub(1));
        report.records += unacked_in(seg, end, head);
        report.bytes += seg.bytes;
    }
    report.segments = segments.len();
    report.first_unacked_seq = head.saturating_add(1);
    report.next_seq = next_seq;
    if report.corrupt_records > 0 {
        tracing::warn!(
            dir = %dir.display(),
            records = report.corrupt_records,
            "buffer records lost to corruption"
        );
    }
    Ok(Recovered {
        segments,
        head,
        next_seq,
        report,
        ledger_stale,
        newest_ts,
    })
}
