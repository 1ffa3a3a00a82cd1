//! Collectors turn host state into OTLP `Metric` messages.
//!
//! Collectors emit the `opentelemetry-proto` types directly rather than an intermediate
//! model: the encoder then only wraps them with a resource and serialises, so a collection
//! cycle allocates each data point once.

pub mod docs;
pub mod otlp;
pub mod paths;
pub mod render;
pub mod system;
pub mod table;

pub use opentelemetry_proto::tonic::metrics::v1::Metric;
pub use paths::HostPaths;
pub use system::{SystemCollector, SystemOptions};
pub use table::{MetricDef, MetricKind, ValueType};

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
}

/// What a collection produced besides its metrics: the partial failures it survived.
#[derive(Debug, Default)]
pub struct CollectReport {
    pub errors: Vec<CollectError>,
}

/// One collector. `collect` is synchronous and cheap; the agent runs it on a blocking
/// thread on its own interval so a slow collector never delays another.
pub trait Collector: Send {
    /// Stable name used in config (`collectors.<name>`), logs and self-metrics.
    fn name(&self) -> &'static str;
    /// Appends this cycle's metrics to `out`. Partial failures go in the report; the
    /// metrics that could be read are still appended.
    fn collect(&mut self, out: &mut Vec<Metric>) -> CollectReport;
}
