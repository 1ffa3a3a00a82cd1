//! Thermal zones and cooling devices from /sys/class/thermal (node_exporter's
//! `thermal_zone` collector).
//!
//! `thermal_zoneN/temp` is in millidegrees Celsius and reported in degrees; a zone whose
//! `type` or `temp` cannot be read (some firmware zones answer EIO or ENODATA) is
//! skipped. Hosts without thermal zones (most VMs) emit nothing.

use std::path::Path;

use opentelemetry_proto::tonic::metrics::v1::Metric;

use super::sysfs::{Entry, SysScratch};
use super::{Batch, gauge_f, gauge_i};
use crate::otlp::attr;
use crate::parse::lossy;
use crate::table::{MetricDef, PromKind, Val};
use crate::{CollectReport, Ctx};

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
    ctx: &Ctx,
    out: &mut Vec<Metric>,
    report: &mut CollectReport,
) {
    let mut b = Batch::new(METRICS.len());

    sys.list(dir, "thermal_zone", report);
    let entries = std::mem::take(&mut sys.entries);
    for Entry { n, name, .. } in &entries {
        let Some(kind) = sys.read(dir, name, "type").map(lossy) else {
            continue;
        };
        if let Some(milli) = sys.read_i64(dir, name, "temp", report) {
            b.add(
                0,
                METRICS[0].point(
                    vec![attr("zone", n.to_string()), attr("type", kind)],
                    Val::F(milli as f64 / 1000.0),
                    ctx,
                ),
            );
        }
    }

    sys.list(dir, "cooling_device", report);
    let cooling = std::mem::replace(&mut sys.entries, entries);
    for Entry { n, name, .. } in &cooling {
        let Some(kind) = sys.read(dir, name, "type").map(lossy) else {
            continue;
        };
        let kv = || vec![attr("device", n.to_string()), attr("type", kind.as_str())];
        if let Some(v) = sys.read_i64(dir, name, "cur_state", report) {
            b.add(1, METRICS[1].point(kv(), Val::I(v), ctx));
        }
        if let Some(v) = sys.read_i64(dir, name, "max_state", report) {
            b.add(2, METRICS[2].point(kv(), Val::I(v), ctx));
        }
    }
    b.flush(METRICS, out);
}
