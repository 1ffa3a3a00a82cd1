//! Thermal zones and cooling devices from /sys/class/thermal (node_exporter's
//! `thermal_zone` collector).
//!
//! `thermal_zoneN/temp` is in millidegrees Celsius and reported in degrees; a zone whose
//! `type` or `temp` cannot be read (some firmware zones answer EIO or ENODATA) is
//! skipped. Hosts without thermal zones (most VMs) emit nothing.

use std::path::Path;

use super::sysfs::{Entry, SysScratch};
use super::{Out, gauge_f, gauge_i};
use crate::CollectReport;
use crate::table::{MetricDef, PromKind, Val};
use crate::wire::StackStr;

pub const METRICS: &[MetricDef] = &[
    gauge_f(
        "node.thermal.zone.temperature",
        "Cel",
        &["zone", "type"],
        "Temperature of each thermal zone.",
        "/sys/class/thermal/thermal_zoneN/temp / 1000, type from .../type",
    )
    .prom("node_thermal_zone_temp", PromKind::Gauge),
    gauge_i(
        "node.thermal.cooling_device.state",
        "1",
        &["device", "type"],
        "Current throttle state of each cooling device (0 = not cooling).",
        "/sys/class/thermal/cooling_deviceN/cur_state",
    )
    .prom_labels(
        "node_cooling_device_cur_state",
        PromKind::Gauge,
        &["name", "type"],
    ),
    gauge_i(
        "node.thermal.cooling_device.max_state",
        "1",
        &["device", "type"],
        "Highest throttle state of each cooling device.",
        "/sys/class/thermal/cooling_deviceN/max_state",
    )
    .prom_labels(
        "node_cooling_device_max_state",
        PromKind::Gauge,
        &["name", "type"],
    ),
];

pub(crate) fn collect(
    dir: &Path,
    sys: &mut SysScratch,
    out: &mut Out<'_>,
    report: &mut CollectReport,
) {
    let mut b = out.batch(METRICS);

    sys.list(dir, "thermal_zone", report);
    let entries = std::mem::take(&mut sys.entries);
    // The type is copied out of the read buffer the next read reuses: one string kept
    // for the cycle rather than one per zone.
    let mut kind = String::new();
    for Entry { n, name, .. } in &entries {
        let Some(t) = sys.read(dir, name, "type") else {
            continue;
        };
        kind.clear();
        kind.push_str(&String::from_utf8_lossy(t));
        if let Some(milli) = sys.read_i64(dir, name, "temp", report) {
            let zone = StackStr::new(format_args!("{n}"));
            b.add(
                0,
                &[("zone", zone.as_str()), ("type", &kind)],
                Val::F(milli as f64 / 1000.0),
            );
        }
    }

    sys.list(dir, "cooling_device", report);
    let cooling = std::mem::replace(&mut sys.entries, entries);
    for Entry { n, name, .. } in &cooling {
        let Some(t) = sys.read(dir, name, "type") else {
            continue;
        };
        kind.clear();
        kind.push_str(&String::from_utf8_lossy(t));
        let device = StackStr::new(format_args!("{n}"));
        let kv = [("device", device.as_str()), ("type", kind.as_str())];
        if let Some(v) = sys.read_i64(dir, name, "cur_state", report) {
            b.add(1, &kv, Val::I(v));
        }
        if let Some(v) = sys.read_i64(dir, name, "max_state", report) {
            b.add(2, &kv, Val::I(v));
        }
    }
    b.finish();
}
