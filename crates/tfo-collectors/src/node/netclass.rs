//! Interface state from /sys/class/net (the part of node_exporter's `netclass` collector
//! dashboards use): three small reads per interface, selected by the same
//! `network_interfaces` filter as netdev.
//!
//! `speed` is unreadable (EINVAL) for virtual interfaces and `-1` when the link speed is
//! unknown; both are left out (node_exporter 1.5 reports the latter as -125000).

use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use super::netdev::LABELS;
use super::sysfs::{Entry, SysScratch};
use super::{NameFilter, Out, gauge_i};
use crate::CollectReport;
use crate::table::{MetricDef, PromKind, Val};

const ATTRS: &[&str] = &["interface"];

pub const METRICS: &[MetricDef] = &[
    gauge_i(
        "node.network.up",
        "1",
        ATTRS,
        "1 if the interface's operational state is up, else 0.",
        "/sys/class/net/<interface>/operstate",
    )
    .prom_labels("node_network_up", PromKind::Gauge, LABELS),
    gauge_i(
        "node.network.mtu",
        "By",
        ATTRS,
        "Maximum transmission unit of each interface.",
        "/sys/class/net/<interface>/mtu",
    )
    .prom_labels("node_network_mtu_bytes", PromKind::Gauge, LABELS),
    gauge_i(
        "node.network.speed",
        "By/s",
        ATTRS,
        "Link speed of each interface (absent when unknown).",
        "/sys/class/net/<interface>/speed (Mb/s) x 125000",
    )
    .prom_labels("node_network_speed_bytes", PromKind::Gauge, LABELS),
];

pub(crate) fn collect(
    dir: &Path,
    filter: &NameFilter,
    sys: &mut SysScratch,
    out: &mut Out<'_>,
    report: &mut CollectReport,
) {
    sys.list_names(dir, report);
    let entries = std::mem::take(&mut sys.entries);
    let mut b = out.batch(METRICS);
    for Entry { name, .. } in &entries {
        if !filter.allows(name.as_bytes()) {
            continue;
        }
        let dev = String::from_utf8_lossy(name.as_bytes());
        let kv = [("interface", &*dev)];
        if let Some(state) = sys.read(dir, name, "operstate") {
            let up = u64::from(state == b"up");
            b.add(0, &kv, Val::U(up));
        }
        if let Some(mtu) = sys.read_i64(dir, name, "mtu", report) {
            b.add(1, &kv, Val::I(mtu));
        }
        if let Some(speed) = sys.read_i64(dir, name, "speed", report)
            && speed >= 0
        {
            b.add(2, &kv, Val::I(speed.saturating_mul(125_000)));
        }
    }
    sys.entries = entries;
    b.finish();
}
