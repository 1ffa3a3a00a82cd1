//! The bounded in-memory queue between encoder and exporter.
//!
//! This is the seam where the durable disk buffer plugs in: producers `push` encoded
//! records, the exporter takes batches from the front and either finishes them or puts
//! them back (`requeue_front`) so order is kept. When full, the oldest records are dropped
//! and counted, so collection never blocks on a dead network.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use tfo_exporter::{Record, Signal};
use tokio::sync::Notify;

use crate::events::{DropReason, Event, Stats};

pub struct Queue {
    inner: Mutex<Inner>,
    max_bytes: usize,
    /// Woken when `batch_items` or more items are waiting.
    pub batch_ready: Notify,
    batch_items: std::sync::atomic::AtomicUsize,
    stats: Arc<Stats>,
}

#[derive(Default)]
struct Inner {
    records: VecDeque<Record>,
    bytes: usize,
    items: usize,
}

impl Queue {
    pub fn new(max_bytes: usize, batch_items: usize, stats: Arc<Stats>) -> Self {
        Queue {
            inner: Mutex::new(Inner::default()),
            max_bytes: max_bytes.max(1),
            batch_ready: Notify::new(),
            batch_items: batch_items.max(1).into(),
            stats,
        }
    }

    pub fn set_batch_items(&self, n: usize) {
        self.batch_items
            .store(n.max(1), std::sync::atomic::Ordering::Relaxed);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends a record; drops the oldest records while over the byte bound.
    pub fn push(&self, r: Record) {
        let mut dropped: Vec<(Signal, u64)> = Vec::new();
        let ready = {
            let mut q = self.lock();
            q.bytes += r.body.len();
            q.items += r.items as usize;
            q.records.push_back(r);
            // Keep at least the newest record even if it alone exceeds the bound.
            while q.bytes > self.max_bytes && q.records.len() > 1 {
                let old = q.records.pop_front().expect("len > 1");
                q.bytes -= old.body.len();
                q.items -= old.items as usize;
                dropped.push((old.signal, old.items as u64));
            }
            q.items >= self.batch_items.load(std::sync::atomic::Ordering::Relaxed)
        };
        for (signal, items) in dropped {
            self.stats.emit(Event::Dropped {
                signal,
                reason: DropReason::Full,
                items,
                detail: "queue memory limit reached (buffer.memory_limit_mb); oldest data dropped",
            });
        }
        if ready {
            self.batch_ready.notify_one();
        }
    }

    /// Takes records of one signal from the front, up to `max_items` items (at least one
    /// record). Records keep their order.
    pub fn pop_batch(&self, max_items: usize) -> Vec<Record> {
        let mut q = self.lock();
        let mut out = Vec::new();
        let mut n = 0usize;
        while let Some(front) = q.records.front() {
            if !out.is_empty() {
                let first: &Record = &out[0];
                if front.signal != first.signal || n + front.items as usize > max_items {
                    break;
                }
            }
            let r = q.records.pop_front().expect("front exists");
            q.bytes -= r.body.len();
            q.items -= r.items as usize;
            n += r.items as usize;
            out.push(r);
        }
        out
    }

    /// Puts an unfinished batch back at the front, in its original order.
    pub fn requeue_front(&self, batch: Vec<Record>) {
        let mut q = self.lock();
        for r in batch.into_iter().rev() {
            q.bytes += r.body.len();
            q.items += r.items as usize;
            q.records.push_front(r);
        }
    }

    /// Sets the `tfo_agent_buffer_*` gauges for the memory queue.
    pub fn publish(&self, stats: &Arc<Stats>) {
        let (bytes, records) = {
            let q = self.lock();
            (q.bytes, q.records.len())
        };
        let l = format!("signal=\"{}\"", Signal::Metrics.as_str());
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
            q.records.drain(..).collect()
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

    fn rec(items: u32, len: usize) -> Record {
        Record {
            signal: Signal::Metrics,
            items,
            body: Bytes::from(vec![0u8; len]),
        }
    }

    #[test]
    fn drops_oldest_when_full_and_counts_it() {
        let stats = Arc::new(Stats::default());
        let q = Queue::new(250, 1000, stats.clone());
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
        let q = Queue::new(1 << 20, 100, Arc::new(Stats::default()));
        for i in 1..=5 {
            q.push(rec(40, i));
        }
        let b = q.pop_batch(100);
        assert_eq!(
            b.iter().map(|r| r.body.len()).collect::<Vec<_>>(),
            vec![1, 2]
        );
        q.requeue_front(b);
        assert_eq!(q.len_items(), 200);
        let b = q.pop_batch(10);
        assert_eq!(b.len(), 1, "one record even if larger than the limit");
        assert_eq!(b[0].body.len(), 1);
    }
}
