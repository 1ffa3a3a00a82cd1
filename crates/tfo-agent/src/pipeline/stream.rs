//! Streaming sources: collectors that produce as data arrives (the log file tailer) rather
//! than on an interval. Each runs on a thread of its own, not on the async workers, because
//! its loop blocks by design: on file reads, and on a full buffer (backpressure).
//!
//! The agent owns the thread through a [`Handle`]: it asks it to stop ([`Stop`]), releases
//! it from a full buffer (`Buffer::close_producers`), and waits for it a bounded time. A
//! thread that does not end in time (a read hung on a dead network file system) is
//! *abandoned*: it is told not to write its state any more, so a successor can take over.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use super::buffer::Buffer;
use crate::events::Stats;
use opentelemetry_proto::tonic::common::v1::KeyValue;

/// A collector that runs on its own thread and pushes to its signal's buffer as data comes.
/// Its signal (which buffer it gets) is in its registry entry.
pub trait Source: Send + 'static {
    /// Runs until `ctx.stop` is set. Must not panic on input; a panic is supervised (the
    /// source is built again and restarted).
    fn run(self: Box<Self>, ctx: Context);
}

/// What a source gets from the agent.
pub struct Context {
    /// The buffer of the source's signal: the one it may wait on for room.
    pub buffer: Arc<Buffer>,
    /// The metrics buffer (always open), for a source that also reports metrics.
    pub metrics: Arc<Buffer>,
    pub stats: Arc<Stats>,
    pub stop: Arc<Stop>,
    /// Resource and record bounds; a reload may change them without restarting the source.
    pub encoding: Arc<Shared<Encoding>>,
}

/// What the encoder of a source depends on besides the source's own settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Encoding {
    /// The agent's resource attributes.
    pub resource: Vec<KeyValue>,
    /// Most metrics per record ([`crate::settings::metrics_per_request`]).
    pub metrics_per_record: usize,
    /// `exporter.otlp.logs_batch_size`: most log records per record.
    pub logs_batch_size: usize,
    /// Most bytes per record (`MAX_RECORD_BYTES`, less for a small buffer).
    pub record_bytes: usize,
}

/// A value replaced as a whole and read as a snapshot.
pub struct Shared<T>(Mutex<Arc<T>>);

impl<T> Shared<T> {
    pub fn new(v: T) -> Self {
        Shared(Mutex::new(Arc::new(v)))
    }

    pub fn get(&self) -> Arc<T> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn set(&self, v: T) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Arc::new(v);
    }
}

/// Asks a source to stop; wakes it from its sleep between polls.
#[derive(Default)]
pub struct Stop {
    stopped: Mutex<bool>,
    wake: Condvar,
    abandoned: AtomicBool,
}

impl Stop {
    pub fn stop(&self) {
        *self.stopped.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.wake.notify_all();
    }

    pub fn is_stopped(&self) -> bool {
        *self.stopped.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sleeps up to `d`; true when stopped (at once, or while sleeping).
    pub fn wait(&self, d: Duration) -> bool {
        let g = self.stopped.lock().unwrap_or_else(|p| p.into_inner());
        if *g {
            return true;
        }
        let (g, _) = self
            .wake
            .wait_timeout_while(g, d, |stopped| !*stopped)
            .unwrap_or_else(|p| p.into_inner());
        *g
    }

    /// The agent gave up waiting for this source: it must not write its state any more
    /// (a successor owns it now). Implies stopped.
    pub fn abandon(&self) {
        self.abandoned.store(true, Ordering::SeqCst);
        self.stop();
    }

    pub fn is_abandoned(&self) -> bool {
        self.abandoned.load(Ordering::SeqCst)
    }
}

/// A running source.
pub struct Handle {
    pub name: &'static str,
    stop: Arc<Stop>,
    buffer: Arc<Buffer>,
    thread: Option<JoinHandle<()>>,
}

/// Starts `source` on a thread named `tfo-<name>`. Fails only when the thread cannot be
/// created.
pub fn spawn(
    name: &'static str,
    source: Box<dyn Source>,
    buffer: Arc<Buffer>,
    metrics: Arc<Buffer>,
    stats: Arc<Stats>,
    encoding: Arc<Shared<Encoding>>,
) -> std::io::Result<Handle> {
    let stop = Arc::new(Stop::default());
    let ctx = Context {
        buffer: buffer.clone(),
        metrics,
        stats,
        stop: stop.clone(),
        encoding,
    };
    let thread = std::thread::Builder::new()
        .name(format!("tfo-{name}"))
        .spawn(move || {
            let _end = super::OnEnd;
            source.run(ctx)
        })?;
    Ok(Handle {
        name,
        stop,
        buffer,
        thread: Some(thread),
    })
}

impl Handle {
    /// Ended without being asked to (a panic).
    pub fn died(&self) -> bool {
        !self.stop.is_stopped() && self.thread.as_ref().is_none_or(|t| t.is_finished())
    }

    /// Asks the source to stop and releases it if it waits for room in the buffer; the
    /// buffer's producers stay released until [`Handle::join`] returns.
    pub fn request_stop(&self) {
        self.stop.stop();
        self.buffer.close_producers();
    }

    /// Waits up to `timeout` for the thread to end (after [`Handle::request_stop`]); on
    /// timeout the source is abandoned. Runs the wait on the blocking pool.
    pub async fn join(mut self, timeout: Duration, reopen_producers: bool) {
        self.request_stop();
        let Some(t) = self.thread.take() else { return };
        let waited = tokio::time::timeout(timeout, tokio::task::spawn_blocking(move || t.join()));
        match waited.await {
            Ok(_) => {}
            Err(_) => {
                self.stop.abandon();
                tracing::error!(
                    collector = self.name,
                    waited = ?timeout,
                    "collector thread did not stop in time (a file system call hangs?); abandoned: it writes no more state"
                );
            }
        }
        if reopen_producers {
            self.buffer.open_producers();
        }
    }
}
