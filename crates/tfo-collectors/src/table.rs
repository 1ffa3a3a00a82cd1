//! Metric tables: the single source of truth for what a collector emits.
//!
//! Every sub-collector starts with a `const` slice of [`MetricDef`]. The code builds its
//! OTLP messages through those definitions ([`MetricDef::build`]), so the name, type,
//! unit and description on the wire are the ones in the table, and `docs/metrics.md` can
//! be generated from the same tables without drifting.
//!
//! Node metrics also carry their node_exporter equivalent ([`PromName`]): the Prometheus
//! renderer ([`crate::prom`]) and the docs read it from the same row, so a dashboard built
//! on node_exporter keeps working on what we expose.

use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::metrics::v1::{HistogramDataPoint, Metric, NumberDataPoint};

use crate::{Ctx, otlp};

/// How a metric is aggregated on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    /// An OTLP Gauge: the last observed value.
    Gauge,
    /// A cumulative monotonic Sum: a counter that starts at `start_time_unix_nano`.
    Counter,
    /// A cumulative non-monotonic Sum: a quantity split by state that can go up and down.
    UpDownCounter,
    /// A cumulative explicit-bucket OTLP Histogram (a latency distribution): its points are
    /// built by the collector ([`MetricDef::build_histogram`]), not from a single value.
    Histogram,
}

impl MetricKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MetricKind::Gauge => "gauge",
            MetricKind::Counter => "counter",
            MetricKind::UpDownCounter => "updowncounter",
            MetricKind::Histogram => "histogram",
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

/// The Prometheus metric type node_exporter declares for a family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PromKind {
    /// `counter`: the name ends in `_total`.
    Counter,
    Gauge,
    /// `untyped`: node_exporter's type for raw kernel counters it passes through
    /// (`node_vmstat_*`, `node_netstat_*`), whose names have no `_total`.
    Untyped,
}

impl PromKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PromKind::Counter => "counter",
            PromKind::Gauge => "gauge",
            PromKind::Untyped => "untyped",
        }
    }
}

/// The node_exporter name of a metric. Units are chosen so the value is the same on both
/// sides (seconds, bytes, hertz, celsius): there is no scaling, only renaming.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PromName {
    /// node_exporter's metric name, e.g. `node_cpu_seconds_total`.
    pub name: &'static str,
    pub kind: PromKind,
    /// The label name of each OTLP attribute, in the order of [`MetricDef::attributes`]
    /// (same length): `interface` becomes `device` for `node_network_*`, for example.
    pub labels: &'static [&'static str],
}

impl PromName {
    /// A name whose labels are the OTLP attribute names unchanged.
    pub const fn same_labels(
        name: &'static str,
        kind: PromKind,
        attributes: &'static [&'static str],
    ) -> PromName {
        PromName {
            name,
            kind,
            labels: attributes,
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
    /// node_exporter's equivalent, if it has one (system metrics: `None`).
    pub prom: Option<PromName>,
}

/// A value as read, converted to the metric's [`ValueType`] when the point is built.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Val {
    U(u64),
    I(i64),
    F(f64),
}

impl MetricDef {
    /// A row without a node_exporter equivalent.
    pub const fn new(
        name: &'static str,
        kind: MetricKind,
        value: ValueType,
        unit: &'static str,
        attributes: &'static [&'static str],
        help: &'static str,
        source: &'static str,
    ) -> MetricDef {
        MetricDef {
            name,
            kind,
            value,
            unit,
            attributes,
            help,
            source,
            prom: None,
        }
    }

    /// The same row with a node_exporter name whose labels are the attribute names.
    pub const fn prom(mut self, name: &'static str, kind: PromKind) -> MetricDef {
        self.prom = Some(PromName::same_labels(name, kind, self.attributes));
        self
    }

    /// The same row with a node_exporter name and one label name per attribute.
    pub const fn prom_labels(
        mut self,
        name: &'static str,
        kind: PromKind,
        labels: &'static [&'static str],
    ) -> MetricDef {
        self.prom = Some(PromName { name, kind, labels });
        self
    }

    /// A data point of this metric: counters start at boot, gauges carry no start time.
    pub(crate) fn point(&self, attributes: Vec<KeyValue>, v: Val, ctx: &Ctx) -> NumberDataPoint {
        let start = match self.kind {
            MetricKind::Gauge => 0,
            MetricKind::Counter | MetricKind::UpDownCounter | MetricKind::Histogram => ctx.boot_ns,
        };
        match (self.value, v) {
            (ValueType::Int, Val::U(u)) => {
                otlp::point_i64(attributes, start, ctx.now_ns, crate::parse::to_i64(u))
            }
            (ValueType::Int, Val::I(i)) => otlp::point_i64(attributes, start, ctx.now_ns, i),
            // Only reachable through a table mistake; rounding keeps the value meaningful.
            (ValueType::Int, Val::F(f)) => {
                otlp::point_i64(attributes, start, ctx.now_ns, f.round() as i64)
            }
            (ValueType::Double, Val::U(u)) => {
                otlp::point_f64(attributes, start, ctx.now_ns, u as f64)
            }
            (ValueType::Double, Val::I(i)) => {
                otlp::point_f64(attributes, start, ctx.now_ns, i as f64)
            }
            (ValueType::Double, Val::F(f)) => otlp::point_f64(attributes, start, ctx.now_ns, f),
        }
    }

    /// Builds the OTLP message for this metric from its data points.
    pub fn build(&self, points: Vec<NumberDataPoint>) -> Metric {
        match self.kind {
            MetricKind::Gauge => otlp::gauge(self.name, self.help, self.unit, points),
            MetricKind::Counter => otlp::sum(self.name, self.help, self.unit, true, points),
            MetricKind::UpDownCounter => otlp::sum(self.name, self.help, self.unit, false, points),
            // A table mistake (a histogram row given single values): the values are dropped
            // rather than sent under a type the table does not declare.
            MetricKind::Histogram => {
                debug_assert!(
                    points.is_empty(),
                    "{}: number points on a histogram",
                    self.name
                );
                self.build_histogram(Vec::new())
            }
        }
    }

    /// Builds the OTLP message of a [`MetricKind::Histogram`] row from its data points.
    pub fn build_histogram(&self, points: Vec<HistogramDataPoint>) -> Metric {
        debug_assert_eq!(self.kind, MetricKind::Histogram, "{}", self.name);
        otlp::histogram(self.name, self.help, self.unit, points)
    }

    /// Appends the metric to `out` unless it has no data points: an empty metric carries
    /// nothing and some backends reject it.
    pub fn push(&self, points: Vec<NumberDataPoint>, out: &mut Vec<Metric>) {
        if !points.is_empty() {
            out.push(self.build(points));
        }
    }
}

/// `pub const METRICS` for a sub-collector whose table is a const array of parse rows,
/// each carrying its [`MetricDef`] in field `$field` (e.g. `def`, or `1` for tuples): the
/// rows stay the single source, and the metric table is derived from them at compile time.
macro_rules! metrics_from_rows {
    ($rows:ident, $field:tt) => {
        pub const METRICS: &[$crate::table::MetricDef] = &{
            let mut out = [$rows[0].$field; $rows.len()];
            let mut i = 0;
            while i < $rows.len() {
                out[i] = $rows[i].$field;
                i += 1;
            }
            out
        };
    };
}
pub(crate) use metrics_from_rows;

// Row constructors for every collector's table: a counter or gauge of integers or
// doubles (the value type follows from what the source reports).

pub(crate) const fn counter_i(
    name: &'static str,
    unit: &'static str,
    attributes: &'static [&'static str],
    help: &'static str,
    source: &'static str,
) -> MetricDef {
    MetricDef::new(
        name,
        MetricKind::Counter,
        ValueType::Int,
        unit,
        attributes,
        help,
        source,
    )
}

pub(crate) const fn counter_f(
    name: &'static str,
    unit: &'static str,
    attributes: &'static [&'static str],
    help: &'static str,
    source: &'static str,
) -> MetricDef {
    MetricDef::new(
        name,
        MetricKind::Counter,
        ValueType::Double,
        unit,
        attributes,
        help,
        source,
    )
}

pub(crate) const fn gauge_i(
    name: &'static str,
    unit: &'static str,
    attributes: &'static [&'static str],
    help: &'static str,
    source: &'static str,
) -> MetricDef {
    MetricDef::new(
        name,
        MetricKind::Gauge,
        ValueType::Int,
        unit,
        attributes,
        help,
        source,
    )
}

pub(crate) const fn gauge_f(
    name: &'static str,
    unit: &'static str,
    attributes: &'static [&'static str],
    help: &'static str,
    source: &'static str,
) -> MetricDef {
    MetricDef::new(
        name,
        MetricKind::Gauge,
        ValueType::Double,
        unit,
        attributes,
        help,
        source,
    )
}

pub(crate) const fn updown_i(
    name: &'static str,
    unit: &'static str,
    attributes: &'static [&'static str],
    help: &'static str,
    source: &'static str,
) -> MetricDef {
    MetricDef::new(
        name,
        MetricKind::UpDownCounter,
        ValueType::Int,
        unit,
        attributes,
        help,
        source,
    )
}
