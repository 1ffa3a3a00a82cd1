//! The buffer stage between encoder and exporter, for every signal: either the durable disk
//! log (`buffer.enabled: true`, [`DiskBuffer`]) or the bounded memory queue ([`Queue`], the
//! low-resource mode). The exporter sees one interface: take a batch, then settle it
//! (delivered or dropped, never to be sent again) or give it back (to be sent again, in the
//! same order).

use std::sync::Arc;

use tfo_exporter::Record;
use tokio::sync::Notify;

use super::disk::DiskBuffer;
use super::queue::Queue;
use crate::events::{DropReason, Stats};

pub enum Buffer {
    Memory(Queue),
    Disk(Box<DiskBuffer>),
}

/// Records taken from the buffer for one request. `last_seq` is the position to
/// acknowledge in the disk log once the batch is settled.
pub struct Batch {
    pub records: Vec<Record>,
    pub(super) last_seq: Option<u64>,
}

impl Batch {
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }
}

impl Buffer {
    /// Adds a record. On a full disk buffer with `when_full: block` this waits for room, so
    /// call it from a blocking thread.
    pub fn push(&self, r: Record) {
        match self {
            Buffer::Memory(q) => q.push(r),
            Buffer::Disk(d) => d.push(r),
        }
    }

    pub fn batch_ready(&self) -> &Notify {
        match self {
            Buffer::Memory(q) => &q.batch_ready,
            Buffer::Disk(d) => &d.batch_ready,
        }
    }

    pub fn set_batch_items(&self, n: usize) {
        match self {
            Buffer::Memory(q) => q.set_batch_items(n),
            Buffer::Disk(d) => d.set_batch_items(n),
        }
    }

    /// Up to `max_items` items of one signal, oldest first (at least one record if any).
    pub fn next_batch(&self, max_items: usize) -> Batch {
        match self {
            Buffer::Memory(q) => Batch {
                records: q.pop_batch(max_items),
                last_seq: None,
            },
            Buffer::Disk(d) => d.next_batch(max_items),
        }
    }

    /// The batch was delivered or dropped (and counted): it will not be sent again.
    pub fn settle(&self, batch: &Batch) {
        if let (Buffer::Disk(d), Some(seq)) = (self, batch.last_seq) {
            d.ack(seq);
        }
    }

    /// The batch is still owed to the collector; it is taken again first.
    pub fn give_back(&self, batch: Batch) {
        match self {
            Buffer::Memory(q) => q.requeue_front(batch.records),
            Buffer::Disk(d) => d.rewind(),
        }
    }

    /// Discards everything waiting, counted with `reason` (used when export is disabled).
    pub fn discard_all(&self, reason: DropReason, detail: &str) {
        match self {
            Buffer::Memory(q) => q.discard_all(reason, detail),
            Buffer::Disk(d) => d.discard_all(reason, detail),
        }
    }

    /// Periodic upkeep: `max_age` expiry, corruption found while reading, gauges.
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
