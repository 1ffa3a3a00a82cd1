//! `system.uptime` from /proc/uptime (`<seconds since boot> <idle seconds summed over cpus>`).

use std::path::Path;

use crate::CollectReport;
use crate::parse::{excerpt, fields, parse_error, parse_f64};
use crate::table::{MetricDef, MetricKind, Val, ValueType};
use crate::wire::Out;

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

/// The uptime in seconds: emitted by [`emit`], and used to derive the boot time when
/// /proc/stat has no `btime` (so it is read before the cycle's start times are known).
pub(crate) fn parse(input: &[u8], path: &Path, report: &mut CollectReport) -> Option<f64> {
    let first = fields(input).next();
    match first.and_then(parse_f64) {
        Some(up) => Some(up),
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

/// Emits `system.uptime`.
pub(crate) fn emit(up: f64, out: &mut Out<'_>) {
    out.single(&UPTIME, &[], Val::F(up));
}
