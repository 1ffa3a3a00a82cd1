//! The CPU scheduler: context switches, wakeups, migrations and run-queue latency, from
//! the `sched_switch`, `sched_wakeup`, `sched_wakeup_new` and `sched_migrate_task`
//! tracepoints (as `tp_btf`).

use tfo_ebpf::snapshot::SchedStats;

use super::{Emit, counter, latency};
use crate::table::MetricDef;

/// The table; destructured by the mapping, so a row cannot be forgotten.
const ROWS: [MetricDef; 4] = [
    counter(
        "ebpf.sched.context_switches",
        "{switch}",
        &["type"],
        "Context switches, by the state of the task switched out: `voluntary` (it blocked \
         or slept) or `involuntary` (preempted while still runnable). The two add up to \
         all switches.",
        "tp_btf/sched_switch",
    ),
    latency(
        "ebpf.sched.runq_latency_ns",
        &[],
        "Run-queue latency: time a task waits for a CPU, from its wakeup (or preemption) \
         to running, as the kernel's own delay accounting (`run_delay` in \
         `/proc/PID/schedstat`) measures it: a wakeup that preempts the running task at \
         once counts as 0, because the kernel skips the run-queue clock update between \
         that wakeup and the switch. Read at the switch from the kernel's \
         `sched_info.last_queued` and the run queue's clock (on kernels without them, from \
         a timestamp taken at `sched_wakeup`/`sched_wakeup_new`). Power-of-two bucket \
         bounds; the sum is estimated from bucket midpoints.",
        "tp_btf/sched_switch",
    ),
    counter(
        "ebpf.sched.wakeups",
        "{wakeup}",
        &["type"],
        "Task wakeups: `existing` tasks made runnable (after sleeping or blocking) and \
         `new` tasks woken for the first time after fork/clone.",
        "tp_btf/sched_wakeup + tp_btf/sched_wakeup_new",
    ),
    counter(
        "ebpf.sched.migrations",
        "{migration}",
        &[],
        "Tasks moved from one CPU to another (load balancing, affinity changes, wakeups on \
         another CPU).",
        "tp_btf/sched_migrate_task",
    ),
];

pub const METRICS: &[MetricDef] = &ROWS;

/// Maps the scheduler counters; every series is sent, zeros included.
pub(crate) fn map(s: &SchedStats, e: &mut Emit<'_>) {
    let [context_switches, runq_latency, wakeups, migrations] = &ROWS;
    e.counter(
        context_switches,
        [
            (
                ["voluntary"],
                s.context_switches.saturating_sub(s.preemptions),
            ),
            (["involuntary"], s.preemptions),
        ],
    );
    e.one_histogram(runq_latency, &s.runq_latency);
    e.counter(
        wakeups,
        [(["existing"], s.wakeups), (["new"], s.wakeups_new)],
    );
    e.one(migrations, s.migrations);
}
