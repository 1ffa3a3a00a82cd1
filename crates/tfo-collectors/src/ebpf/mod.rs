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
        syscalls::map(&snap.syscalls, &mut e);
    }
    if opts.network {
        network::map(&snap.tcp, &snap.udp, &mut e);
    }
    if opts.file_io {
        fileio::map(&snap.fileio, &mut e);
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
pub(crate) const fn counter(
    name: &'static str,
    unit: &'static str,
    attributes: &'static [&'static str],
    help: &'static str,
    source: &'static str,
) -> MetricDef {
    MetricDef::new(
        name,
        MetricKind::Counter,
        ValueType::Int,
        unit,
        attributes,
        help,
        source,
    )
}

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
