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

use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::metrics::v1::{Metric, NumberDataPoint};

pub use crate::mounts::{
    EXCLUDED_FS_TYPES, FsStats, LibcStatFs, StatFs, is_excluded_mountpoint, is_remote_fs_type,
};

use crate::Ctx;
use crate::mounts::{MountInfo, MountScanner};
use crate::otlp::{attr, point_f64, point_i64};
use crate::parse::to_i64;
use crate::table::{MetricDef, MetricKind, ValueType};
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

/// Attribute values of one filesystem.
struct FsAttrs<'a> {
    m: &'a MountInfo,
}

impl FsAttrs<'_> {
    fn kvs(&self, state: Option<&'static str>) -> Vec<KeyValue> {
        let mut v = Vec::with_capacity(5);
        v.push(attr("device", self.m.device.as_str()));
        v.push(attr("mode", if self.m.read_only { "ro" } else { "rw" }));
        v.push(attr("mountpoint", self.m.mountpoint.as_str()));
        v.push(attr("type", self.m.fstype.as_str()));
        if let Some(s) = state {
            v.push(attr("state", s));
        }
        v
    }
}

#[derive(Default)]
struct Points {
    usage: Vec<NumberDataPoint>,
    util: Vec<NumberDataPoint>,
    inodes: Vec<NumberDataPoint>,
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
        ctx: &Ctx,
        out: &mut Vec<Metric>,
        report: &mut CollectReport,
    ) {
        let mut points = Points::default();
        self.scanner
            .scan(input, path, host, &keep_default, report, &mut |m, st| {
                if let Some(st) = st {
                    emit(&FsAttrs { m }, st, ctx, &mut points);
                }
            });
        FILESYSTEM_USAGE.push(points.usage, out);
        FILESYSTEM_UTILIZATION.push(points.util, out);
        FILESYSTEM_INODES_USAGE.push(points.inodes, out);
    }
}

fn emit(a: &FsAttrs<'_>, st: &FsStats, ctx: &Ctx, p: &mut Points) {
    let (start, now) = (ctx.boot_ns, ctx.now_ns);
    let bytes = |blocks: u64| blocks.saturating_mul(st.fragment_size);
    let used = bytes(st.blocks.saturating_sub(st.blocks_free));
    let free = bytes(st.blocks_available);
    let reserved = bytes(st.blocks_free.saturating_sub(st.blocks_available));
    for (state, v) in [("used", used), ("free", free), ("reserved", reserved)] {
        p.usage
            .push(point_i64(a.kvs(Some(state)), start, now, to_i64(v)));
    }
    let usable = used.saturating_add(free);
    if usable > 0 {
        p.util.push(point_f64(
            a.kvs(None),
            0,
            now,
            (used as f64 / usable as f64).clamp(0.0, 1.0),
        ));
    }
    if st.files > 0 {
        let iused = st.files.saturating_sub(st.files_free);
        p.inodes
            .push(point_i64(a.kvs(Some("used")), start, now, to_i64(iused)));
        p.inodes.push(point_i64(
            a.kvs(Some("free")),
            start,
            now,
            to_i64(st.files_free),
        ));
    }
}
