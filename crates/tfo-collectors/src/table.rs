//! Metric tables: the single source of truth for what a collector emits.
//!
//! Every sub-collector starts with a `const` slice of [`MetricDef`]. The code builds its
//! OTLP messages through those definitions ([`MetricDef::build`]), so the name, type,
//! unit and description on the wire are the ones in the table, and `docs/metrics.md` can
//! be generated from the same tables without drifting.

use opentelemetry_proto::tonic::metrics::v1::{Metric, NumberDataPoint};

use crate::otlp;

/// How a metric is aggregated on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    /// An OTLP Gauge: the last observed value.
    Gauge,
    /// A cumulative monotonic Sum: a counter that starts at `start_time_unix_nano`.
    Counter,
    /// A cumulative non-monotonic Sum: a quantity split by state that can go up and down.
    UpDownCounter,
}

impl MetricKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MetricKind::Gauge => "gauge",
            MetricKind::Counter => "counter",
            MetricKind::UpDownCounter => "updowncounter",
        }
    }
}

/// The number type of every data point of a metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueType {
    Int,
    Double,
}

impl ValueType {
    pub fn as_str(self) -> &'static str {
        match self {
            ValueType::Int => "int",
            ValueType::Double => "double",
        }
    }
}

/// One row of a metric table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricDef {
    /// OTLP metric name, e.g. `system.cpu.time`.
    pub name: &'static str,
    pub kind: MetricKind,
    pub value: ValueType,
    /// UCUM unit (`s`, `By`, `1`, `{operation}`).
    pub unit: &'static str,
    /// Attribute keys present on every data point of this metric.
    pub attributes: &'static [&'static str],
    /// One-line description, sent as the OTLP `description`.
    pub help: &'static str,
    /// Where the value comes from (file and field), for the docs.
    pub source: &'static str,
}

impl MetricDef {
    /// Builds the OTLP message for this metric from its data points.
    pub fn build(&self, points: Vec<NumberDataPoint>) -> Metric {
        match self.kind {
            MetricKind::Gauge => otlp::gauge(self.name, self.help, self.unit, points),
            MetricKind::Counter => otlp::sum(self.name, self.help, self.unit, true, points),
            MetricKind::UpDownCounter => otlp::sum(self.name, self.help, self.unit, false, points),
        }
    }

    /// Appends the metric to `out` unless it has no data points: an empty metric carries
    /// nothing and some backends reject it.
    pub fn push(&self, points: Vec<NumberDataPoint>, out: &mut Vec<Metric>) {
        if !points.is_empty() {
            out.push(self.build(points));
        }
    }
}
