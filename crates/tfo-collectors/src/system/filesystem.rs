//! Filesystem space and inodes: mounts from `/proc/<pid>/mounts`, sizes from statvfs(3).
//!
//! * Mount lines are `device mountpoint fstype options dump pass`, with space, tab, newline
//!   and backslash in the first two fields written as octal escapes (`\040`).
//! * When a mount point appears more than once the last line wins: a later mount hides
//!   the earlier one, and statvfs sees the visible one.
//! * Pseudo filesystems and mount points under /dev, /proc, /sys, /run/credentials/*,
//!   /var/lib/docker/* and /var/lib/containers/storage/* are left out, like node_exporter's
//!   defaults ([`EXCLUDED_FS_TYPES`], [`is_excluded_mountpoint`]). tmpfs is kept.
//! * statvfs on a network or FUSE filesystem is bounded in time (see [`crate::mounts`]):
//!   a mount that does not answer within `remote_timeout` (1s) is reported and skipped
//!   until its statvfs returns.
//!
//! Space states follow `df`: `used` = blocks − free blocks, `free` = blocks available to
//! unprivileged users, `reserved` = free blocks only root may use; they sum to the size.
//! `system.filesystem.utilization` = used / (used + free), the `Use%` column of `df`.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

pub use crate::mounts::{
    EXCLUDED_FS_TYPES, FsStats, LibcStatFs, StatFs, is_excluded_mountpoint, is_remote_fs_type,
};

use crate::mounts::{MountInfo, MountScanner};
use crate::table::{MetricDef, MetricKind, Val, ValueType};
use crate::wire::{Batch, Out};
use crate::{CollectReport, HostPaths};

pub const FILESYSTEM_USAGE: MetricDef = MetricDef {
    name: "system.filesystem.usage",
    kind: MetricKind::UpDownCounter,
    value: ValueType::Int,
    unit: "By",
    attributes: &["device", "mode", "mountpoint", "type", "state"],
    help: "Filesystem space by state (used, free: available to unprivileged users, reserved: free but root-only).",
    source: "statvfs(3): (f_blocks - f_bfree), f_bavail, (f_bfree - f_bavail), x f_frsize",
    prom: None,
};

pub const FILESYSTEM_UTILIZATION: MetricDef = MetricDef {
    name: "system.filesystem.utilization",
    kind: MetricKind::Gauge,
    value: ValueType::Double,
    unit: "1",
    attributes: &["device", "mode", "mountpoint", "type"],
    help: "Fraction of the space usable by unprivileged users that is used: used / (used + free), as df's Use%.",
    source: "statvfs(3)",
    prom: None,
};

pub const FILESYSTEM_INODES_USAGE: MetricDef = MetricDef {
    name: "system.filesystem.inodes.usage",
    kind: MetricKind::UpDownCounter,
    value: ValueType::Int,
    unit: "{inode}",
    attributes: &["device", "mode", "mountpoint", "type", "state"],
    help: "Filesystem inodes by state (used, free); absent for filesystems without an inode count (f_files = 0).",
    source: "statvfs(3): (f_files - f_ffree), f_ffree",
    prom: None,
};

pub const METRICS: &[MetricDef] = &[
    FILESYSTEM_USAGE,
    FILESYSTEM_UTILIZATION,
    FILESYSTEM_INODES_USAGE,
];

/// The attributes of one filesystem's points, with the `state` slot last.
fn attrs<'a>(m: &'a MountInfo, state: &'a str) -> [(&'a str, &'a str); 5] {
    [
        ("device", m.device.as_str()),
        ("mode", if m.read_only { "ro" } else { "rw" }),
        ("mountpoint", m.mountpoint.as_str()),
        ("type", m.fstype.as_str()),
        ("state", state),
    ]
}

/// The default selection: no pseudo filesystems, nothing under /dev, /proc, /sys.
fn keep_default(mountpoint: &[u8], fstype: &[u8]) -> bool {
    !EXCLUDED_FS_TYPES.iter().any(|t| t.as_bytes() == fstype) && !is_excluded_mountpoint(mountpoint)
}

pub(crate) struct FsCollector {
    scanner: MountScanner,
}

impl FsCollector {
    pub(crate) fn new(statfs: Arc<dyn StatFs>) -> Self {
        FsCollector {
            scanner: MountScanner::new(statfs),
        }
    }

    pub(crate) fn set_statfs(&mut self, statfs: Arc<dyn StatFs>) {
        self.scanner.set_statfs(statfs);
    }

    pub(crate) fn set_remote_timeout(&mut self, timeout: Duration) {
        self.scanner.remote_timeout = timeout;
    }

    /// Number of mounts whose statvfs helper is still blocked.
    pub(crate) fn stuck_count(&self) -> usize {
        self.scanner.stuck_count()
    }

    pub(crate) fn collect(
        &mut self,
        input: &[u8],
        path: &Path,
        host: &HostPaths,
        out: &mut Out<'_>,
        report: &mut CollectReport,
    ) {
        let mut b = out.batch(METRICS);
        self.scanner
            .scan(input, path, host, &keep_default, report, &mut |m, st| {
                if let Some(st) = st {
                    emit(m, st, &mut b);
                }
            });
        b.finish();
    }
}

fn emit(m: &MountInfo, st: &FsStats, b: &mut Batch<'_>) {
    // Rows of METRICS.
    let (usage, util, inodes) = (0, 1, 2);
    let bytes = |blocks: u64| blocks.saturating_mul(st.fragment_size);
    let used = bytes(st.blocks.saturating_sub(st.blocks_free));
    let free = bytes(st.blocks_available);
    let reserved = bytes(st.blocks_free.saturating_sub(st.blocks_available));
    for (state, v) in [("used", used), ("free", free), ("reserved", reserved)] {
        b.add(usage, &attrs(m, state), Val::U(v));
    }
    let usable = used.saturating_add(free);
    if usable > 0 {
        // Utilization has no state attribute.
        b.add(
            util,
            &attrs(m, "")[..4],
            Val::F((used as f64 / usable as f64).clamp(0.0, 1.0)),
        );
    }
    if st.files > 0 {
        let iused = st.files.saturating_sub(st.files_free);
        b.add(inodes, &attrs(m, "used"), Val::U(iused));
        b.add(inodes, &attrs(m, "free"), Val::U(st.files_free));
    }
}
