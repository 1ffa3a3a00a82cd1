//! `system.uptime` from /proc/uptime (`<seconds since boot> <idle seconds summed over cpus>`).

use std::path::Path;

use opentelemetry_proto::tonic::metrics::v1::Metric;

use crate::CollectReport;
use crate::otlp::point_f64;
use crate::parse::{excerpt, fields, parse_error, parse_f64};
use crate::table::{MetricDef, MetricKind, ValueType};

pub const UPTIME: MetricDef = MetricDef {
    name: "system.uptime",
    kind: MetricKind::Gauge,
    value: ValueType::Double,
    unit: "s",
    attributes: &[],
    help: "Seconds since the host booted.",
    source: "/proc/uptime, first field",
    prom: None,
};

pub const METRICS: &[MetricDef] = &[UPTIME];

/// Emits `system.uptime` and returns the uptime in seconds (used to derive the boot time
/// when /proc/stat has no `btime`).
pub(crate) fn collect(
    input: &[u8],
    path: &Path,
    now_ns: u64,
    out: &mut Vec<Metric>,
    report: &mut CollectReport,
) -> Option<f64> {
    let first = fields(input).next();
    match first.and_then(parse_f64) {
        Some(up) => {
            UPTIME.push(vec![point_f64(Vec::new(), 0, now_ns, up)], out);
            Some(up)
        }
        None => {
            let what = first
                .map(excerpt)
                .unwrap_or_else(|| "empty file".to_string());
            report.errors.push(parse_error(
                path,
                format!("expected seconds since boot, found {what}"),
            ));
            None
        }
    }
}
