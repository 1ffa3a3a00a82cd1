//! Per-CPU sysfs: frequency scaling (node_exporter's `cpufreq` collector) and thermal
//! throttle counters (part of its `cpu` collector). Both are off by default: they cost
//! three or four file reads per CPU per cycle, which on a large host is most of a cycle.
//!
//! Frequencies are in kHz in sysfs and reported in Hz. Core throttle counters are shared
//! by the hyperthreads of a core, so they are reported once per (package, core).

use std::path::Path;

use super::sysfs::{Entry, SysScratch};
use super::{Out, counter_i, gauge_i};
use crate::CollectReport;
use crate::table::{MetricDef, PromKind, Val};
use crate::wire::StackStr;

pub const FREQ_METRICS: &[MetricDef] = &[
    gauge_i(
        "node.cpu.frequency",
        "Hz",
        &["cpu"],
        "Current scaled frequency of each CPU.",
        "/sys/devices/system/cpu/cpuN/cpufreq/scaling_cur_freq x 1000",
    )
    .prom("node_cpu_scaling_frequency_hertz", PromKind::Gauge),
    gauge_i(
        "node.cpu.frequency_min",
        "Hz",
        &["cpu"],
        "Lowest frequency the governor may choose for each CPU.",
        "/sys/devices/system/cpu/cpuN/cpufreq/scaling_min_freq x 1000",
    )
    .prom("node_cpu_scaling_frequency_min_hertz", PromKind::Gauge),
    gauge_i(
        "node.cpu.frequency_max",
        "Hz",
        &["cpu"],
        "Highest frequency the governor may choose for each CPU.",
        "/sys/devices/system/cpu/cpuN/cpufreq/scaling_max_freq x 1000",
    )
    .prom("node_cpu_scaling_frequency_max_hertz", PromKind::Gauge),
];

pub const THROTTLE_METRICS: &[MetricDef] = &[
    counter_i(
        "node.cpu.thermal.core_throttles",
        "{event}",
        &["core", "package"],
        "Times each core was throttled because it ran too hot.",
        "/sys/devices/system/cpu/cpuN/thermal_throttle/core_throttle_count, topology/{core_id,physical_package_id}",
    )
    .prom("node_cpu_core_throttles_total", PromKind::Counter),
    counter_i(
        "node.cpu.thermal.package_throttles",
        "{event}",
        &["package"],
        "Times each CPU package was throttled because it ran too hot.",
        "/sys/devices/system/cpu/cpuN/thermal_throttle/package_throttle_count, topology/physical_package_id",
    )
    .prom("node_cpu_package_throttles_total", PromKind::Counter),
];

const FREQ_FILES: [&str; 3] = [
    "cpufreq/scaling_cur_freq",
    "cpufreq/scaling_min_freq",
    "cpufreq/scaling_max_freq",
];

pub(crate) fn collect(
    dir: &Path,
    freq: bool,
    throttles: bool,
    sys: &mut SysScratch,
    out: &mut Out<'_>,
    report: &mut CollectReport,
) {
    sys.list(dir, "cpu", report);
    let entries = std::mem::take(&mut sys.entries);
    // Frequencies of every CPU, then throttles: the two tables share the row buffers.
    if freq {
        let mut fb = out.batch(FREQ_METRICS);
        for Entry { n, name, .. } in &entries {
            let cpu = StackStr::new(format_args!("{n}"));
            for (row, file) in FREQ_FILES.iter().enumerate() {
                if let Some(khz) = sys.read_i64(dir, name, file, report) {
                    fb.add(
                        row,
                        &[("cpu", cpu.as_str())],
                        Val::I(khz.saturating_mul(1000)),
                    );
                }
            }
        }
        fb.finish();
    }
    if throttles {
        let mut tb = out.batch(THROTTLE_METRICS);
        // (package, core) pairs and packages already reported this cycle.
        let mut seen_cores: Vec<(i64, i64)> = Vec::new();
        let mut seen_packages: Vec<i64> = Vec::new();
        for Entry { name, .. } in &entries {
            let Some(package) = sys.read_i64(dir, name, "topology/physical_package_id", report)
            else {
                continue;
            };
            let pkg = StackStr::new(format_args!("{package}"));
            if let Some(core) = sys.read_i64(dir, name, "topology/core_id", report)
                && !seen_cores.contains(&(package, core))
                && let Some(v) =
                    sys.read_i64(dir, name, "thermal_throttle/core_throttle_count", report)
            {
                seen_cores.push((package, core));
                let core = StackStr::new(format_args!("{core}"));
                tb.add(
                    0,
                    &[("core", core.as_str()), ("package", pkg.as_str())],
                    Val::I(v),
                );
            }
            if !seen_packages.contains(&package)
                && let Some(v) =
                    sys.read_i64(dir, name, "thermal_throttle/package_throttle_count", report)
            {
                seen_packages.push(package);
                tb.add(1, &[("package", pkg.as_str())], Val::I(v));
            }
        }
        tb.finish();
    }
    sys.entries = entries;
}
