//! Open file handles from /proc/sys/fs/file-nr (`allocated unused maximum`), node_exporter's
//! `filefd` collector.

use std::path::Path;

use super::{Out, gauge_i};
use crate::CollectReport;
use crate::parse::{excerpt, fields, parse_error, parse_u64};
use crate::table::{MetricDef, PromKind, Val};

pub const METRICS: &[MetricDef] = &[
    gauge_i(
        "node.filefd.allocated",
        "{file}",
        &[],
        "File handles allocated by the kernel.",
        "/proc/sys/fs/file-nr field 1",
    )
    .prom("node_filefd_allocated", PromKind::Gauge),
    gauge_i(
        "node.filefd.maximum",
        "{file}",
        &[],
        "Most file handles the kernel will allocate (fs.file-max).",
        "/proc/sys/fs/file-nr field 3",
    )
    .prom("node_filefd_maximum", PromKind::Gauge),
];

pub(crate) fn collect(input: &[u8], path: &Path, out: &mut Out<'_>, report: &mut CollectReport) {
    let mut f = fields(input);
    match (
        f.next().and_then(parse_u64),
        f.next().and_then(parse_u64),
        f.next().and_then(parse_u64),
    ) {
        (Some(allocated), Some(_unused), Some(max)) => {
            for (def, v) in METRICS.iter().zip([allocated, max]) {
                out.single(def, &[], Val::U(v));
            }
        }
        _ => report.errors.push(parse_error(
            path,
            format!(
                "expected `allocated unused maximum`, found {}",
                excerpt(input)
            ),
        )),
    }
}
