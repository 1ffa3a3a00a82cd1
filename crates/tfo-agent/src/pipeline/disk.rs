//! The durable buffer: one `tfo_buffer::Log` per signal under `buffer.path/<signal>/`, with
//! a bounded memory fallback for when the disk fails.
//!
//! A record is stored as `items (u32 LE) ++ encoded Export*ServiceRequest`, so the exporter
//! can count what it sends without decoding. Appends are write-through (in the kernel before
//! `push` returns; fsync per `buffer.fsync`), and the log keeps the newest records in memory
//! so a healthy exporter never reads the disk.
//!
//! The log counts what it discards in records; the agent counts data points. Item counts of
//! records appended or read by this process are kept in a small map (one entry per unacked
//! record), so drops are reported in both units; records that were dropped after a restart
//! before ever being read are reported in records only.
//!
//! **Degraded mode.** When an append fails because of the disk (full or read-only file
//! system, I/O error), or the log cannot be opened at all, new records go to a memory
//! [`Queue`] bounded by `buffer.memory_limit_mb` (what it pushes out is counted as
//! `disk_error`), so collection and export go on. Entering and leaving are logged once and
//! shown by `tfo_agent_buffer_degraded`. Every [`DISK_RETRY`] a push (or `maintain`) tries
//! the disk again: it opens the log if needed and writes the memory records back into it,
//! or appends the new record; on success the buffer is durable again.
//!
//! **Order.** Each memory record is tagged with the log's next sequence number when it was
//! queued: it is newer than every log record below the tag and older than every one at or
//! above it. The exporter merges the two by that rule, so each series stays oldest-first
//! whatever mix of disk and memory records is waiting. Write-back happens only when the
//! records belong at the log's end (nothing was appended since they were queued).
//!
//! **Blocking.** `push`, `maintain`, `publish` and `close` may block (appends, fsync in
//! `always` mode, `when_full: block`, reading the disk): call them from blocking threads.
//! `next_batch`, `ack` and `rewind` are called from the async export task: `ack` and `rewind`
//! do no I/O (the log deletes segments and writes its ledger on its own thread);
//! `next_batch` reads the disk only when the exporter is behind the log's memory tail, and
//! then runs the read through `block_in_place`.

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::{BufMut, Bytes, BytesMut};
use tfo_buffer::{Entry, FsyncMode, Log, Options, WhenFull};
use tfo_exporter::encode::count_units;
use tfo_exporter::{Record, Signal};
use tokio::sync::Notify;

use super::buffer::{Batch, Pushed};
use super::queue::Queue;
use crate::events::{DropReason, Event, Stats};
use crate::self_metrics;

/// How often a degraded buffer tries the disk again.
pub const DISK_RETRY: Duration = Duration::from_secs(5);

/// At most this often a blocked producer logs that the buffer is full.
const FULL_WARN_EVERY: Duration = Duration::from_secs(60);

pub struct DiskSettings {
    pub dir: PathBuf,
    pub max_bytes: u64,
    pub memory_bytes: u64,
    pub fsync: FsyncMode,
    pub block_when_full: bool,
    pub max_age: Duration,
    /// How often acknowledgements are written to the ledger (what a crash may send again).
    pub ledger_interval: Duration,
}

pub struct DiskBuffer {
    signal: Signal,
    dir: PathBuf,
    opts: Options,
    max_age: Duration,
    block_when_full: bool,
    stats: Arc<Stats>,
    pub batch_ready: Notify,
    batch_units: AtomicUsize,
    /// Items waiting since the last batch was taken (wakes the exporter at batch_size).
    pending_units: AtomicUsize,
    /// Read from the log but not yet in a batch (a batch stops before exceeding max_items).
    holdover: Mutex<VecDeque<Entry>>,
    /// Items per unacked sequence number, for records this process appended or read.
    items: Mutex<BTreeMap<u64, u32>>,
    /// Records with a smaller sequence were written by an earlier process: replayed.
    first_new_seq: AtomicU64,
    corrupt_seen: AtomicU64,
    /// The log's housekeeping counters as last published (they restart with each open).
    housekeeping_seen: Mutex<Housekeeping>,
    /// `None` while the log could not be opened, and after `close`.
    log: RwLock<Option<Log>>,
    /// Memory records (degraded mode, or producers released while the log was full).
    fallback: Queue,
    /// Held while moving records between `fallback` and the log, and by the exporter while
    /// it takes from or returns to `fallback`, so the order tags stay true.
    fallback_io: Mutex<()>,
    /// Serializes producers with the switches into and out of degraded mode.
    route: Mutex<Route>,
    degraded: AtomicBool,
    closing: AtomicBool,
    /// Set by `close_producers`: a producer waiting for room (`when_full: block`) returns.
    producers_closed: Mutex<bool>,
    room: Condvar,
    retry_every: Duration,
    /// When "buffer full" was last logged.
    full_warned: Mutex<Option<Instant>>,
}

struct Route {
    /// When degraded mode began; `None` when the disk log takes appends.
    degraded_since: Option<Instant>,
    /// When the disk was last tried.
    last_try: Instant,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64
}

fn encode(r: &Record) -> Bytes {
    if r.stored.len() == r.body.len() + 4 && r.stored.get(..4) == Some(&r.items.to_le_bytes()[..]) {
        return r.stored.clone();
    }
    let mut payload = BytesMut::with_capacity(4 + r.body.len());
    payload.put_u32_le(r.items);
    payload.extend_from_slice(&r.body);
    payload.freeze()
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Runs `f`, which may block, from async code: through `block_in_place` on the agent's
/// multi-threaded runtime, directly elsewhere (blocking threads, tests).
fn may_block<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

impl DiskBuffer {
    fn new(s: &DiskSettings, signal: Signal, stats: Arc<Stats>) -> Self {
        let opts = Options {
            max_total_bytes: s.max_bytes,
            memory_limit_bytes: s.memory_bytes,
            fsync: s.fsync,
            when_full: if s.block_when_full {
                WhenFull::Reject
            } else {
                WhenFull::DropOldest
            },
            ledger_interval: s.ledger_interval,
            ..Options::default()
        };
        DiskBuffer {
            signal,
            dir: s.dir.join(signal.as_str()),
            opts,
            max_age: s.max_age,
            block_when_full: s.block_when_full,
            batch_ready: Notify::new(),
            batch_units: AtomicUsize::new(1),
            pending_units: AtomicUsize::new(0),
            holdover: Mutex::new(VecDeque::new()),
            items: Mutex::new(BTreeMap::new()),
            first_new_seq: AtomicU64::new(1),
            corrupt_seen: AtomicU64::new(0),
            housekeeping_seen: Mutex::new(Housekeeping::default()),
            log: RwLock::new(None),
            fallback: Queue::fallback(
                signal,
                usize::try_from(s.memory_bytes).unwrap_or(usize::MAX),
                stats.clone(),
            ),
            fallback_io: Mutex::new(()),
            route: Mutex::new(Route {
                degraded_since: None,
                last_try: Instant::now(),
            }),
            degraded: AtomicBool::new(false),
            closing: AtomicBool::new(false),
            producers_closed: Mutex::new(false),
            room: Condvar::new(),
            retry_every: DISK_RETRY,
            full_warned: Mutex::new(None),
            stats,
        }
    }

    /// Opens the log, or starts degraded (memory only, with a warning) when the directory
    /// cannot be used (read-only, missing and uncreatable, full, locked by another process);
    /// the disk is tried again every [`DISK_RETRY`].
    ///
    /// The one exception is a directory locked by another process that stays locked for
    /// `lock_wait`: two agents on one buffer would each think the other's data is theirs
    /// (the second would run from memory and drop it at stop). Waiting covers an agent
    /// that is still stopping (a restart, a rolling update); then this fails, naming the
    /// directory.
    pub fn open_or_degraded(
        s: &DiskSettings,
        signal: Signal,
        stats: Arc<Stats>,
        lock_wait: Duration,
    ) -> Result<Self, String> {
        let b = DiskBuffer::new(s, signal, stats);
        let give_up = Instant::now() + lock_wait;
        let mut said = false;
        loop {
            match Log::open(&b.dir, b.opts.clone()) {
                Ok(log) => {
                    b.install(log);
                    break;
                }
                Err(tfo_buffer::Error::Locked { path }) if Instant::now() < give_up => {
                    if !said {
                        tracing::warn!(
                            signal = signal.as_str(),
                            path = %path.display(),
                            wait_s = lock_wait.as_secs_f64(),
                            "buffer directory locked by another process; waiting for it to stop"
                        );
                        said = true;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(tfo_buffer::Error::Locked { path }) => {
                    return Err(format!(
                        "buffer directory {} is in use by another process (its lock file is held): \
                         is another tfo-agent running with the same buffer.path? Each agent needs \
                         its own buffer.path",
                        path.display()
                    ));
                }
                Err(e) => {
                    let mut route = lock(&b.route);
                    b.enter_degraded(&mut route, &e);
                    break;
                }
            }
        }
        Ok(b)
    }

    #[cfg(test)]
    pub(crate) fn set_retry_every(&mut self, d: Duration) {
        self.retry_every = d;
    }

    /// Takes an opened log into use (at start, or when the disk works again).
    fn install(&self, log: Log) {
        let rep = log.recovery().clone();
        tracing::info!(
            signal = self.signal.as_str(),
            path = %self.dir.display(),
            records = rep.records,
            bytes = rep.bytes,
            segments = rep.segments,
            corrupt_records = rep.corrupt_records,
            truncated_bytes = rep.truncated_bytes,
            skipped_segments = rep.skipped_segments,
            ledger = ?rep.ledger,
            "buffer recovered"
        );
        self.first_new_seq.store(rep.next_seq, Ordering::Relaxed);
        self.corrupt_seen.store(0, Ordering::Relaxed);
        *lock(&self.housekeeping_seen) = Housekeeping::default();
        {
            // What waits in memory is newer than everything recovered from the disk.
            let _io = lock(&self.fallback_io);
            self.fallback.retag_all(rep.next_seq);
            *self.log.write().unwrap_or_else(|p| p.into_inner()) = Some(log);
        }
        self.account_corruption();
        if rep.records > 0 {
            // A backlog from the previous run: send it without waiting for a flush tick.
            self.batch_ready.notify_one();
        }
    }

    /// Whether new records go to memory because the disk failed.
    pub fn is_degraded(&self) -> bool {
        self.degraded.load(Ordering::Relaxed)
    }

    fn with_log<T>(&self, f: impl FnOnce(&Log) -> T) -> Option<T> {
        let g = self.log.read().unwrap_or_else(|p| p.into_inner());
        g.as_ref().map(f)
    }

    pub fn set_batch_units(&self, n: usize) {
        self.batch_units.store(n.max(1), Ordering::Relaxed);
    }

    fn enter_degraded(&self, route: &mut Route, e: &tfo_buffer::Error) {
        route.last_try = Instant::now();
        if route.degraded_since.is_some() {
            tracing::debug!(signal = self.signal.as_str(), error = %e, "disk buffer still unusable");
            return;
        }
        route.degraded_since = Some(Instant::now());
        self.degraded.store(true, Ordering::Relaxed);
        let fault = e.disk_fault().map_or("other", |f| f.as_str());
        tracing::warn!(
            signal = self.signal.as_str(),
            path = %self.dir.display(),
            fault,
            error = %e,
            retry_every_s = self.retry_every.as_secs_f64(),
            "disk buffer unusable: new data waits in memory (buffer.memory_limit_mb; beyond it the oldest is dropped as disk_error) until the disk works again"
        );
    }

    fn leave_degraded(&self, route: &mut Route, written_back: usize) {
        let Some(since) = route.degraded_since.take() else {
            return;
        };
        self.degraded.store(false, Ordering::Relaxed);
        tracing::info!(
            signal = self.signal.as_str(),
            path = %self.dir.display(),
            degraded_for_s = since.elapsed().as_secs_f64(),
            written_back,
            "disk buffer works again"
        );
    }

    fn to_fallback(&self, r: Record) {
        let tag = self.with_log(|l| l.next_seq()).unwrap_or(0);
        let units = r.units;
        self.fallback.push_tagged(r, tag);
        self.note_pending(units);
    }

    fn note_pending(&self, units: u32) {
        let pending = self
            .pending_units
            .fetch_add(units as usize, Ordering::Relaxed)
            + units as usize;
        if pending >= self.batch_units.load(Ordering::Relaxed) {
            self.batch_ready.notify_one();
        }
    }

    /// Tries the disk again: opens the log if needed and writes the memory records back.
    /// True when the caller may go on and append to the log (which proves the disk works).
    fn try_disk(&self, route: &mut Route) -> bool {
        route.last_try = Instant::now();
        if self.closing.load(Ordering::Relaxed) {
            return false;
        }
        if self.with_log(|_| ()).is_none() {
            match Log::open(&self.dir, self.opts.clone()) {
                Ok(log) => self.install(log),
                Err(e) => {
                    tracing::debug!(signal = self.signal.as_str(), error = %e, "disk buffer still unusable");
                    return false;
                }
            }
        }
        match self.write_back() {
            Ok(0) => true,
            Ok(k) => {
                self.leave_degraded(route, k);
                true
            }
            Err(e) => {
                self.enter_degraded(route, &e);
                false
            }
        }
    }

    /// Appends the memory records to the log while they belong at its end (tagged with its
    /// next sequence number). Returns how many; on an append error the rest stays in memory.
    fn write_back(&self) -> Result<usize, tfo_buffer::Error> {
        let _io = lock(&self.fallback_io);
        let Some(tag) = self.with_log(|l| l.next_seq()) else {
            return Ok(0);
        };
        let mut k = 0;
        let res = loop {
            let Some(r) = self.fallback.pop_front_if_tag(tag) else {
                break Ok(k);
            };
            match self.with_log(|l| l.append(now_ms(), encode(&r))) {
                Some(Ok(out)) => {
                    lock(&self.items).insert(out.seq, r.items);
                    if let Some(d) = out.dropped {
                        self.account_drop(d);
                    }
                    k += 1;
                }
                Some(Err(e)) => {
                    self.fallback.push_front_tagged(r, tag);
                    break Err(e);
                }
                None => {
                    self.fallback.push_front_tagged(r, tag);
                    break Ok(k);
                }
            }
        };
        if k > 0 {
            // What is left is newer than what was just written.
            if let Some(next) = self.with_log(|l| l.next_seq()) {
                self.fallback.retag_all(next);
            }
            self.batch_ready.notify_one();
        }
        res
    }

    fn producers_closed(&self) -> bool {
        *lock(&self.producers_closed)
    }

    /// Releases producers waiting for room (`when_full: block`) and makes later pushes
    /// that find the log full keep the record in memory instead of waiting.
    pub fn close_producers(&self) {
        *lock(&self.producers_closed) = true;
        self.room.notify_all();
    }

    /// Undoes [`DiskBuffer::close_producers`] (after a reload).
    pub fn open_producers(&self) {
        *lock(&self.producers_closed) = false;
    }

    fn wait_for_room(&self) {
        let g = lock(&self.producers_closed);
        if !*g {
            let _ = self.room.wait_timeout(g, Duration::from_millis(100));
        }
    }

    /// Adds a record: to the disk log, or to memory while the disk fails. On a full log with
    /// `when_full: block` this waits for room until [`DiskBuffer::close_producers`], so call
    /// it from a blocking thread. A producer released while waiting leaves its record in
    /// memory for the final flush.
    pub fn push(&self, r: Record) -> Pushed {
        self.push_inner(r, false, None)
    }

    /// Like [`DiskBuffer::push`], but a producer released while waiting for room gets its
    /// record back ([`Pushed::Returned`], to produce it again) instead of leaving it in memory: for a source that
    /// can read it again (the log collector, which then does not commit its position).
    pub fn push_or_return(&self, r: Record) -> Pushed {
        self.push_inner(r, true, None)
    }

    /// Like [`DiskBuffer::push_or_return`], but waits for room only until `deadline`: for
    /// a producer that answers a client (the OTLP receiver), which then asks it to retry.
    pub fn push_until(&self, r: Record, deadline: Instant) -> Pushed {
        self.push_inner(r, true, Some(deadline))
    }

    fn push_inner(&self, r: Record, give_back: bool, deadline: Option<Instant>) -> Pushed {
        let payload = encode(&r);
        let mut route = lock(&self.route);
        if route.degraded_since.is_some()
            && (route.last_try.elapsed() < self.retry_every || !self.try_disk(&mut route))
        {
            self.to_fallback(r);
            return Pushed::Memory;
        }
        let mut waited = false;
        loop {
            let res = self.with_log(|log| log.append(now_ms(), payload.clone()));
            match res {
                None if self.closing.load(Ordering::Relaxed) => {
                    if give_back {
                        return Pushed::Returned;
                    }
                    self.drop_event(DropReason::Shutdown, 1, r.items as u64, "buffer closed");
                    return Pushed::Dropped;
                }
                None => {
                    // Not open (cannot happen outside degraded mode, handled above).
                    self.to_fallback(r);
                    return Pushed::Memory;
                }
                Some(Ok(out)) => {
                    lock(&self.items).insert(out.seq, r.items);
                    if let Some(d) = out.dropped {
                        self.account_drop(d);
                    }
                    self.leave_degraded(&mut route, 0);
                    break;
                }
                Some(Err(tfo_buffer::Error::Full { .. })) if self.block_when_full => {
                    if self.producers_closed() || deadline.is_some_and(|d| Instant::now() >= d) {
                        if give_back {
                            return Pushed::Returned;
                        }
                        // Stopping: keep it in memory for the final flush; what is still
                        // there at close is appended if room appeared, else counted `full`.
                        self.to_fallback(r);
                        return Pushed::Memory;
                    }
                    if !waited {
                        waited = true;
                        // Once a minute at most: a producer faster than the exporter fills
                        // the log again every time a segment is freed.
                        let mut last = lock(&self.full_warned);
                        if last.is_none_or(|t| t.elapsed() >= FULL_WARN_EVERY) {
                            *last = Some(Instant::now());
                            tracing::warn!(
                                signal = self.signal.as_str(),
                                counted_in = self_metrics::BUFFER_BACKPRESSURE,
                                "buffer full (buffer.max_size_mb); when_full: block holds the producer until there is room"
                            );
                        }
                    }
                    let t = Instant::now();
                    self.wait_for_room();
                    self.stats.add(
                        self_metrics::BUFFER_BACKPRESSURE,
                        format!("signal=\"{}\"", self.signal.as_str()),
                        t.elapsed().as_micros() as u64,
                    );
                }
                Some(Err(e)) if e.disk_fault().is_some() => {
                    self.enter_degraded(&mut route, &e);
                    self.to_fallback(r);
                    return Pushed::Memory;
                }
                Some(Err(e)) => {
                    let reason = match e {
                        tfo_buffer::Error::Full { .. } | tfo_buffer::Error::TooLarge { .. } => {
                            DropReason::Full
                        }
                        _ => DropReason::DiskError,
                    };
                    self.drop_event(
                        reason,
                        1,
                        r.items as u64,
                        &format!("cannot append to the buffer: {e}"),
                    );
                    return Pushed::Dropped;
                }
            }
        }
        drop(route);
        if waited {
            tracing::debug!(
                signal = self.signal.as_str(),
                "buffer has room again; the producer goes on"
            );
        }
        self.note_pending(r.units);
        Pushed::Durable
    }

    /// Records held in memory (degraded mode, released producers) that are neither in the
    /// disk log nor settled yet, including those in a batch being sent.
    pub fn memory_outstanding(&self) -> usize {
        // Write-back holds this lock while a record is between memory and the log.
        let _io = lock(&self.fallback_io);
        self.fallback.outstanding()
    }

    fn lock_items(&self) -> MutexGuard<'_, BTreeMap<u64, u32>> {
        lock(&self.items)
    }

    /// Sequence number of the next log record for the exporter, reading ahead if needed.
    fn peek_log(&self, h: &mut VecDeque<Entry>) -> Option<u64> {
        if h.is_empty() {
            let read = self.with_log(|log| {
                if log.next_read_in_memory() && self.opts.fsync != FsyncMode::Always {
                    log.read_batch(64, 4 << 20)
                } else {
                    may_block(|| log.read_batch(64, 4 << 20))
                }
            });
            match read {
                Some(Ok(entries)) => h.extend(entries),
                Some(Err(e)) => {
                    tracing::error!(signal = self.signal.as_str(), error = %e, "buffer read failed");
                }
                None => {}
            }
        }
        h.front().map(|e| e.seq)
    }

    /// Up to `max_units` units (what `batch_size` counts) and `max_bytes`, oldest first (at
    /// least one record if any), from the log or the memory fallback.
    pub fn next_batch(&self, max_units: usize, max_bytes: usize) -> Batch {
        let fb = (self.fallback.len().0 > 0).then(|| lock(&self.fallback_io));
        let fb_tag = fb.as_ref().and_then(|_| self.fallback.front_tag());
        if let Some(tag) = fb_tag {
            let log_front = self.peek_log(&mut lock(&self.holdover));
            if log_front.is_none_or(|s| s >= tag) {
                // Memory records older than the next log record go first.
                let taken = self.fallback.pop_batch_tagged(
                    max_units,
                    max_bytes,
                    log_front.unwrap_or(u64::MAX),
                );
                drop(fb);
                self.pending_units.store(0, Ordering::Relaxed);
                let (records, tags) = taken.into_iter().unzip();
                return Batch {
                    records,
                    last_seq: None,
                    fallback_tags: Some(tags),
                };
            }
        }
        drop(fb);
        self.log_batch(max_units, max_bytes, fb_tag)
    }

    /// Up to `max_units` units and `max_bytes` from the log, stopping before sequence
    /// `stop_at` (where the memory records' turn comes); reads the item and unit counts of
    /// each record.
    fn log_batch(&self, max_units: usize, max_bytes: usize, stop_at: Option<u64>) -> Batch {
        let mut batch = Batch {
            records: Vec::new(),
            last_seq: None,
            fallback_tags: None,
        };
        let (mut n, mut bytes) = (0usize, 0usize);
        loop {
            let next = {
                let mut h = lock(&self.holdover);
                let Some(seq) = self.peek_log(&mut h) else {
                    break;
                };
                if stop_at.is_some_and(|s| seq >= s) {
                    break;
                }
                let Some(front) = h.front() else { break };
                let units = self.units_of(&front.payload) as usize;
                if !batch.records.is_empty()
                    && (n + units > max_units || bytes + front.payload.len() > max_bytes)
                {
                    break;
                }
                h.pop_front()
            };
            let Some(e) = next else { break };
            if e.seq < self.first_new_seq.load(Ordering::Relaxed) {
                self.stats.add(
                    self_metrics::BUFFER_REPLAYED,
                    format!("signal=\"{}\"", self.signal.as_str()),
                    1,
                );
            }
            batch.last_seq = Some(e.seq);
            if e.payload.len() < 4 {
                // Intact frame, but not one of ours: skip it (acknowledged with the batch).
                self.drop_event(
                    DropReason::Corrupt,
                    1,
                    0,
                    "record too short to be a request",
                );
                continue;
            }
            let items =
                u32::from_le_bytes([e.payload[0], e.payload[1], e.payload[2], e.payload[3]]);
            self.lock_items().insert(e.seq, items);
            let units = self.units_of(&e.payload);
            let body = e.payload.slice(4..);
            n += units as usize;
            bytes += e.payload.len();
            batch.records.push(Record {
                signal: self.signal,
                items,
                units,
                body,
                stored: e.payload,
            });
        }
        self.pending_units.store(0, Ordering::Relaxed);
        batch
    }

    /// What `batch_size` counts in a stored record (`items ++ request`): for logs and
    /// traces, its log records or spans, which are its items; for metrics, its OTLP metrics, read from the framing.
    fn units_of(&self, payload: &[u8]) -> u32 {
        match (self.signal, payload.get(..4)) {
            (_, None) => 0,
            (Signal::Logs | Signal::Traces, Some(p)) => {
                u32::from_le_bytes([p[0], p[1], p[2], p[3]]).max(1)
            }
            (Signal::Metrics, Some(_)) => count_units(&payload[4..]),
        }
    }

    /// The batch was delivered or dropped: acknowledge it in the log (no I/O).
    pub fn settle(&self, batch: &Batch) {
        if let Some(seq) = batch.last_seq {
            self.ack(seq);
        }
        if batch.fallback_tags.is_some() {
            self.fallback.settled(batch.records.len());
        }
    }

    /// The batch is still owed: it is taken again first.
    pub fn give_back(&self, batch: Batch) {
        match batch.fallback_tags {
            Some(tags) => {
                let _io = lock(&self.fallback_io);
                self.fallback
                    .requeue_front_tagged(batch.records.into_iter().zip(tags).collect());
            }
            None => self.rewind(),
        }
    }

    pub fn ack(&self, seq: u64) {
        {
            let mut m = self.lock_items();
            let rest = m.split_off(&(seq + 1));
            *m = rest;
        }
        let res = if self.opts.fsync == FsyncMode::Always {
            // The log's lock may be held by an append that is fsyncing.
            may_block(|| self.with_log(|log| log.ack(seq)))
        } else {
            self.with_log(|log| log.ack(seq))
        };
        if let Some(Err(e)) = res {
            tracing::error!(signal = self.signal.as_str(), error = %e, "buffer acknowledge failed; records may be sent again after a restart");
        }
        self.room.notify_all();
    }

    pub fn rewind(&self) {
        lock(&self.holdover).clear();
        self.with_log(|log| log.rewind());
    }

    /// Counts records the log discarded (full or max_age); the items of those this process
    /// knows about come from the map.
    fn account_drop(&self, d: tfo_buffer::Dropped) {
        let first = self
            .with_log(|log| log.stats().first_unacked_seq)
            .unwrap_or(0);
        let items: u64 = {
            let mut m = self.lock_items();
            let rest = m.split_off(&first);
            let gone: u64 = m.values().map(|v| *v as u64).sum();
            *m = rest;
            gone
        };
        // Records dropped from under the reader are gone; the log moves its cursor past them.
        lock(&self.holdover).retain(|e| e.seq >= first);
        let reason = match d.reason {
            tfo_buffer::DropReason::Full => DropReason::Full,
            tfo_buffer::DropReason::MaxAge => DropReason::MaxAge,
        };
        let detail = match reason {
            DropReason::Full => "buffer.max_size_mb reached; oldest records dropped",
            _ => "older than buffer.max_age",
        };
        self.drop_event(reason, d.records, items, detail);
    }

    fn account_corruption(&self) {
        let Some(total) = self.with_log(|log| log.stats().corrupt_records) else {
            return;
        };
        let before = self.corrupt_seen.swap(total, Ordering::Relaxed);
        if total > before {
            self.drop_event(
                DropReason::Corrupt,
                total - before,
                0,
                "damaged records in the buffer (checksum or framing); skipped",
            );
        }
    }

    fn drop_event(&self, reason: DropReason, records: u64, items: u64, detail: &str) {
        self.stats.emit(Event::BufferDropped {
            signal: self.signal,
            reason,
            records,
            items,
            detail,
        });
    }

    /// Periodic upkeep (blocking): retries the disk when degraded, writes records kept in
    /// memory back to the log, `max_age` expiry, corruption found while reading.
    pub fn maintain(&self) {
        // A producer waiting for room holds the route; skip this round then.
        if let Ok(mut route) = self.route.try_lock() {
            if route.degraded_since.is_some() {
                if route.last_try.elapsed() >= self.retry_every && self.fallback.len().0 > 0 {
                    self.try_disk(&mut route);
                }
            } else if self.fallback.len().0 > 0
                && let Err(e) = self.write_back()
                && e.disk_fault().is_some()
            {
                self.enter_degraded(&mut route, &e);
            }
        }
        match self.with_log(|log| log.expire_older_than(self.max_age)) {
            Some(Ok(Some(d))) => self.account_drop(d),
            Some(Err(e)) => {
                tracing::error!(signal = self.signal.as_str(), error = %e, "buffer expiry failed")
            }
            _ => {}
        }
        self.account_corruption();
    }

    /// At shutdown, after the final flush: what is still in memory goes to the log if it
    /// fits (counted `full` if the log is full, `disk_error` if the disk fails), then the log
    /// is closed with the rest for the next start.
    pub fn close(&self) {
        self.closing.store(true, Ordering::Relaxed);
        self.close_producers();
        let _route = lock(&self.route);
        {
            let _io = lock(&self.fallback_io);
            let mut disk_failed: Option<String> = None;
            let mut out_of_order = 0usize;
            let (mut full, mut full_items, mut lost, mut lost_items) = (0u64, 0u64, 0u64, 0u64);
            let next = self.with_log(|l| l.next_seq());
            for (r, tag) in self
                .fallback
                .pop_batch_tagged(usize::MAX, usize::MAX, u64::MAX)
            {
                if disk_failed.is_some() {
                    lost += 1;
                    lost_items += r.items as u64;
                    continue;
                }
                match self.with_log(|l| l.append(now_ms(), encode(&r))) {
                    Some(Ok(out)) => {
                        if let Some(d) = out.dropped {
                            self.account_drop(d);
                        }
                        if next.is_some_and(|n| tag < n) {
                            out_of_order += 1;
                        }
                    }
                    Some(Err(
                        tfo_buffer::Error::Full { .. } | tfo_buffer::Error::TooLarge { .. },
                    )) => {
                        full += 1;
                        full_items += r.items as u64;
                    }
                    Some(Err(e)) => {
                        disk_failed = Some(e.to_string());
                        lost += 1;
                        lost_items += r.items as u64;
                    }
                    None => {
                        disk_failed = Some("the disk buffer is not open".into());
                        lost += 1;
                        lost_items += r.items as u64;
                    }
                }
            }
            if out_of_order > 0 {
                tracing::warn!(
                    signal = self.signal.as_str(),
                    records = out_of_order,
                    "records kept in memory were written to the disk buffer after newer ones; they are sent after them at the next start"
                );
            }
            if full > 0 {
                self.drop_event(
                    DropReason::Full,
                    full,
                    full_items,
                    "still in memory at shutdown and the disk buffer is full (buffer.max_size_mb)",
                );
            }
            if let Some(e) = disk_failed {
                self.drop_event(
                    DropReason::DiskError,
                    lost,
                    lost_items,
                    &format!(
                        "still in memory at shutdown and the disk buffer cannot be written: {e}"
                    ),
                );
            }
        }
        let log = self.log.write().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(log) = log {
            let left = log.stats();
            match log.close() {
                Ok(()) if left.records == 0 => tracing::info!(
                    signal = self.signal.as_str(),
                    "buffer closed; everything in it was delivered"
                ),
                Ok(()) => tracing::info!(
                    signal = self.signal.as_str(),
                    records = left.records,
                    disk_bytes = left.disk_bytes,
                    "buffer closed; what is left is sent after the next start"
                ),
                Err(e) => {
                    tracing::error!(signal = self.signal.as_str(), error = %e, "buffer close failed")
                }
            }
        }
    }

    pub fn publish(&self, stats: &Arc<Stats>) {
        let l = format!("signal=\"{}\"", self.signal.as_str());
        let (fb_records, fb_bytes) = self.fallback.len();
        let (s, age) = self
            .with_log(|log| (log.stats(), log.oldest_age()))
            .unwrap_or_default();
        stats.set(
            self_metrics::BUFFER_BYTES,
            l.clone(),
            (s.disk_bytes + fb_bytes as u64) as f64,
        );
        stats.set(
            self_metrics::BUFFER_RECORDS,
            l.clone(),
            (s.records + fb_records as u64) as f64,
        );
        stats.set(
            self_metrics::BUFFER_OLDEST_AGE,
            l.clone(),
            age.map_or(0.0, |a| a.as_secs_f64()),
        );
        stats.set(
            self_metrics::BUFFER_DEGRADED,
            l.clone(),
            if self.is_degraded() { 1.0 } else { 0.0 },
        );
        self.publish_housekeeping(stats, &l, Housekeeping::of(&s));
    }

    /// Adds what the log's counters moved since the last call (the log logs each failure
    /// streak itself; this makes it countable).
    fn publish_housekeeping(&self, stats: &Arc<Stats>, l: &str, now: Housekeeping) {
        let before = std::mem::replace(&mut *lock(&self.housekeeping_seen), now);
        let d = now.since(before);
        for (op, n) in [
            ("sync", d.sync_errors),
            ("ledger", d.ledger_errors),
            ("delete", d.delete_errors),
        ] {
            stats.add(
                self_metrics::BUFFER_IO_ERRORS,
                format!("{l},op=\"{op}\""),
                n,
            );
        }
        stats.add(
            self_metrics::BUFFER_SEGMENT_SYNCS,
            l.to_owned(),
            d.segment_syncs,
        );
        stats.add(
            self_metrics::BUFFER_SYNCS_SKIPPED,
            l.to_owned(),
            d.syncs_skipped,
        );
    }
}

/// The log's counters of background work, which `publish` turns into `/metrics` counters.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Housekeeping {
    sync_errors: u64,
    ledger_errors: u64,
    delete_errors: u64,
    segment_syncs: u64,
    syncs_skipped: u64,
}

impl Housekeeping {
    fn of(s: &tfo_buffer::Stats) -> Self {
        Housekeeping {
            sync_errors: s.sync_errors,
            ledger_errors: s.ledger_errors,
            delete_errors: s.delete_errors,
            segment_syncs: s.segment_syncs,
            syncs_skipped: s.syncs_skipped,
        }
    }

    /// What moved since `before`; a counter below its old value belongs to a log opened
    /// since, so all of it is new.
    fn since(self, before: Housekeeping) -> Housekeeping {
        let d = |now: u64, was: u64| if now >= was { now - was } else { now };
        Housekeeping {
            sync_errors: d(self.sync_errors, before.sync_errors),
            ledger_errors: d(self.ledger_errors, before.ledger_errors),
            delete_errors: d(self.delete_errors, before.delete_errors),
            segment_syncs: d(self.segment_syncs, before.segment_syncs),
            syncs_skipped: d(self.syncs_skipped, before.syncs_skipped),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::process::Command;
    use std::sync::mpsc;

    use super::*;
    use tfo_exporter::encode::MAX_REQUEST_BYTES;

    /// A read-only bind mount over a directory, undone (lazily) when dropped, also when the
    /// test panics.
    struct ReadOnly(PathBuf);

    impl ReadOnly {
        fn mount(dir: &Path) -> Result<ReadOnly, String> {
            let run = |args: &[&str]| -> Result<(), String> {
                let out = Command::new("mount")
                    .args(args)
                    .output()
                    .map_err(|e| e.to_string())?;
                if out.status.success() {
                    Ok(())
                } else {
                    Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
                }
            };
            let p = dir.to_str().ok_or("path")?;
            run(&["--bind", p, p])?;
            let guard = ReadOnly(dir.to_path_buf());
            run(&["-o", "remount,bind,ro", p])?;
            Ok(guard)
        }
    }

    impl Drop for ReadOnly {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }

    /// Mounts read-only, or prints why the test is skipped and returns `None`.
    fn read_only(dir: &Path) -> Option<ReadOnly> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipped: a read-only bind mount needs root");
            return None;
        }
        match ReadOnly::mount(dir) {
            Ok(m) => Some(m),
            Err(e) => {
                eprintln!("skipped: cannot mount read-only ({e})");
                None
            }
        }
    }

    fn settings(dir: &Path, max_bytes: u64, block: bool) -> DiskSettings {
        DiskSettings {
            dir: dir.to_path_buf(),
            max_bytes,
            memory_bytes: 4 << 20,
            fsync: FsyncMode::Never,
            block_when_full: block,
            max_age: Duration::from_secs(24 * 3600),
            ledger_interval: Duration::from_secs(1),
        }
    }

    /// A record whose item count identifies it.
    fn rec(id: u32, len: usize) -> Record {
        Record {
            signal: Signal::Metrics,
            items: id,
            // What the log reads back for a body that is not a request.
            units: 1,
            body: Bytes::from(vec![id as u8; len]),
            stored: Bytes::new(),
        }
    }

    fn buffer(dir: &Path, max_bytes: u64, block: bool, stats: &Arc<Stats>) -> DiskBuffer {
        let mut b = DiskBuffer::open_or_degraded(
            &settings(dir, max_bytes, block),
            Signal::Metrics,
            stats.clone(),
            Duration::ZERO,
        )
        .expect("not locked");
        b.set_retry_every(Duration::ZERO);
        b
    }

    /// Takes and settles batches of at most `max_items` until empty; the ids in order.
    fn drain(b: &DiskBuffer, max_items: usize) -> Vec<u32> {
        let mut out = Vec::new();
        loop {
            let batch = b.next_batch(max_items, MAX_REQUEST_BYTES);
            if batch.records.is_empty() && batch.last_seq.is_none() {
                return out;
            }
            out.extend(batch.records.iter().map(|r| r.items));
            b.settle(&batch);
        }
    }

    fn dropped(stats: &Stats, reason: &str) -> u64 {
        stats.counter(
            self_metrics::BUFFER_DROPPED_RECORDS,
            &format!("signal=\"metrics\",reason=\"{reason}\""),
        )
    }

    fn degraded_gauge(b: &DiskBuffer, stats: &Arc<Stats>) -> Option<f64> {
        b.publish(stats);
        stats.gauge(self_metrics::BUFFER_DEGRADED, "signal=\"metrics\"")
    }

    #[test]
    fn housekeeping_counts_only_what_moved_and_all_of_a_reopened_log() {
        let h = |sync_errors, segment_syncs| Housekeeping {
            sync_errors,
            segment_syncs,
            ..Housekeeping::default()
        };
        assert_eq!(h(3, 10).since(h(1, 4)), h(2, 6));
        // A log opened since starts its counters at zero again.
        assert_eq!(h(1, 2).since(h(3, 10)), h(1, 2));
    }

    #[test]
    fn a_record_with_its_stored_form_is_stored_without_a_copy() {
        let r = Record::from_stored(Signal::Metrics, 1, vec![7, 0, 0, 0, 1, 2, 3]);
        let stored = encode(&r);
        assert_eq!(stored.as_ptr(), r.stored.as_ptr());
        assert_eq!(&stored[..], &[7, 0, 0, 0, 1, 2, 3]);
        // Without one (or with one that does not match), the buffer frames it itself.
        let mut plain = r.clone();
        plain.stored = Bytes::new();
        assert_eq!(&encode(&plain)[..], &[7, 0, 0, 0, 1, 2, 3]);
        plain.items = 9;
        plain.stored = r.stored.clone();
        assert_eq!(&encode(&plain)[..], &[9, 0, 0, 0, 1, 2, 3]);
    }
    #[test]
    fn disk_fault_falls_back_to_memory_and_returns_to_disk_in_order() {
        let tmp = tempfile::tempdir().unwrap();
        let stats = Arc::new(Stats::default());
        // 1 MiB log: 128 KiB segments, so a new segment is needed every dozen records.
        let b = buffer(tmp.path(), 1 << 20, false, &stats);
        for id in 0..5 {
            b.push(rec(id, 10_000));
        }
        assert!(!b.is_degraded());
        let mut next = 5;
        {
            let Some(_ro) = read_only(&tmp.path().join("metrics")) else {
                return;
            };
            while !b.is_degraded() {
                b.push(rec(next, 10_000));
                next += 1;
                assert!(
                    next < 100,
                    "a read-only file system never degraded the buffer"
                );
            }
            for _ in 0..10 {
                b.push(rec(next, 10_000));
                next += 1;
            }
            assert_eq!(degraded_gauge(&b, &stats), Some(1.0));
            // The exporter goes on: first what the log holds, in order.
            // (Ids are item counts: 0 + 1 + 2 items fit a batch of 3.)
            let batch = b.next_batch(3, MAX_REQUEST_BYTES);
            assert_eq!(
                batch.records.iter().map(|r| r.items).collect::<Vec<_>>(),
                vec![0, 1, 2]
            );
            b.settle(&batch);
        }
        // Writable again: the next push writes the memory records back, then itself.
        b.push(rec(next, 10_000));
        next += 1;
        assert!(!b.is_degraded());
        assert_eq!(degraded_gauge(&b, &stats), Some(0.0));
        assert_eq!(b.fallback.len().0, 0, "written back to the log");
        assert_eq!(drain(&b, 25), (3..next).collect::<Vec<_>>());
        assert_eq!(dropped(&stats, "disk_error"), 0);
        assert_eq!(dropped(&stats, "full"), 0);
        b.close();
    }

    #[test]
    fn a_memory_batch_given_back_after_the_disk_returns_keeps_its_place() {
        let tmp = tempfile::tempdir().unwrap();
        let stats = Arc::new(Stats::default());
        let b = buffer(tmp.path(), 1 << 20, false, &stats);
        for id in 0..5 {
            b.push(rec(id, 10_000));
        }
        let mut next = 5;
        let in_flight;
        {
            let Some(_ro) = read_only(&tmp.path().join("metrics")) else {
                return;
            };
            while !b.is_degraded() || next < 20 {
                b.push(rec(next, 10_000));
                next += 1;
            }
            let on_disk = drain_upto_fallback(&b);
            assert!(on_disk.iter().copied().eq(0..on_disk.len() as u32));
            // The exporter holds two memory records while the disk comes back.
            in_flight = b.next_batch(2 * (on_disk.len() as usize + 2) + 1, MAX_REQUEST_BYTES);
            assert!(in_flight.fallback_tags.is_some());
            assert!(!in_flight.records.is_empty());
        }
        b.push(rec(next, 10_000));
        next += 1;
        assert!(!b.is_degraded());
        let first = in_flight.records[0].items;
        b.give_back(in_flight);
        assert_eq!(drain(&b, 1000), (first..next).collect::<Vec<_>>());
        b.close();
    }

    /// Settles log batches until the next batch would come from memory; returns their ids.
    fn drain_upto_fallback(b: &DiskBuffer) -> Vec<u32> {
        let mut out = Vec::new();
        loop {
            let batch = b.next_batch(1, MAX_REQUEST_BYTES);
            if batch.fallback_tags.is_some() || batch.records.is_empty() {
                b.give_back(batch);
                return out;
            }
            out.extend(batch.records.iter().map(|r| r.items));
            b.settle(&batch);
        }
    }

    #[test]
    fn an_unusable_directory_at_start_is_memory_mode_until_it_works() {
        let tmp = tempfile::tempdir().unwrap();
        let stats = Arc::new(Stats::default());
        // A backlog from an earlier run.
        let b = buffer(tmp.path(), 1 << 20, false, &stats);
        for id in 0..3 {
            b.push(rec(id, 100));
        }
        b.close();
        let b;
        {
            let Some(_ro) = read_only(tmp.path()) else {
                return;
            };
            b = buffer(tmp.path(), 1 << 20, false, &stats);
            assert!(
                b.is_degraded(),
                "a read-only directory at start is degraded mode"
            );
            b.push(rec(3, 100));
            b.push(rec(4, 100));
            // The collector is reachable: memory records are exported meanwhile.
            let batch = b.next_batch(1, MAX_REQUEST_BYTES);
            assert_eq!(
                batch.records.iter().map(|r| r.items).collect::<Vec<_>>(),
                vec![3]
            );
            b.give_back(batch);
        }
        b.push(rec(5, 100));
        assert!(!b.is_degraded());
        // The earlier run's backlog is older than what waited in memory.
        assert_eq!(drain(&b, 1000), vec![0, 1, 2, 3, 4, 5]);
        assert_eq!(
            stats.counter(self_metrics::BUFFER_REPLAYED, "signal=\"metrics\""),
            3
        );
        b.close();
    }

    #[test]
    fn degraded_memory_is_bounded_and_what_it_pushes_out_is_disk_error() {
        let tmp = tempfile::tempdir().unwrap();
        let stats = Arc::new(Stats::default());
        let Some(ro) = read_only(tmp.path()) else {
            return;
        };
        let s = DiskSettings {
            memory_bytes: 50_000,
            ..settings(tmp.path(), 1 << 20, false)
        };
        let b = DiskBuffer::open_or_degraded(&s, Signal::Metrics, stats.clone(), Duration::ZERO)
            .expect("not locked");
        assert!(b.is_degraded());
        for id in 0..10 {
            b.push(rec(id, 10_000));
        }
        assert_eq!(dropped(&stats, "disk_error"), 5);
        assert_eq!(dropped(&stats, "full"), 0);
        assert_eq!(
            stats.counter(
                self_metrics::DROPPED_ITEMS,
                "signal=\"metrics\",reason=\"disk_error\""
            ),
            (0..5).sum::<u32>() as u64
        );
        // Shutdown while the disk is still unusable: the rest is counted, as disk_error.
        b.close();
        drop(ro);
        assert_eq!(dropped(&stats, "disk_error"), 10);
    }

    #[test]
    fn close_producers_releases_a_blocked_push_and_keeps_its_record() {
        let tmp = tempfile::tempdir().unwrap();
        let stats = Arc::new(Stats::default());
        // 64 KiB log with when_full: block; records of 4 KiB fill it quickly.
        let b = Arc::new(buffer(tmp.path(), 64 << 10, true, &stats));
        let (tx, rx) = mpsc::channel();
        let producer = {
            let b = b.clone();
            std::thread::spawn(move || {
                for id in 0..40 {
                    b.push(rec(id, 4000));
                    let _ = tx.send(id);
                }
            })
        };
        // The producer stops when the log is full…
        let mut last = None;
        while let Ok(id) = rx.recv_timeout(Duration::from_millis(500)) {
            last = Some(id);
        }
        let stuck_at = last.map_or(0, |l| l + 1);
        assert!(stuck_at < 39, "the producer never blocked");
        // …until stop releases it: every later push returns at once.
        b.close_producers();
        producer.join().unwrap();
        assert_eq!(rx.try_iter().last(), Some(39));
        assert_eq!(dropped(&stats, "full"), 0, "nothing dropped yet");
        assert_eq!(dropped(&stats, "shutdown"), 0);
        // The final flush delivers the oldest ones (room appears), then shutdown appends
        // what fits and counts the rest as full.
        let delivered = {
            let mut out = Vec::new();
            for _ in 0..5 {
                let batch = b.next_batch(1, MAX_REQUEST_BYTES);
                out.extend(batch.records.iter().map(|r| r.items));
                b.settle(&batch);
            }
            out
        };
        assert!(delivered.len() >= 5);
        assert!(delivered.iter().copied().eq(0..delivered.len() as u32));
        b.close();
        let kept = {
            let again = buffer(tmp.path(), 64 << 10, true, &stats);
            let ids = drain(&again, 1000);
            again.close();
            ids
        };
        // Nothing lost silently: kept + counted = pushed - delivered; kept are in order.
        assert_eq!(
            kept.len() as u64 + dropped(&stats, "full"),
            40 - delivered.len() as u64
        );
        assert!(kept.windows(2).all(|w| w[0] < w[1]), "{kept:?}");
        assert!(kept.contains(&stuck_at), "the released record was kept");
    }

    #[test]
    fn push_or_return_blocks_counts_backpressure_and_hands_back_at_stop() {
        let tmp = tempfile::tempdir().unwrap();
        let stats = Arc::new(Stats::default());
        let b = Arc::new(buffer(tmp.path(), 64 << 10, true, &stats));
        let (tx, rx) = mpsc::channel();
        let producer = {
            let b = b.clone();
            std::thread::spawn(move || {
                for id in 0..40 {
                    let p = b.push_or_return(rec(id, 4000));
                    let _ = tx.send((id, p));
                }
            })
        };
        let mut durable = 0;
        while let Ok((_, p)) = rx.recv_timeout(Duration::from_millis(500)) {
            assert!(matches!(p, Pushed::Durable), "{p:?}");
            durable += 1;
        }
        assert!(durable < 40, "the producer never blocked");
        // Room appears (a whole segment acknowledged): the blocked producer goes on,
        // nothing was dropped.
        for _ in 0..4 {
            let batch = b.next_batch(1, MAX_REQUEST_BYTES);
            b.settle(&batch);
        }
        let (id, p) = rx.recv_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(id, durable);
        assert!(matches!(p, Pushed::Durable), "{p:?}");
        std::thread::sleep(Duration::from_millis(300));
        b.close_producers();
        producer.join().unwrap();
        // What fitted in the room made is durable; after the release every record that
        // finds the log full is handed back.
        let rest: Vec<_> = rx.try_iter().collect();
        let k = rest
            .iter()
            .position(|(_, p)| matches!(p, Pushed::Returned))
            .expect("the producer blocked again and was released");
        assert!(rest[..k].iter().all(|(_, p)| matches!(p, Pushed::Durable)));
        assert!(
            rest[k..].iter().all(|(_, p)| matches!(p, Pushed::Returned)),
            "{rest:?}"
        );
        assert_eq!(b.memory_outstanding(), 0, "nothing kept in memory");
        assert_eq!(dropped(&stats, "full"), 0);
        let waited = stats.counter(self_metrics::BUFFER_BACKPRESSURE, "signal=\"metrics\"");
        assert!(waited >= 300_000, "backpressure counted: {waited} µs");
        b.close();
    }

    #[test]
    fn memory_held_records_are_outstanding_until_settled_or_written_back() {
        let tmp = tempfile::tempdir().unwrap();
        let stats = Arc::new(Stats::default());
        let Some(ro) = read_only(tmp.path()) else {
            return;
        };
        let b = buffer(tmp.path(), 1 << 20, true, &stats);
        assert!(matches!(b.push_or_return(rec(1, 100)), Pushed::Memory));
        assert!(matches!(b.push_or_return(rec(2, 100)), Pushed::Memory));
        assert_eq!(b.memory_outstanding(), 2);
        let batch = b.next_batch(1, MAX_REQUEST_BYTES);
        assert_eq!(
            b.memory_outstanding(),
            2,
            "a batch in flight is outstanding"
        );
        b.give_back(batch);
        assert_eq!(b.memory_outstanding(), 2);
        let batch = b.next_batch(1, MAX_REQUEST_BYTES);
        b.settle(&batch);
        assert_eq!(b.memory_outstanding(), 1, "delivered");
        drop(ro);
        assert!(matches!(b.push_or_return(rec(3, 100)), Pushed::Durable));
        assert_eq!(b.memory_outstanding(), 0, "written back to the disk log");
        assert_eq!(drain(&b, 100), vec![2, 3]);
        b.close();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn reading_a_backlog_from_disk_in_an_async_task_works() {
        let tmp = tempfile::tempdir().unwrap();
        let stats = Arc::new(Stats::default());
        {
            let b = buffer(tmp.path(), 64 << 20, false, &stats);
            for id in 0..50 {
                b.push(rec(id, 1000));
            }
            b.close();
        }
        let b = Arc::new(buffer(tmp.path(), 64 << 20, false, &stats));
        let b2 = b.clone();
        let ids = tokio::spawn(async move { drain(&b2, 7) }).await.unwrap();
        assert_eq!(ids, (0..50).collect::<Vec<_>>());
        let b3 = b.clone();
        tokio::task::spawn_blocking(move || b3.close())
            .await
            .unwrap();
    }
}
