//! The data path: collect → encode → buffer → export. Each stage lives in one module.
//! The buffer is the disk log ([`disk`]) or, with `buffer.enabled: false`, the memory
//! queue ([`queue`]), behind one interface ([`buffer`]).

pub mod buffer;
pub mod collect;
pub mod disk;
pub mod export;
pub mod queue;

use std::sync::Arc;

use tfo_config::Config;

use crate::events::Stats;
use crate::settings;

/// The buffer `cfg` asks for. A disk log that cannot be opened (read-only or missing
/// directory, full disk) is not a reason to stop collecting: the buffer starts degraded
/// (memory, bounded by `buffer.memory_limit_mb`) and returns to the disk when it works.
pub fn open_buffer(cfg: &Config, stats: &Arc<Stats>) -> buffer::Buffer {
    let b = &cfg.buffer;
    let memory = (b.memory_limit_mb as usize).saturating_mul(1 << 20);
    let batch = cfg.exporter.otlp.batch_size;
    if !b.enabled {
        tracing::info!(
            memory_limit_mb = b.memory_limit_mb,
            "buffer.enabled is false: data waits in a bounded memory queue; what is queued at exit is counted as dropped"
        );
        return buffer::Buffer::Memory(queue::Queue::new(memory, batch, stats.clone()));
    }
    let s = settings::disk_settings(cfg);
    let buf = buffer::Buffer::open_disk_or_memory(&s, tfo_exporter::Signal::Metrics, batch, stats);
    tracing::info!(path = %s.dir.display(), max_size_mb = b.max_size_mb, fsync = ?b.fsync, degraded = buf.is_degraded(), "disk buffer open");
    buf
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
