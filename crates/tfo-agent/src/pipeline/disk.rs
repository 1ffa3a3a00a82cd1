//! The durable buffer: one `tfo_buffer::Log` per signal under `buffer.path/<signal>/`.
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

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{BufMut, BytesMut};
use tfo_buffer::{Entry, FsyncMode, Log, Options, WhenFull};
use tfo_exporter::{Record, Signal};
use tokio::sync::Notify;

use super::buffer::Batch;
use crate::events::{DropReason, Event, Stats};
use crate::self_metrics;

pub struct DiskSettings {
    pub dir: PathBuf,
    pub max_bytes: u64,
    pub memory_bytes: u64,
    pub fsync: FsyncMode,
    pub block_when_full: bool,
    pub max_age: Duration,
}

pub struct DiskBuffer {
    signal: Signal,
    log: RwLock<Option<Log>>,
    dir: PathBuf,
    max_age: Duration,
    block_when_full: bool,
    stats: Arc<Stats>,
    pub batch_ready: Notify,
    batch_items: AtomicUsize,
    /// Items waiting since the last batch was taken (wakes the exporter at batch_size).
    pending_items: AtomicUsize,
    /// Read from the log but not yet in a batch (a batch stops before exceeding max_items).
    holdover: Mutex<VecDeque<Entry>>,
    /// Items per unacked sequence number, for records this process appended or read.
    items: Mutex<BTreeMap<u64, u32>>,
    /// Records with a smaller sequence were written by an earlier process: replayed.
    first_new_seq: u64,
    corrupt_seen: AtomicU64,
    closing: AtomicBool,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64
}

impl DiskBuffer {
    pub fn open(s: &DiskSettings, signal: Signal, stats: Arc<Stats>) -> Result<Self, String> {
        let dir = s.dir.join(signal.as_str());
        let opts = Options {
            max_total_bytes: s.max_bytes,
            memory_limit_bytes: s.memory_bytes,
            fsync: s.fsync,
            when_full: if s.block_when_full {
                WhenFull::Reject
            } else {
                WhenFull::DropOldest
            },
            ..Options::default()
        };
        let log = Log::open(&dir, opts).map_err(|e| format!("buffer.path: {e}"))?;
        let rep = log.recovery().clone();
        tracing::info!(
            signal = signal.as_str(),
            path = %dir.display(),
            records = rep.records,
            bytes = rep.bytes,
            segments = rep.segments,
            corrupt_records = rep.corrupt_records,
            truncated_bytes = rep.truncated_bytes,
            skipped_segments = rep.skipped_segments,
            ledger = ?rep.ledger,
            "buffer recovered"
        );
        let b = DiskBuffer {
            signal,
            dir,
            max_age: s.max_age,
            block_when_full: s.block_when_full,
            stats,
            batch_ready: Notify::new(),
            batch_items: AtomicUsize::new(1),
            pending_items: AtomicUsize::new(0),
            holdover: Mutex::new(VecDeque::new()),
            items: Mutex::new(BTreeMap::new()),
            first_new_seq: rep.next_seq,
            corrupt_seen: AtomicU64::new(0),
            closing: AtomicBool::new(false),
            log: RwLock::new(Some(log)),
        };
        b.account_corruption();
        if rep.records > 0 {
            // A backlog from the previous run: send it without waiting for a flush tick.
            b.batch_ready.notify_one();
        }
        Ok(b)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn with_log<T>(&self, f: impl FnOnce(&Log) -> T) -> Option<T> {
        let g = self.log.read().unwrap_or_else(|p| p.into_inner());
        g.as_ref().map(f)
    }

    pub fn set_batch_items(&self, n: usize) {
        self.batch_items.store(n.max(1), Ordering::Relaxed);
    }

    pub fn push(&self, r: Record) {
        let mut payload = BytesMut::with_capacity(4 + r.body.len());
        payload.put_u32_le(r.items);
        payload.extend_from_slice(&r.body);
        let payload = payload.freeze();
        let mut waited = false;
        loop {
            let res = self.with_log(|log| log.append(now_ms(), payload.clone()));
            match res {
                None => {
                    self.drop_event(DropReason::Shutdown, 1, r.items as u64, "buffer closed");
                    return;
                }
                Some(Ok(out)) => {
                    self.lock_items().insert(out.seq, r.items);
                    if let Some(d) = out.dropped {
                        self.account_drop(d);
                    }
                    break;
                }
                Some(Err(tfo_buffer::Error::Full { .. }))
                    if self.block_when_full && !self.closing.load(Ordering::Relaxed) =>
                {
                    if !waited {
                        tracing::warn!(
                            signal = self.signal.as_str(),
                            "buffer full (buffer.max_size_mb); when_full: block holds the producer until there is room"
                        );
                        waited = true;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
                Some(Err(e)) => {
                    self.drop_event(
                        DropReason::Full,
                        1,
                        r.items as u64,
                        &format!("cannot append to the buffer: {e}"),
                    );
                    return;
                }
            }
        }
        let pending = self
            .pending_items
            .fetch_add(r.items as usize, Ordering::Relaxed)
            + r.items as usize;
        if pending >= self.batch_items.load(Ordering::Relaxed) {
            self.batch_ready.notify_one();
        }
    }

    fn lock_items(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, u32>> {
        self.items.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Up to `max_items` items, oldest first; decodes the item count of each record.
    pub fn next_batch(&self, max_items: usize) -> Batch {
        let mut batch = Batch {
            records: Vec::new(),
            last_seq: None,
        };
        let mut n = 0usize;
        loop {
            let next = {
                let mut h = self.holdover.lock().unwrap_or_else(|p| p.into_inner());
                if h.is_empty() {
                    match self.with_log(|log| log.read_batch(64, 4 << 20)) {
                        Some(Ok(entries)) => h.extend(entries),
                        Some(Err(e)) => {
                            tracing::error!(signal = self.signal.as_str(), error = %e, "buffer read failed");
                        }
                        None => {}
                    }
                }
                let Some(front) = h.front() else { break };
                let items = front
                    .payload
                    .get(..4)
                    .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
                    .unwrap_or(0);
                if !batch.records.is_empty() && n + items > max_items {
                    break;
                }
                h.pop_front()
            };
            let Some(e) = next else { break };
            if e.seq < self.first_new_seq {
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
            n += items as usize;
            batch.records.push(Record {
                signal: self.signal,
                items,
                body: e.payload.slice(4..),
            });
        }
        self.pending_items.store(0, Ordering::Relaxed);
        batch
    }

    pub fn ack(&self, seq: u64) {
        {
            let mut m = self.lock_items();
            let rest = m.split_off(&(seq + 1));
            *m = rest;
        }
        if let Some(Err(e)) = self.with_log(|log| log.ack(seq)) {
            tracing::error!(signal = self.signal.as_str(), error = %e, "buffer acknowledge failed; records may be sent again after a restart");
        }
    }

    pub fn rewind(&self) {
        self.holdover
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
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
        self.holdover
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|e| e.seq >= first);
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

    pub fn discard_all(&self, reason: DropReason, detail: &str) {
        loop {
            let b = self.next_batch(usize::MAX);
            let Some(seq) = b.last_seq else { return };
            let items: u64 = b.records.iter().map(|r| r.items as u64).sum();
            self.ack(seq);
            self.drop_event(reason, b.records.len() as u64, items, detail);
        }
    }

    pub fn maintain(&self) {
        match self.with_log(|log| log.expire(self.max_age, now_ms())) {
            Some(Ok(Some(d))) => self.account_drop(d),
            Some(Err(e)) => {
                tracing::error!(signal = self.signal.as_str(), error = %e, "buffer expiry failed")
            }
            _ => {}
        }
        self.account_corruption();
    }

    pub fn close(&self) {
        self.closing.store(true, Ordering::Relaxed);
        let log = self.log.write().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(log) = log {
            let left = log.stats();
            match log.close() {
                Ok(()) => tracing::info!(
                    signal = self.signal.as_str(),
                    records = left.records,
                    bytes = left.disk_bytes,
                    "buffer closed; what is left is sent after the next start"
                ),
                Err(e) => {
                    tracing::error!(signal = self.signal.as_str(), error = %e, "buffer close failed")
                }
            }
        }
    }

    pub fn publish(&self, stats: &Arc<Stats>) {
        let Some(s) = self.with_log(|log| log.stats()) else {
            return;
        };
        let l = format!("signal=\"{}\"", self.signal.as_str());
        stats.set(self_metrics::BUFFER_BYTES, l.clone(), s.disk_bytes as f64);
        stats.set(self_metrics::BUFFER_RECORDS, l.clone(), s.records as f64);
        let age = s
            .oldest_timestamp_ms
            .map(|t| now_ms().saturating_sub(t) as f64 / 1e3)
            .unwrap_or(0.0);
        stats.set(self_metrics::BUFFER_OLDEST_AGE, l, age);
    }
}
