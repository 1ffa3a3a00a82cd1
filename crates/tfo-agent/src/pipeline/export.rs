//! The export stage: takes batches from the queue and delivers them, deciding retry or
//! drop from the classified outcome (see docs/export.md):
//! - outage (collector unreachable or shedding load): wait with backoff and retry the
//!   same batch; this never uses up the batch's retry budget, however long it lasts;
//! - transient error: retry, at most `retry.max_attempts` tries, then drop (`max_retries`);
//! - refused (401, 403, 404, 407, 3xx; gRPC UNAUTHENTICATED, PERMISSION_DENIED,
//!   UNIMPLEMENTED): the endpoint will not take this agent's data until someone fixes the
//!   key, the path or the redirect; keep the batch and retry at `retry.max_interval`;
//! - too large (HTTP 413; a gRPC server's message-size limit): give the batch back and send
//!   its records again in requests of half as many records, halving again while the answer
//!   is the same (see [`Split`]); a single record still too large is dropped (`too_large`);
//! - permanent error or partially rejected data: drop and count (`rejected`), never retry.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tfo_exporter::backoff::Backoff;
use tfo_exporter::{Exporter, FailureClass, Outcome, Record};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::buffer::{Batch, Buffer};
use crate::events::{DropReason, Event, Stats};

/// When the first flush comes after start: long enough for the first collection cycles
/// to be buffered, short enough that the first export arrives well within a second.
const FIRST_FLUSH: Duration = Duration::from_millis(300);

#[derive(Debug, Clone)]
pub struct RetryPolicy {
    pub enabled: bool,
    pub max_attempts: u32,
    pub initial_interval: Duration,
    pub max_interval: Duration,
}

pub struct ExportLoop {
    /// Its own per signal (logs: built on their export runtime).
    pub exporter: Exporter,
    pub buffer: Arc<Buffer>,
    pub stats: Arc<Stats>,
    /// Most units per request: metrics or spans (`exporter.otlp.max_batch_size`, unbounded
    /// when 0), log records (`exporter.otlp.logs_batch_size`). `batch_size` is not here: it
    /// is the buffer's trigger.
    pub batch_size: usize,
    /// Most bytes of stored records per request (at least one record is sent).
    pub max_bytes: usize,
    pub flush_interval: Duration,
    pub retry: RetryPolicy,
}

/// Requests made smaller after a "too large" answer. The refused batch goes back to the
/// buffer and is taken again with at most `units` units (those of the first half of its
/// records), so each refusal halves the records per request. The smaller size applies
/// until as many records as the largest refused batch held have been resolved; then
/// requests are full size again (the next too-large answer splits again). Kept by the
/// export loop while it runs; a reload or the final flush starts at full size.
#[derive(Debug, Default)]
struct Split {
    /// Most units per request while splitting.
    units: usize,
    /// Records still to be resolved at the smaller size (0: not splitting).
    records: usize,
    /// The first refusal of this loop is a WARN, later ones are DEBUG.
    warned: bool,
}

impl Split {
    fn max_units(&self, batch_size: usize) -> usize {
        if self.records > 0 {
            self.units.clamp(1, batch_size.max(1))
        } else {
            batch_size
        }
    }

    /// `n` records were delivered or dropped.
    fn resolved(&mut self, n: usize) {
        self.records = self.records.saturating_sub(n);
    }
}

enum Sent {
    Done,
    /// Stopped before the batch was resolved; it is back at the front of the queue.
    Interrupted,
}

impl ExportLoop {
    /// Runs until `cancel`; returns itself so the caller can do the final flush.
    pub async fn run(self, cancel: CancellationToken) -> Self {
        // The first flush comes right after the first cycle (a new agent shows data at
        // once), then every flush_interval or whenever a full batch is waiting.
        let mut next_flush = Instant::now() + FIRST_FLUSH.min(self.flush_interval);
        let mut split = Split::default();
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return self,
                _ = tokio::time::sleep_until(next_flush) => {
                    next_flush = Instant::now() + self.flush_interval;
                }
                _ = self.buffer.batch_ready().notified() => {}
            }
            if let Sent::Interrupted = self.drain(&cancel, None, &mut split).await {
                return self;
            }
        }
    }

    /// Sends what is buffered, giving up at `deadline`. What is left stays in the disk log
    /// for the next start, or (memory queue) is counted as dropped with reason `shutdown`.
    pub async fn final_flush(&self, deadline: Instant) {
        let never = CancellationToken::new();
        let _ = self
            .drain(&never, Some(deadline), &mut Split::default())
            .await;
    }

    async fn drain(
        &self,
        cancel: &CancellationToken,
        deadline: Option<Instant>,
        split: &mut Split,
    ) -> Sent {
        loop {
            let batch = self
                .buffer
                .next_batch(split.max_units(self.batch_size), self.max_bytes);
            if batch.is_empty() {
                if batch.last_seq.is_some() {
                    // Only damaged records (already counted): acknowledge and go on.
                    self.buffer.settle(&batch);
                    continue;
                }
                return Sent::Done;
            }
            if let Sent::Interrupted = self.send_batch(batch, cancel, deadline, split).await {
                return Sent::Interrupted;
            }
        }
    }

    async fn send_batch(
        &self,
        batch: Batch,
        cancel: &CancellationToken,
        deadline: Option<Instant>,
        split: &mut Split,
    ) -> Sent {
        if crate::failpoint::fire("export_panic") {
            panic!("failpoint export_panic");
        }
        let signal = batch.records[0].signal;
        let items: u64 = batch.records.iter().map(|r| r.items as u64).sum();
        let body = concat(&batch.records);
        let mut attempts = 0u32;
        let mut backoff = Backoff::new(self.retry.initial_interval, self.retry.max_interval);
        loop {
            // Stopping never waits for the network: an in-flight request is abandoned and
            // its batch sent again first by the next export loop (at-least-once).
            let outcome = tokio::select! {
                o = self.exporter.send(signal, body.clone()) => o,
                _ = cancel.cancelled() => {
                    self.buffer.give_back(batch);
                    return Sent::Interrupted;
                }
                _ = until(deadline) => {
                    self.buffer.give_back(batch);
                    return Sent::Interrupted;
                }
            };
            match outcome {
                Outcome::Delivered { rejected, message } => {
                    let rejected = rejected.min(items);
                    self.stats.emit(Event::Exported {
                        signal,
                        items: items - rejected,
                    });
                    if rejected > 0 {
                        self.stats.emit(Event::Dropped {
                            signal,
                            reason: DropReason::Rejected,
                            items: rejected,
                            detail: &format!("partial success: {message}"),
                        });
                    }
                    split.resolved(batch.records.len());
                    self.buffer.settle(&batch);
                    return Sent::Done;
                }
                Outcome::TooLarge { reason } => {
                    let n = batch.records.len();
                    let half = n / 2;
                    self.stats.emit(Event::ExportTooLarge {
                        signal,
                        records: n,
                        split_to: half,
                        reason: &reason,
                        quiet: split.warned,
                    });
                    if half > 0 {
                        // Taken again first, in requests of at most half as many records.
                        split.warned = true;
                        split.units = batch.records[..half]
                            .iter()
                            .map(|r| r.units as usize)
                            .sum::<usize>()
                            .max(1);
                        split.records = split.records.max(n);
                        self.buffer.give_back(batch);
                        return Sent::Done;
                    }
                    self.stats.emit(Event::Dropped {
                        signal,
                        reason: DropReason::TooLarge,
                        items,
                        detail: &reason,
                    });
                    split.resolved(n);
                    self.buffer.settle(&batch);
                    return Sent::Done;
                }
                Outcome::Permanent { reason } => {
                    self.stats.emit(Event::ExportFailed {
                        signal,
                        class: None,
                        reason: &reason,
                        retry_in: None,
                    });
                    self.stats.emit(Event::Dropped {
                        signal,
                        reason: DropReason::Rejected,
                        items,
                        detail: &reason,
                    });
                    split.resolved(batch.records.len());
                    self.buffer.settle(&batch);
                    return Sent::Done;
                }
                Outcome::Retry {
                    class,
                    reason,
                    retry_after,
                } => {
                    if class != FailureClass::Transient {
                        // Reachable again later (outage) or accepted once someone fixes the
                        // key, path or redirect (refused): the budget is not used up.
                        attempts = 0;
                    }
                    if class == FailureClass::Transient {
                        attempts += 1;
                    }
                    // Outages and refusals never use up the budget, even with retry
                    // disabled: the data is fine, the collector is not taking it yet.
                    let exhausted = class == FailureClass::Transient
                        && (!self.retry.enabled || attempts >= self.retry.max_attempts);
                    if exhausted {
                        self.stats.emit(Event::ExportFailed {
                            signal,
                            class: Some(class),
                            reason: &reason,
                            retry_in: None,
                        });
                        let detail = if self.retry.enabled {
                            format!("gave up after {attempts} attempts: {reason}")
                        } else {
                            format!("retry disabled: {reason}")
                        };
                        self.stats.emit(Event::Dropped {
                            signal,
                            reason: DropReason::MaxRetries,
                            items,
                            detail: &detail,
                        });
                        split.resolved(batch.records.len());
                        self.buffer.settle(&batch);
                        return Sent::Done;
                    }
                    // A refusal is not fixed by hammering: retry at the slowest pace.
                    let delay = match class {
                        FailureClass::Refused => {
                            self.retry.max_interval.max(retry_after.unwrap_or_default())
                        }
                        _ => backoff.next_delay(retry_after),
                    };
                    self.stats.emit(Event::ExportFailed {
                        signal,
                        class: Some(class),
                        reason: &reason,
                        retry_in: Some(delay),
                    });
                    let wake = Instant::now() + delay;
                    if deadline.is_some_and(|d| wake > d) {
                        self.buffer.give_back(batch);
                        return Sent::Interrupted;
                    }
                    tokio::select! {
                        _ = tokio::time::sleep_until(wake) => {}
                        _ = cancel.cancelled() => {
                            self.buffer.give_back(batch);
                            return Sent::Interrupted;
                        }
                    }
                }
            }
        }
    }
}

/// Resolves at `deadline`, or never.
async fn until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// Joins encoded records into one request body (their concatenation is a valid request).
fn concat(batch: &[Record]) -> Bytes {
    if batch.len() == 1 {
        return batch[0].body.clone();
    }
    let mut b = BytesMut::with_capacity(batch.iter().map(|r| r.body.len()).sum());
    for r in batch {
        b.extend_from_slice(&r.body);
    }
    b.freeze()
}

/// A single-threaded runtime on a thread of its own, for export tasks: one for metrics and
/// traces, one for logs.
///
/// Why not the shared workers: each request hops between the export task, the gRPC
/// channel's worker and the HTTP/2 connection task. On one thread those hops are plain
/// function calls; across the two shared workers each is a wake-up of another thread. For
/// logs at 100 MiB/s that was about a fifth of the agent's CPU; for metrics at one cycle a
/// second, futex and scheduler time on the workers was about a fifth of the whole agent's.
/// The logs' own runtime also keeps a log flood's gzip and network work away from metrics.
///
/// Everything the task uses must be created on this runtime (the exporter's connections
/// are spawned where it is built): see [`ExportRuntime::enter`].
pub struct ExportRuntime {
    handle: tokio::runtime::Handle,
    stop: CancellationToken,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ExportRuntime {
    pub fn start(name: &str) -> std::io::Result<ExportRuntime> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .max_blocking_threads(2)
            .thread_name(name)
            .build()?;
        let handle = rt.handle().clone();
        let stop = CancellationToken::new();
        let until = stop.clone();
        let thread = std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || {
                rt.block_on(until.cancelled());
                rt.shutdown_timeout(Duration::from_secs(1));
            })?;
        Ok(ExportRuntime {
            handle,
            stop,
            thread: Some(thread),
        })
    }

    pub fn handle(&self) -> &tokio::runtime::Handle {
        &self.handle
    }

    /// Runs `f` (e.g. building an exporter) in this runtime's context.
    pub fn enter<T>(&self, f: impl FnOnce() -> T) -> T {
        let _g = self.handle.enter();
        f()
    }

    /// Ends the runtime (its tasks are dropped) and waits for its thread at most `timeout`.
    pub async fn shutdown(mut self, timeout: Duration) {
        self.stop.cancel();
        if let Some(t) = self.thread.take() {
            let _ =
                tokio::time::timeout(timeout, tokio::task::spawn_blocking(move || t.join())).await;
        }
    }
}
