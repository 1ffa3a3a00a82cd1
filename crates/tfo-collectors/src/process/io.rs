//! `/proc/<pid>/io` (on by default, `disk_io`): bytes the process caused to be read from
//! and written to storage. Other users' processes need CAP_SYS_PTRACE; without it the
//! file is counted as permission-denied and the process's other metrics are still sent.

use crate::parse::{fields, lines, parse_u64};
use crate::table::{MetricDef, counter_i};

pub const METRICS: &[MetricDef] = &[counter_i(
    "process.disk.io",
    "By",
    &[
        "process.pid",
        "process.parent_pid",
        "process.executable.name",
        "process.owner",
        "disk.io.direction",
    ],
    "Bytes the process read from and wrote to storage (page-cache hits are not counted), by direction.",
    "/proc/<pid>/io read_bytes, write_bytes",
)];

/// `(read_bytes, write_bytes)`, or `None` when either line is missing or malformed.
pub(crate) fn parse(input: &[u8]) -> Option<(u64, u64)> {
    let (mut read, mut write) = (None, None);
    for line in lines(input) {
        let mut f = fields(line);
        match f.next() {
            Some(b"read_bytes:") => read = Some(parse_u64(f.next()?)?),
            Some(b"write_bytes:") => write = Some(parse_u64(f.next()?)?),
            _ => {}
        }
    }
    Some((read?, write?))
}

#[cfg(test)]
mod tests {
    #[test]
    fn bytes_and_garbage() {
        let ok = b"rchar: 1\nwchar: 2\nsyscr: 3\nsyscw: 4\nread_bytes: 4096\nwrite_bytes: 8192\ncancelled_write_bytes: 0\n";
        assert_eq!(super::parse(ok), Some((4096, 8192)));
        assert_eq!(super::parse(b"read_bytes: 1\n"), None);
        assert_eq!(super::parse(b"read_bytes: x\nwrite_bytes: 1\n"), None);
        assert_eq!(super::parse(b"read_bytes:\nwrite_bytes: 1\n"), None);
        assert_eq!(super::parse(b"\xff\x00"), None);
    }
}
