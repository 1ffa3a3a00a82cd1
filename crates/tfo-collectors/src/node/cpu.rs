//! CPU time, usage and kernel activity counters from /proc/stat (node_exporter's `cpu`
//! collector and the CPU half of its `stat` collector).
//!
//! A `cpuN` line holds clock ticks (USER_HZ) per mode: user nice system idle iowait irq
//! softirq steal guest guest_nice. As in node_exporter, `node.cpu.time` reports the first
//! eight as they are (user and nice include guest time) and the two guest columns go to
//! `node.cpu.guest_time`. The aggregate `cpu` line is not reported: it is the sum of the
//! others. Kernels that print fewer columns get only the modes they print (at least four).
//!
//! `node.cpu.usage` and `node.cpu.utilization` compare with the previous cycle, so they
//! start on the second one; an interval in which a counter went backwards (CPU hotplug)
//! is skipped for that CPU.

use std::path::Path;

use super::{Batch, Out, counter_f, counter_i, gauge_f, gauge_i};
use crate::CollectReport;
use crate::parse::{LineErrors, excerpt, fields, lines, parse_u64};
use crate::table::{MetricDef, PromKind, Val};
use crate::wire::StackStr;

pub const METRICS: &[MetricDef] = &[
    counter_f(
        "node.cpu.time",
        "s",
        &["cpu", "mode"],
        "Seconds each CPU spent in each mode (user, nice, system, idle, iowait, irq, softirq, steal); user and nice include guest time.",
        "/proc/stat cpuN columns 1-8 / USER_HZ",
    )
    .prom("node_cpu_seconds_total", PromKind::Counter),
    counter_f(
        "node.cpu.guest_time",
        "s",
        &["cpu", "mode"],
        "Seconds each CPU spent running guests (mode user: guest, nice: guest_nice).",
        "/proc/stat cpuN columns 9-10 / USER_HZ",
    )
    .prom("node_cpu_guest_seconds_total", PromKind::Counter),
    gauge_f(
        "node.cpu.usage",
        "1",
        &["cpu", "mode"],
        "Fraction of each CPU's time spent in each mode since the previous collection (absent on the first).",
        "/proc/stat cpuN: delta of the mode / delta of all eight modes",
    ),
    gauge_f(
        "node.cpu.utilization",
        "1",
        &[],
        "Fraction of all CPUs' time not idle and not waiting for I/O since the previous collection (absent on the first).",
        "/proc/stat cpuN: 1 - delta(idle + iowait) / delta(all modes), summed over CPUs",
    ),
    gauge_i(
        "node.cpu.count",
        "{cpu}",
        &[],
        "Number of online logical CPUs.",
        "/proc/stat: number of cpuN lines",
    ),
    counter_i(
        "node.cpu.context_switches",
        "{switch}",
        &[],
        "Context switches since boot.",
        "/proc/stat ctxt",
    )
    .prom("node_context_switches_total", PromKind::Counter),
    counter_i(
        "node.cpu.interrupts",
        "{interrupt}",
        &[],
        "Interrupts serviced since boot.",
        "/proc/stat intr, first column",
    )
    .prom("node_intr_total", PromKind::Counter),
    counter_i(
        "node.cpu.softirqs",
        "{softirq}",
        &[],
        "Softirqs serviced since boot.",
        "/proc/stat softirq, first column",
    ),
];

const TIME: usize = 0;
const GUEST: usize = 1;
const USAGE: usize = 2;
const UTIL: usize = 3;
const COUNT: usize = 4;
const CTXT: usize = 5;
const INTR: usize = 6;
const SOFTIRQ: usize = 7;

/// `mode` attribute values, in /proc/stat column order (node_exporter's names).
pub const MODES: [&str; 8] = [
    "user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal",
];
const GUEST_MODES: [&str; 2] = ["user", "nice"];

/// The fewest columns a `cpuN` line may have (user nice system idle: every 2.6+ kernel).
const MIN_COLUMNS: usize = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Sample {
    cpu: u32,
    /// How many of `ticks` the line had (4..=10).
    n: usize,
    ticks: [u64; 10],
}

/// The non-CPU lines of /proc/stat.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct StatLines {
    pub btime: Option<u64>,
    pub ctxt: Option<u64>,
    pub intr: Option<u64>,
    pub softirq: Option<u64>,
    pub processes: Option<u64>,
    pub procs_running: Option<u64>,
    pub procs_blocked: Option<u64>,
}

/// Keeps the previous cycle's samples for usage. Both vectors are reused.
#[derive(Debug)]
pub(crate) struct CpuCollector {
    hz: f64,
    cur: Vec<Sample>,
    prev: Vec<Sample>,
    have_prev: bool,
}

impl CpuCollector {
    pub(crate) fn new(user_hz: u64) -> Self {
        CpuCollector {
            hz: user_hz.max(1) as f64,
            cur: Vec::new(),
            prev: Vec::new(),
            have_prev: false,
        }
    }

    /// Parses /proc/stat into the current samples and the other lines. Malformed lines
    /// are skipped and reported.
    pub(crate) fn parse(
        &mut self,
        input: &[u8],
        path: &Path,
        report: &mut CollectReport,
    ) -> StatLines {
        let mut errs = LineErrors::new(path);
        let mut s = StatLines::default();
        self.cur.clear();
        for (no, line) in lines(input).enumerate() {
            let mut f = fields(line);
            let Some(key) = f.next() else { continue };
            let slot = match key {
                b"btime" => &mut s.btime,
                b"ctxt" => &mut s.ctxt,
                b"intr" => &mut s.intr,
                b"softirq" => &mut s.softirq,
                b"processes" => &mut s.processes,
                b"procs_running" => &mut s.procs_running,
                b"procs_blocked" => &mut s.procs_blocked,
                _ => {
                    if let Some(id) = key.strip_prefix(b"cpu")
                        && !id.is_empty()
                    {
                        self.parse_cpu(no, line, id, f, &mut errs);
                    }
                    continue;
                }
            };
            match f.next().and_then(parse_u64) {
                Some(v) => *slot = Some(v),
                None => errs.add(no, || format!("malformed line {}", excerpt(line))),
            }
        }
        self.cur.sort_by_key(|s| s.cpu);
        let before = self.cur.len();
        self.cur.dedup_by_key(|s| s.cpu);
        if self.cur.len() != before {
            errs.add(0, || {
                "duplicate cpu lines; kept the first of each".to_string()
            });
        }
        errs.finish(report);
        s
    }

    fn parse_cpu<'a>(
        &mut self,
        no: usize,
        line: &[u8],
        id: &[u8],
        f: impl Iterator<Item = &'a [u8]>,
        errs: &mut LineErrors<'_>,
    ) {
        let Some(cpu) = parse_u64(id).and_then(|c| u32::try_from(c).ok()) else {
            errs.add(no, || format!("bad cpu name {}", excerpt(line)));
            return;
        };
        let mut s = Sample {
            cpu,
            n: 0,
            ticks: [0; 10],
        };
        for (slot, field) in s.ticks.iter_mut().zip(f) {
            match parse_u64(field) {
                Some(v) => {
                    *slot = v;
                    s.n += 1;
                }
                None => {
                    s.n = 0;
                    break;
                }
            }
        }
        if s.n < MIN_COLUMNS {
            errs.add(no, || format!("malformed cpu line {}", excerpt(line)));
            return;
        }
        self.cur.push(s);
    }

    /// Emits the cpu metrics for the samples just parsed, then keeps them for the next
    /// cycle's usage.
    pub(crate) fn emit(&mut self, st: &StatLines, out: &mut Out<'_>) {
        let mut b = out.batch(METRICS);
        for s in &self.cur {
            let name = StackStr::new(format_args!("{}", s.cpu));
            for (i, &ticks) in s.ticks[..s.n.min(8)].iter().enumerate() {
                b.add(
                    TIME,
                    &[("cpu", name.as_str()), ("mode", MODES[i])],
                    Val::F(ticks as f64 / self.hz),
                );
            }
            for (i, &ticks) in s.ticks[8..s.n.max(8)].iter().enumerate() {
                b.add(
                    GUEST,
                    &[("cpu", name.as_str()), ("mode", GUEST_MODES[i])],
                    Val::F(ticks as f64 / self.hz),
                );
            }
        }
        if !self.cur.is_empty() {
            b.add(COUNT, &[], Val::U(self.cur.len() as u64));
        }
        if self.have_prev {
            self.usage(&mut b);
        }
        for (row, v) in [(CTXT, st.ctxt), (INTR, st.intr), (SOFTIRQ, st.softirq)] {
            if let Some(v) = v {
                b.add(row, &[], Val::U(v));
            }
        }
        b.finish();
        std::mem::swap(&mut self.cur, &mut self.prev);
        self.have_prev = true;
    }

    fn usage(&self, b: &mut Batch) {
        let (mut busy_all, mut total_all) = (0u64, 0u64);
        for s in &self.cur {
            let Ok(i) = self.prev.binary_search_by_key(&s.cpu, |p| p.cpu) else {
                continue; // came online since the last cycle
            };
            let p = &self.prev[i];
            let n = s.n.min(8);
            if p.n.min(8) != n {
                continue;
            }
            let mut delta = [0u64; 8];
            let mut total: u64 = 0;
            let mut backwards = false;
            for ((d, now), before) in delta.iter_mut().zip(&s.ticks[..n]).zip(&p.ticks) {
                match now.checked_sub(*before) {
                    Some(v) => {
                        *d = v;
                        total = total.saturating_add(v);
                    }
                    None => backwards = true,
                }
            }
            if backwards || total == 0 {
                continue;
            }
            let name = StackStr::new(format_args!("{}", s.cpu));
            for (i, &d) in delta[..n].iter().enumerate() {
                b.add(
                    USAGE,
                    &[("cpu", name.as_str()), ("mode", MODES[i])],
                    Val::F((d as f64 / total as f64).clamp(0.0, 1.0)),
                );
            }
            // idle is column 4, iowait column 5 (absent on the oldest kernels).
            let idle = delta[3].saturating_add(if n > 4 { delta[4] } else { 0 });
            busy_all = busy_all.saturating_add(total.saturating_sub(idle));
            total_all = total_all.saturating_add(total);
        }
        if total_all > 0 {
            b.add(
                UTIL,
                &[],
                Val::F((busy_all as f64 / total_all as f64).clamp(0.0, 1.0)),
            );
        }
    }
}
