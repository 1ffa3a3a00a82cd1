//! The buffer stage between encoder and exporter, for every signal: either the durable disk
//! log (`buffer.enabled: true`, [`DiskBuffer`], which falls back to memory while the disk
//! fails) or the bounded memory queue ([`Queue`], the low-resource mode). The exporter sees
//! one interface: take a batch, then settle it (delivered or dropped, never to be sent
//! again) or give it back (to be sent again, in the same order).
//!
//! What may block: `push` and `push_or_return` (appends; fsync with `buffer.fsync: always`;
//! wait for room with `when_full: block` until [`Buffer::close_producers`]), `maintain`,
//! `publish`, `shutdown` and `discard_all`: call them from blocking threads. `next_batch`, `settle` and
//! `give_back` are safe in async tasks: they do no file I/O except reading a backlog from the
//! disk, which `next_batch` runs through `tokio::task::block_in_place`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tfo_exporter::{Record, Signal};
use tokio::sync::Notify;

use super::disk::{DiskBuffer, DiskSettings};
use super::queue::Queue;
use crate::events::{DropReason, Stats};
use crate::self_metrics;

pub enum Buffer {
    Memory(Queue),
    Disk(Box<DiskBuffer>),
}

/// Records taken from the buffer for one request. `last_seq` is the position to
/// acknowledge in the disk log once the batch is settled; `fallback_tags` is set when the
/// records came from the disk buffer's memory fallback (their order tags).
pub struct Batch {
    pub records: Vec<Record>,
    pub(super) last_seq: Option<u64>,
    pub(super) fallback_tags: Option<Vec<u64>>,
}

impl Batch {
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }
}

/// What became of a pushed record.
#[derive(Debug)]
pub enum Pushed {
    /// Appended to the disk log: in the kernel (on disk per `buffer.fsync`) before `push`
    /// returned, so it survives the process.
    Durable,
    /// Held in memory (the memory queue, or the disk buffer's fallback while the disk fails
    /// or after producers were released): lost if the process dies before it is delivered
    /// or written to the disk. [`Buffer::memory_outstanding`] says when none is left.
    Memory,
    /// Discarded, and counted with a reason.
    Dropped,
    /// Not taken (the caller still has it to produce again): the buffer was full and
    /// producers were released (stop or reload). Only from [`Buffer::push_or_return`].
    Returned,
}

/// How often a producer waiting for room in the memory queue looks again.
const MEMORY_ROOM_POLL: Duration = Duration::from_millis(10);

impl Buffer {
    /// The disk buffer in `settings.dir/<signal>`, or, when that directory cannot be used
    /// (read-only, missing and uncreatable, full, locked), the same buffer in degraded mode:
    /// a warning is logged, data waits in memory (`settings.memory_bytes`) and the disk is
    /// tried again every few seconds. Fails only when another process holds the directory
    /// for longer than `lock_wait` ([`DiskBuffer::open_or_degraded`]).
    pub fn open_disk_or_memory(
        settings: &DiskSettings,
        signal: Signal,
        batch_units: usize,
        stats: &Arc<Stats>,
        lock_wait: Duration,
    ) -> Result<Buffer, String> {
        let d = DiskBuffer::open_or_degraded(settings, signal, stats.clone(), lock_wait)?;
        d.set_batch_units(batch_units);
        Ok(Buffer::Disk(Box::new(d)))
    }

    /// Whether the disk buffer is in degraded (memory) mode.
    pub fn is_degraded(&self) -> bool {
        matches!(self, Buffer::Disk(d) if d.is_degraded())
    }

    /// Call at the start of stop and reload, before waiting for the collectors: producers
    /// waiting for room (`when_full: block`) return at once, keeping their record in memory
    /// for the final flush (appended to the log at shutdown if room appeared, else counted
    /// `full`), and later pushes do not wait either.
    pub fn close_producers(&self) {
        match self {
            Buffer::Memory(q) => q.set_producers_closed(true),
            Buffer::Disk(d) => d.close_producers(),
        }
    }

    /// Call when the pipeline starts again after a reload: `when_full: block` waits again.
    pub fn open_producers(&self) {
        match self {
            Buffer::Memory(q) => q.set_producers_closed(false),
            Buffer::Disk(d) => d.open_producers(),
        }
    }

    /// Adds a record. On a full disk buffer with `when_full: block` this waits for room
    /// (until [`Buffer::close_producers`]), so call it from a blocking thread.
    pub fn push(&self, r: Record) -> Pushed {
        match self {
            Buffer::Memory(q) => {
                q.push(r);
                Pushed::Memory
            }
            Buffer::Disk(d) => d.push(r),
        }
    }

    /// Adds a record for a producer that can produce it again (the log collector): when the
    /// buffer is full it always waits for room (backpressure; the memory queue too, instead
    /// of dropping its oldest), and when producers are released meanwhile the record comes
    /// back as [`Pushed::Returned`]. Call it from a blocking thread.
    pub fn push_or_return(&self, r: Record) -> Pushed {
        match self {
            Buffer::Memory(q) => {
                let mut waited: Option<Instant> = None;
                let label = || format!("signal=\"{}\"", r.signal.as_str());
                loop {
                    if q.has_room(r.body.len()) {
                        break;
                    }
                    if q.producers_closed() {
                        return Pushed::Returned;
                    }
                    let t = Instant::now();
                    if waited.is_none() {
                        waited = Some(t);
                        tracing::debug!(
                            signal = r.signal.as_str(),
                            "memory queue full (buffer.memory_limit_mb); the producer waits for room"
                        );
                    }
                    std::thread::sleep(MEMORY_ROOM_POLL);
                    q.stats().add(
                        self_metrics::BUFFER_BACKPRESSURE,
                        label(),
                        t.elapsed().as_micros() as u64,
                    );
                }
                q.push(r);
                Pushed::Memory
            }
            Buffer::Disk(d) => d.push_or_return(r),
        }
    }

    /// Adds a record for a producer that answers a client who can send it again (the OTLP
    /// receiver): when the buffer is full it waits for room until `deadline` at most (the
    /// memory queue too, instead of dropping its oldest), then, or when producers are
    /// released, hands the record back as [`Pushed::Returned`]. Call it from a blocking
    /// thread.
    pub fn push_until(&self, r: Record, deadline: Instant) -> Pushed {
        match self {
            Buffer::Memory(q) => {
                while !q.has_room(r.body.len()) {
                    if q.producers_closed() || Instant::now() >= deadline {
                        return Pushed::Returned;
                    }
                    std::thread::sleep(MEMORY_ROOM_POLL);
                }
                q.push(r);
                Pushed::Memory
            }
            Buffer::Disk(d) => d.push_until(r, deadline),
        }
    }

    /// Records pushed as [`Pushed::Memory`] that are not yet delivered, dropped or written
    /// to the disk log (0: everything pushed so far survives the process or is settled).
    pub fn memory_outstanding(&self) -> usize {
        match self {
            Buffer::Memory(q) => q.outstanding(),
            Buffer::Disk(d) => d.memory_outstanding(),
        }
    }

    pub fn batch_ready(&self) -> &Notify {
        match self {
            Buffer::Memory(q) => &q.batch_ready,
            Buffer::Disk(d) => &d.batch_ready,
        }
    }

    pub fn set_batch_units(&self, n: usize) {
        match self {
            Buffer::Memory(q) => q.set_batch_units(n),
            Buffer::Disk(d) => d.set_batch_units(n),
        }
    }

    /// Up to `max_units` units (what `batch_size` counts: metrics, or log records) and
    /// `max_bytes` of one signal, oldest first (at least one record if any).
    pub fn next_batch(&self, max_units: usize, max_bytes: usize) -> Batch {
        match self {
            Buffer::Memory(q) => Batch {
                records: q.pop_batch(max_units, max_bytes),
                last_seq: None,
                fallback_tags: None,
            },
            Buffer::Disk(d) => d.next_batch(max_units, max_bytes),
        }
    }

    /// The batch was delivered or dropped (and counted): it will not be sent again.
    pub fn settle(&self, batch: &Batch) {
        match self {
            Buffer::Memory(q) => q.settled(batch.records.len()),
            Buffer::Disk(d) => d.settle(batch),
        }
    }

    /// The batch is still owed to the collector; it is taken again first.
    pub fn give_back(&self, batch: Batch) {
        match self {
            Buffer::Memory(q) => q.requeue_front(batch.records),
            Buffer::Disk(d) => d.give_back(batch),
        }
    }

    /// Periodic upkeep: retrying the disk in degraded mode, `max_age` expiry, corruption
    /// found while reading.
    pub fn maintain(&self) {
        if let Buffer::Disk(d) = self {
            d.maintain();
        }
    }

    /// At shutdown, after the final flush. The memory queue does not survive the process:
    /// what is left is counted as `shutdown`. The disk log keeps it for the next start.
    pub fn shutdown(&self) {
        match self {
            Buffer::Memory(q) => q.discard_all(
                DropReason::Shutdown,
                "still queued in memory at shutdown (collector unreachable or shutdown timeout reached)",
            ),
            Buffer::Disk(d) => d.close(),
        }
    }

    /// Sets the `tfo_agent_buffer_*` gauges.
    pub fn publish(&self, stats: &Arc<Stats>) {
        match self {
            Buffer::Memory(q) => q.publish(stats),
            Buffer::Disk(d) => d.publish(stats),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn rec(len: usize) -> Record {
        Record {
            signal: Signal::Logs,
            items: 1,
            units: 1,
            body: Bytes::from(vec![0u8; len]),
            stored: Bytes::new(),
        }
    }

    #[test]
    fn the_memory_queue_holds_a_rereadable_producer_instead_of_dropping() {
        let stats = Arc::new(Stats::default());
        let b = Arc::new(Buffer::Memory(Queue::new(
            Signal::Logs,
            1000,
            10,
            stats.clone(),
        )));
        assert!(matches!(b.push_or_return(rec(600)), Pushed::Memory));
        let (tx, rx) = std::sync::mpsc::channel();
        let producer = {
            let b = b.clone();
            std::thread::spawn(move || {
                let _ = tx.send(b.push_or_return(rec(600)));
                let _ = tx.send(b.push_or_return(rec(600)));
            })
        };
        assert!(
            rx.recv_timeout(Duration::from_millis(300)).is_err(),
            "waits"
        );
        let batch = b.next_batch(10, tfo_exporter::encode::MAX_REQUEST_BYTES);
        assert_eq!(b.memory_outstanding(), 1, "in flight");
        b.settle(&batch);
        assert!(matches!(
            rx.recv_timeout(Duration::from_secs(5)).unwrap(),
            Pushed::Memory
        ));
        b.close_producers();
        assert!(matches!(
            rx.recv_timeout(Duration::from_secs(5)).unwrap(),
            Pushed::Returned
        ));
        producer.join().unwrap();
        assert_eq!(b.memory_outstanding(), 1);
        assert_eq!(stats.dropped_total(), 0);
        assert!(stats.counter(self_metrics::BUFFER_BACKPRESSURE, "signal=\"logs\"") > 200_000);
    }
}
