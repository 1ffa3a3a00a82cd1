//! Collectors turn host state into OTLP `Metric` messages.
//!
//! Collectors emit the `opentelemetry-proto` types directly rather than an intermediate
//! model: the encoder then only wraps them with a resource and serialises. The collectors
//! with many points per cycle (system, node_exporter, process) write their metrics in the
//! wire format instead ([`wire`], [`Collector::collect_encoded`]), which costs no
//! allocation per point, and decode that for `collect`.

pub mod docs;
pub mod ebpf;
#[cfg(test)]
mod fuzzing;
pub mod hubble;
pub mod kubernetes;
pub mod mounts;
pub mod node;
pub mod otlp;
pub(crate) mod parse;
pub mod paths;
pub mod process;
pub mod prom;
pub mod render;
pub mod shared;
pub mod system;
pub mod table;
pub mod wire;

pub use ebpf::{EbpfCollector, EbpfOptions};
pub use node::{NodeCollector, NodeOptions, PatternFilter};
pub use opentelemetry_proto::tonic::metrics::v1::Metric;
pub use paths::HostPaths;
pub use process::{ProcessCollector, ProcessOptions, ProcessOptionsError, ProcessSource, TopBy};
pub use prom::render_node_exporter;
pub use shared::SharedReads;
pub use system::{SystemCollector, SystemOptions};
pub use table::{MetricDef, MetricKind, PromKind, PromName, ValueType};
pub use wire::EncodedMetric;

/// Per-cycle values shared by the sub-collectors.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ctx {
    /// The collection timestamp, on every point.
    pub now_ns: u64,
    /// Boot time: `start_time_unix_nano` of every counter (0 if unknown).
    pub boot_ns: u64,
}

/// Nanoseconds since the epoch, now (0 if the clock is before 1970).
pub(crate) fn unix_now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// A failure that drops part of one collection. The collector keeps going: each error is
/// reported to the caller, which logs and counts it.
#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    #[error("reading {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("parsing {path}: {reason}")]
    Parse { path: String, reason: String },
    /// A kernel program of the eBPF collector is not attached; its metrics are missing.
    #[error(
        "eBPF program {program} ({hook}) is not attached: {reason}{}",
        .fix.as_deref().map(|f| format!("; fix: {f}")).unwrap_or_default()
    )]
    Program {
        program: String,
        hook: String,
        reason: String,
        fix: Option<String>,
    },
}

/// What a collection produced besides its metrics: the partial failures it survived.
#[derive(Debug, Default)]
pub struct CollectReport {
    pub errors: Vec<CollectError>,
    /// Items left out on purpose or by circumstance, by reason (`vanished`,
    /// `permission_denied`, `overflow`): one count per reason per cycle, which the caller
    /// counts and logs (rate-limited) as skipped rather than as errors.
    pub skipped: Vec<(&'static str, u64)>,
    /// The connection this collector's data comes from (Hubble's flow stream) is down:
    /// the collector counts as down (`collector_up` 0, listed by `/readyz`) whatever it
    /// appended, since what it appended is no longer being updated.
    pub disconnected: bool,
    /// Failed connection attempts and broken streams since the last cycle. Counted as
    /// collection errors but not logged again: the client logs each kind of failure once
    /// per streak, with the fix.
    pub connection_failures: u64,
}

/// One collector. `collect` is synchronous and cheap; the agent runs it on a blocking
/// thread on its own interval (shared with the collectors of the same interval), so a slow
/// collector never delays another interval's collectors or the exporter.
pub trait Collector: Send {
    /// Stable name used in config (`collectors.<name>`), logs and self-metrics.
    fn name(&self) -> &'static str;
    /// Appends this cycle's metrics to `out`. Partial failures go in the report; the
    /// metrics that could be read are still appended.
    fn collect(&mut self, out: &mut Vec<Metric>) -> CollectReport;
    /// [`Collector::collect`] for the export path: a collector may append some of its
    /// metrics to `encoded`, written in the wire format by itself ([`wire`]), when that
    /// saves building (and then encoding and freeing) many points as structs. The
    /// default builds every metric as a struct.
    fn collect_encoded(
        &mut self,
        out: &mut Vec<Metric>,
        encoded: &mut Vec<EncodedMetric>,
    ) -> CollectReport {
        let _ = encoded;
        self.collect(out)
    }
}
