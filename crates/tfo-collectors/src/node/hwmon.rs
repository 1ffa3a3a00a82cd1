//! Hardware sensors from /sys/class/hwmon (node_exporter's `hwmon` collector, for the
//! temperature, fan and voltage inputs dashboards chart).
//!
//! The `chip` label is node_exporter's: from the resolved `device` link, `<bus>_<device>`
//! (e.g. `platform_coretemp_0`), else the `name` file, else the `hwmonN` directory name,
//! lower-cased with everything outside `[a-z0-9:_]` replaced by `_`. `sensor` is the file
//! stem (`temp1`). Sysfs reports millidegrees and millivolts; they are converted to degrees
//! Celsius and volts. Sensors of pre-3.x drivers kept under `hwmonN/device/` are not read.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use super::kept::dirents;
use super::sysfs::{Entry, SysScratch};
use super::{Out, gauge_f, gauge_i};
use crate::CollectReport;
use crate::parse::{lossy, parse_u64};
use crate::table::{MetricDef, PromKind, Val};

const ATTRS: &[&str] = &["chip", "sensor"];

pub const METRICS: &[MetricDef] = &[
    gauge_f(
        "node.hwmon.temperature",
        "Cel",
        ATTRS,
        "Temperature reported by each hardware sensor.",
        "/sys/class/hwmon/hwmonN/tempM_input / 1000",
    )
    .prom("node_hwmon_temp_celsius", PromKind::Gauge),
    gauge_f(
        "node.hwmon.temperature_max",
        "Cel",
        ATTRS,
        "High temperature threshold of each sensor.",
        "/sys/class/hwmon/hwmonN/tempM_max / 1000",
    )
    .prom("node_hwmon_temp_max_celsius", PromKind::Gauge),
    gauge_f(
        "node.hwmon.temperature_crit",
        "Cel",
        ATTRS,
        "Critical temperature threshold of each sensor.",
        "/sys/class/hwmon/hwmonN/tempM_crit / 1000",
    )
    .prom("node_hwmon_temp_crit_celsius", PromKind::Gauge),
    gauge_i(
        "node.hwmon.fan_speed",
        "{rpm}",
        ATTRS,
        "Fan speed, in revolutions per minute.",
        "/sys/class/hwmon/hwmonN/fanM_input",
    )
    .prom("node_hwmon_fan_rpm", PromKind::Gauge),
    gauge_f(
        "node.hwmon.voltage",
        "V",
        ATTRS,
        "Voltage reported by each sensor.",
        "/sys/class/hwmon/hwmonN/inM_input / 1000",
    )
    .prom("node_hwmon_in_volts", PromKind::Gauge),
];

/// (file prefix, file suffix, row, divisor).
const SENSORS: [(&[u8], &[u8], usize, f64); 5] = [
    (b"temp", b"_input", 0, 1000.0),
    (b"temp", b"_max", 1, 1000.0),
    (b"temp", b"_crit", 2, 1000.0),
    (b"fan", b"_input", 3, 1.0),
    (b"in", b"_input", 4, 1000.0),
];

/// node_exporter's `cleanMetricName`.
pub(crate) fn clean_name(raw: &[u8]) -> String {
    let s: String = raw
        .iter()
        .map(|&b| {
            let c = b.to_ascii_lowercase();
            if c.is_ascii_lowercase() || c.is_ascii_digit() || c == b':' || c == b'_' {
                c as char
            } else {
                '_'
            }
        })
        .collect();
    s.trim_matches('_').to_string()
}

fn chip_name(dir: &Path, entry: &OsStr, sys: &mut SysScratch) -> String {
    if let Some(dev) = sys.canonical(dir, entry, "device") {
        let name = dev
            .file_name()
            .map(|n| clean_name(n.as_bytes()))
            .unwrap_or_default();
        let bus = dev
            .parent()
            .and_then(Path::file_name)
            .map(|n| clean_name(n.as_bytes()))
            .unwrap_or_default();
        if !bus.is_empty() && !name.is_empty() {
            return format!("{bus}_{name}");
        }
        if !name.is_empty() {
            return name;
        }
    }
    if let Some(n) = sys.read(dir, entry, "name") {
        let n = clean_name(n);
        if !n.is_empty() {
            return n;
        }
    }
    clean_name(entry.as_bytes())
}

/// Per hwmon device, what does not change while it exists: its chip label (a realpath
/// of its `device` link) and its sensor files, derived again only when the device's
/// listing (read every cycle) changes rather than every cycle. Keyed by (entry, inode):
/// a device registered again under the same `hwmonN` gets a new inode and is resolved
/// anew. Holds only the devices of the last listing.
#[derive(Debug, Default)]
pub(crate) struct Chips {
    chips: Vec<Chip>,
}

#[derive(Debug)]
struct Chip {
    entry: OsString,
    ino: u64,
    label: String,
    /// The raw listing the sensors were derived from.
    listing: Vec<u8>,
    sensors: Vec<Sensor>,
}

#[derive(Debug)]
struct Sensor {
    /// The attribute file, e.g. `temp1_input`.
    file: String,
    row: usize,
    /// Sysfs reports millidegrees and millivolts.
    div: f64,
    /// The `sensor` label, e.g. `temp1`.
    label: String,
}

/// The sensor files of a listing, sorted by file name, each with its row and label.
fn sensors_of(listing: &[u8]) -> Vec<Sensor> {
    let mut files: Vec<&[u8]> = dirents(listing).map(|(_, n)| n).collect();
    files.sort_unstable();
    let mut sensors = Vec::new();
    for f in files {
        for (prefix, suffix, row, div) in SENSORS {
            let Some(id) = f.strip_prefix(prefix).and_then(|r| r.strip_suffix(suffix)) else {
                continue;
            };
            if parse_u64(id).is_none() {
                continue;
            }
            let Ok(file) = std::str::from_utf8(f) else {
                continue;
            };
            sensors.push(Sensor {
                file: file.to_string(),
                row,
                div,
                label: format!("{}{}", lossy(prefix), lossy(id)),
            });
        }
    }
    sensors
}

pub(crate) fn collect(
    dir: &Path,
    chips: &mut Chips,
    sys: &mut SysScratch,
    out: &mut Out<'_>,
    report: &mut CollectReport,
) {
    sys.list(dir, "hwmon", report);
    let entries = std::mem::take(&mut sys.entries);
    let mut b = out.batch(METRICS);
    let mut known = std::mem::take(&mut chips.chips);
    for Entry {
        name: entry, ino, ..
    } in &entries
    {
        let mut chip = match known
            .iter()
            .position(|c| c.ino == *ino && c.entry == *entry)
        {
            Some(i) => known.swap_remove(i),
            None => Chip {
                entry: entry.clone(),
                ino: *ino,
                label: String::new(),
                listing: Vec::new(),
                sensors: Vec::new(),
            },
        };
        let Some(listing) = sys.listing(dir, entry, report) else {
            continue;
        };
        if listing != chip.listing.as_slice() {
            chip.listing.clear();
            chip.listing.extend_from_slice(listing);
            chip.sensors = sensors_of(listing);
            // Also when a filesystem reused the inode number of a replaced device.
            chip.label = chip_name(dir, entry, sys);
        }
        for s in &chip.sensors {
            if let Some(raw) = sys.read_i64(dir, entry, &s.file, report) {
                let v = if s.div == 1.0 {
                    Val::I(raw)
                } else {
                    Val::F(raw as f64 / s.div)
                };
                b.add(
                    s.row,
                    &[("chip", chip.label.as_str()), ("sensor", s.label.as_str())],
                    v,
                );
            }
        }
        chips.chips.push(chip);
    }
    sys.entries = entries;
    b.finish();
}

#[cfg(test)]
mod tests {
    use super::clean_name;

    #[test]
    fn chip_names_are_cleaned_like_node_exporter() {
        assert_eq!(clean_name(b"coretemp.0"), "coretemp_0");
        assert_eq!(clean_name(b"0000:00:18.3"), "0000:00:18_3");
        assert_eq!(clean_name(b"ACPI Thermal\n"), "acpi_thermal");
        assert_eq!(clean_name(b"__x__"), "x");
        assert_eq!(clean_name(b"\xff"), "");
    }
}
