//! The [`Log`] handle: appends, reads, acknowledgements, bounds, syncing and shutdown.
//!
//! All state sits behind one mutex so an `Arc<Log>` can be shared by producers and the
//! exporter. Blocking calls are short: a `write(2)` per append, `fdatasync` per append only in
//! `Always` mode. Interval syncs run on a background thread *outside* the mutex, so producers
//! keep appending while the disk flushes.

use std::collections::{BTreeMap, VecDeque};
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, IoSlice, Write};
use std::mem;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::error::{Error, IoContext, Result};
use crate::format;
use crate::recovery::{self, LEDGER_FILE, LEDGER_TMP, RecoveryReport, unacked_in};
use crate::segment::{self, FrameReader, Scan, Segment};
use crate::{
    AppendOutcome, DropCount, DropReason, Dropped, Entry, FsyncMode, Options, Stats, WhenFull,
};

const LOCK_FILE: &str = "lock";
const DIR_MODE: u32 = 0o700;
const FILE_MODE: u32 = 0o600;

/// A reading position: the next sequence number wanted, and where its record probably
/// starts (segment key, byte offset). Without a hint the segment is scanned from its start.
#[derive(Debug, Clone, Copy)]
struct Pos {
    seq: u64,
    hint: Option<(u64, u64)>,
}

struct MemEntry {
    seq: u64,
    ts: u64,
    payload: Bytes,
    /// Segment key and end offset of the record on disk, to resume reading from disk after it.
    seg: u64,
    end: u64,
}

struct State {
    dir: PathBuf,
    opts: Options,
    segment_bytes: u64,
    segments: BTreeMap<u64, Segment>,
    writer: Arc<File>,
    next_seq: u64,
    /// Every sequence number up to and including `head` is acknowledged or dropped.
    head: u64,
    head_hint: Option<(u64, u64)>,
    cursor: Pos,
    mem: VecDeque<MemEntry>,
    mem_bytes: u64,
    disk_bytes: u64,
    reader: Option<FrameReader>,
    ledger_written: u64,
    ledger_at: Instant,
    /// Incremented per append; `synced_gen` is its value at the last completed sync.
    written_gen: u64,
    synced_gen: u64,
    /// Sealed segments written since the last sync.
    unsynced: Vec<(Arc<File>, PathBuf)>,
    dir_dirty: bool,
    oldest: Option<(u64, u64)>,
    dropped_full: DropCount,
    dropped_max_age: DropCount,
    corrupt: u64,
    sync_errors: u64,
    stop: bool,
    /// Held for the lifetime of the log: the flock on it keeps a second process out.
    _lock: File,
}

struct Shared {
    state: Mutex<State>,
    wake: Condvar,
}

/// An open buffer directory. See the crate documentation.
pub struct Log {
    shared: Arc<Shared>,
    syncer: Option<JoinHandle<()>>,
    dir: PathBuf,
    report: RecoveryReport,
    done: bool,
}

/// Result of [`inspect`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inspection {
    /// The state as `open` would find it.
    pub stats: Stats,
    /// What `open` would repair or skip.
    pub recovery: RecoveryReport,
}

/// Files to fdatasync, taken under the lock and synced outside it.
struct SyncWork {
    files: Vec<(Arc<File>, PathBuf)>,
    dir: bool,
    gen_: u64,
}

fn lock_dir(dir: &Path) -> Result<File> {
    let path = dir.join(LOCK_FILE);
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(FILE_MODE)
        .open(&path)
        .ctx("open lock file", &path)?;
    // SAFETY: flock only reads the descriptor, which `f` keeps open.
    let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        let e = io::Error::last_os_error();
        if e.kind() == io::ErrorKind::WouldBlock {
            return Err(Error::Locked {
                path: dir.to_path_buf(),
            });
        }
        return Err(Error::io("lock", &path, e));
    }
    restrict_file(&f, &path);
    Ok(f)
}

/// Narrows a file we did not create (older version, copied in) to 0600.
fn restrict_file(f: &File, path: &Path) {
    if let Ok(m) = f.metadata()
        && m.permissions().mode() & 0o077 != 0
        && let Err(e) = f.set_permissions(fs::Permissions::from_mode(FILE_MODE))
    {
        tracing::warn!(path = %path.display(), error = %e, "cannot restrict buffer file to mode 0600");
    }
}

fn fsync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .ctx("fsync directory", dir)
}

fn write_frame(file: &File, header: &[u8], payload: &[u8]) -> io::Result<()> {
    let mut bufs = [IoSlice::new(header), IoSlice::new(payload)];
    let mut slices = &mut bufs[..];
    while !slices.is_empty() {
        match (&*file).write_vectored(slices) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut slices, n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn open_active(path: &Path) -> Result<File> {
    let f = OpenOptions::new()
        .append(true)
        .open(path)
        .ctx("open segment", path)?;
    restrict_file(&f, path);
    Ok(f)
}

fn create_segment(path: &Path) -> Result<File> {
    OpenOptions::new()
        .append(true)
        .create_new(true)
        .mode(FILE_MODE)
        .open(path)
        .ctx("create segment", path)
}

/// Open errors that say nothing about the file and should be retried rather than treated
/// as damage.
fn transient(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOMEM | libc::EAGAIN | libc::EINTR)
    )
}

impl State {
    fn last_key(&self) -> u64 {
        // `open` always leaves an active segment, and nothing removes it.
        self.segments
            .keys()
            .next_back()
            .copied()
            .unwrap_or(self.next_seq)
    }

    /// End (exclusive) of the sequence range of the segment `key`.
    fn range_end(&self, key: u64) -> u64 {
        self.segments
            .range(key.saturating_add(1)..)
            .next()
            .map_or(self.next_seq, |(&k, _)| k)
    }

    fn note_gap(&mut self, key: u64, lo: u64, hi: u64) {
        let Some(seg) = self.segments.get_mut(&key) else {
            return;
        };
        let new = seg.gaps.insert(lo, hi);
        if new > 0 {
            self.corrupt += new;
            tracing::warn!(
                path = %seg.path.display(),
                first_seq = lo,
                last_seq = hi,
                records = new,
                "skipping corrupt buffer records"
            );
        }
    }

    /// The reader for segment `key`; `Ok(None)` when the file cannot be opened for good.
    fn reader_for(&mut self, key: u64) -> Result<Option<&mut FrameReader>> {
        if self.reader.as_ref().is_some_and(|r| r.key == key) {
            return Ok(self.reader.as_mut());
        }
        self.reader = None;
        let Some(seg) = self.segments.get(&key) else {
            return Ok(None);
        };
        match FrameReader::open(key, &seg.path) {
            Ok(r) => {
                self.reader = Some(r);
                Ok(self.reader.as_mut())
            }
            Err(e) if transient(&e) => Err(Error::io("open segment", &seg.path, e)),
            Err(e) => {
                tracing::warn!(path = %seg.path.display(), error = %e, "cannot open buffer segment");
                Ok(None)
            }
        }
    }

    /// The first record with sequence `>= pos.seq` that is neither acknowledged nor lost,
    /// with the position after it.
    fn next_entry(&mut self, pos: Pos) -> Result<Option<(Entry, Pos)>> {
        let (mut want, mut hint) = if pos.seq > self.head {
            (pos.seq, pos.hint)
        } else {
            (self.head + 1, self.head_hint)
        };
        loop {
            if want >= self.next_seq {
                return Ok(None);
            }
            if let Some(front) = self.mem.front()
                && want >= front.seq
            {
                // The memory tail is contiguous and ends at next_seq - 1.
                let Some(e) = self.mem.get((want - front.seq) as usize) else {
                    return Ok(None);
                };
                let entry = Entry {
                    seq: e.seq,
                    timestamp_ms: e.ts,
                    payload: e.payload.clone(),
                };
                let next = Pos {
                    seq: e.seq + 1,
                    hint: Some((e.seg, e.end)),
                };
                return Ok(Some((entry, next)));
            }
            let key = match self.segments.range(..=want).next_back() {
                Some((&k, _)) => k,
                None => match self.segments.keys().next() {
                    Some(&k) => {
                        want = k;
                        hint = None;
                        continue;
                    }
                    None => return Ok(None),
                },
            };
            let is_last = key == self.last_key();
            let end = self.range_end(key);
            let limit = self.segments.get(&key).map_or(0, |s| s.bytes);
            let mut off = match hint {
                Some((k, o)) if k == key => o,
                _ => 0,
            };
            let path = self
                .segments
                .get(&key)
                .map(|s| s.path.clone())
                .unwrap_or_default();
            let found = match self.reader_for(key)? {
                None => None,
                Some(reader) => {
                    let mut min = key;
                    loop {
                        match reader.next_frame(off, limit, min, end) {
                            Ok(Scan::Frame(f)) if f.seq < want => {
                                off = f.end;
                                min = f.seq + 1;
                            }
                            Ok(Scan::Frame(f)) => break Some(f),
                            Ok(Scan::End) => break None,
                            Err(e) if is_last => return Err(Error::io("read segment", &path, e)),
                            Err(e) => {
                                tracing::warn!(path = %path.display(), error = %e, "read error in buffer segment");
                                break None;
                            }
                        }
                    }
                }
            };
            match found {
                Some(f) => {
                    if f.skipped > 0 || f.seq > want {
                        self.note_gap(key, want, f.seq - 1);
                    }
                    let entry = Entry {
                        seq: f.seq,
                        timestamp_ms: f.ts,
                        payload: f.payload,
                    };
                    let next = Pos {
                        seq: f.seq + 1,
                        hint: Some((key, f.end)),
                    };
                    return Ok(Some((entry, next)));
                }
                None if is_last => {
                    // The rest of the active segment is unreadable; only memory may have it.
                    let resume = self.mem.front().map_or(self.next_seq, |e| e.seq);
                    if resume > want {
                        self.note_gap(key, want, resume - 1);
                    }
                    want = resume;
                    hint = None;
                }
                None => {
                    if end > want {
                        self.note_gap(key, want, end - 1);
                    }
                    want = end;
                    hint = Some((end, 0));
                }
            }
        }
    }

    /// Moves the acknowledged position forward (ack, drop or expiry).
    fn set_head(&mut self, head: u64, hint: Option<(u64, u64)>) {
        if head <= self.head {
            return;
        }
        self.head = head;
        self.head_hint = hint;
        if self.cursor.seq <= head {
            self.cursor = Pos {
                seq: head + 1,
                hint,
            };
        }
        while let Some(front) = self.mem.front()
            && front.seq <= head
        {
            self.mem_bytes -= front.payload.len() as u64;
            self.mem.pop_front();
        }
        for seg in self.segments.values_mut() {
            seg.gaps.forget_upto(head);
        }
        if self.oldest.is_some_and(|(s, _)| s <= head) {
            self.oldest = None;
        }
    }

    fn write_ledger(&mut self) -> Result<()> {
        let tmp = self.dir.join(LEDGER_TMP);
        let path = self.dir.join(LEDGER_FILE);
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(FILE_MODE)
            .open(&tmp)
            .ctx("create ledger", &tmp)?;
        f.write_all(&format::encode_ledger(self.head))
            .ctx("write ledger", &tmp)?;
        f.sync_all().ctx("fsync ledger", &tmp)?;
        fs::rename(&tmp, &path).ctx("rename ledger", &path)?;
        fsync_dir(&self.dir)?;
        self.ledger_written = self.head;
        self.ledger_at = Instant::now();
        Ok(())
    }

    fn ledger_if_due(&mut self) -> Result<()> {
        if self.head != self.ledger_written && self.ledger_at.elapsed() >= self.opts.ledger_interval
        {
            self.write_ledger()?;
        }
        Ok(())
    }

    fn remove_segment(&mut self, key: u64) -> Result<()> {
        let Some(seg) = self.segments.get(&key) else {
            return Ok(());
        };
        match fs::remove_file(&seg.path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("remove segment", &seg.path, e)),
        }
        if let Some(seg) = self.segments.remove(&key) {
            self.disk_bytes -= seg.bytes;
        }
        if self.reader.as_ref().is_some_and(|r| r.key == key) {
            self.reader = None;
        }
        self.dir_dirty = true;
        Ok(())
    }

    /// Deletes sealed segments whose every record is acknowledged, after persisting the
    /// ledger so that a crash cannot resurrect a position inside a deleted segment.
    fn delete_acked_segments(&mut self) -> Result<()> {
        let last = self.last_key();
        let done: Vec<u64> = self
            .segments
            .keys()
            .copied()
            .filter(|&k| k != last && self.range_end(k) - 1 <= self.head)
            .collect();
        if done.is_empty() {
            return Ok(());
        }
        if self.ledger_written != self.head {
            self.write_ledger()?;
        }
        for k in done {
            self.remove_segment(k)?;
        }
        Ok(())
    }

    /// Starts a new active segment named after the next sequence number.
    fn roll(&mut self) -> Result<()> {
        let old = self.last_key();
        if old == self.next_seq {
            return Ok(());
        }
        let old_empty = self.segments.get(&old).is_some_and(|s| s.bytes == 0);
        let path = self.dir.join(segment::segment_file_name(self.next_seq));
        let file = Arc::new(create_segment(&path)?);
        let prev = mem::replace(&mut self.writer, file);
        if old_empty {
            // Nothing was ever written to it; its numbers move on to the new segment.
            self.remove_segment(old)?;
        } else if matches!(self.opts.fsync, FsyncMode::Interval(_))
            && self.written_gen != self.synced_gen
            && let Some(seg) = self.segments.get(&old)
        {
            self.unsynced.push((prev, seg.path.clone()));
        }
        self.segments.insert(
            self.next_seq,
            Segment {
                first_seq: self.next_seq,
                path,
                bytes: 0,
                gaps: Default::default(),
            },
        );
        self.dir_dirty = true;
        if self.opts.fsync == FsyncMode::Always {
            fsync_dir(&self.dir)?;
            self.dir_dirty = false;
        }
        Ok(())
    }

    /// Byte offset in segment `key` of the first record with sequence `>= seq`.
    fn offset_of(&mut self, key: u64, seq: u64) -> u64 {
        if let Some((k, off)) = self.head_hint
            && k == key
            && self.head + 1 == seq
        {
            return off;
        }
        let end = self.range_end(key);
        let limit = self.segments.get(&key).map_or(0, |s| s.bytes);
        let Ok(Some(reader)) = self.reader_for(key) else {
            return limit;
        };
        let (mut off, mut min) = (0, key);
        loop {
            match reader.next_frame(off, limit, min, end) {
                Ok(Scan::Frame(f)) if f.seq < seq => {
                    off = f.end;
                    min = f.seq + 1;
                }
                Ok(Scan::Frame(f)) => {
                    return f.end - format::framed_len(f.payload.len());
                }
                Ok(Scan::End) | Err(_) => return limit,
            }
        }
    }

    /// Deletes the oldest segment with whatever it holds unacknowledged.
    fn drop_oldest(&mut self, acc: &mut Dropped) -> Result<()> {
        let Some(&key) = self.segments.keys().next() else {
            return Ok(());
        };
        let end = self.range_end(key);
        let (records, size) = match self.segments.get(&key) {
            Some(seg) => (unacked_in(seg, end, self.head), seg.bytes),
            None => return Ok(()),
        };
        let bytes = if self.head < key {
            size
        } else {
            size - self.offset_of(key, self.head + 1).min(size)
        };
        self.set_head(end - 1, Some((end, 0)));
        // Persist first: a crash must not find the ledger before a segment that is gone, or
        // the dropped records would be counted a second time as corrupt.
        if let Err(e) = self.write_ledger() {
            tracing::warn!(error = %e, "cannot write buffer ledger before dropping a segment");
        }
        self.remove_segment(key)?;
        acc.records += records;
        acc.bytes += bytes;
        self.dropped_full.records += records;
        self.dropped_full.bytes += bytes;
        Ok(())
    }

    fn append(&mut self, ts: u64, payload: Bytes) -> Result<AppendOutcome> {
        let framed = format::framed_len(payload.len());
        if payload.len() > u32::MAX as usize || framed > self.opts.max_total_bytes {
            return Err(Error::TooLarge {
                size: framed,
                limit: self.opts.max_total_bytes.min(u32::MAX as u64),
            });
        }
        if self.next_seq == u64::MAX {
            return Err(Error::SequenceExhausted {
                path: self.dir.clone(),
            });
        }
        let active = self.last_key();
        let active_bytes = self.segments.get(&active).map_or(0, |s| s.bytes);
        if active_bytes > 0 && active_bytes + framed > self.segment_bytes {
            self.roll()?;
        }
        self.delete_acked_segments()?;
        let mut dropped = Dropped {
            reason: DropReason::Full,
            records: 0,
            bytes: 0,
        };
        while self.disk_bytes + framed > self.opts.max_total_bytes {
            match self.opts.when_full {
                WhenFull::Reject => {
                    return Err(Error::Full {
                        needed: framed,
                        used: self.disk_bytes,
                        limit: self.opts.max_total_bytes,
                    });
                }
                WhenFull::DropOldest if self.segments.len() > 1 => {
                    self.drop_oldest(&mut dropped)?;
                }
                WhenFull::DropOldest => {
                    // Only the active segment is left and it is too big: seal it so it can go.
                    let before = self.last_key();
                    self.roll()?;
                    if self.last_key() == before {
                        return Err(Error::Full {
                            needed: framed,
                            used: self.disk_bytes,
                            limit: self.opts.max_total_bytes,
                        });
                    }
                }
            }
        }
        if dropped.records > 0 || dropped.bytes > 0 {
            tracing::warn!(
                dir = %self.dir.display(),
                records = dropped.records,
                bytes = dropped.bytes,
                reason = "full",
                "buffer full, dropped the oldest records"
            );
        }

        let seq = self.next_seq;
        let key = self.last_key();
        let (path, start) = match self.segments.get(&key) {
            Some(s) => (s.path.clone(), s.bytes),
            None => (self.dir.clone(), 0),
        };
        let header = format::encode_header(seq, ts, &payload);
        if let Err(e) = write_frame(&self.writer, &header, &payload) {
            // Never leave half a record in front of the next one.
            if let Err(t) = self.writer.set_len(start) {
                tracing::warn!(path = %path.display(), error = %t, "cannot cut a failed write");
            }
            return Err(Error::io("write segment", &path, e));
        }
        if self.opts.fsync == FsyncMode::Always
            && let Err(e) = self.writer.sync_data()
        {
            // Report it as not appended; the caller retries, so the record must go.
            let _ = self.writer.set_len(start);
            return Err(Error::io("fsync segment", &path, e));
        }
        if let Some(s) = self.segments.get_mut(&key) {
            s.bytes += framed;
        }
        self.disk_bytes += framed;
        self.next_seq += 1;
        self.written_gen += 1;
        if self.opts.fsync == FsyncMode::Always {
            self.synced_gen = self.written_gen;
        }
        if self.opts.memory_limit_bytes > 0 {
            self.mem_bytes += payload.len() as u64;
            self.mem.push_back(MemEntry {
                seq,
                ts,
                payload,
                seg: key,
                end: start + framed,
            });
            while self.mem_bytes > self.opts.memory_limit_bytes
                && let Some(e) = self.mem.pop_front()
            {
                self.mem_bytes -= e.payload.len() as u64;
            }
        }
        Ok(AppendOutcome {
            seq,
            dropped: (dropped.records > 0 || dropped.bytes > 0).then_some(dropped),
        })
    }

    fn read_batch(&mut self, max_records: usize, max_bytes: usize) -> Result<Vec<Entry>> {
        let mut out = Vec::new();
        let mut bytes = 0usize;
        while out.len() < max_records {
            let Some((e, next)) = self.next_entry(self.cursor)? else {
                break;
            };
            if !out.is_empty() && bytes + e.payload.len() > max_bytes {
                break;
            }
            bytes += e.payload.len();
            self.cursor = next;
            out.push(e);
        }
        Ok(out)
    }

    fn ack(&mut self, seq: u64) -> Result<()> {
        if seq >= self.next_seq {
            return Err(Error::AckOutOfRange {
                seq,
                newest: self.next_seq - 1,
            });
        }
        if seq <= self.head {
            return Ok(());
        }
        let hint = if self.cursor.seq == seq + 1 {
            self.cursor.hint
        } else {
            None
        };
        self.set_head(seq, hint);
        self.delete_acked_segments()?;
        self.ledger_if_due()
    }

    fn expire(&mut self, max_age: Duration, now_ms: u64) -> Result<Option<Dropped>> {
        let cutoff = now_ms.saturating_sub(u64::try_from(max_age.as_millis()).unwrap_or(u64::MAX));
        let mut pos = Pos {
            seq: self.head + 1,
            hint: self.head_hint,
        };
        let (mut records, mut bytes, mut last) = (0u64, 0u64, None);
        while let Some((e, next)) = self.next_entry(pos)? {
            if e.timestamp_ms >= cutoff {
                break;
            }
            records += 1;
            bytes += format::framed_len(e.payload.len());
            last = Some((e.seq, next.hint));
            pos = next;
        }
        let Some((seq, hint)) = last else {
            return Ok(None);
        };
        self.set_head(seq, hint);
        self.dropped_max_age.records += records;
        self.dropped_max_age.bytes += bytes;
        tracing::warn!(
            dir = %self.dir.display(),
            records,
            bytes,
            reason = "max_age",
            "dropped buffer records older than the maximum age"
        );
        self.delete_acked_segments()?;
        self.ledger_if_due()?;
        Ok(Some(Dropped {
            reason: DropReason::MaxAge,
            records,
            bytes,
        }))
    }

    fn records(&self) -> u64 {
        let keys: Vec<u64> = self.segments.keys().copied().collect();
        self.segments
            .values()
            .enumerate()
            .map(|(i, seg)| {
                let end = keys.get(i + 1).copied().unwrap_or(self.next_seq);
                unacked_in(seg, end, self.head)
            })
            .sum()
    }

    fn stats(&mut self) -> Stats {
        if self.oldest.is_none() {
            let pos = Pos {
                seq: self.head + 1,
                hint: self.head_hint,
            };
            if let Ok(Some((e, _))) = self.next_entry(pos) {
                self.oldest = Some((e.seq, e.timestamp_ms));
            }
        }
        Stats {
            disk_bytes: self.disk_bytes,
            segments: self.segments.len(),
            records: self.records(),
            memory_records: self.mem.len(),
            memory_bytes: self.mem_bytes,
            oldest_timestamp_ms: self.oldest.map(|(_, ts)| ts),
            first_unacked_seq: self.head + 1,
            next_seq: self.next_seq,
            dropped_full: self.dropped_full,
            dropped_max_age: self.dropped_max_age,
            corrupt_records: self.corrupt,
            sync_errors: self.sync_errors,
        }
    }

    fn take_sync_work(&mut self) -> Option<SyncWork> {
        let active_dirty = self.written_gen != self.synced_gen;
        if !active_dirty && self.unsynced.is_empty() && !self.dir_dirty {
            return None;
        }
        let mut files = mem::take(&mut self.unsynced);
        if active_dirty {
            let path = self
                .segments
                .get(&self.last_key())
                .map(|s| s.path.clone())
                .unwrap_or_default();
            files.push((Arc::clone(&self.writer), path));
        }
        Some(SyncWork {
            files,
            dir: mem::take(&mut self.dir_dirty),
            gen_: self.written_gen,
        })
    }

    fn finish_sync(&mut self, work: SyncWork, res: Result<()>) -> Result<()> {
        match res {
            Ok(()) => {
                self.synced_gen = self.synced_gen.max(work.gen_);
                Ok(())
            }
            Err(e) => {
                self.sync_errors += 1;
                self.dir_dirty |= work.dir;
                let active = Arc::as_ptr(&self.writer);
                self.unsynced.extend(
                    work.files
                        .into_iter()
                        .filter(|(f, _)| Arc::as_ptr(f) != active),
                );
                Err(e)
            }
        }
    }
}

impl SyncWork {
    fn run(&self, dir: &Path) -> Result<()> {
        for (f, path) in &self.files {
            f.sync_data().ctx("fsync segment", path)?;
        }
        if self.dir {
            fsync_dir(dir)?;
        }
        Ok(())
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the state half-updated in a way that
        // loses data (disk is the source of truth), so keep going.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn sync_now(&self, dir: &Path) -> Result<()> {
        let work = self.lock().take_sync_work();
        if let Some(work) = work {
            let res = work.run(dir);
            self.lock().finish_sync(work, res)?;
        }
        Ok(())
    }
}

fn syncer(shared: Arc<Shared>, dir: PathBuf, tick: Duration, interval_sync: bool) {
    let mut guard = shared.lock();
    loop {
        // Checked before waiting too: `stop` may have been set before this thread first ran.
        if guard.stop {
            return;
        }
        guard = match shared.wake.wait_timeout(guard, tick) {
            Ok((g, _)) => g,
            Err(p) => p.into_inner().0,
        };
        if guard.stop {
            return;
        }
        if interval_sync {
            drop(guard);
            if let Err(e) = shared.sync_now(&dir) {
                tracing::warn!(error = %e, "background buffer sync failed");
            }
            guard = shared.lock();
            if guard.stop {
                return;
            }
        }
        if let Err(e) = guard.ledger_if_due() {
            tracing::warn!(error = %e, "background buffer ledger write failed");
        }
    }
}

impl Log {
    /// Opens (creating if needed) the log in `dir` and recovers its contents.
    ///
    /// Fails only when the directory cannot be created, locked, read or written; damaged
    /// contents are repaired or skipped and described by [`Log::recovery`].
    pub fn open(dir: impl AsRef<Path>, opts: Options) -> Result<Log> {
        opts.validate()?;
        let dir = dir.as_ref().to_path_buf();
        DirBuilder::new()
            .recursive(true)
            .mode(DIR_MODE)
            .create(&dir)
            .ctx("create directory", &dir)?;
        let meta = fs::metadata(&dir).ctx("stat directory", &dir)?;
        if meta.permissions().mode() & 0o777 != DIR_MODE {
            fs::set_permissions(&dir, fs::Permissions::from_mode(DIR_MODE))
                .ctx("restrict to mode 0700", &dir)?;
        }
        let lock = lock_dir(&dir)?;
        let rec = recovery::recover(&dir, false)?;
        let mut segments = rec.segments;
        let ledger = dir.join(LEDGER_FILE);
        for path in segments.values().map(|s| &s.path).chain([&ledger]) {
            if let Ok(m) = fs::metadata(path)
                && m.permissions().mode() & 0o077 != 0
                && let Err(e) = fs::set_permissions(path, fs::Permissions::from_mode(FILE_MODE))
            {
                tracing::warn!(path = %path.display(), error = %e, "cannot restrict buffer file to mode 0600");
            }
        }
        let writer = match segments.values().next_back() {
            Some(seg) => open_active(&seg.path)?,
            None => {
                let path = dir.join(segment::segment_file_name(rec.next_seq));
                let f = create_segment(&path)?;
                segments.insert(
                    rec.next_seq,
                    Segment {
                        first_seq: rec.next_seq,
                        path,
                        bytes: 0,
                        gaps: Default::default(),
                    },
                );
                f
            }
        };
        let disk_bytes = segments.values().map(|s| s.bytes).sum();
        let mut state = State {
            dir: dir.clone(),
            segment_bytes: opts.effective_segment_bytes(),
            opts: opts.clone(),
            segments,
            writer: Arc::new(writer),
            next_seq: rec.next_seq,
            head: rec.head,
            head_hint: None,
            cursor: Pos {
                seq: rec.head + 1,
                hint: None,
            },
            mem: VecDeque::new(),
            mem_bytes: 0,
            disk_bytes,
            reader: None,
            ledger_written: rec.head,
            ledger_at: Instant::now(),
            written_gen: 0,
            synced_gen: 0,
            unsynced: Vec::new(),
            dir_dirty: false,
            oldest: None,
            dropped_full: DropCount::default(),
            dropped_max_age: DropCount::default(),
            corrupt: rec.report.corrupt_records,
            sync_errors: 0,
            stop: false,
            _lock: lock,
        };
        if rec.ledger_stale {
            state.write_ledger()?;
        }
        // Make recovery's truncations, removals and the new segment durable before new data.
        fsync_dir(&dir)?;
        let report = rec.report;
        if report.corrupt_records > 0 || report.truncated_bytes > 0 || report.skipped_segments > 0 {
            tracing::warn!(
                dir = %dir.display(),
                corrupt_records = report.corrupt_records,
                truncated_bytes = report.truncated_bytes,
                skipped_segments = report.skipped_segments,
                "buffer recovered with damage"
            );
        }

        let interval_sync = match opts.fsync {
            FsyncMode::Interval(d) => Some(d),
            _ => None,
        };
        let ledger_tick = (!opts.ledger_interval.is_zero()).then_some(opts.ledger_interval);
        let tick = match (interval_sync, ledger_tick) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let shared = Arc::new(Shared {
            state: Mutex::new(state),
            wake: Condvar::new(),
        });
        let syncer = match tick {
            Some(tick) => {
                let (s, d) = (Arc::clone(&shared), dir.clone());
                let is_interval = interval_sync.is_some();
                Some(
                    std::thread::Builder::new()
                        .name("tfo-buffer-sync".into())
                        .spawn(move || syncer(s, d, tick, is_interval))
                        .ctx("start sync thread for", &dir)?,
                )
            }
            None => None,
        };
        Ok(Log {
            shared,
            syncer,
            dir,
            report,
            done: false,
        })
    }

    /// The directory of this log.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// What recovery found and did when the log was opened.
    pub fn recovery(&self) -> &RecoveryReport {
        &self.report
    }

    /// Appends a record. When this returns `Ok`, the record has been written to the kernel
    /// (and with [`FsyncMode::Always`] to the disk) and survives a crash of this process.
    ///
    /// `timestamp_ms` is stored with the record and used by [`Log::expire`].
    pub fn append(&self, timestamp_ms: u64, payload: impl Into<Bytes>) -> Result<AppendOutcome> {
        self.shared.lock().append(timestamp_ms, payload.into())
    }

    /// Returns the next records after the read cursor, oldest first, and advances the
    /// cursor. At most `max_records`; payloads total at most `max_bytes`, except that one
    /// record is returned even when it alone is larger. Empty when everything has been read.
    pub fn read_batch(&self, max_records: usize, max_bytes: usize) -> Result<Vec<Entry>> {
        self.shared.lock().read_batch(max_records, max_bytes)
    }

    /// Acknowledges every record up to and including `seq`, deleting segments that are
    /// fully acknowledged. The ledger is persisted at most every `ledger_interval`.
    pub fn ack(&self, seq: u64) -> Result<()> {
        self.shared.lock().ack(seq)
    }

    /// Moves the read cursor back to the first unacknowledged record (after a failed send).
    pub fn rewind(&self) {
        let mut s = self.shared.lock();
        s.cursor = Pos {
            seq: s.head + 1,
            hint: s.head_hint,
        };
    }

    /// Discards records from the head whose timestamp is older than `now_ms - max_age`,
    /// stopping at the first younger one. Returns what was discarded.
    pub fn expire(&self, max_age: Duration, now_ms: u64) -> Result<Option<Dropped>> {
        self.shared.lock().expire(max_age, now_ms)
    }

    /// Flushes everything appended so far to disk (no-op in `Always` mode).
    pub fn sync(&self) -> Result<()> {
        self.shared.sync_now(&self.dir)
    }

    /// Syncs if the fsync interval has passed since the last sync (only in `Interval` mode),
    /// and persists the ledger if `ledger_interval` has passed. The background thread does
    /// this on its own; this is for callers that want it at a point of their choosing.
    pub fn sync_if_due(&self) -> Result<()> {
        let mode = self.shared.lock().opts.fsync;
        if let FsyncMode::Interval(_) = mode {
            self.sync()?;
        }
        self.shared.lock().ledger_if_due()
    }

    /// A snapshot of sizes, positions and counters.
    pub fn stats(&self) -> Stats {
        self.shared.lock().stats()
    }

    /// Syncs (unless the mode is `Never`), writes the ledger and releases the directory.
    pub fn close(mut self) -> Result<()> {
        self.finish(true)
    }

    /// Releases the directory the way a killed process would: no sync and no ledger write,
    /// only what `write(2)` already handed to the kernel remains. For crash tests.
    pub fn crash(mut self) {
        let _ = self.finish(false);
    }

    fn finish(&mut self, graceful: bool) -> Result<()> {
        if self.done {
            return Ok(());
        }
        self.done = true;
        self.shared.lock().stop = true;
        self.shared.wake.notify_all();
        if let Some(t) = self.syncer.take() {
            let _ = t.join();
        }
        if !graceful {
            return Ok(());
        }
        let mut result = Ok(());
        let mode = self.shared.lock().opts.fsync;
        if mode != FsyncMode::Never {
            result = self.sync();
        }
        let mut s = self.shared.lock();
        if s.head != s.ledger_written {
            let r = s.write_ledger();
            if result.is_ok() {
                result = r;
            }
        }
        result
    }
}

impl Drop for Log {
    fn drop(&mut self) {
        if let Err(e) = self.finish(true) {
            tracing::warn!(dir = %self.dir.display(), error = %e, "closing the buffer failed");
        }
    }
}

/// Reads the state of the log in `dir` without changing anything (no repair, no lock), for
/// `tfo-agent buffer status`. Safe to call while the agent runs, though the answer may then
/// be slightly stale.
pub fn inspect(dir: impl AsRef<Path>) -> Result<Inspection> {
    let dir = dir.as_ref();
    fs::metadata(dir).ctx("stat directory", dir)?;
    let rec = recovery::recover(dir, true)?;
    let disk_bytes = rec.segments.values().map(|s| s.bytes).sum();
    let mut state = InspectState {
        segments: rec.segments,
        next_seq: rec.next_seq,
        head: rec.head,
    };
    let oldest = state.oldest_timestamp();
    let stats = Stats {
        disk_bytes,
        segments: state.segments.len(),
        records: rec.report.records,
        memory_records: 0,
        memory_bytes: 0,
        oldest_timestamp_ms: oldest,
        first_unacked_seq: rec.head + 1,
        next_seq: rec.next_seq,
        dropped_full: DropCount::default(),
        dropped_max_age: DropCount::default(),
        corrupt_records: rec.report.corrupt_records,
        sync_errors: 0,
    };
    Ok(Inspection {
        stats,
        recovery: rec.report,
    })
}

struct InspectState {
    segments: BTreeMap<u64, Segment>,
    next_seq: u64,
    head: u64,
}

impl InspectState {
    /// Timestamp of the first valid unacknowledged record, scanning segments in order.
    fn oldest_timestamp(&mut self) -> Option<u64> {
        let keys: Vec<u64> = self.segments.keys().copied().collect();
        let want = self.head.saturating_add(1);
        for (i, &k) in keys.iter().enumerate() {
            let end = keys.get(i + 1).copied().unwrap_or(self.next_seq);
            if end <= want {
                continue;
            }
            let seg = self.segments.get(&k)?;
            let Ok(mut r) = FrameReader::open(k, &seg.path) else {
                continue;
            };
            let (mut off, mut min) = (0, k);
            while let Ok(Scan::Frame(f)) = r.next_frame(off, seg.bytes, min, end) {
                if f.seq >= want {
                    return Some(f.ts);
                }
                off = f.end;
                min = f.seq + 1;
            }
        }
        None
    }
}
