//! Crash-proof disk buffer for tfo-agent: an append-only log of CRC-framed records in
//! bounded segment files, with an in-memory tail, an acknowledgement ledger and size bounds.
//!
//! The agent opens one [`Log`] per signal (`<buffer>/metrics`, `<buffer>/logs`), appends every
//! encoded batch before it counts as buffered, and lets the exporter read batches, send them
//! and [`Log::ack`] them. The properties it relies on:
//!
//! * **A process crash loses nothing that was appended.** [`Log::append`] hands the whole
//!   framed record to the kernel with `write(2)` before it returns, in every [`FsyncMode`];
//!   only a power failure can lose what the fsync mode has not yet synced.
//! * **Acknowledgements may repeat, records are never lost.** The acknowledged position lives
//!   in a small ledger file replaced atomically; after a crash, at most the records
//!   acknowledged since the last ledger write are delivered again.
//! * **Damage is skipped and counted, never fatal.** Recovery truncates a torn tail, skips
//!   corrupt records and unreadable segment files, and reports what it did in a
//!   [`RecoveryReport`]. Opening fails only when the directory itself cannot be used.
//! * **Everything is bounded**: disk use by `max_total_bytes` (exactly, excluding the
//!   20-byte ledger and the lock file), memory by `memory_limit_bytes`.
//!
//! ```no_run
//! use std::time::Duration;
//! use tfo_buffer::{Log, Options};
//!
//! # fn main() -> tfo_buffer::Result<()> {
//! let log = Log::open("/var/lib/tfo-agent/buffer/metrics", Options::default())?;
//! let outcome = log.append(1_700_000_000_000, b"encoded request".to_vec())?;
//! if let Some(d) = outcome.dropped {
//!     eprintln!("dropped {} records ({} bytes): {}", d.records, d.bytes, d.reason);
//! }
//! let batch = log.read_batch(100, 4 << 20)?;
//! // … send the batch; on success:
//! if let Some(last) = batch.last() {
//!     log.ack(last.seq)?;
//! } else {
//!     log.rewind(); // after a failed send, read the unacknowledged records again
//! }
//! log.expire(Duration::from_secs(24 * 3600), 1_700_000_000_000)?;
//! log.close()?;
//! # Ok(())
//! # }
//! ```
//!
//! The on-disk format and the exact guarantees are documented in `docs/buffer.md`.

mod error;
mod format;
mod log;
mod recovery;
mod segment;

use std::fmt;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub use bytes::Bytes;
pub use error::{DiskFault, Error, Result};
pub use log::{Inspection, Log, inspect};
pub use recovery::{LedgerStatus, RecoveryReport};

/// When appended records are flushed to stable storage with `fdatasync`.
///
/// In every mode the record has been written to the kernel when `append` returns, so a
/// process crash (`kill -9`, panic, OOM kill) loses nothing. The modes differ only in what a
/// power failure or kernel crash can lose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsyncMode {
    /// `fdatasync` before `append` returns: a power failure loses nothing that was appended.
    Always,
    /// A background thread syncs at most every interval: a power failure loses at most the
    /// records appended during the last interval (plus whatever the disk itself lied about).
    Interval(Duration),
    /// Never sync; the kernel writes back when it likes (typically within 30 s on Linux).
    Never,
}

/// What `append` does when the record does not fit in `max_total_bytes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhenFull {
    /// Delete the oldest segment(s), unacknowledged records included, and report them as
    /// dropped with [`DropReason::Full`].
    DropOldest,
    /// Fail with [`Error::Full`]; the caller applies backpressure (waits and retries).
    Reject,
}

/// The two clocks the log needs: the wall clock (unix milliseconds, may jump) and a
/// monotonic clock (never jumps, counts real elapsed time). Injected for tests through
/// [`Options::clock`]; [`SystemClock`] otherwise.
pub trait Clock: Send + Sync + fmt::Debug {
    /// Wall-clock time in unix milliseconds.
    fn wall_ms(&self) -> u64;
    /// Monotonic time since an arbitrary fixed origin.
    fn monotonic(&self) -> Duration;
}

/// `SystemTime` and `Instant`.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn wall_ms(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    fn monotonic(&self) -> Duration {
        static ORIGIN: OnceLock<Instant> = OnceLock::new();
        ORIGIN.get_or_init(Instant::now).elapsed()
    }
}

/// A clock moved by hand, for tests: [`ManualClock::advance`] moves both clocks (time
/// passes), [`ManualClock::jump`] moves only the wall clock (someone set the time).
#[derive(Debug, Default)]
pub struct ManualClock {
    wall_ms: AtomicI64,
    mono_ms: AtomicU64,
}

impl ManualClock {
    /// A clock whose wall time is `wall_ms`.
    pub fn new(wall_ms: u64) -> Arc<ManualClock> {
        Arc::new(ManualClock {
            wall_ms: AtomicI64::new(i64::try_from(wall_ms).unwrap_or(i64::MAX)),
            mono_ms: AtomicU64::new(0),
        })
    }

    /// Real time passes: both clocks move forward.
    pub fn advance(&self, d: Duration) {
        let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        self.mono_ms.fetch_add(ms, Ordering::SeqCst);
        self.wall_ms
            .fetch_add(i64::try_from(ms).unwrap_or(i64::MAX), Ordering::SeqCst);
    }

    /// The wall clock is set forward (positive) or back (negative); no time passes.
    pub fn jump(&self, ms: i64) {
        self.wall_ms.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn wall_ms(&self) -> u64 {
        u64::try_from(self.wall_ms.load(Ordering::SeqCst)).unwrap_or(0)
    }

    fn monotonic(&self) -> Duration {
        Duration::from_millis(self.mono_ms.load(Ordering::SeqCst))
    }
}

/// Configuration of a [`Log`].
#[derive(Debug, Clone)]
pub struct Options {
    /// Size at which a new segment file is started (a record is never split, so a segment
    /// can exceed it by one record). Clamped to `max_total_bytes / 8` so that dropping the
    /// oldest segment never discards more than an eighth of the buffer.
    pub segment_bytes: u64,
    /// Bound on the bytes of all segment files together.
    pub max_total_bytes: u64,
    /// Bound on the payload bytes of the newest records kept in memory for the reader.
    pub memory_limit_bytes: u64,
    /// See [`FsyncMode`].
    pub fsync: FsyncMode,
    /// See [`WhenFull`].
    pub when_full: WhenFull,
    /// The ledger is rewritten at most this often on `ack` (and by the background thread
    /// when acks stop). `Duration::ZERO` writes it on every `ack`. After a crash, at most the
    /// records acknowledged during this interval are delivered again.
    pub ledger_interval: Duration,
    /// Wall and monotonic clock, used by [`Log::expire_older_than`] and [`Log::oldest_age`]
    /// so that setting the wall clock forward does not age the backlog.
    pub clock: Arc<dyn Clock>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            segment_bytes: 32 << 20,
            max_total_bytes: 500 << 20,
            memory_limit_bytes: 16 << 20,
            fsync: FsyncMode::Interval(Duration::from_secs(1)),
            when_full: WhenFull::DropOldest,
            ledger_interval: Duration::from_secs(1),
            clock: Arc::new(SystemClock),
        }
    }
}

impl Options {
    fn validate(&self) -> Result<()> {
        if self.max_total_bytes < 64 {
            return Err(Error::InvalidOptions(format!(
                "max_total_bytes is {}, it must be at least 64",
                self.max_total_bytes
            )));
        }
        if self.segment_bytes == 0 {
            return Err(Error::InvalidOptions("segment_bytes must not be 0".into()));
        }
        if self.fsync == FsyncMode::Interval(Duration::ZERO) {
            return Err(Error::InvalidOptions(
                "fsync interval must be positive (use FsyncMode::Always to sync every append)"
                    .into(),
            ));
        }
        Ok(())
    }

    /// Segment size actually used.
    fn effective_segment_bytes(&self) -> u64 {
        self.segment_bytes.min((self.max_total_bytes / 8).max(1))
    }
}

/// One record read from the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Sequence number, assigned by `append`, strictly increasing.
    pub seq: u64,
    /// The timestamp given to `append` (unix milliseconds).
    pub timestamp_ms: u64,
    /// The payload given to `append`.
    pub payload: Bytes,
}

/// Why records were discarded without being acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// `max_total_bytes` reached with [`WhenFull::DropOldest`].
    Full,
    /// Older than the `max_age` given to [`Log::expire`].
    MaxAge,
}

impl DropReason {
    /// The label used in metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::Full => "full",
            DropReason::MaxAge => "max_age",
        }
    }
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Records discarded by one operation. `bytes` are on-disk bytes (32-byte header + payload).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dropped {
    /// Why.
    pub reason: DropReason,
    /// How many unacknowledged records.
    pub records: u64,
    /// Their framed size.
    pub bytes: u64,
}

/// Result of a successful [`Log::append`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendOutcome {
    /// Sequence number of the appended record.
    pub seq: u64,
    /// Records deleted to make room, if any.
    pub dropped: Option<Dropped>,
}

/// Cumulative counts of discarded records and their framed bytes, since the log was opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DropCount {
    /// Records.
    pub records: u64,
    /// Framed bytes.
    pub bytes: u64,
}

/// A snapshot of the state of a log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Bytes of all segment files.
    pub disk_bytes: u64,
    /// Number of segment files.
    pub segments: usize,
    /// Unacknowledged records (counted by sequence number; records found corrupt are excluded
    /// once they have been discovered).
    pub records: u64,
    /// Records held in the memory tail.
    pub memory_records: usize,
    /// Payload bytes held in the memory tail.
    pub memory_bytes: u64,
    /// Timestamp of the oldest unacknowledged record.
    pub oldest_timestamp_ms: Option<u64>,
    /// Everything below this sequence number is acknowledged or dropped.
    pub first_unacked_seq: u64,
    /// Sequence number the next append gets.
    pub next_seq: u64,
    /// Dropped because the buffer was full, since open.
    pub dropped_full: DropCount,
    /// Dropped by `expire`, since open.
    pub dropped_max_age: DropCount,
    /// Records lost to corruption, since open, including those found by recovery.
    pub corrupt_records: u64,
    /// Failed background or explicit syncs, since open.
    pub sync_errors: u64,
    /// Failed ledger writes, since open (each is retried; until one succeeds, a restart
    /// may send acknowledged records again).
    pub ledger_errors: u64,
    /// Failed attempts to delete a fully acknowledged segment, since open (retried; the
    /// space stays in use meanwhile).
    pub delete_errors: u64,
    /// Segment files flushed with `fdatasync` by interval or explicit syncs, since open.
    pub segment_syncs: u64,
    /// Syncs that flushed no segment because every record appended was already
    /// acknowledged, since open.
    pub syncs_skipped: u64,
}
