//! The [`Log`] handle: appends, reads, acknowledgements, bounds, syncing and shutdown.
//!
//! All state sits behind one mutex so an `Arc<Log>` can be shared by producers and the
//! exporter. Blocking calls are short: a `write(2)` per append, `fdatasync` per append only in
//! `Always` mode. A background thread (`tfo-buffer-sync`) does the slow work: interval syncs
//! and ledger writes *outside* the mutex, and deleting acknowledged segments, so `ack` and
//! `rewind` never touch the disk (unless `ledger_interval` is zero) and producers keep
//! appending while the disk flushes.
//!
//! Disk faults degrade instead of wedging the log: acknowledged segments are unlinked without
//! waiting for the ledger (unlinking needs no space, the ledger write does), recovery treats
//! numbers below the first segment as acknowledged, and a full disk whose only segment is
//! fully acknowledged starts a new one so the old one can go.

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

use crate::error::DiskFault;
use crate::error::{Error, IoContext, Result};
use crate::format;
use crate::recovery::{self, LEDGER_FILE, RecoveryReport, unacked_in};
use crate::segment::{self, FrameReader, Scan, Segment};
use crate::{
    AppendOutcome, Clock, DropCount, DropReason, Dropped, Entry, FsyncMode, Options, Stats,
    WhenFull,
};

const LOCK_FILE: &str = "lock";
const DIR_MODE: u32 = 0o700;
const FILE_MODE: u32 = 0o600;
/// How far the wall clock may drift from the monotonic clock before the log treats it as a
/// jump and starts a new clock epoch.
const JUMP_TOLERANCE_MS: i64 = 1000;
/// Bound on remembered clock epochs; the oldest are merged (conservatively) beyond it.
const MAX_EPOCHS: usize = 64;
/// Longest sleep of the background thread: retries of failed deletions and ledger writes.
const MAX_TICK: Duration = Duration::from_secs(1);

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
    /// The ledger on disk does not match `ledger_written` (a write at open failed).
    ledger_stale: bool,
    ledger_at: Instant,
    /// The last ledger write failed (logged once per streak; retried at most every second).
    ledger_failed: bool,
    /// The last attempt to delete an acknowledged segment failed (logged once per streak).
    delete_failed: bool,
    /// Clock epochs, oldest first: `(first sequence, wall - monotonic in ms)`. A record's
    /// age is `monotonic now - (timestamp - skew of its epoch)`, so a wall-clock jump starts
    /// a new epoch instead of aging what was written before it.
    epochs: VecDeque<(u64, i64)>,
    /// The last epoch is the one made at open for recovered records.
    epoch_from_recovery: bool,
    /// Incremented per append; `synced_gen` is its value at the last completed sync.
    written_gen: u64,
    synced_gen: u64,
    /// Sealed segments written since the last sync.
    unsynced: Vec<(Arc<File>, PathBuf)>,
    dir_dirty: bool,
    /// Segment files flushed, and syncs that flushed none because all was acknowledged.
    segment_syncs: u64,
    syncs_skipped: u64,
    oldest: Option<(u64, u64)>,
    dropped_full: DropCount,
    dropped_max_age: DropCount,
    corrupt: u64,
    sync_errors: u64,
    ledger_errors: u64,
    delete_errors: u64,
    /// When `delete_errors` last grew.
    delete_counted: Instant,
    stop: bool,
    /// When the background thread, asleep, wakes next (None while it is awake): an ack
    /// wakes it only if it would otherwise write the ledger late.
    bg_until: Option<Instant>,
    /// Held for the lifetime of the log: the flock on it keeps a second process out.
    _lock: File,
}

struct Shared {
    state: Mutex<State>,
    wake: Condvar,
    /// Serializes ledger writes, which run without the state lock.
    ledger_io: Mutex<Option<File>>,
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

/// Wall clock minus monotonic clock, in milliseconds.
fn skew_ms(clock: &dyn Clock) -> i64 {
    let wall = i64::try_from(clock.wall_ms()).unwrap_or(i64::MAX);
    let mono = i64::try_from(clock.monotonic().as_millis()).unwrap_or(i64::MAX);
    wall.saturating_sub(mono)
}

fn mono_ms(clock: &dyn Clock) -> i64 {
    i64::try_from(clock.monotonic().as_millis()).unwrap_or(i64::MAX)
}

/// Age in ms of a record with timestamp `ts` written in the epoch whose skew is `skew`.
fn age_ms(mono_now: i64, skew: i64, ts: u64) -> u64 {
    let ts = i64::try_from(ts).unwrap_or(i64::MAX);
    u64::try_from(mono_now.saturating_add(skew).saturating_sub(ts)).unwrap_or(0)
}

/// The skew of the epoch that `seq` belongs to.
fn skew_of(epochs: &VecDeque<(u64, i64)>, seq: u64, fallback: i64) -> i64 {
    match epochs.partition_point(|&(first, _)| first <= seq) {
        0 => fallback,
        i => epochs[i - 1].1,
    }
}

/// Writes the ledger in place: 20 bytes over the previous 20 at offset 0, fsynced only when
/// `sync`. Neither a temp file nor a rename is needed, and that is deliberate:
/// - a lost or stale ledger only means records acknowledged since the last write are
///   delivered again (at-least-once), never that a record is lost, so syncing it on every
///   write (two fsyncs and a new inode per second in the old temp-file/rename scheme, about
///   a tenth of the agent's CPU at a 1 s collection interval) buys nothing but fewer
///   duplicates after a power cut;
/// - a torn write (power cut mid-write) fails the CRC and reads as damaged: everything
///   present is delivered again;
/// - overwriting allocates no block, so the ledger can still be written on a full disk.
///
/// The file stays open in `held` between writes (opening, checking the length and closing
/// it were three of the four system calls of each write); after a failed write it is
/// opened again.
fn write_ledger_file(held: &mut Option<File>, dir: &Path, head: u64, sync: bool) -> Result<()> {
    use std::os::unix::fs::FileExt;
    let path = dir.join(LEDGER_FILE);
    let f = match held {
        Some(f) => f,
        None => {
            let f = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .mode(FILE_MODE)
                .open(&path)
                .ctx("open ledger", &path)?;
            // A longer file (an older format) would keep stale bytes after ours.
            let len = f.metadata().ctx("stat ledger", &path)?.len();
            if len > format::LEDGER_LEN as u64 {
                f.set_len(format::LEDGER_LEN as u64)
                    .ctx("truncate ledger", &path)?;
            }
            held.insert(f)
        }
    };
    let bytes = format::encode_ledger(head);
    let res = f
        .write_all_at(&bytes, 0)
        .ctx("write ledger", &path)
        .and_then(|()| {
            if sync {
                f.sync_data().ctx("fsync ledger", &path)
            } else {
                Ok(())
            }
        });
    if res.is_err() {
        *held = None;
    }
    res
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
        let chunks = self.reader.take().map(FrameReader::into_chunks);
        let Some(seg) = self.segments.get(&key) else {
            return Ok(None);
        };
        match FrameReader::open(key, &seg.path) {
            Ok(mut r) => {
                r.adopt(chunks.unwrap_or_default());
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
                if let Some(r) = self.reader.as_mut() {
                    r.release_spares();
                }
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
        while self.epochs.len() >= 2 && self.epochs[1].0 <= head.saturating_add(1) {
            self.epochs.pop_front();
        }
    }

    /// Starts a new clock epoch at `seq` when the wall clock moved against the monotonic one.
    fn note_epoch(&mut self, seq: u64) {
        let skew = skew_ms(&*self.opts.clock);
        if self
            .epochs
            .back()
            .is_some_and(|&(_, s)| (skew - s).abs() <= JUMP_TOLERANCE_MS)
        {
            return;
        }
        // The epoch made at open for an earlier run's records differs from this run's by the
        // downtime, which is not a clock jump: not worth a log line.
        let recovered = mem::take(&mut self.epoch_from_recovery);
        if self.epochs.back().is_some() && !recovered {
            tracing::info!(
                dir = %self.dir.display(),
                jump_ms = skew - self.epochs.back().map_or(0, |e| e.1),
                "wall clock moved; buffer ages are measured on the monotonic clock"
            );
        }
        self.epochs.push_back((seq, skew));
        if self.epochs.len() > MAX_EPOCHS
            && let (Some((first, a)), Some((_, b))) =
                (self.epochs.pop_front(), self.epochs.pop_front())
        {
            // The smaller skew gives the smaller age: expiry can be late, never early.
            self.epochs.push_front((first, a.min(b)));
        }
    }

    fn ledger_due(&self) -> bool {
        (self.head != self.ledger_written || self.ledger_stale)
            && self.ledger_at.elapsed() >= self.opts.ledger_interval
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

    /// The oldest segment, when it is sealed and every record in it is acknowledged.
    fn deletable(&self) -> Option<u64> {
        let (&k, _) = self.segments.first_key_value()?;
        (k != self.last_key() && self.range_end(k) - 1 <= self.head).then_some(k)
    }

    /// Deletes sealed segments whose every record is acknowledged, oldest first, without
    /// waiting for the ledger: recovery treats numbers below the first segment as
    /// acknowledged, and on a full disk the ledger cannot be written until space is freed.
    /// Stops at the first failure, so only a prefix is ever missing; failures are logged
    /// once per streak and retried by the background thread and the next append.
    fn delete_acked_segments(&mut self) {
        while let Some(k) = self.deletable() {
            if let Err(e) = self.remove_segment(k) {
                // Appends and `stats` try too, so a failing disk would count at their
                // rate; one a second is what the background retry does.
                if !self.delete_failed || self.delete_counted.elapsed() >= Duration::from_secs(1) {
                    self.delete_errors += 1;
                    self.delete_counted = Instant::now();
                }
                if !self.delete_failed {
                    tracing::warn!(error = %e, "cannot delete an acknowledged buffer segment; will retry");
                    self.delete_failed = true;
                }
                return;
            }
            self.delete_failed = false;
        }
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
        // Unlink first: if that fails nothing was dropped. No ledger write is needed: after a
        // crash, numbers below the first segment count as acknowledged (not again as lost).
        self.remove_segment(key)?;
        self.set_head(end - 1, Some((end, 0)));
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
        self.delete_acked_segments();
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
        let header = format::encode_header(seq, ts, &payload);
        let mut retried = false;
        let (key, start) = loop {
            let key = self.last_key();
            let (path, start) = match self.segments.get(&key) {
                Some(s) => (s.path.clone(), s.bytes),
                None => (self.dir.clone(), 0),
            };
            let Err(e) = write_frame(&self.writer, &header, &payload) else {
                break (key, start);
            };
            // Never leave half a record in front of the next one.
            if let Err(t) = self.writer.set_len(start) {
                tracing::warn!(path = %path.display(), error = %t, "cannot cut a failed write");
            }
            // A full file system whose only segment is fully acknowledged: start a new one
            // (an empty file needs no data blocks) so the old one can be deleted, then retry.
            if !retried
                && DiskFault::of(&e) == DiskFault::NoSpace
                && start > 0
                && self.head.saturating_add(1) >= self.next_seq
                && self.roll().is_ok()
            {
                retried = true;
                self.delete_acked_segments();
                continue;
            }
            return Err(Error::io("write segment", &path, e));
        };
        let path = self
            .segments
            .get(&key)
            .map_or_else(|| self.dir.clone(), |s| s.path.clone());
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
        self.note_epoch(seq);
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

    /// Moves the acknowledged position; no I/O. Returns whether a segment became deletable.
    fn ack(&mut self, seq: u64) -> Result<bool> {
        if seq >= self.next_seq {
            return Err(Error::AckOutOfRange {
                seq,
                newest: self.next_seq - 1,
            });
        }
        if seq <= self.head {
            return Ok(false);
        }
        let hint = if self.cursor.seq == seq + 1 {
            self.cursor.hint
        } else {
            None
        };
        self.set_head(seq, hint);
        Ok(self.deletable().is_some())
    }

    fn expire(&mut self, max_age: Duration, now_ms: u64) -> Result<Option<Dropped>> {
        let cutoff = now_ms.saturating_sub(u64::try_from(max_age.as_millis()).unwrap_or(u64::MAX));
        self.expire_where(|e| e.timestamp_ms < cutoff)
    }

    /// Expiry by age measured on the monotonic clock (see [`Log::expire_older_than`]).
    fn expire_older_than(&mut self, max_age: Duration) -> Result<Option<Dropped>> {
        let max = u64::try_from(max_age.as_millis()).unwrap_or(u64::MAX);
        let epochs = self.epochs.clone();
        let clock = Arc::clone(&self.opts.clock);
        let (now, fallback) = (mono_ms(&*clock), skew_ms(&*clock));
        self.expire_where(|e| age_ms(now, skew_of(&epochs, e.seq, fallback), e.timestamp_ms) >= max)
    }

    /// Age of the oldest unacknowledged record on the monotonic clock.
    fn oldest_age(&mut self) -> Option<Duration> {
        let pos = Pos {
            seq: self.head + 1,
            hint: self.head_hint,
        };
        let (e, _) = self.next_entry(pos).ok()??;
        let clock = &*self.opts.clock;
        let skew = skew_of(&self.epochs, e.seq, skew_ms(clock));
        Some(Duration::from_millis(age_ms(
            mono_ms(clock),
            skew,
            e.timestamp_ms,
        )))
    }

    /// Discards records from the head while `old` says so.
    fn expire_where(&mut self, old: impl Fn(&Entry) -> bool) -> Result<Option<Dropped>> {
        let mut pos = Pos {
            seq: self.head + 1,
            hint: self.head_hint,
        };
        let (mut records, mut bytes, mut last) = (0u64, 0u64, None);
        while let Some((e, next)) = self.next_entry(pos)? {
            if !old(&e) {
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
        self.delete_acked_segments();
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
        // Deletions the background thread has not done yet, so the sizes match the files.
        self.delete_acked_segments();
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
            ledger_errors: self.ledger_errors,
            delete_errors: self.delete_errors,
            segment_syncs: self.segment_syncs,
            syncs_skipped: self.syncs_skipped,
        }
    }

    fn take_sync_work(&mut self) -> Option<SyncWork> {
        let active_dirty = self.written_gen != self.synced_gen;
        if !active_dirty && self.unsynced.is_empty() && !self.dir_dirty {
            return None;
        }
        let mut files = mem::take(&mut self.unsynced);
        // What is acknowledged (delivered, or dropped and counted) needs no fsync: no one
        // will read it again. The exporter usually acknowledges a cycle's records within
        // milliseconds, so on a healthy link most interval syncs find nothing unread and
        // skip the flush (a tenth of the whole agent's CPU at a 1 s cycle; docs/buffer.md). The
        // pages reach the disk by the kernel's own writeback, or never if the segment is
        // deleted first. After a power loss the ledger may then point past what survived;
        // recovery clamps it (`PastEnd`), and the numbers are handed out again.
        let all_acked = self.head.saturating_add(1) >= self.next_seq;
        if all_acked {
            if active_dirty || !files.is_empty() {
                self.syncs_skipped += 1;
            }
            files.clear();
        } else if active_dirty {
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
                self.segment_syncs += work.files.len() as u64;
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

    /// Persists the acknowledged position, without holding the state lock during the file
    /// write. Synced on close and with `FsyncMode::Always`; see [`write_ledger_file`].
    /// Failures are logged once per streak.
    fn write_ledger(&self) -> Result<()> {
        self.write_ledger_synced(false)
    }

    fn write_ledger_synced(&self, force_sync: bool) -> Result<()> {
        let mut held = self.ledger_io.lock().unwrap_or_else(|p| p.into_inner());
        let (head, dir, sync) = {
            let s = self.lock();
            if s.head == s.ledger_written && !s.ledger_stale && !force_sync {
                return Ok(());
            }
            let sync = force_sync || s.opts.fsync == FsyncMode::Always;
            (s.head, s.dir.clone(), sync)
        };
        let res = write_ledger_file(&mut held, &dir, head, sync);
        let mut s = self.lock();
        s.ledger_at = Instant::now();
        match res {
            Ok(()) => {
                s.ledger_written = s.ledger_written.max(head);
                s.ledger_stale = false;
                if s.ledger_failed {
                    tracing::info!(dir = %dir.display(), "buffer ledger written again");
                }
                s.ledger_failed = false;
                Ok(())
            }
            Err(e) => {
                s.ledger_errors += 1;
                if !s.ledger_failed {
                    tracing::warn!(error = %e, "cannot write the buffer ledger; acknowledged records may be sent again after a restart; will retry");
                }
                s.ledger_failed = true;
                Err(e)
            }
        }
    }
}

/// The background thread: deletes acknowledged segments, syncs every `sync_every` (interval
/// mode) and writes the ledger when due, until `stop`.
fn background(shared: Arc<Shared>, dir: PathBuf, sync_every: Option<Duration>) {
    let mut last_sync = Instant::now();
    let mut guard = shared.lock();
    loop {
        // Checked before waiting too: `stop` may have been set before this thread first ran.
        if guard.stop {
            return;
        }
        let mut wait = MAX_TICK;
        if let Some(d) = sync_every {
            wait = wait.min(d.saturating_sub(last_sync.elapsed()));
        }
        if (guard.head != guard.ledger_written || guard.ledger_stale) && !guard.ledger_failed {
            wait = wait.min(
                guard
                    .opts
                    .ledger_interval
                    .saturating_sub(guard.ledger_at.elapsed()),
            );
        }
        if !wait.is_zero() {
            guard.bg_until = Some(Instant::now() + wait);
            guard = match shared.wake.wait_timeout(guard, wait) {
                Ok((g, _)) => g,
                Err(p) => p.into_inner().0,
            };
            guard.bg_until = None;
        }
        if guard.stop {
            return;
        }
        guard.delete_acked_segments();
        let mut synced = false;
        if let Some(d) = sync_every
            && last_sync.elapsed() >= d
        {
            synced = true;
            drop(guard);
            if let Err(e) = shared.sync_now(&dir) {
                tracing::warn!(error = %e, "background buffer sync failed");
            }
            last_sync = Instant::now();
            guard = shared.lock();
            if guard.stop {
                return;
            }
        }
        // A pending ledger goes with the sync, though not yet due on its own: one wake-up
        // a second for both instead of two a few milliseconds apart.
        let pending = guard.head != guard.ledger_written && !guard.ledger_failed;
        if guard.ledger_due() || (synced && pending) {
            drop(guard);
            // Logged inside (once per streak).
            let _ = shared.write_ledger();
            guard = shared.lock();
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
            ledger_stale: false,
            ledger_at: Instant::now(),
            ledger_failed: false,
            delete_failed: false,
            epochs: VecDeque::new(),
            epoch_from_recovery: false,
            written_gen: 0,
            synced_gen: 0,
            unsynced: Vec::new(),
            segment_syncs: 0,
            syncs_skipped: 0,
            dir_dirty: false,
            oldest: None,
            dropped_full: DropCount::default(),
            dropped_max_age: DropCount::default(),
            corrupt: rec.report.corrupt_records,
            sync_errors: 0,
            ledger_errors: 0,
            delete_errors: 0,
            delete_counted: Instant::now(),
            stop: false,
            bg_until: None,
            _lock: lock,
        };
        if let Some(ts) = rec.newest_ts {
            // Records of earlier runs are aged as if this run had started right after the
            // newest of them was written: the time the agent was down (or a clock set
            // forward meanwhile, which cannot be told apart from it) adds no age.
            let mono = mono_ms(&*opts.clock);
            state
                .epochs
                .push_back((0, i64::try_from(ts).unwrap_or(i64::MAX) - mono));
            state.epoch_from_recovery = true;
        }
        let mut ledger_file = None;
        if rec.ledger_stale {
            // Not fatal: on a full disk the background thread retries once space is freed.
            match write_ledger_file(&mut ledger_file, &dir, rec.head, true) {
                Ok(()) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "cannot rewrite the buffer ledger at open; will retry");
                    state.ledger_stale = true;
                    state.ledger_failed = true;
                    state.ledger_errors += 1;
                }
            }
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

        let sync_every = match opts.fsync {
            FsyncMode::Interval(d) => Some(d),
            _ => None,
        };
        let shared = Arc::new(Shared {
            state: Mutex::new(state),
            wake: Condvar::new(),
            ledger_io: Mutex::new(ledger_file),
        });
        let syncer = {
            let (s, d) = (Arc::clone(&shared), dir.clone());
            Some(
                std::thread::Builder::new()
                    .name("tfo-buffer-sync".into())
                    .spawn(move || background(s, d, sync_every))
                    .ctx("start sync thread for", &dir)?,
            )
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

    /// Acknowledges every record up to and including `seq`. Segments that became fully
    /// acknowledged are deleted by the background thread (or the next append), and the
    /// ledger is persisted by it within `ledger_interval`, so this does no I/O and is safe to
    /// call from an async task. With a zero `ledger_interval` it writes and fsyncs the ledger
    /// before returning (and returns the error if that fails; the ack itself holds).
    pub fn ack(&self, seq: u64) -> Result<()> {
        let (deletable, zero, newly_due) = {
            let mut s = self.shared.lock();
            let clean = s.head == s.ledger_written && !s.ledger_stale;
            let deletable = s.ack(seq)?;
            // The background thread may be in a long wait (nothing was pending when it
            // began): wake it so the ledger is written within `ledger_interval`. Not when
            // it wakes by then anyway (for the next sync) or is awake (it looks at the
            // head before it sleeps again): a wake-up per acknowledged batch is a
            // measurable share of the agent's CPU.
            let newly_due = clean
                && s.head != s.ledger_written
                && s.bg_until
                    .is_some_and(|u| u > s.ledger_at + s.opts.ledger_interval);
            (deletable, s.opts.ledger_interval.is_zero(), newly_due)
        };
        if deletable || (newly_due && !zero) {
            self.shared.wake.notify_all();
        }
        if zero {
            self.shared.write_ledger()?;
        }
        Ok(())
    }

    /// The sequence number the next append gets (cheap: no I/O).
    pub fn next_seq(&self) -> u64 {
        self.shared.lock().next_seq
    }

    /// Whether the next [`Log::read_batch`] is served from the memory tail (no disk read).
    /// Callers on an async runtime can move the read to a blocking thread when it is not.
    pub fn next_read_in_memory(&self) -> bool {
        let s = self.shared.lock();
        let want = s.cursor.seq.max(s.head + 1);
        want >= s.next_seq || s.mem.front().is_some_and(|f| want >= f.seq)
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
    /// stopping at the first younger one. Returns what was discarded. This compares wall
    /// clock times as given; [`Log::expire_older_than`] is immune to clock jumps.
    pub fn expire(&self, max_age: Duration, now_ms: u64) -> Result<Option<Dropped>> {
        self.shared.lock().expire(max_age, now_ms)
    }

    /// Discards records from the head that are at least `max_age` old, stopping at the first
    /// younger one. Age is measured with [`Options::clock`] so that setting the wall clock
    /// forward (or back) does not change it:
    ///
    /// * a record appended by this process is aged by the monotonic time since its append
    ///   (plus how much older than the wall clock at append its timestamp was);
    /// * a record from an earlier run is aged by its timestamp's distance to the newest
    ///   record found at open, plus the monotonic time since open: the downtime between the
    ///   runs (indistinguishable from a clock set forward) adds nothing.
    pub fn expire_older_than(&self, max_age: Duration) -> Result<Option<Dropped>> {
        self.shared.lock().expire_older_than(max_age)
    }

    /// Age of the oldest unacknowledged record, measured as [`Log::expire_older_than`] does.
    pub fn oldest_age(&self) -> Option<Duration> {
        self.shared.lock().oldest_age()
    }

    /// Flushes everything appended so far to disk (no-op in `Always` mode), unless all of
    /// it is already acknowledged: then only a new segment's directory entry is synced.
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
        let due = self.shared.lock().ledger_due();
        if due {
            self.shared.write_ledger()?;
        }
        Ok(())
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
        let mode = {
            let mut s = self.shared.lock();
            s.delete_acked_segments();
            s.opts.fsync
        };
        if mode != FsyncMode::Never {
            result = self.sync();
        }
        // A clean stop leaves a synced ledger: a restart after a later power cut sends
        // nothing twice.
        let r = self.shared.write_ledger_synced(true);
        if result.is_ok() {
            result = r;
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
        ledger_errors: 0,
        delete_errors: 0,
        segment_syncs: 0,
        syncs_skipped: 0,
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
