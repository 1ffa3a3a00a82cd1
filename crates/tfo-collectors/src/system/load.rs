//! `system.cpu.load_average.*` from /proc/loadavg (`0.30 0.19 0.07 1/81 3769`).

use std::path::Path;

use crate::CollectReport;
use crate::parse::{excerpt, fields, parse_error, parse_f64};
use crate::table::{MetricDef, MetricKind, Val, ValueType};
use crate::wire::Out;

const fn load(name: &'static str, help: &'static str, source: &'static str) -> MetricDef {
    MetricDef {
        name,
        kind: MetricKind::Gauge,
        value: ValueType::Double,
        unit: "{thread}",
        attributes: &[],
        help,
        source,
        prom: None,
    }
}

pub const LOAD_1M: MetricDef = load(
    "system.cpu.load_average.1m",
    "Average number of runnable and uninterruptible threads over the last minute.",
    "/proc/loadavg, field 1",
);
pub const LOAD_5M: MetricDef = load(
    "system.cpu.load_average.5m",
    "Average number of runnable and uninterruptible threads over the last 5 minutes.",
    "/proc/loadavg, field 2",
);
pub const LOAD_15M: MetricDef = load(
    "system.cpu.load_average.15m",
    "Average number of runnable and uninterruptible threads over the last 15 minutes.",
    "/proc/loadavg, field 3",
);

pub const METRICS: &[MetricDef] = &[LOAD_1M, LOAD_5M, LOAD_15M];

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
