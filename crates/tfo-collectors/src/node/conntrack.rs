//! Connection tracking from /proc/sys/net/netfilter and /proc/net/stat/nf_conntrack
//! (node_exporter's `conntrack` collector). Without the nf_conntrack module the files do
//! not exist and nothing is reported.
//!
//! /proc/net/stat/nf_conntrack has a header line naming the columns and one line of
//! hexadecimal counters per CPU; each counter is the sum over CPUs. Columns are found by
//! name, since their set and order changed across kernels.

use std::path::Path;

use super::entropy::one_number;
use super::kept::FdBudget;
use super::{Out, Source, counter_i, gauge_i, read_pair, read_value_into};
use crate::CollectReport;
use crate::parse::{LineErrors, excerpt, fields, lines, parse_hex_u64};
use crate::table::{MetricDef, PromKind, Val};

const fn stat(
    name: &'static str,
    help: &'static str,
    source: &'static str,
    prom: &'static str,
) -> MetricDef {
    // node_exporter types these per-CPU sums as gauges.
    counter_i(name, "{event}", &[], help, source).prom(prom, PromKind::Gauge)
}

pub const METRICS: &[MetricDef] = &[
    gauge_i(
        "node.conntrack.entries",
        "{entry}",
        &[],
        "Connections tracked now.",
        "/proc/sys/net/netfilter/nf_conntrack_count",
    )
    .prom("node_nf_conntrack_entries", PromKind::Gauge),
    gauge_i(
        "node.conntrack.limit",
        "{entry}",
        &[],
        "Most connections the table can track.",
        "/proc/sys/net/netfilter/nf_conntrack_max",
    )
    .prom("node_nf_conntrack_entries_limit", PromKind::Gauge),
    stat(
        "node.conntrack.found",
        "Lookups that found a tracked connection.",
        "/proc/net/stat/nf_conntrack found",
        "node_nf_conntrack_stat_found",
    ),
    stat(
        "node.conntrack.invalid",
        "Packets that could not be tracked.",
        "/proc/net/stat/nf_conntrack invalid",
        "node_nf_conntrack_stat_invalid",
    ),
    stat(
        "node.conntrack.ignore",
        "Packets already tracked or not to be tracked.",
        "/proc/net/stat/nf_conntrack ignore",
        "node_nf_conntrack_stat_ignore",
    ),
    stat(
        "node.conntrack.insert",
        "Entries inserted into the table.",
        "/proc/net/stat/nf_conntrack insert",
        "node_nf_conntrack_stat_insert",
    ),
    stat(
        "node.conntrack.insert_failed",
        "Entries whose insertion failed (duplicate tuple).",
        "/proc/net/stat/nf_conntrack insert_failed",
        "node_nf_conntrack_stat_insert_failed",
    ),
    stat(
        "node.conntrack.drop",
        "Packets dropped because tracking failed.",
        "/proc/net/stat/nf_conntrack drop",
        "node_nf_conntrack_stat_drop",
    ),
    stat(
        "node.conntrack.early_drop",
        "Entries dropped to make room when the table was full.",
        "/proc/net/stat/nf_conntrack early_drop",
        "node_nf_conntrack_stat_early_drop",
    ),
    stat(
        "node.conntrack.search_restart",
        "Table lookups restarted because of a hash resize.",
        "/proc/net/stat/nf_conntrack search_restart",
        "node_nf_conntrack_stat_search_restart",
    ),
];

/// Column names of rows 2.. of [`METRICS`].
const COLUMNS: [&str; 8] = [
    "found",
    "invalid",
    "ignore",
    "insert",
    "insert_failed",
    "drop",
    "early_drop",
    "search_restart",
];

#[allow(clippy::too_many_arguments)]
pub(crate) fn collect(
    count: &mut Source,
    max: &mut Source,
    stat: &mut [Source; 2],
    buf: &mut Vec<u8>,
    fds: &FdBudget,
    out: &mut Out<'_>,
    report: &mut CollectReport,
) {
    if !read_value_into(count, buf, true, fds, report) {
        return; // no conntrack module: nothing else exists either
    }
    one_number(&METRICS[0], buf, &count.path, out, report);
    if read_value_into(max, buf, true, fds, report) {
        one_number(&METRICS[1], buf, &max.path, out, report);
    }
    if let Some(path) = read_pair(stat, buf, true, fds, report) {
        parse_stat(buf, path, out, report);
    }
}

pub(crate) fn parse_stat(input: &[u8], path: &Path, out: &mut Out<'_>, report: &mut CollectReport) {
    let mut errs = LineErrors::new(path);
    let mut it = lines(input).enumerate();
    let Some((_, header)) = it.next() else {
        return;
    };
    // For each column of the file, the row of COLUMNS it feeds.
    let mut map = [None::<usize>; 32];
    for (slot, name) in map.iter_mut().zip(fields(header)) {
        *slot = COLUMNS.iter().position(|c| c.as_bytes() == name);
    }
    let mut sums = [0u64; 8];
    let mut cpus = 0;
    for (no, line) in it {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let mut ok = true;
        let mut row_sums = [0u64; 8];
        for (col, field) in map.iter().zip(fields(line)) {
            let Some(v) = parse_hex_u64(field) else {
                ok = false;
                break;
            };
            if let Some(r) = col {
                row_sums[*r] = v;
            }
        }
        if !ok {
            errs.add(no, || {
                format!("expected hexadecimal counters: {}", excerpt(line))
            });
            continue;
        }
        for (s, v) in sums.iter_mut().zip(row_sums) {
            *s = s.saturating_add(v);
        }
        cpus += 1;
    }
    errs.finish(report);
    if cpus == 0 {
        return;
    }
    let mut b = out.batch(METRICS);
    for (i, v) in sums.into_iter().enumerate() {
        if map.contains(&Some(i)) {
            b.add(i + 2, &[], Val::U(v));
        }
    }
    b.finish();
}
