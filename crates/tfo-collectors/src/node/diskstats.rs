//! Block device I/O from /proc/diskstats (node_exporter's `diskstats` collector).
//!
//! A line is `major minor name` followed by 11 counters (kernel 2.6.25+), 15 with the
//! discard columns (4.18+) and 17 with the flush columns (5.5+); each metric below names
//! its column. Sectors are always 512 bytes in this file, whatever the device's sector
//! size. Devices are selected by the `disk_devices` filter (by default no partitions and
//! no ram, zram, loop or floppy devices).

use std::path::Path;

use super::{NameFilter, Out, counter_f, counter_i, gauge_i};
use crate::CollectReport;
use crate::parse::{LineErrors, excerpt, fields, lines, parse_u64};
use crate::table::{MetricDef, PromKind, Val};

const fn dev_counter_i(
    name: &'static str,
    unit: &'static str,
    help: &'static str,
    source: &'static str,
) -> MetricDef {
    counter_i(name, unit, &["device"], help, source)
}

const fn dev_seconds(name: &'static str, help: &'static str, source: &'static str) -> MetricDef {
    counter_f(name, "s", &["device"], help, source)
}

pub const METRICS: &[MetricDef] = &[
    dev_counter_i(
        "node.disk.io.read_bytes",
        "By",
        "Bytes read from each disk.",
        "/proc/diskstats column 6 (sectors read) x 512",
    )
    .prom("node_disk_read_bytes_total", PromKind::Counter),
    dev_counter_i(
        "node.disk.io.write_bytes",
        "By",
        "Bytes written to each disk.",
        "/proc/diskstats column 10 (sectors written) x 512",
    )
    .prom("node_disk_written_bytes_total", PromKind::Counter),
    dev_counter_i(
        "node.disk.io.reads",
        "{operation}",
        "Reads completed per disk.",
        "/proc/diskstats column 4",
    )
    .prom("node_disk_reads_completed_total", PromKind::Counter),
    dev_counter_i(
        "node.disk.io.writes",
        "{operation}",
        "Writes completed per disk.",
        "/proc/diskstats column 8",
    )
    .prom("node_disk_writes_completed_total", PromKind::Counter),
    dev_counter_i(
        "node.disk.io.reads_merged",
        "{operation}",
        "Adjacent reads merged before reaching each disk.",
        "/proc/diskstats column 5",
    )
    .prom("node_disk_reads_merged_total", PromKind::Counter),
    dev_counter_i(
        "node.disk.io.writes_merged",
        "{operation}",
        "Adjacent writes merged before reaching each disk.",
        "/proc/diskstats column 9",
    )
    .prom("node_disk_writes_merged_total", PromKind::Counter),
    dev_seconds(
        "node.disk.io.read_time",
        "Seconds spent by all reads per disk (overlapping reads add up).",
        "/proc/diskstats column 7 / 1000",
    )
    .prom("node_disk_read_time_seconds_total", PromKind::Counter),
    dev_seconds(
        "node.disk.io.write_time",
        "Seconds spent by all writes per disk (overlapping writes add up).",
        "/proc/diskstats column 11 / 1000",
    )
    .prom("node_disk_write_time_seconds_total", PromKind::Counter),
    gauge_i(
        "node.disk.io.in_progress",
        "{operation}",
        &["device"],
        "I/Os in flight on each disk now.",
        "/proc/diskstats column 12",
    )
    .prom("node_disk_io_now", PromKind::Gauge),
    dev_seconds(
        "node.disk.io.time",
        "Seconds each disk had at least one I/O in flight.",
        "/proc/diskstats column 13 / 1000",
    )
    .prom("node_disk_io_time_seconds_total", PromKind::Counter),
    dev_seconds(
        "node.disk.io.weighted_time",
        "Seconds of I/O in flight weighted by the number in flight (queue time).",
        "/proc/diskstats column 14 / 1000",
    )
    .prom(
        "node_disk_io_time_weighted_seconds_total",
        PromKind::Counter,
    ),
    dev_counter_i(
        "node.disk.discard.completed",
        "{operation}",
        "Discards completed per disk (kernel 4.18+).",
        "/proc/diskstats column 15",
    )
    .prom("node_disk_discards_completed_total", PromKind::Counter),
    dev_counter_i(
        "node.disk.discard.merged",
        "{operation}",
        "Adjacent discards merged per disk (kernel 4.18+).",
        "/proc/diskstats column 16",
    )
    .prom("node_disk_discards_merged_total", PromKind::Counter),
    dev_counter_i(
        "node.disk.discard.sectors",
        "{sector}",
        "512-byte sectors discarded per disk (kernel 4.18+).",
        "/proc/diskstats column 17",
    )
    .prom("node_disk_discarded_sectors_total", PromKind::Counter),
    dev_seconds(
        "node.disk.discard.time",
        "Seconds spent by all discards per disk (kernel 4.18+).",
        "/proc/diskstats column 18 / 1000",
    )
    .prom("node_disk_discard_time_seconds_total", PromKind::Counter),
    dev_counter_i(
        "node.disk.flush.completed",
        "{operation}",
        "Flush requests completed per disk (kernel 5.5+).",
        "/proc/diskstats column 19",
    )
    .prom("node_disk_flush_requests_total", PromKind::Counter),
    dev_seconds(
        "node.disk.flush.time",
        "Seconds spent by all flush requests per disk (kernel 5.5+).",
        "/proc/diskstats column 20 / 1000",
    )
    .prom(
        "node_disk_flush_requests_time_seconds_total",
        PromKind::Counter,
    ),
];

/// How a row's value comes from a counter column.
#[derive(Clone, Copy)]
enum Conv {
    Raw,
    Sectors,
    Millis,
}

/// For each row of [`METRICS`]: the counter index after `major minor name`, and the
/// conversion.
const COLUMNS: [(usize, Conv); 17] = [
    (2, Conv::Sectors),
    (6, Conv::Sectors),
    (0, Conv::Raw),
    (4, Conv::Raw),
    (1, Conv::Raw),
    (5, Conv::Raw),
    (3, Conv::Millis),
    (7, Conv::Millis),
    (8, Conv::Raw),
    (9, Conv::Millis),
    (10, Conv::Millis),
    (11, Conv::Raw),
    (12, Conv::Raw),
    (13, Conv::Raw),
    (14, Conv::Millis),
    (15, Conv::Raw),
    (16, Conv::Millis),
];

/// Counters every line must have.
const MIN_COUNTERS: usize = 11;

pub(crate) fn collect(
    input: &[u8],
    path: &Path,
    filter: &NameFilter,
    out: &mut Out<'_>,
    report: &mut CollectReport,
) {
    let mut errs = LineErrors::new(path);
    let mut b = out.batch(METRICS);
    for (no, line) in lines(input).enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let mut f = fields(line);
        let (Some(major), Some(minor), Some(name)) = (f.next(), f.next(), f.next()) else {
            errs.add(no, || format!("too few fields: {}", excerpt(line)));
            continue;
        };
        let mut c = [0u64; 17];
        let mut got = 0;
        for (slot, field) in c.iter_mut().zip(f) {
            let Some(v) = parse_u64(field) else { break };
            *slot = v;
            got += 1;
        }
        if parse_u64(major).is_none() || parse_u64(minor).is_none() || got < MIN_COUNTERS {
            errs.add(no, || {
                format!(
                    "expected `major minor name` and at least 11 counters: {}",
                    excerpt(line)
                )
            });
            continue;
        }
        if !filter.allows(name) {
            continue;
        }
        let dev = String::from_utf8_lossy(name);
        for (row, &(col, conv)) in COLUMNS.iter().enumerate() {
            if col >= got {
                continue;
            }
            let v = match conv {
                Conv::Raw => Val::U(c[col]),
                Conv::Sectors => Val::U(c[col].saturating_mul(512)),
                Conv::Millis => Val::F(c[col] as f64 / 1000.0),
            };
            b.add(row, &[("device", &dev)], v);
        }
    }
    errs.finish(report);
    b.finish();
}
