//! The eBPF collector's OTLP mapping: a [`Snapshot`] of what the `tfo_*` kernel programs
//! have aggregated (crate `tfo-ebpf`) becomes cumulative metrics.
//!
//! One file per category, each with its metric table at the top (the seed's names, then
//! enough further metrics to fill each category's count); the `source` column names the
//! hook behind each metric. Counters are cumulative monotonic Sums whose start time is when
//! the programs were loaded; latencies are cumulative explicit-bucket Histograms converted
//! from the kernel's log2 buckets ([`log2_point`]).
//!
//! The mapping does not know where a snapshot comes from: [`EbpfCollector`] calls a
//! closure, which the agent backs with the real loader and the tests with hand-built
//! snapshots.

pub mod fileio;
pub mod memory;
pub mod network;
pub mod sched;
pub mod syscalls;
pub mod tcp;
#[cfg(target_arch = "x86_64")]
mod x86_64;

use std::collections::HashSet;

use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::metrics::v1::{HistogramDataPoint, Metric};
pub use tfo_ebpf::snapshot::{Category, Log2Hist, Snapshot};
use tfo_ebpf::snapshot::{KERNEL_HIST_SLOTS, LOG2_BUCKETS};

use crate::table::{MetricDef, MetricKind, Val, ValueType};
use crate::{CollectError, CollectReport, Collector, Ctx};

/// Which categories are mapped (the `collect_*` switches of `collectors.ebpf`). A category
/// that is off sends nothing, and its programs' load failures are not reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EbpfOptions {
    pub syscalls: bool,
    pub network: bool,
    pub file_io: bool,
    pub scheduler: bool,
    pub memory: bool,
    pub tcp_events: bool,
    /// `collectors.ebpf.syscall_latency`: the syscall and file I/O latency histograms are
    /// measured (their programs attached) and sent.
    pub syscall_latency: bool,
}

impl Default for EbpfOptions {
    fn default() -> Self {
        EbpfOptions {
            syscalls: true,
            network: true,
            file_io: true,
            scheduler: true,
            memory: true,
            tcp_events: true,
            syscall_latency: true,
        }
    }
}

impl EbpfOptions {
    /// Whether `category` is on.
    pub fn enabled(&self, category: Category) -> bool {
        match category {
            Category::Syscalls => self.syscalls,
            Category::Network => self.network,
            Category::FileIo => self.file_io,
            Category::Scheduler => self.scheduler,
            Category::Memory => self.memory,
            Category::TcpEvents => self.tcp_events,
            // A category added to the loader later: mapped nowhere yet, but its failures
            // are worth reporting.
            _ => true,
        }
    }
}

/// Where the collector gets its snapshots: the latest aggregates, or `None` when there are
/// none (the loader is not running); `None` sends nothing.
pub type SnapshotSource = Box<dyn FnMut() -> Option<Snapshot> + Send>;

/// The `ebpf` collector: maps the latest [`Snapshot`] of its source every cycle.
pub struct EbpfCollector {
    source: SnapshotSource,
    opts: EbpfOptions,
    /// `start_time_unix_nano` of every point: when the programs were loaded.
    start_ns: u64,
    /// `(program, error)` already reported, so a failure is reported once, not every cycle.
    reported: HashSet<(String, String)>,
}

impl EbpfCollector {
    /// A collector over `source`. The start time of its points is now: build it right
    /// after loading the programs, or give the load time with [`Self::with_start_time`].
    pub fn new(source: SnapshotSource, opts: EbpfOptions) -> EbpfCollector {
        EbpfCollector {
            source,
            opts,
            start_ns: crate::unix_now_ns(),
            reported: HashSet::new(),
        }
    }

    /// The same collector with the programs' load time (ns since the epoch) as the start
    /// time of its cumulative points.
    pub fn with_start_time(mut self, loaded_at_unix_ns: u64) -> EbpfCollector {
        self.start_ns = loaded_at_unix_ns;
        self
    }

    /// Collects at `now_ns` (the timestamp of every point).
    pub fn collect_at(&mut self, now_ns: u64, out: &mut Vec<Metric>) -> CollectReport {
        let mut report = CollectReport::default();
        let Some(snap) = (self.source)() else {
            return report;
        };
        for p in &snap.programs {
            if p.attached || !self.opts.enabled(p.category) {
                continue;
            }
            let reason = p
                .error
                .clone()
                .unwrap_or_else(|| "not attached".to_string());
            if self.reported.insert((p.name.clone(), reason.clone())) {
                report.errors.push(CollectError::Program {
                    program: p.name.clone(),
                    hook: p.hook.to_string(),
                    reason,
                    fix: p.fix.clone(),
                });
            }
        }
        map(
            &snap,
            &self.opts,
            &Ctx {
                now_ns,
                boot_ns: self.start_ns,
            },
            out,
        );
        report
    }
}

impl Collector for EbpfCollector {
    fn name(&self) -> &'static str {
        "ebpf"
    }

    fn collect(&mut self, out: &mut Vec<Metric>) -> CollectReport {
        self.collect_at(crate::unix_now_ns(), out)
    }
}

/// Maps the enabled categories of `snap`; `ctx.boot_ns` is the programs' load time.
pub(crate) fn map(snap: &Snapshot, opts: &EbpfOptions, ctx: &Ctx, out: &mut Vec<Metric>) {
    let mut e = Emit { ctx: *ctx, out };
    if opts.syscalls {
        syscalls::map(&snap.syscalls, opts.syscall_latency, &mut e);
    }
    if opts.network {
        network::map(&snap.tcp, &snap.udp, &mut e);
    }
    if opts.file_io {
        fileio::map(&snap.fileio, opts.syscall_latency, &mut e);
    }
    if opts.scheduler {
        sched::map(&snap.sched, &mut e);
    }
    if opts.memory {
        memory::map(&snap.memory, &mut e);
    }
    if opts.tcp_events {
        tcp::map(&snap.tcp, &mut e);
    }
}

/// `(category, its metric table)` for the docs, in the seed's order.
pub fn metric_tables() -> Vec<(&'static str, &'static [MetricDef])> {
    vec![
        ("syscalls", syscalls::METRICS),
        ("network", network::METRICS),
        ("file I/O", fileio::METRICS),
        ("scheduler", sched::METRICS),
        ("memory", memory::METRICS),
        ("TCP state", tcp::METRICS),
    ]
}

/// The name of an x86_64 system call number, or `nr_<n>` for a number without one.
pub fn syscall_name(nr: u32) -> std::borrow::Cow<'static, str> {
    #[cfg(target_arch = "x86_64")]
    if let Some(name) = x86_64::NAMES.get(nr as usize).filter(|n| !n.is_empty()) {
        return std::borrow::Cow::Borrowed(name);
    }
    std::borrow::Cow::Owned(format!("nr_{nr}"))
}

/// A counter row: a cumulative monotonic integer Sum.
pub(crate) use crate::table::counter_i as counter;

/// A latency row: a cumulative Histogram in nanoseconds.
pub(crate) const fn latency(
    name: &'static str,
    attributes: &'static [&'static str],
    help: &'static str,
    source: &'static str,
) -> MetricDef {
    MetricDef::new(
        name,
        MetricKind::Histogram,
        ValueType::Double,
        "ns",
        attributes,
        help,
        source,
    )
}

/// Builds metrics from table rows at one cycle's timestamps.
pub(crate) struct Emit<'a> {
    ctx: Ctx,
    out: &'a mut Vec<Metric>,
}

impl Emit<'_> {
    fn attrs<S: AsRef<str>, const N: usize>(def: &MetricDef, values: [S; N]) -> Vec<KeyValue> {
        debug_assert_eq!(def.attributes.len(), N, "{}", def.name);
        def.attributes
            .iter()
            .zip(values)
            .map(|(k, v)| crate::otlp::attr(k, v.as_ref()))
            .collect()
    }

    /// A counter with one point per `(attribute values, value)`; nothing if there is none.
    pub(crate) fn counter<S: AsRef<str>, const N: usize>(
        &mut self,
        def: &MetricDef,
        points: impl IntoIterator<Item = ([S; N], u64)>,
    ) {
        let pts = points
            .into_iter()
            .map(|(values, v)| def.point(Self::attrs(def, values), Val::U(v), &self.ctx))
            .collect();
        def.push(pts, self.out);
    }

    /// A counter with a single point and no attributes.
    pub(crate) fn one(&mut self, def: &MetricDef, v: u64) {
        self.counter(def, [([] as [&str; 0], v)]);
    }

    /// A histogram with a single point and no attributes.
    pub(crate) fn one_histogram(&mut self, def: &MetricDef, h: &Log2Hist) {
        self.histogram(def, [([] as [&str; 0], h)]);
    }

    /// A histogram with one point per `(attribute values, log2 histogram)`.
    pub(crate) fn histogram<'h, S: AsRef<str>, const N: usize>(
        &mut self,
        def: &MetricDef,
        points: impl IntoIterator<Item = ([S; N], &'h Log2Hist)>,
    ) {
        let pts: Vec<HistogramDataPoint> = points
            .into_iter()
            .map(|(values, h)| {
                log2_point(
                    h,
                    Self::attrs(def, values),
                    self.ctx.boot_ns,
                    self.ctx.now_ns,
                )
            })
            .collect();
        if !pts.is_empty() {
            self.out.push(def.build_histogram(pts));
        }
    }
}

/// The estimated sum of a bucket's values: the middle of `[2^i, 2^(i+1))` (1 for bucket 0,
/// `[0, 2)`), or the lower bound of the open-ended last kernel slot.
fn bucket_mid(i: usize, open: usize) -> f64 {
    let lower = 2f64.powi(i as i32);
    match i {
        0 => 1.0,
        _ if i >= open => lower,
        _ => lower * 1.5,
    }
}

/// An OTLP explicit-bucket histogram point from kernel log2 buckets.
///
/// Log2 bucket `i` holds `[2^i, 2^(i+1))` ns, so the bounds are `2, 4, 8, ...` up to the
/// upper bound of the highest non-empty bucket: trailing empty buckets are dropped (the
/// histogram is cumulative, so its bounds only ever grow), and the overflow bucket after
/// the last bound is 0. When the kernel's open-ended last slot ([`KERNEL_HIST_SLOTS`]) is
/// in use, it is the overflow bucket. The kernel keeps no sum: `sum` is estimated from
/// each bucket's midpoint, so it lies between 0.75 and 1.5 times the true sum (values in
/// the open slot count as its lower bound, so those are underestimated).
pub fn log2_point(
    h: &Log2Hist,
    attributes: Vec<KeyValue>,
    start_ns: u64,
    time_ns: u64,
) -> HistogramDataPoint {
    let open = KERNEL_HIST_SLOTS.clamp(1, LOG2_BUCKETS) - 1;
    let used = h.used_len();
    let (bucket_counts, bounded) = if used > open {
        // The open slot (and anything above it, which the kernel does not fill) overflows.
        let mut c = h.buckets[..open].to_vec();
        c.push(
            h.buckets[open..]
                .iter()
                .fold(0u64, |a, b| a.saturating_add(*b)),
        );
        (c, open)
    } else {
        let mut c = h.buckets[..used].to_vec();
        c.push(0);
        (c, used)
    };
    let explicit_bounds = (0..bounded).map(|i| 2f64.powi(i as i32 + 1)).collect();
    let count = bucket_counts.iter().fold(0u64, |a, b| a.saturating_add(*b));
    let sum = h
        .buckets
        .iter()
        .enumerate()
        .filter(|(_, c)| **c != 0)
        .map(|(i, c)| *c as f64 * bucket_mid(i, open))
        .sum();
    HistogramDataPoint {
        attributes,
        start_time_unix_nano: start_ns,
        time_unix_nano: time_ns,
        count,
        sum: Some(sum),
        bucket_counts,
        explicit_bounds,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use opentelemetry_proto::tonic::common::v1::any_value;
    use opentelemetry_proto::tonic::metrics::v1::number_data_point::Value;
    use opentelemetry_proto::tonic::metrics::v1::{AggregationTemporality, metric};
    use tfo_ebpf::snapshot::{
        FileIoStats, FileOp, FileOpStat, MemStats, ProgramStatus, SchedStats, SyscallStat,
        TcpStats, TcpTransition, UdpStats,
    };

    use super::*;

    const LOADED: u64 = 1_000;
    const NOW: u64 = 9_000;

    fn hist(pairs: &[(usize, u64)]) -> Log2Hist {
        let mut h = Log2Hist::default();
        for &(i, n) in pairs {
            h.buckets[i] = n;
        }
        h
    }

    fn program(name: &str, category: Category, error: Option<&str>) -> ProgramStatus {
        ProgramStatus {
            name: name.to_string(),
            category,
            hook: "tp_btf/sys_enter",
            attached: error.is_none(),
            error: error.map(str::to_string),
            fix: error.map(|_| "grant CAP_BPF and CAP_PERFMON".to_string()),
            run_cnt: None,
            run_time_ns: None,
        }
    }

    /// A snapshot with something in every category.
    fn snapshot() -> Snapshot {
        let sys = |nr: u32, count: u64, errors: u64| SyscallStat {
            nr,
            name: None,
            count,
            errors,
            latency: hist(&[(8, count - 1), (12, 1)]),
        };
        let op = |op: FileOp, count: u64, bytes: u64| FileOpStat {
            op,
            count,
            errors: 0,
            bytes,
            latency: hist(&[(10, count)]),
        };
        let tr = |old: u8, new: u8, count: u64| TcpTransition { old, new, count };
        Snapshot {
            syscalls: vec![
                sys(0, 10, 1),
                sys(39, 5, 0),
                sys(400, 2, 2),
                sys(1000, 3, 0),
            ],
            tcp: TcpStats {
                connects_active: 4,
                connects_passive: 3,
                connects_failed: 1,
                bytes_sent: 4096,
                bytes_received: 2048,
                retransmits: 2,
                transitions: vec![
                    tr(7, 2, 4),
                    tr(2, 1, 3),
                    tr(2, 7, 1),
                    tr(1, 4, 3),
                    tr(20, 1, 1),
                    tr(21, 1, 2),
                    tr(5, 6, 0),
                ],
                connect_latency: hist(&[(15, 3)]),
            },
            udp: UdpStats {
                packets_sent: 7,
                packets_received: 6,
                bytes_sent: 700,
                bytes_received: 600,
            },
            fileio: FileIoStats {
                ops: vec![
                    op(FileOp::Read, 5, 500),
                    op(FileOp::Write, 4, 400),
                    op(FileOp::Fsync, 1, 0),
                    op(FileOp::Open, 2, 0),
                ],
            },
            sched: SchedStats {
                context_switches: 100,
                preemptions: 30,
                wakeups: 80,
                wakeups_new: 5,
                migrations: 9,
                runq_latency: hist(&[(0, 1), (20, 2)]),
            },
            memory: MemStats {
                page_faults_user: 50,
                page_faults_kernel: 5,
                major_faults: 2,
                oom_kills: 1,
            },
            programs: vec![
                program("tfo_sys_enter", Category::Syscalls, None),
                program("tfo_page_fault", Category::Memory, Some("EPERM")),
                program("tfo_sched_switch", Category::Scheduler, Some("no BTF")),
            ],
        }
    }

    fn run(snap: Snapshot, opts: EbpfOptions) -> Vec<Metric> {
        let mut out = Vec::new();
        map(
            &snap,
            &opts,
            &Ctx {
                now_ns: NOW,
                boot_ns: LOADED,
            },
            &mut out,
        );
        out
    }

    fn def(name: &str) -> MetricDef {
        *metric_tables()
            .iter()
            .flat_map(|(_, t)| t.iter())
            .find(|d| d.name == name)
            .unwrap_or_else(|| panic!("{name} not in a table"))
    }

    fn attr_values(kv: &[KeyValue]) -> Vec<String> {
        kv.iter()
            .map(|a| match a.value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(any_value::Value::StringValue(s)) => s.clone(),
                other => panic!("{}: {other:?}", a.key),
            })
            .collect()
    }

    /// `(attribute values, value)` of every point of a counter.
    fn counter_points(out: &[Metric], name: &str) -> Vec<(Vec<String>, i64)> {
        let m = out.iter().find(|m| m.name == name).expect(name);
        let Some(metric::Data::Sum(s)) = &m.data else {
            panic!("{name}: not a sum")
        };
        s.data_points
            .iter()
            .map(|p| match p.value {
                Some(Value::AsInt(v)) => (attr_values(&p.attributes), v),
                other => panic!("{name}: {other:?}"),
            })
            .collect()
    }

    fn hist_points(out: &[Metric], name: &str) -> Vec<(Vec<String>, HistogramDataPoint)> {
        let m = out.iter().find(|m| m.name == name).expect(name);
        let Some(metric::Data::Histogram(h)) = &m.data else {
            panic!("{name}: not a histogram")
        };
        h.data_points
            .iter()
            .map(|p| (attr_values(&p.attributes), p.clone()))
            .collect()
    }

    fn s(v: &[&str], n: i64) -> (Vec<String>, i64) {
        (v.iter().map(|s| s.to_string()).collect(), n)
    }

    #[test]
    fn tables_have_the_seed_counts_names_and_hooks() {
        let tables = metric_tables();
        assert_eq!(
            tables
                .iter()
                .map(|(c, t)| (*c, t.len()))
                .collect::<Vec<_>>(),
            [
                ("syscalls", 3),
                ("network", 7),
                ("file I/O", 3),
                ("scheduler", 4),
                ("memory", 3),
                ("TCP state", 1)
            ]
        );
        let mut names = HashSet::new();
        for d in tables.iter().flat_map(|(_, t)| t.iter()) {
            assert!(d.name.starts_with("ebpf."), "{}", d.name);
            assert!(names.insert(d.name), "{} twice", d.name);
            assert!(!d.help.is_empty() && !d.unit.is_empty(), "{}", d.name);
            assert!(d.prom.is_none(), "{}", d.name);
            assert!(
                d.source.starts_with("tp_btf/") || d.source.starts_with("perf_event "),
                "{}: the source names the hook: {}",
                d.name,
                d.source
            );
            if d.name.ends_with("_ns") {
                assert_eq!(d.kind, MetricKind::Histogram, "{}", d.name);
                assert_eq!(d.unit, "ns", "{}", d.name);
                assert!(d.help.contains("estimated"), "{}", d.name);
            } else {
                assert_eq!(d.kind, MetricKind::Counter, "{}", d.name);
                assert_eq!(d.value, ValueType::Int, "{}", d.name);
            }
        }
        for seed in [
            "ebpf.syscall.count",
            "ebpf.syscall.latency_ns",
            "ebpf.syscall.errors",
            "ebpf.tcp.connections",
            "ebpf.tcp.bytes_sent",
            "ebpf.udp.packets_sent",
            "ebpf.fileio.operations",
            "ebpf.fileio.bytes",
            "ebpf.fileio.latency_ns",
            "ebpf.sched.context_switches",
            "ebpf.sched.runq_latency_ns",
            "ebpf.memory.page_faults",
            "ebpf.memory.major_faults",
            "ebpf.tcp.state_transitions",
        ] {
            assert!(names.contains(seed), "{seed}");
        }
    }

    #[test]
    fn log2_buckets_become_power_of_two_bounds() {
        let h = hist(&[(0, 1), (3, 2), (5, 4)]);
        let p = log2_point(&h, Vec::new(), LOADED, NOW);
        assert_eq!(p.explicit_bounds, [2.0, 4.0, 8.0, 16.0, 32.0, 64.0]);
        // (.., 2] (2, 4] (4, 8] (8, 16] (16, 32] (32, 64] (64, ..): trailing empty buckets
        // dropped, the overflow bucket empty.
        assert_eq!(p.bucket_counts, [1, 0, 0, 2, 0, 4, 0]);
        assert_eq!(p.count, 7);
        // Midpoints: bucket 0 -> 1, bucket 3 [8, 16) -> 12, bucket 5 [32, 64) -> 48.
        assert_eq!(p.sum, Some(1.0 + 2.0 * 12.0 + 4.0 * 48.0));
        assert_eq!((p.start_time_unix_nano, p.time_unix_nano), (LOADED, NOW));
        assert_eq!((p.min, p.max), (None, None));

        let empty = log2_point(&Log2Hist::default(), Vec::new(), LOADED, NOW);
        assert!(empty.explicit_bounds.is_empty());
        assert_eq!(empty.bucket_counts, [0]);
        assert_eq!((empty.count, empty.sum), (0, Some(0.0)));

        // The kernel's last slot is open-ended: it is the overflow bucket.
        let open = KERNEL_HIST_SLOTS - 1;
        let h = hist(&[(2, 1), (open, 3)]);
        let p = log2_point(&h, Vec::new(), LOADED, NOW);
        assert_eq!(p.explicit_bounds.len(), open);
        assert_eq!(p.explicit_bounds[open - 1], 2f64.powi(open as i32));
        assert_eq!(p.bucket_counts.len(), open + 1);
        assert_eq!(p.bucket_counts[2], 1);
        assert_eq!(p.bucket_counts[open], 3);
        assert_eq!(p.count, 4);
        assert_eq!(p.sum, Some(6.0 + 3.0 * 2f64.powi(open as i32)));
        // One below it is bounded.
        let p = log2_point(&hist(&[(open - 1, 1)]), Vec::new(), LOADED, NOW);
        assert_eq!(p.explicit_bounds.len(), open);
        assert_eq!(*p.bucket_counts.last().unwrap(), 0);
        // Every point is consistent: one more count than bounds, counts add up.
        for p in [&p, &empty] {
            assert_eq!(p.bucket_counts.len(), p.explicit_bounds.len() + 1);
            assert_eq!(p.bucket_counts.iter().sum::<u64>(), p.count);
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn syscalls_are_named_from_the_x86_64_table() {
        for (nr, name) in [
            (0, "read"),
            (1, "write"),
            (39, "getpid"),
            (60, "exit"),
            (202, "futex"),
            (231, "exit_group"),
            (257, "openat"),
            (262, "newfstatat"),
            (321, "bpf"),
            (334, "rseq"),
            (424, "pidfd_send_signal"),
            (435, "clone3"),
            (449, "futex_waitv"),
            (462, "mseal"),
            (469, "file_setattr"),
        ] {
            assert_eq!(syscall_name(nr), name, "{nr}");
        }
        assert_eq!(syscall_name(400), "nr_400");
        assert_eq!(syscall_name(470), "nr_470");
        assert_eq!(syscall_name(u32::MAX), format!("nr_{}", u32::MAX));
        let named: Vec<_> = x86_64::NAMES.iter().filter(|n| !n.is_empty()).collect();
        assert_eq!(named.len(), 337 + 46);
        let unique: HashSet<_> = named.iter().collect();
        assert_eq!(unique.len(), named.len(), "names are unique");
        assert!(x86_64::NAMES[337..424].iter().all(|n| n.is_empty()));
    }

    #[test]
    fn a_snapshot_maps_every_category_with_the_table_types() {
        let out = run(snapshot(), EbpfOptions::default());
        let mut per_category = Vec::new();
        for (category, table) in metric_tables() {
            let n = out
                .iter()
                .filter(|m| table.iter().any(|d| d.name == m.name))
                .count();
            per_category.push((category, n));
        }
        assert_eq!(
            per_category,
            [
                ("syscalls", 3),
                ("network", 7),
                ("file I/O", 3),
                ("scheduler", 4),
                ("memory", 3),
                ("TCP state", 1)
            ]
        );
        assert_eq!(out.len(), 21);
        for m in &out {
            let d = def(&m.name);
            assert_eq!((m.unit.as_str(), m.description.as_str()), (d.unit, d.help));
            match (&m.data, d.kind) {
                (Some(metric::Data::Sum(s)), MetricKind::Counter) => {
                    assert!(s.is_monotonic, "{}", m.name);
                    assert_eq!(
                        s.aggregation_temporality,
                        AggregationTemporality::Cumulative as i32
                    );
                    for p in &s.data_points {
                        assert_eq!((p.start_time_unix_nano, p.time_unix_nano), (LOADED, NOW));
                        let keys: Vec<_> = p.attributes.iter().map(|a| a.key.as_str()).collect();
                        assert_eq!(keys, d.attributes, "{}", m.name);
                    }
                }
                (Some(metric::Data::Histogram(h)), MetricKind::Histogram) => {
                    assert_eq!(
                        h.aggregation_temporality,
                        AggregationTemporality::Cumulative as i32
                    );
                    for p in &h.data_points {
                        assert_eq!((p.start_time_unix_nano, p.time_unix_nano), (LOADED, NOW));
                        let keys: Vec<_> = p.attributes.iter().map(|a| a.key.as_str()).collect();
                        assert_eq!(keys, d.attributes, "{}", m.name);
                    }
                }
                (data, kind) => panic!("{}: {kind:?} sent as {data:?}", m.name),
            }
        }

        assert_eq!(
            counter_points(&out, "ebpf.syscall.count"),
            [
                s(&["read"], 10),
                s(&["getpid"], 5),
                s(&["nr_400"], 2),
                s(&["nr_1000"], 3)
            ]
        );
        assert_eq!(
            counter_points(&out, "ebpf.syscall.errors"),
            [
                s(&["read"], 1),
                s(&["getpid"], 0),
                s(&["nr_400"], 2),
                s(&["nr_1000"], 0)
            ]
        );
        let lat = hist_points(&out, "ebpf.syscall.latency_ns");
        assert_eq!(lat.len(), 4);
        assert_eq!(lat[0].0, ["read"]);
        assert_eq!(lat[0].1.count, 10);
        assert_eq!(lat[0].1.explicit_bounds.len(), 13);
        assert_eq!(lat[0].1.bucket_counts[8], 9);
        assert_eq!(lat[0].1.bucket_counts[12], 1);

        assert_eq!(
            counter_points(&out, "ebpf.tcp.connections"),
            [s(&["active"], 4), s(&["passive"], 3)]
        );
        for (name, v) in [
            ("ebpf.tcp.bytes_sent", 4096),
            ("ebpf.tcp.bytes_received", 2048),
            ("ebpf.tcp.retransmits", 2),
            ("ebpf.udp.packets_sent", 7),
            ("ebpf.udp.packets_received", 6),
            ("ebpf.sched.migrations", 9),
            ("ebpf.memory.major_faults", 2),
            ("ebpf.memory.oom_kills", 1),
        ] {
            assert_eq!(counter_points(&out, name), [s(&[], v)], "{name}");
        }
        let connect = hist_points(&out, "ebpf.tcp.connect_latency_ns");
        assert_eq!(connect.len(), 1);
        assert_eq!(connect[0].1.count, 3);
        assert_eq!(connect[0].1.explicit_bounds.last(), Some(&65536.0));

        assert_eq!(
            counter_points(&out, "ebpf.fileio.operations"),
            [
                s(&["read"], 5),
                s(&["write"], 4),
                s(&["fsync"], 1),
                s(&["open"], 2)
            ]
        );
        assert_eq!(
            counter_points(&out, "ebpf.fileio.bytes"),
            [s(&["read"], 500), s(&["write"], 400)]
        );
        let fio: Vec<_> = hist_points(&out, "ebpf.fileio.latency_ns")
            .into_iter()
            .map(|(a, p)| (a, p.count))
            .collect();
        assert_eq!(
            fio,
            [
                (vec!["read".to_string()], 5),
                (vec!["write".to_string()], 4),
                (vec!["fsync".to_string()], 1),
                (vec!["open".to_string()], 2)
            ]
        );

        assert_eq!(
            counter_points(&out, "ebpf.sched.context_switches"),
            [s(&["voluntary"], 70), s(&["involuntary"], 30)]
        );
        assert_eq!(
            counter_points(&out, "ebpf.sched.wakeups"),
            [s(&["existing"], 80), s(&["new"], 5)]
        );
        let runq = hist_points(&out, "ebpf.sched.runq_latency_ns");
        assert_eq!(runq[0].1.count, 3);
        assert_eq!(runq[0].1.bucket_counts[0], 1);
        assert_eq!(
            counter_points(&out, "ebpf.memory.page_faults"),
            [s(&["user"], 50), s(&["kernel"], 5)]
        );

        // By name; unknown numbers share UNKNOWN and are added up; zero pairs left out.
        assert_eq!(
            counter_points(&out, "ebpf.tcp.state_transitions"),
            [
                s(&["CLOSE", "SYN_SENT"], 4),
                s(&["ESTABLISHED", "FIN_WAIT1"], 3),
                s(&["SYN_SENT", "CLOSE"], 1),
                s(&["SYN_SENT", "ESTABLISHED"], 3),
                s(&["UNKNOWN", "ESTABLISHED"], 3),
            ]
        );
    }

    #[test]
    fn series_stay_bounded() {
        // Every syscall number the kernel map could hold, and every state pair.
        let snap = Snapshot {
            syscalls: (0..512)
                .map(|nr| SyscallStat {
                    nr,
                    name: None,
                    count: 1,
                    errors: 0,
                    latency: hist(&[(5, 1)]),
                })
                .collect(),
            tcp: TcpStats {
                transitions: (0..=255u8)
                    .flat_map(|old| {
                        (0..=255u8).map(move |new| TcpTransition { old, new, count: 1 })
                    })
                    .collect(),
                ..TcpStats::default()
            },
            ..Snapshot::default()
        };
        let out = run(snap, EbpfOptions::default());
        assert_eq!(counter_points(&out, "ebpf.syscall.count").len(), 512);
        // 13 named states and UNKNOWN.
        assert_eq!(
            counter_points(&out, "ebpf.tcp.state_transitions").len(),
            14 * 14
        );
    }

    #[test]
    fn disabled_categories_send_nothing() {
        let none = EbpfOptions {
            syscalls: false,
            network: false,
            file_io: false,
            scheduler: false,
            memory: false,
            tcp_events: false,
            syscall_latency: false,
        };
        assert!(run(snapshot(), none).is_empty());
        let out = run(
            snapshot(),
            EbpfOptions {
                tcp_events: true,
                ..none
            },
        );
        assert_eq!(
            out.iter().map(|m| m.name.as_str()).collect::<Vec<_>>(),
            ["ebpf.tcp.state_transitions"]
        );
        // An empty snapshot (nothing loaded): zero counters, no per-syscall series.
        let out = run(Snapshot::default(), EbpfOptions::default());
        assert!(out.iter().all(|m| !m.name.starts_with("ebpf.syscall.")));
        assert_eq!(counter_points(&out, "ebpf.tcp.connections")[0].1, 0);
    }

    #[test]
    fn latency_histograms_only_when_measured() {
        let names = |o| {
            run(snapshot(), o)
                .iter()
                .map(|m| m.name.clone())
                .collect::<Vec<_>>()
        };
        let on = names(EbpfOptions::default());
        let off = names(EbpfOptions {
            syscall_latency: false,
            ..EbpfOptions::default()
        });
        for n in ["ebpf.syscall.latency_ns", "ebpf.fileio.latency_ns"] {
            assert!(on.iter().any(|m| m == n), "{n} in {on:?}");
            assert!(!off.iter().any(|m| m == n), "{n} in {off:?}");
        }
        for n in [
            "ebpf.syscall.count",
            "ebpf.syscall.errors",
            "ebpf.fileio.operations",
            "ebpf.fileio.bytes",
        ] {
            assert!(off.iter().any(|m| m == n), "{n} in {off:?}");
        }
    }

    #[test]
    fn the_collector_reports_each_failed_program_once() {
        let snaps = Arc::new(Mutex::new(vec![snapshot(), snapshot()]));
        let src = Arc::clone(&snaps);
        let mut c = EbpfCollector::new(
            Box::new(move || src.lock().unwrap().pop()),
            EbpfOptions {
                scheduler: false,
                ..EbpfOptions::default()
            },
        )
        .with_start_time(LOADED);
        assert_eq!(c.name(), "ebpf");

        let mut out = Vec::new();
        let report = c.collect_at(NOW, &mut out);
        // The scheduler's program is off, so its failure is not reported.
        let errors: Vec<String> = report.errors.iter().map(|e| e.to_string()).collect();
        assert_eq!(
            errors,
            [
                "eBPF program tfo_page_fault (tp_btf/sys_enter) is not attached: EPERM; \
              fix: grant CAP_BPF and CAP_PERFMON"
            ]
        );
        assert_eq!(out.len(), 17);
        let Some(metric::Data::Sum(s)) = &out[0].data else {
            panic!()
        };
        assert_eq!(s.data_points[0].start_time_unix_nano, LOADED);

        let mut out = Vec::new();
        assert!(c.collect_at(NOW + 1, &mut out).errors.is_empty(), "once");
        assert_eq!(out.len(), 17);

        // The source has nothing: no metrics, no error.
        let mut out = Vec::new();
        assert!(c.collect(&mut out).errors.is_empty());
        assert!(out.is_empty());
    }
}
