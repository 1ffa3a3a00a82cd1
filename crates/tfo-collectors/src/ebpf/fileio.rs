//! File I/O by operation: calls, bytes and (with `syscall_latency`) latency of
//! read/write/fsync/open syscalls on regular files (the fd is classified by its inode, so
//! sockets, pipes and devices do not count), from `tp_btf/sys_exit`, plus `tp_btf/sys_enter`
//! for latency.

use tfo_ebpf::snapshot::{FileIoStats, FileOp};

use super::{Emit, counter, latency};
use crate::table::MetricDef;

/// The table; destructured by the mapping, so a row cannot be forgotten.
const ROWS: [MetricDef; 3] = [
    counter(
        "ebpf.fileio.operations",
        "{operation}",
        &["operation"],
        "File operations completed on regular files, by operation: `read` (read, pread64, \
         readv, preadv, preadv2), `write` (write, pwrite64, writev, pwritev, pwritev2), \
         `fsync` (fsync, fdatasync), `open` (open, openat, openat2, creat; any path). \
         Failed calls are included.",
        "tp_btf/sys_exit (tp_btf/sys_enter too with syscall_latency)",
    ),
    counter(
        "ebpf.fileio.bytes",
        "By",
        &["operation"],
        "Bytes transferred by read and write calls on regular files (the sum of their \
         positive return values), by operation (`read`, `write`).",
        "tp_btf/sys_exit",
    ),
    latency(
        "ebpf.fileio.latency_ns",
        &["operation"],
        "Time from entry to exit of file operations on regular files, by operation. \
         Power-of-two bucket bounds; the sum is estimated from bucket midpoints.",
        "tp_btf/sys_enter + tp_btf/sys_exit (only with syscall_latency: true)",
    ),
];

pub const METRICS: &[MetricDef] = &ROWS;

/// Maps the per-operation counters: every operation the loader reports has a series
/// (zeros included); bytes only for read and write, which move data; latency only when it
/// is measured (`latency`).
pub(crate) fn map(stats: &FileIoStats, latency: bool, e: &mut Emit<'_>) {
    let [operations, bytes, latency_ns] = &ROWS;
    e.counter(
        operations,
        stats.ops.iter().map(|s| ([s.op.as_str()], s.count)),
    );
    e.counter(
        bytes,
        stats
            .ops
            .iter()
            .filter(|s| matches!(s.op, FileOp::Read | FileOp::Write))
            .map(|s| ([s.op.as_str()], s.bytes)),
    );
    if latency {
        e.histogram(
            latency_ns,
            stats.ops.iter().map(|s| ([s.op.as_str()], &s.latency)),
        );
    }
}
