//! The bounded in-memory queue between encoder and exporter.
//!
//! It is the whole buffer with `buffer.enabled: false`, and the disk buffer's fallback while
//! the disk cannot take appends (see `disk.rs`). Producers `push` encoded records, the
//! exporter takes batches from the front and either finishes them or puts them back
//! (`requeue_front`) so order is kept. When full, the oldest records are dropped and counted
//! (reason `full`, or `disk_error` for the fallback), so collection never blocks on a dead
//! network or disk.
//!
//! Each record carries a tag, used only by the fallback: the disk log's next sequence
//! number when the record was queued, which says where it sits in the order of the log.
//!
//! Records taken by the exporter count as in flight until they are settled or given back,
//! so [`Queue::outstanding`] says whether anything pushed so far may still be lost with the
//! process (the log collector commits file positions of memory-held records only when
//! nothing is outstanding).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use tfo_exporter::{Record, Signal};
use tokio::sync::Notify;

use crate::events::{DropReason, Event, Stats};

pub struct Queue {
    signal: Signal,
    inner: Mutex<Inner>,
    max_bytes: usize,
    /// Reason and detail of what the byte bound pushes out.
    overflow: (DropReason, &'static str),
    /// Count overflow as disk-buffer records too (`tfo_agent_buffer_dropped_records_total`).
    buffer_events: bool,
    /// Woken when `batch_units` or more units (what `batch_size` counts) are waiting.
    pub batch_ready: Notify,
    batch_units: std::sync::atomic::AtomicUsize,
    /// Set at stop and reload: a producer waiting for room returns.
    producers_closed: std::sync::atomic::AtomicBool,
    stats: Arc<Stats>,
}

#[derive(Default)]
struct Inner {
    records: VecDeque<(Record, u64)>,
    bytes: usize,
    items: usize,
    /// Units (what `batch_size` counts, see `Record::units`) waiting.
    units: usize,
    /// Records taken by the exporter and not yet settled or given back.
    in_flight: usize,
}

impl Queue {
    pub fn new(signal: Signal, max_bytes: usize, batch_units: usize, stats: Arc<Stats>) -> Self {
        Queue {
            signal,
            inner: Mutex::new(Inner::default()),
            max_bytes: max_bytes.max(1),
            overflow: (
                DropReason::Full,
                "queue memory limit reached (buffer.memory_limit_mb); oldest data dropped",
            ),
            buffer_events: false,
            batch_ready: Notify::new(),
            batch_units: batch_units.max(1).into(),
            producers_closed: false.into(),
            stats,
        }
    }

    /// The disk buffer's memory fallback: what its bound pushes out is counted as
    /// `disk_error` (it could not be kept because the disk failed), in records and items.
    pub fn fallback(signal: Signal, max_bytes: usize, stats: Arc<Stats>) -> Self {
        Queue {
            overflow: (
                DropReason::DiskError,
                "disk buffer unusable and the memory fallback is full (buffer.memory_limit_mb); oldest data dropped",
            ),
            buffer_events: true,
            ..Queue::new(signal, max_bytes, usize::MAX, stats)
        }
    }

    pub fn stats(&self) -> &Arc<Stats> {
        &self.stats
    }

    pub fn set_producers_closed(&self, closed: bool) {
        self.producers_closed
            .store(closed, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn producers_closed(&self) -> bool {
        self.producers_closed
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn set_batch_units(&self, n: usize) {
        self.batch_units
            .store(n.max(1), std::sync::atomic::Ordering::Relaxed);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends a record; drops the oldest records while over the byte bound.
    pub fn push(&self, r: Record) {
        self.push_tagged(r, 0);
    }

    /// Appends a record with an ordering tag (see the module docs).
    pub fn push_tagged(&self, r: Record, tag: u64) {
        let mut dropped: Vec<(Signal, u64)> = Vec::new();
        let ready = {
            let mut q = self.lock();
            q.bytes += r.body.len();
            q.items += r.items as usize;
            q.units += r.units as usize;
            q.records.push_back((r, tag));
            // Keep at least the newest record even if it alone exceeds the bound.
            while q.bytes > self.max_bytes && q.records.len() > 1 {
                let (old, _) = q.records.pop_front().expect("len > 1");
                q.bytes -= old.body.len();
                q.items -= old.items as usize;
                q.units -= old.units as usize;
                dropped.push((old.signal, old.items as u64));
            }
            q.units >= self.batch_units.load(std::sync::atomic::Ordering::Relaxed)
        };
        let (reason, detail) = self.overflow;
        for (signal, items) in dropped {
            if self.buffer_events {
                self.stats.emit(Event::BufferDropped {
                    signal,
                    reason,
                    records: 1,
                    items,
                    detail,
                });
            } else {
                self.stats.emit(Event::Dropped {
                    signal,
                    reason,
                    items,
                    detail,
                });
            }
        }
        if ready {
            self.batch_ready.notify_one();
        }
    }

    /// Takes records of one signal from the front, up to `max_units` units and `max_bytes`
    /// (at least one record). Records keep their order.
    pub fn pop_batch(&self, max_units: usize, max_bytes: usize) -> Vec<Record> {
        self.pop_batch_tagged(max_units, max_bytes, u64::MAX)
            .into_iter()
            .map(|(r, _)| r)
            .collect()
    }

    /// Like [`Queue::pop_batch`], with the tags, stopping before a record tagged above
    /// `max_tag`.
    pub fn pop_batch_tagged(
        &self,
        max_units: usize,
        max_bytes: usize,
        max_tag: u64,
    ) -> Vec<(Record, u64)> {
        let mut q = self.lock();
        let mut out: Vec<(Record, u64)> = Vec::new();
        let (mut n, mut bytes) = (0usize, 0usize);
        while let Some((front, tag)) = q.records.front() {
            if *tag > max_tag {
                break;
            }
            if let Some((first, _)) = out.first()
                && (front.signal != first.signal
                    || n + front.units as usize > max_units
                    || bytes + front.body.len() > max_bytes)
            {
                break;
            }
            let (r, tag) = q.records.pop_front().expect("front exists");
            q.bytes -= r.body.len();
            q.items -= r.items as usize;
            q.units -= r.units as usize;
            n += r.units as usize;
            bytes += r.body.len();
            out.push((r, tag));
        }
        q.in_flight += out.len();
        out
    }

    /// `n` records taken by [`Queue::pop_batch`] were delivered or dropped.
    pub fn settled(&self, n: usize) {
        let mut q = self.lock();
        q.in_flight = q.in_flight.saturating_sub(n);
    }

    /// Records waiting or in flight: what the process would lose if it died now.
    pub fn outstanding(&self) -> usize {
        let q = self.lock();
        q.records.len() + q.in_flight
    }

    /// Whether a record of `bytes` fits without pushing out an older one.
    pub fn has_room(&self, bytes: usize) -> bool {
        let q = self.lock();
        q.records.is_empty() || q.bytes + bytes <= self.max_bytes
    }

    /// Tag of the oldest record, if any.
    pub fn front_tag(&self) -> Option<u64> {
        self.lock().records.front().map(|(_, t)| *t)
    }

    /// Sets every tag to `tag`.
    pub fn retag_all(&self, tag: u64) {
        for (_, t) in self.lock().records.iter_mut() {
            *t = tag;
        }
    }

    /// Takes the oldest record if its tag is `tag`.
    pub fn pop_front_if_tag(&self, tag: u64) -> Option<Record> {
        let mut q = self.lock();
        if q.records.front().is_none_or(|(_, t)| *t != tag) {
            return None;
        }
        let (r, _) = q.records.pop_front()?;
        q.bytes -= r.body.len();
        q.items -= r.items as usize;
        q.units -= r.units as usize;
        Some(r)
    }

    /// Puts one record back at the front (one taken by `pop_front_if_tag`, not in flight).
    pub fn push_front_tagged(&self, r: Record, tag: u64) {
        self.put_front(vec![(r, tag)], false);
    }

    /// Puts an unfinished batch back at the front, in its original order.
    pub fn requeue_front(&self, batch: Vec<Record>) {
        self.requeue_front_tagged(batch.into_iter().map(|r| (r, 0)).collect());
    }

    /// Puts an unfinished tagged batch back at the front, in its original order.
    pub fn requeue_front_tagged(&self, batch: Vec<(Record, u64)>) {
        self.put_front(batch, true);
    }

    fn put_front(&self, batch: Vec<(Record, u64)>, was_in_flight: bool) {
        let mut q = self.lock();
        if was_in_flight {
            q.in_flight = q.in_flight.saturating_sub(batch.len());
        }
        for (r, tag) in batch.into_iter().rev() {
            q.bytes += r.body.len();
            q.items += r.items as usize;
            q.units += r.units as usize;
            q.records.push_front((r, tag));
        }
    }

    /// Records and payload bytes waiting.
    pub fn len(&self) -> (usize, usize) {
        let q = self.lock();
        (q.records.len(), q.bytes)
    }

    /// Sets the `tfo_agent_buffer_*` gauges for the memory queue.
    pub fn publish(&self, stats: &Arc<Stats>) {
        let (bytes, records) = {
            let q = self.lock();
            (q.bytes, q.records.len())
        };
        let l = format!("signal=\"{}\"", self.signal.as_str());
        stats.set(crate::self_metrics::BUFFER_BYTES, l.clone(), bytes as f64);
        stats.set(crate::self_metrics::BUFFER_RECORDS, l, records as f64);
    }

    #[cfg(test)]
    fn len_items(&self) -> usize {
        self.lock().items
    }

    #[cfg(test)]
    fn len_bytes(&self) -> usize {
        self.lock().bytes
    }

    /// Empties the queue, counting and logging everything in it as dropped for `reason`.
    pub fn discard_all(&self, reason: DropReason, detail: &str) {
        let records: Vec<Record> = {
            let mut q = self.lock();
            q.bytes = 0;
            q.items = 0;
            q.units = 0;
            q.records.drain(..).map(|(r, _)| r).collect()
        };
        for r in records {
            self.stats.emit(Event::Dropped {
                signal: r.signal,
                reason,
                items: r.items as u64,
                detail,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use tfo_exporter::encode::MAX_REQUEST_BYTES;

    fn rec(items: u32, len: usize) -> Record {
        Record {
            signal: Signal::Metrics,
            items,
            units: items,
            body: Bytes::from(vec![0u8; len]),
            stored: Bytes::new(),
        }
    }

    #[test]
    fn drops_oldest_when_full_and_counts_it() {
        let stats = Arc::new(Stats::default());
        let q = Queue::new(Signal::Metrics, 250, 1000, stats.clone());
        for i in 0..5 {
            q.push(rec(i + 1, 100));
        }
        assert_eq!(q.len_bytes(), 200);
        assert_eq!(q.len_items(), 4 + 5);
        assert_eq!(
            stats.counter(
                "tfo_agent_dropped_items_total",
                "signal=\"metrics\",reason=\"full\""
            ),
            1 + 2 + 3
        );
    }

    #[test]
    fn batches_respect_item_limit_and_order() {
        let q = Queue::new(Signal::Metrics, 1 << 20, 100, Arc::new(Stats::default()));
        for i in 1..=5 {
            q.push(rec(40, i));
        }
        let b = q.pop_batch(100, MAX_REQUEST_BYTES);
        assert_eq!(
            b.iter().map(|r| r.body.len()).collect::<Vec<_>>(),
            vec![1, 2]
        );
        assert_eq!(q.outstanding(), 5, "taken records are in flight");
        q.requeue_front(b);
        assert_eq!(q.outstanding(), 5);
        assert_eq!(q.len_items(), 200);
        let b = q.pop_batch(10, MAX_REQUEST_BYTES);
        assert_eq!(b.len(), 1, "one record even if larger than the limit");
        assert_eq!(b[0].body.len(), 1);
        q.settled(1);
        assert_eq!(q.outstanding(), 4);
    }

    #[test]
    fn batches_stop_at_the_byte_cap_whichever_limit_comes_first() {
        let q = Queue::new(Signal::Metrics, 1 << 20, 100, Arc::new(Stats::default()));
        for i in 1..=5 {
            q.push(rec(1, i * 100));
        }
        let sizes = |b: &[Record]| b.iter().map(|r| r.body.len()).collect::<Vec<_>>();
        let b = q.pop_batch(1000, 350);
        assert_eq!(
            sizes(&b),
            vec![100, 200],
            "300 bytes; the next would pass 350"
        );
        let b = q.pop_batch(1000, 10);
        assert_eq!(
            sizes(&b),
            vec![300],
            "one record even if larger than the cap"
        );
        let b = q.pop_batch(1, 1 << 20);
        assert_eq!(sizes(&b), vec![400], "the unit limit can come first");
    }
}
