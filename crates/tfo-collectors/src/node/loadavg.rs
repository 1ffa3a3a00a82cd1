//! Load averages from /proc/loadavg (`0.30 0.19 0.07 1/81 3769`), node_exporter's
//! `loadavg` collector.

use std::path::Path;

use super::{Out, gauge_f};
use crate::CollectReport;
use crate::parse::{excerpt, fields, parse_error, parse_f64};
use crate::table::{MetricDef, PromKind, Val};

pub const METRICS: &[MetricDef] = &[
    gauge_f(
        "node.load.1m",
        "{thread}",
        &[],
        "Average number of runnable and uninterruptible threads over the last minute.",
        "/proc/loadavg field 1",
    )
    .prom("node_load1", PromKind::Gauge),
    gauge_f(
        "node.load.5m",
        "{thread}",
        &[],
        "Average number of runnable and uninterruptible threads over the last 5 minutes.",
        "/proc/loadavg field 2",
    )
    .prom("node_load5", PromKind::Gauge),
    gauge_f(
        "node.load.15m",
        "{thread}",
        &[],
        "Average number of runnable and uninterruptible threads over the last 15 minutes.",
        "/proc/loadavg field 3",
    )
    .prom("node_load15", PromKind::Gauge),
];

/// Emits the three load averages; a field that does not parse drops only its metric.
pub(crate) fn collect(input: &[u8], path: &Path, out: &mut Out<'_>, report: &mut CollectReport) {
    let mut f = fields(input);
    for def in METRICS {
        let field = f.next();
        match field.and_then(parse_f64) {
            Some(v) => out.single(def, &[], Val::F(v)),
            None => {
                let what = field
                    .map(excerpt)
                    .unwrap_or_else(|| "end of file".to_string());
                report.errors.push(parse_error(
                    path,
                    format!("{}: expected a load average, found {what}", def.name),
                ));
            }
        }
    }
}
