//! Memory: page faults (user and kernel mode), major faults, OOM kills.

use tfo_ebpf::snapshot::MemStats;

use super::{Emit, counter};
use crate::table::MetricDef;

/// The table; destructured by the mapping, so a row cannot be forgotten.
const ROWS: [MetricDef; 3] = [
    counter(
        "ebpf.memory.page_faults",
        "{fault}",
        &["mode"],
        "Page faults (minor and major), by the mode the CPU was in: `user`, or `kernel` \
         (a fault on a user address while in the kernel, e.g. copy_to_user).",
        "tp_btf/page_fault_user + tp_btf/page_fault_kernel",
    ),
    counter(
        "ebpf.memory.major_faults",
        "{fault}",
        &[],
        "Major page faults: the page had to be read from storage (a file or swap).",
        "perf_event PERF_COUNT_SW_PAGE_FAULTS_MAJ",
    ),
    counter(
        "ebpf.memory.oom_kills",
        "{kill}",
        &[],
        "Processes chosen by the OOM killer as victims (system-wide or cgroup OOM).",
        "tp_btf/mark_victim",
    ),
];

pub const METRICS: &[MetricDef] = &ROWS;

/// Maps the memory counters; every series is sent, zeros included.
pub(crate) fn map(m: &MemStats, e: &mut Emit<'_>) {
    let [page_faults, major_faults, oom_kills] = &ROWS;
    e.counter(
        page_faults,
        [
            (["user"], m.page_faults_user),
            (["kernel"], m.page_faults_kernel),
        ],
    );
    e.one(major_faults, m.major_faults);
    e.one(oom_kills, m.oom_kills);
}
