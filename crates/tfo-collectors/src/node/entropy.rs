//! Kernel entropy from /proc/sys/kernel/random (node_exporter's `entropy` collector).
//! Since Linux 5.18 both values are constant (256), but dashboards still chart them.

use std::path::Path;

use super::kept::FdBudget;
use super::{Out, Source, gauge_i, read_value_into};
use crate::CollectReport;
use crate::parse::{excerpt, parse_error, parse_u64, trim};
use crate::table::{MetricDef, PromKind, Val};

pub const METRICS: &[MetricDef] = &[
    gauge_i(
        "node.entropy.available",
        "{bit}",
        &[],
        "Bits of entropy available in the kernel's pool.",
        "/proc/sys/kernel/random/entropy_avail",
    )
    .prom("node_entropy_available_bits", PromKind::Gauge),
    gauge_i(
        "node.entropy.pool_size",
        "{bit}",
        &[],
        "Size of the kernel's entropy pool.",
        "/proc/sys/kernel/random/poolsize",
    )
    .prom("node_entropy_pool_size_bits", PromKind::Gauge),
];

/// `srcs`: entropy_avail, poolsize.
pub(crate) fn collect(
    srcs: [&mut Source; 2],
    buf: &mut Vec<u8>,
    fds: &FdBudget,
    out: &mut Out<'_>,
    report: &mut CollectReport,
) {
    for (def, src) in METRICS.iter().zip(srcs) {
        if read_value_into(src, buf, false, fds, report) {
            one_number(def, buf, &src.path, out, report);
        }
    }
}

/// Emits a file holding one number as `def`, or reports what it held instead.
pub(crate) fn one_number(
    def: &MetricDef,
    input: &[u8],
    path: &Path,
    out: &mut Out<'_>,
    report: &mut CollectReport,
) {
    let v = trim(input);
    match parse_u64(v) {
        Some(n) => out.single(def, &[], Val::U(n)),
        None => report.errors.push(parse_error(
            path,
            format!("expected a number, found {}", excerpt(v)),
        )),
    }
}
