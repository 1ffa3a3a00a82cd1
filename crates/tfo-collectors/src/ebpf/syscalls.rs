//! System calls by name: calls, failures and latency, from `tp_btf/sys_enter` (entry
//! timestamp) and `tp_btf/sys_exit` (count, return value, latency). Only syscalls seen
//! since load have series; x86_64 numbers are named from the kernel's table, an unknown
//! number is `nr_<n>` (at most ~470 series per metric).

use tfo_ebpf::snapshot::SyscallStat;

use super::{Emit, counter, latency, syscall_name};
use crate::table::MetricDef;

/// The table; destructured by the mapping, so a row cannot be forgotten.
const ROWS: [MetricDef; 3] = [
    counter(
        "ebpf.syscall.count",
        "{call}",
        &["syscall"],
        "System calls completed, by syscall name (counted at exit: exit and exit_group, \
         which never return, are not counted).",
        "tp_btf/sys_exit",
    ),
    latency(
        "ebpf.syscall.latency_ns",
        &["syscall"],
        "Time from syscall entry to exit, including time blocked (a read waiting for data, \
         a futex wait), by syscall name. Power-of-two bucket bounds; the sum is estimated \
         from bucket midpoints (the kernel keeps no exact sum).",
        "tp_btf/sys_enter + tp_btf/sys_exit (only with syscall_latency: true)",
    ),
    counter(
        "ebpf.syscall.errors",
        "{call}",
        &["syscall"],
        "System calls that returned an error (a negative -errno value), by syscall name.",
        "tp_btf/sys_exit",
    ),
];

pub const METRICS: &[MetricDef] = &ROWS;

/// Maps the per-syscall counters; a syscall never completed since load has no series. The
/// latency histogram only when it is measured (`latency`).
pub(crate) fn map(stats: &[SyscallStat], latency: bool, e: &mut Emit<'_>) {
    let [count, latency_ns, errors] = &ROWS;
    let seen: Vec<_> = stats
        .iter()
        .filter(|s| s.count > 0)
        .map(|s| (syscall_name(s.nr), s))
        .collect();
    e.counter(count, seen.iter().map(|(n, s)| ([n], s.count)));
    if latency {
        e.histogram(latency_ns, seen.iter().map(|(n, s)| ([n], &s.latency)));
    }
    e.counter(errors, seen.iter().map(|(n, s)| ([n], s.errors)));
}
