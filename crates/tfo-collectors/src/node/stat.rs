//! Boot time and process counts from /proc/stat (the non-CPU half of node_exporter's `stat`
//! collector). Always on: /proc/stat is read every cycle for the boot time anyway.

use super::cpu::StatLines;
use super::{Out, counter_i, gauge_i};
use crate::table::{MetricDef, PromKind, Val};

pub const METRICS: &[MetricDef] = &[
    gauge_i(
        "node.system.boot_time",
        "s",
        &[],
        "When the host booted, in seconds since the epoch.",
        "/proc/stat btime",
    )
    .prom("node_boot_time_seconds", PromKind::Gauge),
    counter_i(
        "node.processes.forks",
        "{process}",
        &[],
        "Processes and threads created since boot.",
        "/proc/stat processes",
    )
    .prom("node_forks_total", PromKind::Counter),
    gauge_i(
        "node.processes.running",
        "{thread}",
        &[],
        "Threads runnable or running now.",
        "/proc/stat procs_running",
    )
    .prom("node_procs_running", PromKind::Gauge),
    gauge_i(
        "node.processes.blocked",
        "{thread}",
        &[],
        "Threads blocked waiting for I/O now.",
        "/proc/stat procs_blocked",
    )
    .prom("node_procs_blocked", PromKind::Gauge),
];

pub(crate) fn emit(s: &StatLines, out: &mut Out<'_>) {
    let mut b = out.batch(METRICS);
    let values = [s.btime, s.processes, s.procs_running, s.procs_blocked];
    for (row, v) in values.into_iter().enumerate() {
        if let Some(v) = v {
            b.add(row, &[], Val::U(v));
        }
    }
    b.finish();
}
