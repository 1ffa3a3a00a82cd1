//! Pressure stall information from /proc/pressure/{cpu,io,memory} (node_exporter's
//! `pressure` collector): kernels 4.20+ built with CONFIG_PSI; without it the files do not
//! exist and nothing is reported.
//!
//! Each file has a `some` line (at least one task stalled: node_exporter's "waiting") and
//! a `full` line (all non-idle tasks stalled: "stalled"), each with three running averages
//! in percent and a total in microseconds. System-wide `cpu full` is reported by kernels
//! 5.13+ but is always zero outside cgroups, so node_exporter has no name for it.

use std::path::Path;

use super::{Out, counter_f, gauge_f};
use crate::CollectReport;
use crate::parse::{LineErrors, excerpt, fields, lines, parse_f64, parse_u64};
use crate::table::{MetricDef, PromKind, Val};

/// Rows 0-5: totals of (cpu, io, memory) x (some, full); rows 6-11: the averages.
pub const METRICS: &[MetricDef] = &[
    counter_f(
        "node.pressure.cpu.waiting.time",
        "s",
        &[],
        "Seconds in which at least one task was stalled waiting for CPU time.",
        "/proc/pressure/cpu some line total (us) / 1e6",
    )
    .prom("node_pressure_cpu_waiting_seconds_total", PromKind::Counter),
    counter_f(
        "node.pressure.cpu.stalled.time",
        "s",
        &[],
        "Seconds in which all non-idle tasks were stalled waiting for CPU time.",
        "/proc/pressure/cpu full line total (us) / 1e6",
    ),
    counter_f(
        "node.pressure.io.waiting.time",
        "s",
        &[],
        "Seconds in which at least one task was stalled waiting for I/O.",
        "/proc/pressure/io some line total (us) / 1e6",
    )
    .prom("node_pressure_io_waiting_seconds_total", PromKind::Counter),
    counter_f(
        "node.pressure.io.stalled.time",
        "s",
        &[],
        "Seconds in which all non-idle tasks were stalled waiting for I/O.",
        "/proc/pressure/io full line total (us) / 1e6",
    )
    .prom("node_pressure_io_stalled_seconds_total", PromKind::Counter),
    counter_f(
        "node.pressure.memory.waiting.time",
        "s",
        &[],
        "Seconds in which at least one task was stalled waiting for memory.",
        "/proc/pressure/memory some line total (us) / 1e6",
    )
    .prom(
        "node_pressure_memory_waiting_seconds_total",
        PromKind::Counter,
    ),
    counter_f(
        "node.pressure.memory.stalled.time",
        "s",
        &[],
        "Seconds in which all non-idle tasks were stalled waiting for memory.",
        "/proc/pressure/memory full line total (us) / 1e6",
    )
    .prom(
        "node_pressure_memory_stalled_seconds_total",
        PromKind::Counter,
    ),
    gauge_f(
        "node.pressure.cpu.waiting.avg",
        "%",
        &["window"],
        "Share of the last 10s, 60s and 300s (window) in which at least one task was stalled waiting for CPU time.",
        "/proc/pressure/cpu some line avg10, avg60, avg300",
    ),
    gauge_f(
        "node.pressure.cpu.stalled.avg",
        "%",
        &["window"],
        "Share of the last 10s, 60s and 300s (window) in which all non-idle tasks were stalled waiting for CPU time.",
        "/proc/pressure/cpu full line avg10, avg60, avg300",
    ),
    gauge_f(
        "node.pressure.io.waiting.avg",
        "%",
        &["window"],
        "Share of the last 10s, 60s and 300s (window) in which at least one task was stalled waiting for I/O.",
        "/proc/pressure/io some line avg10, avg60, avg300",
    ),
    gauge_f(
        "node.pressure.io.stalled.avg",
        "%",
        &["window"],
        "Share of the last 10s, 60s and 300s (window) in which all non-idle tasks were stalled waiting for I/O.",
        "/proc/pressure/io full line avg10, avg60, avg300",
    ),
    gauge_f(
        "node.pressure.memory.waiting.avg",
        "%",
        &["window"],
        "Share of the last 10s, 60s and 300s (window) in which at least one task was stalled waiting for memory.",
        "/proc/pressure/memory some line avg10, avg60, avg300",
    ),
    gauge_f(
        "node.pressure.memory.stalled.avg",
        "%",
        &["window"],
        "Share of the last 10s, 60s and 300s (window) in which all non-idle tasks were stalled waiting for memory.",
        "/proc/pressure/memory full line avg10, avg60, avg300",
    ),
];

const WINDOWS: [(&[u8], &str); 3] = [(b"avg10=", "10s"), (b"avg60=", "60s"), (b"avg300=", "300s")];

/// `resource` is 0 for cpu, 1 for io, 2 for memory.
pub(crate) fn collect(
    resource: usize,
    input: &[u8],
    path: &Path,
    out: &mut Out<'_>,
    report: &mut CollectReport,
) {
    let mut errs = LineErrors::new(path);
    let mut b = out.batch(METRICS);
    for (no, line) in lines(input).enumerate() {
        let mut f = fields(line);
        let kind = match f.next() {
            Some(b"some") => 0,
            Some(b"full") => 1,
            Some(_) => {
                errs.add(no, || {
                    format!("expected `some` or `full`: {}", excerpt(line))
                });
                continue;
            }
            None => continue,
        };
        let row = resource * 2 + kind;
        let mut avgs = [None; 3];
        let mut total = None;
        for field in f {
            if let Some(v) = field.strip_prefix(b"total=") {
                total = parse_u64(v);
            }
            for (slot, (prefix, _)) in avgs.iter_mut().zip(WINDOWS) {
                if let Some(v) = field.strip_prefix(prefix) {
                    *slot = parse_f64(v);
                }
            }
        }
        let (Some(total), [Some(a10), Some(a60), Some(a300)]) = (total, avgs) else {
            errs.add(no, || {
                format!("expected avg10= avg60= avg300= total=: {}", excerpt(line))
            });
            continue;
        };
        b.add(row, &[], Val::F(total as f64 / 1e6));
        for (v, (_, window)) in [a10, a60, a300].into_iter().zip(WINDOWS) {
            b.add(row + 6, &[("window", window)], Val::F(v));
        }
    }
    errs.finish(report);
    b.finish();
}
