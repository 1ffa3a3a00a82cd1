//! `/proc/<pid>/stat`: the one file read for every process, selected or not. It gives the
//! state and threads for the host summary, and CPU, memory (rss and vsize: `statm` is not
//! read, its resident and size columns are the same kernel counters), faults, threads and
//! start time for the per-process metrics.
//!
//! The line is `pid (comm) state ppid ...`. `comm` may hold spaces and parentheses, so the
//! fields are counted from the last `)`.

use crate::parse::{fields, parse_i64, parse_u64};
use crate::table::{MetricDef, counter_f, counter_i, gauge_f, updown_i};

pub const METRICS: &[MetricDef] = &[
    counter_f(
        "process.cpu.time",
        "s",
        &[
            "process.pid",
            "process.parent_pid",
            "process.executable.name",
            "process.owner",
            "cpu.mode",
        ],
        "CPU seconds the process has used, by mode (user, system).",
        "/proc/<pid>/stat utime, stime / USER_HZ",
    ),
    MetricDef::new(
        "process.cpu.utilization",
        crate::table::MetricKind::Gauge,
        crate::table::ValueType::Double,
        "1",
        &[
            "process.pid",
            "process.parent_pid",
            "process.executable.name",
            "process.owner",
            "cpu.mode",
        ],
        "Fraction of the host's CPU capacity (all logical CPUs) the process used in each mode since the previous collection (absent on a process's first).",
        "/proc/<pid>/stat utime, stime: delta / (elapsed × USER_HZ × online CPUs)",
    ),
    updown_i(
        "process.memory.usage",
        "By",
        &[
            "process.pid",
            "process.parent_pid",
            "process.executable.name",
            "process.owner",
        ],
        "Resident set size of the process.",
        "/proc/<pid>/stat rss × page size",
    ),
    updown_i(
        "process.memory.virtual",
        "By",
        &[
            "process.pid",
            "process.parent_pid",
            "process.executable.name",
            "process.owner",
        ],
        "Virtual memory size of the process.",
        "/proc/<pid>/stat vsize",
    ),
    updown_i(
        "process.thread.count",
        "{thread}",
        &[
            "process.pid",
            "process.parent_pid",
            "process.executable.name",
            "process.owner",
        ],
        "Threads of the process.",
        "/proc/<pid>/stat num_threads",
    ),
    counter_i(
        "process.paging.faults",
        "{fault}",
        &[
            "process.pid",
            "process.parent_pid",
            "process.executable.name",
            "process.owner",
            "system.paging.fault.type",
        ],
        "Page faults of the process, by type (major: needed I/O, minor).",
        "/proc/<pid>/stat majflt, minflt",
    ),
    gauge_f(
        "process.uptime",
        "s",
        &[
            "process.pid",
            "process.parent_pid",
            "process.executable.name",
            "process.owner",
        ],
        "Seconds since the process started.",
        "now − (boot time + /proc/<pid>/stat starttime / USER_HZ)",
    ),
];

pub(crate) const CPU_TIME: usize = 0;
pub(crate) const CPU_UTILIZATION: usize = 1;
pub(crate) const MEMORY_USAGE: usize = 2;
pub(crate) const MEMORY_VIRTUAL: usize = 3;
pub(crate) const THREADS: usize = 4;
pub(crate) const FAULTS: usize = 5;
pub(crate) const UPTIME: usize = 6;

/// `PF_KTHREAD` in the flags field: a kernel thread (no memory, no command line).
const PF_KTHREAD: u64 = 0x0020_0000;

/// The fields of one stat line this collector uses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Stat {
    pub state: u8,
    pub ppid: i64,
    pub kernel_thread: bool,
    pub minflt: u64,
    pub majflt: u64,
    /// Clock ticks (USER_HZ).
    pub utime: u64,
    pub stime: u64,
    pub threads: u64,
    /// Clock ticks after boot.
    pub starttime: u64,
    /// Bytes.
    pub vsize: u64,
    /// Pages.
    pub rss: u64,
}

/// Parses one stat line; `comm` receives the command name (at most 64 bytes kept). `None`
/// when the line is not a stat line (missing parentheses, too few or malformed fields).
pub(crate) fn parse<'a>(input: &'a [u8], comm: &mut &'a [u8]) -> Option<Stat> {
    let open = input.iter().position(|&b| b == b'(')?;
    let close = input.iter().rposition(|&b| b == b')')?;
    if close <= open {
        return None;
    }
    let name = input.get(open + 1..close)?;
    *comm = &name[..name.len().min(64)];
    let rest = input.get(close + 1..)?;
    let mut st = Stat::default();
    // Field numbers as in proc(5); `rest` starts at field 3.
    for (i, f) in fields(rest).enumerate().take(22) {
        let n = i + 3;
        match n {
            3 => {
                if f.len() != 1 || !f[0].is_ascii_alphabetic() {
                    return None;
                }
                st.state = f[0];
            }
            4 => st.ppid = parse_i64(f)?,
            9 => st.kernel_thread = parse_u64(f)? & PF_KTHREAD != 0,
            10 => st.minflt = parse_u64(f)?,
            12 => st.majflt = parse_u64(f)?,
            14 => st.utime = parse_u64(f)?,
            15 => st.stime = parse_u64(f)?,
            20 => st.threads = parse_u64(f)?,
            22 => st.starttime = parse_u64(f)?,
            23 => st.vsize = parse_u64(f)?,
            24 => {
                // rss is signed in the kernel's format; a negative value is a transient
                // accounting artefact, reported as 0.
                st.rss = parse_i64(f)?.max(0) as u64;
                return Some(st);
            }
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINE: &[u8] = b"4242 (my (odd) name) S 1 4242 4242 0 -1 4194560 1234 0 7 0 150 25 0 0 20 0 3 0 98765 123456789 321 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n";

    #[test]
    fn fields_after_the_last_parenthesis() {
        let mut comm: &[u8] = b"";
        let s = parse(LINE, &mut comm).unwrap();
        assert_eq!(comm, b"my (odd) name");
        assert_eq!(
            s,
            Stat {
                state: b'S',
                ppid: 1,
                kernel_thread: false,
                minflt: 1234,
                majflt: 7,
                utime: 150,
                stime: 25,
                threads: 3,
                starttime: 98765,
                vsize: 123456789,
                rss: 321,
            }
        );
    }

    #[test]
    fn kernel_threads_and_garbage() {
        let mut comm: &[u8] = b"";
        let k = b"2 (kthreadd) S 0 0 0 0 -1 2129984 0 0 0 0 0 3 0 0 20 0 1 0 2 0 0 18446744073709551615";
        assert!(parse(k, &mut comm).unwrap().kernel_thread);
        for bad in [
            &b""[..],
            b"1 (x",
            b"1 x) S",
            b") (",
            b"1 (x) S 1 2",
            b"1 (x) SS 1 1 1 0 -1 0 0 0 0 0 1 1 0 0 20 0 1 0 5 6 7",
            b"1 (x) S 1 1 1 0 -1 0 0 0 0 0 1 -1 0 0 20 0 1 0 5 6 7",
            b"1 (x) S 1 1 1 0 -1 0 0 0 0 0 1 99999999999999999999999 0 0 20 0 1 0 5 6 7",
        ] {
            assert!(
                parse(bad, &mut comm).is_none(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
