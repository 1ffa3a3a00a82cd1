//! Per-CPU scheduler time from /proc/schedstat (node_exporter's `schedstat` collector).
//!
//! `cpuN` lines carry nine counters; the last three are the nanoseconds spent running and
//! waiting on that CPU and the number of timeslices run. Kernels built without
//! CONFIG_SCHEDSTATS have no such file, which is not an error.

use std::path::Path;

use super::{Out, counter_f, counter_i};
use crate::CollectReport;
use crate::parse::{LineErrors, excerpt, fields, lines, parse_u64};
use crate::table::{MetricDef, PromKind, Val};

pub const METRICS: &[MetricDef] = &[
    counter_f(
        "node.cpu.schedstat.running",
        "s",
        &["cpu"],
        "Seconds tasks spent running on each CPU.",
        "/proc/schedstat cpuN field 7 / 1e9",
    )
    .prom("node_schedstat_running_seconds_total", PromKind::Counter),
    counter_f(
        "node.cpu.schedstat.waiting",
        "s",
        &["cpu"],
        "Seconds runnable tasks spent waiting for each CPU.",
        "/proc/schedstat cpuN field 8 / 1e9",
    )
    .prom("node_schedstat_waiting_seconds_total", PromKind::Counter),
    counter_i(
        "node.cpu.schedstat.timeslices",
        "{timeslice}",
        &["cpu"],
        "Timeslices run on each CPU.",
        "/proc/schedstat cpuN field 9",
    )
    .prom("node_schedstat_timeslices_total", PromKind::Counter),
];

pub(crate) fn collect(input: &[u8], path: &Path, out: &mut Out<'_>, report: &mut CollectReport) {
    let mut errs = LineErrors::new(path);
    let mut b = out.batch(METRICS);
    for (no, line) in lines(input).enumerate() {
        let mut f = fields(line);
        let Some(id) = f.next().and_then(|k| k.strip_prefix(b"cpu")) else {
            continue;
        };
        let mut c = [0u64; 9];
        let mut got = 0;
        for (slot, field) in c.iter_mut().zip(f) {
            let Some(v) = parse_u64(field) else { break };
            *slot = v;
            got += 1;
        }
        if got < 9 || parse_u64(id).is_none() {
            errs.add(no, || {
                format!("expected `cpuN` and 9 counters: {}", excerpt(line))
            });
            continue;
        }
        let cpu = String::from_utf8_lossy(id);
        b.add(0, &[("cpu", &cpu)], Val::F(c[6] as f64 / 1e9));
        b.add(1, &[("cpu", &cpu)], Val::F(c[7] as f64 / 1e9));
        b.add(2, &[("cpu", &cpu)], Val::U(c[8]));
    }
    errs.finish(report);
    b.finish();
}
