//! Filesystem space and inodes (node_exporter's `filesystem` collector): mounts from
//! `/proc/<pid>/mounts`, sizes from statvfs(3) through [`crate::mounts`], so a hung
//! network filesystem costs at most the remote timeout once and is then skipped (and
//! reported as `node.filesystem.device_error` = 1) until its statvfs returns.
//!
//! Mounts are selected by the `mount_points` and `fs_types` filters (by default no pseudo
//! filesystems and nothing under /dev, /proc, /sys). Space follows node_exporter:
//! `free` counts the blocks free to root, `available` those free to unprivileged users.

use std::path::Path;

use super::{Batch, Filters, Out, gauge_f, gauge_i};
use crate::mounts::{FsStats, MountInfo, MountScanner};
use crate::table::{MetricDef, PromKind, Val};
use crate::{CollectReport, HostPaths};

const ATTRS: &[&str] = &["device", "mountpoint", "fstype"];

pub const METRICS: &[MetricDef] = &[
    gauge_i("node.filesystem.size", "By", ATTRS, "Size of each filesystem.", "statvfs(3) f_blocks x f_frsize")
        .prom("node_filesystem_size_bytes", PromKind::Gauge),
    gauge_i("node.filesystem.free", "By", ATTRS, "Free space, including the blocks reserved for root.", "statvfs(3) f_bfree x f_frsize")
        .prom("node_filesystem_free_bytes", PromKind::Gauge),
    gauge_i("node.filesystem.available", "By", ATTRS, "Free space available to unprivileged users.", "statvfs(3) f_bavail x f_frsize")
        .prom("node_filesystem_avail_bytes", PromKind::Gauge),
    gauge_i("node.filesystem.usage", "By", ATTRS, "Used space: size minus free.", "statvfs(3) (f_blocks - f_bfree) x f_frsize"),
    gauge_f("node.filesystem.utilization", "1", ATTRS, "Fraction of the space usable by unprivileged users that is used: used / (used + available), as df's Use%.", "statvfs(3)"),
    gauge_i("node.filesystem.files", "{inode}", ATTRS, "Inodes of each filesystem (0 for filesystems without an inode count).", "statvfs(3) f_files")
        .prom("node_filesystem_files", PromKind::Gauge),
    gauge_i("node.filesystem.files_free", "{inode}", ATTRS, "Free inodes.", "statvfs(3) f_ffree")
        .prom("node_filesystem_files_free", PromKind::Gauge),
    gauge_i("node.filesystem.readonly", "1", ATTRS, "1 if the filesystem is mounted read-only, else 0.", "/proc/<pid>/mounts options: ro")
        .prom("node_filesystem_readonly", PromKind::Gauge),
    gauge_i("node.filesystem.device_error", "1", ATTRS, "1 if statvfs failed or timed out this cycle (the other filesystem metrics are then absent for it), else 0.", "statvfs(3) result")
        .prom("node_filesystem_device_error", PromKind::Gauge),
];

#[allow(clippy::too_many_arguments)]
pub(crate) fn collect(
    scanner: &mut MountScanner,
    input: &[u8],
    path: &Path,
    host: &HostPaths,
    filters: &Filters,
    out: &mut Out<'_>,
    report: &mut CollectReport,
) {
    let mut b = out.batch(METRICS);
    let keep = |mp: &[u8], fstype: &[u8]| {
        filters.mount_points.allows(mp) && filters.fs_types.allows(fstype)
    };
    scanner.scan(input, path, host, &keep, report, &mut |m, st| {
        emit(m, st, &mut b)
    });
    b.finish();
}

fn emit(m: &MountInfo, st: Option<&FsStats>, b: &mut Batch) {
    let kvs = [
        ("device", m.device.as_str()),
        ("mountpoint", m.mountpoint.as_str()),
        ("fstype", m.fstype.as_str()),
    ];
    b.add(8, &kvs, Val::U(u64::from(st.is_none())));
    let Some(st) = st else { return };
    let bytes = |blocks: u64| blocks.saturating_mul(st.fragment_size);
    let used = bytes(st.blocks.saturating_sub(st.blocks_free));
    let avail = bytes(st.blocks_available);
    let values = [
        (0, Val::U(bytes(st.blocks))),
        (1, Val::U(bytes(st.blocks_free))),
        (2, Val::U(avail)),
        (3, Val::U(used)),
        (5, Val::U(st.files)),
        (6, Val::U(st.files_free)),
        (7, Val::U(u64::from(m.read_only))),
    ];
    for (row, v) in values {
        b.add(row, &kvs, v);
    }
    let usable = used.saturating_add(avail);
    if usable > 0 {
        b.add(
            4,
            &kvs,
            Val::F((used as f64 / usable as f64).clamp(0.0, 1.0)),
        );
    }
}
