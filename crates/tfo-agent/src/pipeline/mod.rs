//! The data path: collect → encode → buffer → export. Each stage lives in one module.
//! The buffer is the disk log ([`disk`]) or, with `buffer.enabled: false`, the memory
//! queue ([`queue`]), behind one interface ([`buffer`]).

pub mod buffer;
pub mod collect;
pub mod disk;
pub mod export;
pub mod kube;
pub mod logs;
pub mod queue;
pub mod stream;
pub mod ticker;

/// Wakes the agent's supervisor when a pipeline task or thread ends, so a dead collector,
/// source or export task is started again at once, without a periodic scan waking the
/// agent every second to find nothing.
pub static ENDED: tokio::sync::Notify = tokio::sync::Notify::const_new();

/// Signals [`ENDED`] when dropped: held by each task or thread for its whole life, so a
/// panic signals too.
pub struct OnEnd;

impl Drop for OnEnd {
    fn drop(&mut self) {
        ENDED.notify_one();
    }
}

use std::sync::Arc;

use tfo_config::Config;
use tfo_exporter::Signal;

use crate::events::Stats;
use crate::settings;

/// One buffer per signal: metrics always; logs when the log collector, Kubernetes events
/// or the OTLP receiver are enabled or an earlier run left logs to deliver; traces when the
/// OTLP receiver is enabled or an earlier run left traces (see [`settings::Active`] and
/// [`settings::buffer_share`] for how the bounds are split). Which buffers exist, and their
/// bounds, are decided at start.
pub struct Buffers {
    pub metrics: Arc<buffer::Buffer>,
    pub logs: Option<Arc<buffer::Buffer>>,
    pub traces: Option<Arc<buffer::Buffer>>,
    /// Most bytes of one logs record (a quarter of the logs buffer, at most 1 MiB).
    pub logs_record_bytes: usize,
}

impl Buffers {
    pub fn get(&self, signal: Signal) -> Option<&Arc<buffer::Buffer>> {
        match signal {
            Signal::Metrics => Some(&self.metrics),
            Signal::Logs => self.logs.as_ref(),
            Signal::Traces => self.traces.as_ref(),
        }
    }

    /// Every open buffer with its signal.
    pub fn all(&self) -> impl Iterator<Item = (Signal, &Arc<buffer::Buffer>)> {
        Signal::ALL
            .into_iter()
            .filter_map(|s| self.get(s).map(|b| (s, b)))
    }
}

/// The buffers `cfg` asks for. A disk log that cannot be opened (read-only or missing
/// directory, full disk) is not a reason to stop collecting: the buffer starts degraded
/// (memory, bounded by its share of `buffer.memory_limit_mb`) and returns to the disk when
/// it works. The exception, an error: a directory another process keeps locked.
pub fn open_buffers(cfg: &Config, stats: &Arc<Stats>) -> Result<Buffers, String> {
    let active = settings::Active::of(cfg);
    let open = |signal| open_buffer(cfg, signal, active, stats).map(Arc::new);
    let share = settings::disk_settings(
        cfg,
        Signal::Logs,
        settings::Active {
            logs: true,
            ..active
        },
    );
    let logs_share = if cfg.buffer.enabled {
        share.max_bytes
    } else {
        share.memory_bytes
    };
    Ok(Buffers {
        metrics: open(Signal::Metrics)?,
        logs: active.logs.then(|| open(Signal::Logs)).transpose()?,
        traces: active.traces.then(|| open(Signal::Traces)).transpose()?,
        logs_record_bytes: logs::record_bytes_for(logs_share),
    })
}

/// How long start-up waits for another process to release a buffer directory: an agent
/// that is stopping flushes for up to `agent.shutdown_timeout`.
fn lock_wait(cfg: &Config) -> std::time::Duration {
    if let Some(ms) =
        settings::env_nonempty("TFO_BUFFER_LOCK_WAIT_MS").and_then(|v| v.parse::<u64>().ok())
    {
        return std::time::Duration::from_millis(ms);
    }
    cfg.agent.shutdown_timeout + std::time::Duration::from_secs(5)
}

fn open_buffer(
    cfg: &Config,
    signal: Signal,
    active: settings::Active,
    stats: &Arc<Stats>,
) -> Result<buffer::Buffer, String> {
    let b = &cfg.buffer;
    let batch = cfg.exporter.otlp.batch_size;
    let s = settings::disk_settings(cfg, signal, active);
    if !b.enabled {
        tracing::info!(
            signal = signal.as_str(),
            memory_limit_bytes = s.memory_bytes,
            "buffer.enabled is false: data waits in a bounded memory queue; what is queued at exit is counted as dropped"
        );
        return Ok(buffer::Buffer::Memory(queue::Queue::new(
            signal,
            usize::try_from(s.memory_bytes).unwrap_or(usize::MAX),
            batch,
            stats.clone(),
        )));
    }
    let buf = buffer::Buffer::open_disk_or_memory(&s, signal, batch, stats, lock_wait(cfg))?;
    tracing::info!(
        signal = signal.as_str(),
        path = %s.dir.join(signal.as_str()).display(),
        max_bytes = s.max_bytes,
        memory_bytes = s.memory_bytes,
        block_when_full = s.block_when_full,
        fsync = ?b.fsync,
        degraded = buf.is_degraded(),
        "disk buffer open"
    );
    Ok(buf)
}

impl buffer::Buffer {
    /// After an export task died holding a batch: the next batch starts again at the oldest
    /// record not yet settled (the disk log; a memory batch died with its task).
    pub fn rewind_reader(&self) {
        if let buffer::Buffer::Disk(d) = self {
            d.rewind();
        }
    }
}
