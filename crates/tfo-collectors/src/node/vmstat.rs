//! Paging, swapping and OOM counters from /proc/vmstat (`pgfault 73565584`): the fields
//! node_exporter's `vmstat` collector exposes by default
//! (`^(oom_kill|pgpg|pswp|pg.*fault).*`), which it types `untyped` and names after the key.

use std::path::Path;
use std::sync::LazyLock;

use super::{Out, counter_i};
use crate::CollectReport;
use crate::parse::{KeyIndex, LineErrors, excerpt, fields, lines, parse_u64};
use crate::table::{MetricDef, PromKind, Val};

/// (key in /proc/vmstat, metric).
pub const FIELDS: &[(&str, MetricDef)] = &[
    (
        "pgpgin",
        counter_i(
            "node.vmstat.pgpgin",
            "KiBy",
            &[],
            "Kibibytes paged in from disk since boot.",
            "/proc/vmstat pgpgin",
        )
        .prom("node_vmstat_pgpgin", PromKind::Untyped),
    ),
    (
        "pgpgout",
        counter_i(
            "node.vmstat.pgpgout",
            "KiBy",
            &[],
            "Kibibytes paged out to disk since boot.",
            "/proc/vmstat pgpgout",
        )
        .prom("node_vmstat_pgpgout", PromKind::Untyped),
    ),
    (
        "pswpin",
        counter_i(
            "node.vmstat.pswpin",
            "{page}",
            &[],
            "Pages swapped in since boot.",
            "/proc/vmstat pswpin",
        )
        .prom("node_vmstat_pswpin", PromKind::Untyped),
    ),
    (
        "pswpout",
        counter_i(
            "node.vmstat.pswpout",
            "{page}",
            &[],
            "Pages swapped out since boot.",
            "/proc/vmstat pswpout",
        )
        .prom("node_vmstat_pswpout", PromKind::Untyped),
    ),
    (
        "pgfault",
        counter_i(
            "node.vmstat.pgfault",
            "{fault}",
            &[],
            "Page faults (minor and major) since boot.",
            "/proc/vmstat pgfault",
        )
        .prom("node_vmstat_pgfault", PromKind::Untyped),
    ),
    (
        "pgmajfault",
        counter_i(
            "node.vmstat.pgmajfault",
            "{fault}",
            &[],
            "Major page faults (that needed disk I/O) since boot.",
            "/proc/vmstat pgmajfault",
        )
        .prom("node_vmstat_pgmajfault", PromKind::Untyped),
    ),
    (
        "oom_kill",
        counter_i(
            "node.vmstat.oom_kill",
            "{process}",
            &[],
            "Processes killed by the OOM killer since boot.",
            "/proc/vmstat oom_kill",
        )
        .prom("node_vmstat_oom_kill", PromKind::Untyped),
    ),
];

const N: usize = FIELDS.len();

crate::table::metrics_from_rows!(FIELDS, 1);

static INDEX: LazyLock<KeyIndex> =
    LazyLock::new(|| KeyIndex::new(FIELDS.iter().map(|(k, _)| (&b""[..], k.as_bytes()))));

pub(crate) fn collect(input: &[u8], path: &Path, out: &mut Out<'_>, report: &mut CollectReport) {
    let mut errs = LineErrors::new(path);
    let mut b = out.batch(METRICS);
    let mut seen = [false; N];
    for (no, line) in lines(input).enumerate() {
        let mut f = fields(line);
        let Some(key) = f.next() else { continue };
        let Some(row) = INDEX.get(key) else {
            continue;
        };
        if std::mem::replace(&mut seen[row], true) {
            errs.add(no, || format!("duplicate key {}", excerpt(key)));
            continue;
        }
        match (f.next().and_then(parse_u64), f.next()) {
            (Some(v), None) => b.add(row, &[], Val::U(v)),
            _ => errs.add(no, || {
                format!("expected `<key> <number>`: {}", excerpt(line))
            }),
        }
    }
    if !seen.contains(&true) {
        errs.add(0, || {
            "none of pgpgin, pgpgout, pswpin, pswpout, pgfault, pgmajfault, oom_kill found"
                .to_string()
        });
    }
    errs.finish(report);
    b.finish();
}
