//! CPU time and utilization from the `cpuN` lines of /proc/stat, and the boot time from its
//! `btime` line.
//!
//! A `cpuN` line holds clock ticks (USER_HZ) per state: user nice system idle iowait irq
//! softirq steal guest guest_nice. Guest time is already counted in user and nice, so the
//! two guest columns are ignored. Only per-cpu lines are reported; the aggregate `cpu` line
//! is their sum. Kernels that print fewer than eight columns get only the states they print.

use crate::parse::{LineErrors, excerpt, fields, lines, parse_u64};
use crate::table::{MetricDef, MetricKind, Val, ValueType};
use crate::wire::{Out, StackStr};

pub const CPU_TIME: MetricDef = MetricDef {
    name: "system.cpu.time",
    kind: MetricKind::Counter,
    value: ValueType::Double,
    unit: "s",
    attributes: &["cpu", "state"],
    help: "Seconds each logical CPU spent in each state (user, nice, system, idle, wait, interrupt, softirq, steal).",
    source: "/proc/stat cpuN lines, ticks / USER_HZ",
    prom: None,
};

pub const CPU_UTILIZATION: MetricDef = MetricDef {
    name: "system.cpu.utilization",
    kind: MetricKind::Gauge,
    value: ValueType::Double,
    unit: "1",
    attributes: &["cpu", "state"],
    help: "Fraction of each logical CPU's time spent in each state since the previous collection (absent on the first).",
    source: "/proc/stat cpuN lines, delta of state / delta of all states between two collections",
    prom: None,
};

pub const METRICS: &[MetricDef] = &[CPU_TIME, CPU_UTILIZATION];

/// `state` attribute values, in /proc/stat column order.
pub const STATES: [&str; 8] = [
    "user",
    "nice",
    "system",
    "idle",
    "wait",
    "interrupt",
    "softirq",
    "steal",
];

/// The fewest columns a `cpuN` line may have (user nice system idle: every 2.6+ kernel).
const MIN_COLUMNS: usize = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Sample {
    cpu: u32,
    /// How many of `ticks` the line had (4..=8).
    n: usize,
    ticks: [u64; 8],
}

/// Keeps the previous cycle's samples for utilization. Both vectors are reused.
#[derive(Debug)]
pub(crate) struct CpuCollector {
    /// USER_HZ: ticks per second.
    hz: f64,
    cur: Vec<Sample>,
    prev: Vec<Sample>,
    have_prev: bool,
}

/// USER_HZ as the C library reports it; 100 on every mainstream Linux.
pub(crate) fn user_hz() -> u64 {
    // SAFETY: sysconf has no preconditions; it only reads a configuration value.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(hz).ok().filter(|&h| h > 0).unwrap_or(100)
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

    /// Parses /proc/stat into the current samples and returns `btime` (seconds since the
    /// epoch) if present. Malformed `cpuN` lines are skipped and recorded in `errs`.
    pub(crate) fn parse(&mut self, input: &[u8], errs: &mut LineErrors<'_>) -> Option<u64> {
        self.cur.clear();
        let mut btime = None;
        for (no, line) in lines(input).enumerate() {
            let mut f = fields(line);
            let Some(key) = f.next() else { continue };
            if key == b"btime" {
                match f.next().and_then(parse_u64) {
                    Some(b) => btime = Some(b),
                    None => errs.add(no, || format!("malformed btime line {}", excerpt(line))),
                }
                continue;
            }
            let Some(id) = key.strip_prefix(b"cpu") else {
                continue;
            };
            if id.is_empty() {
                continue; // the aggregate line
            }
            let Some(cpu) = parse_u64(id).and_then(|c| u32::try_from(c).ok()) else {
                errs.add(no, || format!("bad cpu name {}", excerpt(key)));
                continue;
            };
            let mut s = Sample {
                cpu,
                n: 0,
                ticks: [0; 8],
            };
            let mut bad = false;
            for (slot, field) in s.ticks.iter_mut().zip(f.by_ref()) {
                match parse_u64(field) {
                    Some(v) => {
                        *slot = v;
                        s.n += 1;
                    }
                    None => {
                        bad = true;
                        break;
                    }
                }
            }
            if bad || s.n < MIN_COLUMNS {
                errs.add(no, || format!("malformed cpu line {}", excerpt(line)));
                continue;
            }
            self.cur.push(s);
        }
        self.cur.sort_by_key(|s| s.cpu);
        let before = self.cur.len();
        self.cur.dedup_by_key(|s| s.cpu);
        if self.cur.len() != before {
            errs.add(0, || {
                "duplicate cpu lines; kept the first of each".to_string()
            });
        }
        btime
    }

    /// Emits `system.cpu.time` for the samples just parsed and, from the second cycle on,
    /// `system.cpu.utilization` against the previous samples; then keeps the samples.
    pub(crate) fn emit(&mut self, out: &mut Out<'_>) {
        // Rows of METRICS.
        let (time, util) = (0, 1);
        let mut b = out.batch(METRICS);
        for s in &self.cur {
            let name = cpu_name(s.cpu);
            for (state, &ticks) in STATES.iter().zip(&s.ticks[..s.n]) {
                b.add(
                    time,
                    &[("cpu", name.as_str()), ("state", state)],
                    // Dividing (not multiplying by 1/hz) keeps 57 ticks at 0.57 s, not 0.5700000000000001.
                    Val::F(ticks as f64 / self.hz),
                );
            }
        }

        if self.have_prev {
            for s in &self.cur {
                let Ok(i) = self.prev.binary_search_by_key(&s.cpu, |p| p.cpu) else {
                    continue; // came online since the last cycle
                };
                let p = &self.prev[i];
                if p.n != s.n {
                    continue;
                }
                let mut delta = [0u64; 8];
                let mut total: u64 = 0;
                let mut backwards = false;
                for ((d, now), before) in delta.iter_mut().zip(&s.ticks[..s.n]).zip(&p.ticks) {
                    match now.checked_sub(*before) {
                        Some(v) => {
                            *d = v;
                            total = total.saturating_add(v);
                        }
                        None => backwards = true,
                    }
                }
                // A counter going backwards means the cpu was offlined and onlined (hotplug)
                // or the kernel's iowait accounting wobbled: this interval is meaningless.
                if backwards || total == 0 {
                    continue;
                }
                let name = cpu_name(s.cpu);
                for (state, &d) in STATES.iter().zip(&delta[..s.n]) {
                    b.add(
                        util,
                        &[("cpu", name.as_str()), ("state", state)],
                        Val::F((d as f64 / total as f64).clamp(0.0, 1.0)),
                    );
                }
            }
        }
        b.finish();

        std::mem::swap(&mut self.cur, &mut self.prev);
        self.have_prev = true;
    }
}

fn cpu_name(cpu: u32) -> StackStr {
    StackStr::new(format_args!("cpu{cpu}"))
}
