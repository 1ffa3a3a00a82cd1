//! The host's process summary, on whenever the collector is: processes by state and
//! threads (from the `stat` file of every process, read anyway, so the counts cover every
//! process whatever the filters and caps), and processes created (`processes` in
//! /proc/stat) as a counter and as a rate over the interval. The states are the
//! heartbeat's: running (R), sleeping (S, and I: idle kernel threads), stopped (T, t),
//! zombie (Z), blocked (D: uninterruptible, usually waiting for I/O).

use opentelemetry_proto::tonic::metrics::v1::Metric;

use crate::Ctx;
use crate::otlp::attr;
use crate::parse::{fields, lines, parse_u64};
use crate::table::{MetricDef, Val, counter_i, gauge_f, updown_i};

pub const METRICS: &[MetricDef] = &[
    updown_i(
        "system.process.count",
        "{process}",
        &["process.state"],
        "Processes by state: running, sleeping, stopped, zombie, blocked (other states are not counted).",
        "/proc/<pid>/stat state of every process",
    ),
    updown_i(
        "system.thread.count",
        "{thread}",
        &[],
        "Threads of all processes.",
        "/proc/<pid>/stat num_threads of every process",
    ),
    counter_i(
        "system.process.created",
        "{process}",
        &[],
        "Processes and threads created since boot (forks).",
        "/proc/stat processes",
    ),
    gauge_f(
        "system.process.fork.rate",
        "{process}/s",
        &[],
        "Processes and threads created per second since the previous collection (absent on the first).",
        "/proc/stat processes: delta / elapsed",
    ),
];

/// `process.state` values, in the order of [`Summary::states`].
pub const STATES: [&str; 5] = ["running", "sleeping", "stopped", "zombie", "blocked"];

/// Counts of one cycle.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Summary {
    pub states: [u64; 5],
    pub threads: u64,
}

impl Summary {
    pub(crate) fn add(&mut self, state: u8, threads: u64) {
        let i = match state {
            b'R' => 0,
            b'S' | b'I' => 1,
            b'T' | b't' => 2,
            b'Z' => 3,
            b'D' => 4,
            _ => 5,
        };
        if let Some(n) = self.states.get_mut(i) {
            *n += 1;
        }
        self.threads = self.threads.saturating_add(threads);
    }

    /// Emits the counts; `created` is /proc/stat's `processes`, `rate` its rate if known.
    pub(crate) fn emit(
        &self,
        created: Option<u64>,
        rate: Option<f64>,
        ctx: &Ctx,
        out: &mut Vec<Metric>,
    ) {
        let points = STATES
            .iter()
            .zip(self.states)
            .map(|(s, n)| METRICS[0].point(vec![attr("process.state", *s)], Val::U(n), ctx))
            .collect();
        METRICS[0].push(points, out);
        METRICS[1].push(
            vec![METRICS[1].point(Vec::new(), Val::U(self.threads), ctx)],
            out,
        );
        if let Some(c) = created {
            METRICS[2].push(vec![METRICS[2].point(Vec::new(), Val::U(c), ctx)], out);
        }
        if let Some(r) = rate {
            METRICS[3].push(vec![METRICS[3].point(Vec::new(), Val::F(r), ctx)], out);
        }
    }
}

/// `(btime, processes)` from /proc/stat.
pub(crate) fn parse_proc_stat(input: &[u8]) -> (Option<u64>, Option<u64>) {
    let (mut btime, mut processes) = (None, None);
    for line in lines(input) {
        let mut f = fields(line);
        match f.next() {
            Some(b"btime") => btime = f.next().and_then(parse_u64),
            Some(b"processes") => processes = f.next().and_then(parse_u64),
            _ => {}
        }
    }
    (btime, processes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_as_the_heartbeat_counts_them() {
        let mut s = Summary::default();
        for (st, th) in [
            (b'R', 2),
            (b'S', 1),
            (b'I', 1),
            (b't', 1),
            (b'Z', 0),
            (b'D', 4),
            (b'X', 1),
        ] {
            s.add(st, th);
        }
        assert_eq!(s.states, [1, 2, 1, 1, 1]);
        assert_eq!(s.threads, 10);
        assert_eq!(
            parse_proc_stat(b"cpu 1 2\nbtime 1700000000\nprocesses 4242\nprocs_running 1\n"),
            (Some(1_700_000_000), Some(4242))
        );
        assert_eq!(parse_proc_stat(b"btime x\nprocesses\n"), (None, None));
    }
}
