//! Block device I/O from /proc/diskstats.
//!
//! A line is `major minor name` followed by at least 11 counters (kernel 2.6.25+; 4.18 adds
//! 4 discard columns, 5.5 adds 2 flush columns, which are ignored here):
//! reads, reads merged, sectors read, ms reading, writes, writes merged, sectors written,
//! ms writing, I/Os in flight, ms doing I/O, weighted ms doing I/O.
//! Sectors are always 512 bytes in this file, whatever the device's sector size.
//!
//! Partitions and ram/loop/floppy devices are left out, like node_exporter's default
//! `^(z?ram|loop|fd|(h|s|v|xv)d[a-z]|nvme\d+n\d+p)\d+$`; whole disks, dm-*, md* stay.

use std::path::Path;

use crate::CollectReport;
use crate::parse::{LineErrors, excerpt, fields, lines, parse_u64};
use crate::table::{MetricDef, MetricKind, Val, ValueType};
use crate::wire::Out;

pub const DISK_IO: MetricDef = MetricDef {
    name: "system.disk.io",
    kind: MetricKind::Counter,
    value: ValueType::Int,
    unit: "By",
    attributes: &["device", "direction"],
    help: "Bytes read from and written to each disk (direction read, write).",
    source: "/proc/diskstats sectors read (field 6) / written (field 10), x 512",
    prom: None,
};

pub const DISK_OPERATIONS: MetricDef = MetricDef {
    name: "system.disk.operations",
    kind: MetricKind::Counter,
    value: ValueType::Int,
    unit: "{operation}",
    attributes: &["device", "direction"],
    help: "Completed read and write operations per disk.",
    source: "/proc/diskstats reads completed (field 4) / writes completed (field 8)",
    prom: None,
};

pub const DISK_IO_TIME: MetricDef = MetricDef {
    name: "system.disk.io_time",
    kind: MetricKind::Counter,
    value: ValueType::Double,
    unit: "s",
    attributes: &["device"],
    help: "Seconds each disk had at least one I/O in flight.",
    source: "/proc/diskstats ms doing I/O (field 13) / 1000",
    prom: None,
};

pub const DISK_OPERATION_TIME: MetricDef = MetricDef {
    name: "system.disk.operation_time",
    kind: MetricKind::Counter,
    value: ValueType::Double,
    unit: "s",
    attributes: &["device", "direction"],
    help: "Seconds spent by all read and write operations per disk (overlapping operations add up).",
    source: "/proc/diskstats ms reading (field 7) / ms writing (field 11), / 1000",
    prom: None,
};

pub const DISK_MERGED: MetricDef = MetricDef {
    name: "system.disk.merged",
    kind: MetricKind::Counter,
    value: ValueType::Int,
    unit: "{operation}",
    attributes: &["device", "direction"],
    help: "Adjacent read and write requests merged into one before reaching each disk.",
    source: "/proc/diskstats reads merged (field 5) / writes merged (field 9)",
    prom: None,
};

pub const METRICS: &[MetricDef] = &[
    DISK_IO,
    DISK_OPERATIONS,
    DISK_IO_TIME,
    DISK_OPERATION_TIME,
    DISK_MERGED,
];

/// Counters after `major minor name`; lines must have at least this many.
const COUNTERS: usize = 11;

/// True for devices left out by default: partitions and ram, zram, loop and floppy devices,
/// exactly the names matched by `^(z?ram|loop|fd|(h|s|v|xv)d[a-z]|nvme\d+n\d+p)\d+$`.
pub fn is_excluded_device(name: &[u8]) -> bool {
    fn digits(s: &[u8]) -> bool {
        !s.is_empty() && s.iter().all(u8::is_ascii_digit)
    }
    /// Strips one or more leading digits.
    fn strip_digits(s: &[u8]) -> Option<&[u8]> {
        let n = s.iter().take_while(|b| b.is_ascii_digit()).count();
        (n > 0).then(|| &s[n..])
    }
    for prefix in [&b"zram"[..], b"ram", b"loop", b"fd"] {
        if let Some(rest) = name.strip_prefix(prefix)
            && digits(rest)
        {
            return true;
        }
    }
    for prefix in [&b"hd"[..], b"sd", b"vd", b"xvd"] {
        if let Some(rest) = name.strip_prefix(prefix)
            && let Some((letter, rest)) = rest.split_first()
            && letter.is_ascii_lowercase()
            && digits(rest)
        {
            return true;
        }
    }
    if let Some(rest) = name.strip_prefix(b"nvme")
        && let Some(rest) = strip_digits(rest)
        && let Some(rest) = rest.strip_prefix(b"n")
        && let Some(rest) = strip_digits(rest)
        && let Some(rest) = rest.strip_prefix(b"p")
        && digits(rest)
    {
        return true;
    }
    false
}

pub(crate) fn collect(input: &[u8], path: &Path, out: &mut Out<'_>, report: &mut CollectReport) {
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
        let mut c = [0u64; COUNTERS];
        let mut got = 0;
        for (slot, field) in c.iter_mut().zip(f.by_ref()) {
            let Some(v) = parse_u64(field) else { break };
            *slot = v;
            got += 1;
        }
        if parse_u64(major).is_none() || parse_u64(minor).is_none() || got < COUNTERS {
            errs.add(no, || {
                format!(
                    "expected `major minor name` and 11 counters: {}",
                    excerpt(line)
                )
            });
            continue;
        }
        if is_excluded_device(name) {
            continue;
        }
        let dev = String::from_utf8_lossy(name);
        let read = [("device", &*dev), ("direction", "read")];
        let write = [("device", &*dev), ("direction", "write")];
        let ms = |v: u64| v as f64 / 1000.0;
        let [
            reads,
            reads_merged,
            sectors_read,
            ms_reading,
            writes,
            writes_merged,
            sectors_written,
            ms_writing,
            _in_flight,
            ms_io,
            _weighted,
        ] = c;
        let (io, ops, io_time, op_time, merged) = (0, 1, 2, 3, 4);
        b.add(io, &read, Val::U(sectors_read.saturating_mul(512)));
        b.add(io, &write, Val::U(sectors_written.saturating_mul(512)));
        b.add(ops, &read, Val::U(reads));
        b.add(ops, &write, Val::U(writes));
        b.add(io_time, &[("device", &dev)], Val::F(ms(ms_io)));
        b.add(op_time, &read, Val::F(ms(ms_reading)));
        b.add(op_time, &write, Val::F(ms(ms_writing)));
        b.add(merged, &read, Val::U(reads_merged));
        b.add(merged, &write, Val::U(writes_merged));
    }
    errs.finish(report);
    b.finish();
}

#[cfg(test)]
mod tests {
    use super::is_excluded_device;

    #[test]
    fn default_device_exclusion() {
        for name in [
            "ram0",
            "ram15",
            "zram0",
            "loop0",
            "loop12",
            "fd0",
            "sda1",
            "sdb15",
            "hda2",
            "vda1",
            "xvda1",
            "xvdz3",
            "nvme0n1p1",
            "nvme12n3p45",
        ] {
            assert!(
                is_excluded_device(name.as_bytes()),
                "{name} should be excluded"
            );
        }
        for name in [
            "sda",
            "vda",
            "xvda",
            "hdb",
            "nvme0n1",
            "nvme10n2",
            "dm-0",
            "md127",
            "sr0",
            "mmcblk0",
            "mmcblk0p1",
            "nbd0",
            "sdaa1",
            "zram",
            "loop",
            "ram",
            "loopa",
            "sd1",
            "nvme0n1p",
            "nvmen1p1",
            "nvme0p1",
            "Sda1",
            "sda1x",
            "",
            "fd",
            "xvd1",
        ] {
            assert!(
                !is_excluded_device(name.as_bytes()),
                "{name} should be kept"
            );
        }
    }
}
