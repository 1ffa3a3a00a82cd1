//! Segment files: naming, in-memory metadata, and a chunked frame reader that validates
//! every frame it returns and resynchronises after damage.
//!
//! Reading goes through large `pread`s into a shared `Bytes` chunk, and payloads are handed
//! out as slices of it, so replay does one copy (kernel to user space) per byte.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use bytes::{Bytes, BytesMut};

use crate::format::{self, HEADER_LEN, MAGIC};

/// Bytes fetched per read from a segment file.
const CHUNK: usize = 1 << 20;

pub(crate) const SEGMENT_SUFFIX: &str = ".seg";

pub(crate) fn segment_file_name(first_seq: u64) -> String {
    format!("{first_seq:020}{SEGMENT_SUFFIX}")
}

/// The first sequence number encoded in a segment file name, if it is one of ours.
pub(crate) fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(SEGMENT_SUFFIX)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// What the log knows about one segment file.
///
/// A sealed segment holds sequence numbers `first_seq .. next segment's first_seq`; the
/// active (last) one holds `first_seq .. next_seq`. Numbers in that range that turned out to
/// be unreadable are kept in `gaps` so they are counted as corrupt exactly once.
#[derive(Debug)]
pub(crate) struct Segment {
    pub first_seq: u64,
    pub path: PathBuf,
    /// File length; for the active segment, the end of the last complete record.
    pub bytes: u64,
    pub gaps: Gaps,
}

/// A set of disjoint inclusive sequence ranges, kept sorted.
#[derive(Debug, Default, Clone)]
pub(crate) struct Gaps(Vec<(u64, u64)>);

impl Gaps {
    /// Adds `lo..=hi`; returns how many of those numbers were not in the set before.
    pub fn insert(&mut self, lo: u64, hi: u64) -> u64 {
        if lo > hi {
            return 0;
        }
        let new = (hi - lo + 1) - self.count_in(lo, hi);
        self.0.push((lo, hi));
        self.0.sort_unstable();
        let mut merged: Vec<(u64, u64)> = Vec::with_capacity(self.0.len());
        for &(a, b) in &self.0 {
            match merged.last_mut() {
                Some(last) if a <= last.1.saturating_add(1) => last.1 = last.1.max(b),
                _ => merged.push((a, b)),
            }
        }
        self.0 = merged;
        new
    }

    /// How many numbers of `lo..=hi` are in the set.
    pub fn count_in(&self, lo: u64, hi: u64) -> u64 {
        if lo > hi {
            return 0;
        }
        self.0
            .iter()
            .map(|&(a, b)| {
                let (x, y) = (a.max(lo), b.min(hi));
                if x <= y { y - x + 1 } else { 0 }
            })
            .sum()
    }

    /// Forgets numbers up to and including `upto` (they are acknowledged or dropped).
    pub fn forget_upto(&mut self, upto: u64) {
        self.0.retain_mut(|r| {
            if r.1 <= upto {
                return false;
            }
            r.0 = r.0.max(upto.saturating_add(1));
            true
        });
    }
}

/// A frame that passed every check.
#[derive(Debug)]
pub(crate) struct Frame {
    pub seq: u64,
    pub ts: u64,
    pub payload: Bytes,
    pub end: u64,
    /// Damaged bytes skipped before this frame.
    pub skipped: u64,
}

pub(crate) enum Scan {
    Frame(Frame),
    /// No valid frame between the offset and the limit.
    End,
}

/// Sequential, validating reader over one segment file.
pub(crate) struct FrameReader {
    pub key: u64,
    file: File,
    buf: Bytes,
    buf_start: u64,
    /// Earlier chunks, most still shared with payloads handed out (records read ahead into
    /// the exporter's holdover, up to 4 MiB, and a batch in flight), kept to be reused once
    /// those are dropped. With one spare, every chunk of a disk backlog was a fresh 1 MiB
    /// allocation (mmap, 256 zeroing page faults, munmap): 7 % of the agent's CPU in the
    /// logs benchmark.
    spares: Vec<Bytes>,
}

/// Most chunks a reader keeps besides its current one: the holdover's 4 MiB of read-ahead
/// spans five chunks, and a batch in flight one more.
const MAX_SPARES: usize = 6;

impl FrameReader {
    pub fn open(key: u64, path: &Path) -> io::Result<Self> {
        Ok(FrameReader {
            key,
            file: File::open(path)?,
            buf: Bytes::new(),
            buf_start: 0,
            spares: Vec::new(),
        })
    }

    /// The chunks of this reader, to be given to the next one ([`FrameReader::adopt`]):
    /// chunks do not belong to a file, and a reader is replaced each time reading moves to
    /// another segment (the upkeep reads the head's segment every second).
    pub fn into_chunks(mut self) -> Vec<Bytes> {
        let mut v = std::mem::take(&mut self.spares);
        v.push(std::mem::take(&mut self.buf));
        v
    }

    /// Takes over chunks of an earlier reader, for reuse.
    pub fn adopt(&mut self, chunks: Vec<Bytes>) {
        for c in chunks {
            // Every non-empty buffer of a reader is a chunk of at least CHUNK capacity.
            if self.spares.len() < MAX_SPARES && !c.is_empty() {
                self.spares.push(c);
            }
        }
    }

    /// Lets go of the spare chunks (reading continues from memory, so they would sit idle).
    pub fn release_spares(&mut self) {
        if !self.spares.is_empty() {
            self.spares = Vec::new();
        }
    }

    /// A zeroed buffer of `size` bytes, reusing the current or the spare chunk when no
    /// payload refers to it any more. A fresh 1 MiB chunk is above the allocator's mmap
    /// threshold: every read of one cost an mmap, 256 page faults with zeroing and an
    /// munmap (about 7 % of the agent's CPU while draining logs from the disk).
    fn chunk(&mut self, size: usize) -> BytesMut {
        let mut candidates = std::mem::take(&mut self.spares);
        candidates.push(std::mem::take(&mut self.buf));
        let mut found = None;
        // Newest first, so that when more than MAX_SPARES are about, the oldest go.
        for b in candidates.into_iter().rev() {
            match b.try_into_mut() {
                Ok(m) if found.is_none() && m.capacity() >= size => found = Some(m),
                Ok(m) if m.capacity() >= CHUNK && self.spares.len() < MAX_SPARES => {
                    self.spares.push(m.freeze())
                }
                Ok(_) => {}
                // Still referenced by payloads handed out: kept, to be reused once they
                // are dropped (until then it costs nothing: the payloads hold it anyway).
                Err(shared) => {
                    if !shared.is_empty() && self.spares.len() < MAX_SPARES {
                        self.spares.push(shared);
                    }
                }
            }
        }
        #[cfg(test)]
        if found.is_none() {
            FRESH_CHUNKS.with(|n| n.set(n.get() + 1));
        }
        let mut m = found.unwrap_or_else(|| BytesMut::with_capacity(size.max(CHUNK)));
        m.clear();
        m.resize(size, 0);
        m
    }

    /// Makes `buf` cover `off .. off + need`; false when the file ends (or `limit` is) earlier.
    fn ensure(&mut self, off: u64, need: usize, limit: u64) -> io::Result<bool> {
        let want_end = off.saturating_add(need as u64);
        if want_end > limit {
            return Ok(false);
        }
        if off >= self.buf_start && want_end <= self.buf_start + self.buf.len() as u64 {
            return Ok(true);
        }
        // Bounded by `limit`, which is a file length, so the allocation is bounded by the file.
        let size = (need.max(CHUNK) as u64).min(limit - off) as usize;
        let mut v = self.chunk(size);
        let mut got = 0;
        while got < size {
            match self.file.read_at(&mut v[got..], off + got as u64) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        v.truncate(got);
        self.buf = v.freeze();
        self.buf_start = off;
        Ok(got >= need)
    }

    fn slice(&self, off: u64, len: usize) -> &[u8] {
        let s = (off - self.buf_start) as usize;
        &self.buf[s..s + len]
    }

    /// The valid frame starting exactly at `off` with `min_seq <= seq < max_seq`, if any.
    fn frame_at(
        &mut self,
        off: u64,
        limit: u64,
        min_seq: u64,
        max_seq: u64,
    ) -> io::Result<Option<Frame>> {
        if !self.ensure(off, HEADER_LEN, limit)? {
            return Ok(None);
        }
        let Some(h) = format::parse_header(self.slice(off, HEADER_LEN)) else {
            return Ok(None);
        };
        if h.seq < min_seq || h.seq >= max_seq {
            return Ok(None);
        }
        let total = HEADER_LEN + h.len as usize;
        if !self.ensure(off, total, limit)? {
            return Ok(None);
        }
        let raw = self.slice(off, total);
        if !format::crc_ok(&h, &raw[..HEADER_LEN], &raw[HEADER_LEN..]) {
            return Ok(None);
        }
        let s = (off - self.buf_start) as usize;
        Ok(Some(Frame {
            seq: h.seq,
            ts: h.ts,
            payload: self.buf.slice(s + HEADER_LEN..s + total),
            end: off + total as u64,
            skipped: 0,
        }))
    }

    /// Offset of the next magic at or after `from` that leaves room for a header.
    fn find_magic(&mut self, from: u64, limit: u64) -> io::Result<Option<u64>> {
        let mut p = from;
        while p.saturating_add(HEADER_LEN as u64) <= limit {
            if !self.ensure(p, HEADER_LEN, limit)? {
                return Ok(None);
            }
            let s = (p - self.buf_start) as usize;
            let hay = &self.buf[s..];
            if let Some(i) = hay.windows(MAGIC.len()).position(|w| w == MAGIC) {
                return Ok(Some(p + i as u64));
            }
            // The last three bytes may start a magic that continues in the next chunk.
            let buf_end = self.buf_start + self.buf.len() as u64;
            p = (buf_end - (MAGIC.len() as u64 - 1)).max(p + 1);
        }
        Ok(None)
    }

    /// Whether a file without any valid frame begins like an interrupted first write into
    /// segment `key`: a prefix of a header, or a header whose payload runs past the end.
    pub fn starts_like_torn_frame(&mut self, key: u64, len: u64) -> bool {
        let n = len.min(HEADER_LEN as u64) as usize;
        if !matches!(self.ensure(0, n, len), Ok(true)) {
            return false;
        }
        let b = self.slice(0, n);
        let m = n.min(MAGIC.len());
        if b[..m] != MAGIC[..m] {
            return false;
        }
        n < HEADER_LEN
            || format::parse_header(b)
                .is_some_and(|h| h.seq == key && HEADER_LEN as u64 + u64::from(h.len) > len)
    }

    /// The first valid frame at or after `off` whose sequence lies in `min_seq..max_seq`,
    /// skipping damaged bytes. Frames are only accepted with increasing sequence numbers, so a
    /// stale frame image inside a payload cannot be mistaken for a later record.
    pub fn next_frame(
        &mut self,
        off: u64,
        limit: u64,
        min_seq: u64,
        max_seq: u64,
    ) -> io::Result<Scan> {
        let mut p = off;
        loop {
            if let Some(mut f) = self.frame_at(p, limit, min_seq, max_seq)? {
                f.skipped = p - off;
                return Ok(Scan::Frame(f));
            }
            match self.find_magic(p + 1, limit)? {
                Some(next) => p = next,
                None => return Ok(Scan::End),
            }
        }
    }
}

#[cfg(test)]
thread_local! {
    /// Chunks this thread's readers allocated afresh.
    static FRESH_CHUNKS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backlog_read_ahead_reuses_its_chunks() {
        // As the exporter reads a disk backlog: 4 MiB read ahead into its holdover, one
        // 240 KiB record at a time sent and dropped.
        let d = tempfile::tempdir().unwrap();
        let opts = crate::Options {
            memory_limit_bytes: 0,
            segment_bytes: 8 << 20,
            ..Default::default()
        };
        let log = crate::Log::open(d.path(), opts).unwrap();
        for i in 0..200u64 {
            log.append(i, vec![i as u8; 240 * 1024]).unwrap();
        }
        let mut holdover = std::collections::VecDeque::new();
        let mut sent = 0;
        while sent < 200 {
            if holdover.is_empty() {
                holdover.extend(log.read_batch(64, 4 << 20).unwrap());
            }
            let e = holdover.pop_front().unwrap();
            assert!(
                e.payload.iter().all(|&b| b == e.timestamp_ms as u8),
                "record {}",
                e.seq
            );
            log.ack(e.seq).unwrap();
            sent += 1;
        }
        // 47 MiB were read in 1 MiB chunks; reuse keeps the allocations to the working set
        // (read-ahead, current chunk) and one or two per segment change.
        let fresh = FRESH_CHUNKS.with(|n| n.get());
        assert!(fresh <= 12, "{fresh} chunks allocated afresh");
    }

    #[test]
    fn names() {
        assert_eq!(segment_file_name(1), "00000000000000000001.seg");
        assert_eq!(parse_segment_name("00000000000000000001.seg"), Some(1));
        assert_eq!(parse_segment_name("0000000000000000001.seg"), None);
        assert_eq!(parse_segment_name("99999999999999999999.seg"), None);
        assert_eq!(parse_segment_name("0000000000000000000a.seg"), None);
        assert_eq!(parse_segment_name("00000000000000000001.tmp"), None);
    }

    #[test]
    fn gaps_count_each_number_once() {
        let mut g = Gaps::default();
        assert_eq!(g.insert(5, 9), 5);
        assert_eq!(g.insert(7, 9), 0);
        assert_eq!(g.insert(3, 6), 2);
        assert_eq!(g.insert(10, 10), 1);
        assert_eq!(g.count_in(0, 100), 8);
        assert_eq!(g.count_in(4, 5), 2);
        g.forget_upto(6);
        assert_eq!(g.count_in(0, 100), 4);
        assert_eq!(g.insert(1, 0), 0);
    }
}
