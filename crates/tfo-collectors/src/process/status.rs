//! `/proc/<pid>/status` (opt-in, `context_switches`): the only source of a process's
//! context switches, and the most expensive file of the set (the kernel formats some 55
//! lines, including the memory map summary), so it is read only when asked for.

use crate::parse::{fields, lines, parse_u64};
use crate::table::{MetricDef, counter_i};

pub const METRICS: &[MetricDef] = &[counter_i(
    "process.context_switches",
    "{context_switch}",
    &[
        "process.pid",
        "process.parent_pid",
        "process.executable.name",
        "process.owner",
        "process.context_switch.type",
    ],
    "Context switches of the process's threads, by type (voluntary: it waited; involuntary: it was preempted).",
    "/proc/<pid>/status voluntary_ctxt_switches, nonvoluntary_ctxt_switches",
)];

/// `(voluntary, involuntary)`, or `None` when either line is missing or malformed.
pub(crate) fn parse(input: &[u8]) -> Option<(u64, u64)> {
    let (mut vol, mut invol) = (None, None);
    for line in lines(input) {
        // The two lines are last; skip the others by their first byte.
        if !matches!(line.first(), Some(b'v' | b'n')) {
            continue;
        }
        let mut f = fields(line);
        match f.next() {
            Some(b"voluntary_ctxt_switches:") => vol = Some(parse_u64(f.next()?)?),
            Some(b"nonvoluntary_ctxt_switches:") => invol = Some(parse_u64(f.next()?)?),
            _ => {}
        }
    }
    Some((vol?, invol?))
}

#[cfg(test)]
mod tests {
    #[test]
    fn switches_and_garbage() {
        let ok = b"Name:\tsleep\nState:\tS (sleeping)\nNSpid:\t12\nvoluntary_ctxt_switches:\t17\nnonvoluntary_ctxt_switches:\t3\n";
        assert_eq!(super::parse(ok), Some((17, 3)));
        assert_eq!(super::parse(b"voluntary_ctxt_switches:\t17\n"), None);
        assert_eq!(
            super::parse(b"voluntary_ctxt_switches:\t-1\nnonvoluntary_ctxt_switches:\t3\n"),
            None
        );
        assert_eq!(super::parse(b"\xff\n\n"), None);
    }
}
